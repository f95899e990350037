// MQTT and device-signature benchmark. Prints, never asserts.
//
//   bash scripts/run-node bench/mqtt.ts [--seconds 5] [--clients 10]
//
// 1. QoS 1 messages per second from N mqtt.js clients (each keeping 20
//    publishes in flight), against three brokers, each in its own process:
//      - Fieldproof: `fieldproof start` with the broker on; every PUBACK
//        waits for the SQLite commit (synchronous=FULL, group commit);
//      - aedes alone: the same aedes, no hooks, in-memory (the ceiling of
//        the broker library itself);
//      - Debian's mosquitto (/usr/sbin/mosquitto), when installed.
//    Goal: Fieldproof durable ≥ 50 % of aedes alone.
// 2. Device-signed readings per second through DeviceRegistry (parse,
//    counter check, signature check in the worker pool, durable ingest),
//    beside the raw node:crypto ECDSA verification ceiling of one core
//    measured in the same run. Goal: ≥ 70 % of the ceiling per core used.

import { spawn, type ChildProcess } from 'node:child_process'
import { createPublicKey, createPrivateKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import pino from 'pino'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DeviceVerifier, encodeSignedBinary, recoverSignedMessageKey, signBody } from '../gateway/src/core/device-protocol.ts'
import { signBatchHeader } from '../gateway/src/core/batch.ts'
import { bytesToHex, publicKeyToAddress } from '../gateway/src/core/hex.ts'
import { DeviceRegistry } from '../gateway/src/pipeline/devices.ts'
import { MetricsRegistry } from '../gateway/src/pipeline/metrics.ts'
import { Pipeline } from '../gateway/src/pipeline/pipeline.ts'
import { Store } from '../gateway/src/store/store.ts'
import { CLI, runCli } from '../test/helpers/gateway-process.ts'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, clients: { type: 'string', default: '10' }, 'serve-aedes': { type: 'string' } } })

// Child mode: aedes alone on a port.
if (values['serve-aedes']) {
  const { Aedes } = await import('aedes')
  const broker = await Aedes.createBroker()
  const server = createServer((s) => broker.handle(s))
  server.listen(Number(values['serve-aedes']), '127.0.0.1', () => process.stdout.write('ready\n'))
  await new Promise(() => undefined)
}

const SECONDS = Number(values.seconds)
const CLIENTS = Number(values.clients)
const WINDOW = 20

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 500, username: 'probe', password: 'x' })
      c.on('connect', () => {
        c.end(true)
        resolve(true)
      })
      // A refused CONNACK (numeric code) means something listens; a socket error does not.
      c.on('error', (e: Error) => {
        c.end(true)
        resolve(typeof (e as Error & { code?: unknown }).code === 'number')
      })
      c.on('close', () => resolve(false))
    })
    if (ok) return
    await sleep(100)
  }
  throw new Error(`nothing listens on ${port}`)
}

/** QoS 1 publishes acknowledged per second over SECONDS from CLIENTS clients. */
async function load(port: number, auth: (i: number) => { username?: string; password?: string; topic: string }): Promise<number> {
  const payload = '{"AM2301":{"Temperature":21.5,"Humidity":40.5},"TempUnit":"C"}'
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...auth(i) })))
  let acked = 0
  const end = performance.now() + SECONDS * 1000
  const start = performance.now()
  await Promise.all(
    clients.map((c, i) =>
      Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (performance.now() < end) {
            await c.publishAsync(auth(i).topic, payload, { qos: 1 })
            acked++
          }
        }),
      ),
    ),
  )
  const rate = acked / ((performance.now() - start) / 1000)
  await Promise.all(clients.map((c) => c.endAsync()))
  return rate
}

function stopChild(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null) return resolve()
    p.once('exit', () => resolve())
    p.kill('SIGTERM')
  })
}

const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(0)} %` : 'n/a')

async function brokers(): Promise<void> {
  console.log(`\nQoS 1 publishes per second, ${CLIENTS} clients × ${WINDOW} in flight, ${SECONDS} s each`)
  const dir = mkdtempSync(join(tmpdir(), 'fp-bench-mqtt-'))
  try {
    // Fieldproof: a real gateway process.
    const state = join(dir, 'state')
    const creds: { username: string; password: string }[] = []
    for (let i = 0; i < CLIENTS; i++) {
      const r = await runCli(['devices', 'add', 'mqtt', '--id', `plug-${i}`, '--prefix', `tele/plug${i}`, '--format', 'tasmota', '--state-dir', state, '--json'])
      creds.push(JSON.parse(r.stdout) as { username: string; password: string })
    }
    const fpPort = await freePort()
    writeFileSync(join(dir, 'fp.toml'), `[clock]\nsync_check = "none"\n[sources.sim]\nenabled = false\n[sources.mqtt]\nenabled = true\nlisten = "127.0.0.1:${fpPort}"\n[store]\nmax_pending = 100000\n[discovery]\nmdns = false\n`)
    const gw = spawn(process.execPath, [CLI, 'start', '--config', join(dir, 'fp.toml'), '--state-dir', state, '--http-listen', '127.0.0.1:0'], { stdio: 'ignore' })
    await waitPort(fpPort)
    const fp = await load(fpPort, (i) => ({ username: creds[i]?.username ?? '', password: creds[i]?.password ?? '', topic: `tele/plug${i}/SENSOR` }))
    await stopChild(gw)

    const aPort = await freePort()
    const aedes = spawn(process.execPath, [import.meta.filename, '--serve-aedes', String(aPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
    await waitPort(aPort)
    const alone = await load(aPort, (i) => ({ topic: `tele/plug${i}/SENSOR` }))
    await stopChild(aedes)

    let mosq: number | undefined
    try {
      const mPort = await freePort()
      writeFileSync(join(dir, 'mosquitto.conf'), `listener ${mPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
      const m = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' })
      await waitPort(mPort)
      mosq = await load(mPort, (i) => ({ topic: `tele/plug${i}/SENSOR` }))
      await stopChild(m)
    } catch (e) {
      console.log(`  mosquitto: not measured (${(e as Error).message})`)
    }
    console.log(`  aedes alone (no hooks, in memory)   ${alone.toFixed(0).padStart(8)} msg/s`)
    if (mosq !== undefined) console.log(`  mosquitto (Debian, no persistence)  ${mosq.toFixed(0).padStart(8)} msg/s`)
    console.log(`  Fieldproof (durable before PUBACK)  ${fp.toFixed(0).padStart(8)} msg/s   = ${pct(fp, alone)} of aedes alone (goal ≥ 50 %)`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function signatures(): Promise<void> {
  console.log('\nDevice signatures (secp256k1)')
  // Raw ceiling: node:crypto ECDSA verification on one core.
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const jwk = { kty: 'EC', crv: 'secp256k1', x: Buffer.from(pub.subarray(1, 33)).toString('base64url'), y: Buffer.from(pub.subarray(33)).toString('base64url') }
  const kobj = createPublicKey({ key: jwk, format: 'jwk' })
  const priv = createPrivateKey({ key: { ...jwk, d: Buffer.from(key).toString('base64url') }, format: 'jwk' })
  const data = Buffer.from('fieldproof')
  const sig = cryptoSign('sha256', data, { key: priv, dsaEncoding: 'ieee-p1363' })
  const rate = (n: number, f: () => void) => {
    const t0 = performance.now()
    for (let i = 0; i < n; i++) f()
    return n / ((performance.now() - t0) / 1000)
  }
  const ceiling = rate(3000, () => cryptoVerify('sha256', data, { key: kobj, dsaEncoding: 'ieee-p1363' }, sig))
  const m = signBody({ deviceId: 'd', counter: 1n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] }, key)
  const v = new DeviceVerifier()
  const fast = rate(2000, () => v.verify(m.body, m.signature, pub))
  const noble = rate(800, () => recoverSignedMessageKey(m))

  // End to end: DeviceRegistry + durable pipeline, 50 devices, one worker thread.
  const dir = mkdtempSync(join(tmpdir(), 'fp-bench-signed-'))
  const store = new Store(join(dir, 'fieldproof.db'))
  const metrics = new MetricsRegistry()
  const gwKey = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318' as const
  const pipeline = new Pipeline({
    store,
    metrics,
    signer: { address: '0x2c7536E3605D9C16a7a3D7b1898e529396a65c23', sign: (h) => signBatchHeader(h, gwKey) },
    batchMaxReadings: 1000,
    batchMaxAgeMs: 60_000,
    maxPending: 100_000,
    commitMaxReadings: 2000,
    retentionMs: 3_600_000,
    maxBytes: 1 << 30,
  })
  const workers = 1
  const reg = new DeviceRegistry({ store, metrics, log: pino({ level: 'silent' }), verifyWorkers: workers })
  const DEVICES = 50
  const PER = 100
  const msgs: Uint8Array[] = []
  for (let d = 0; d < DEVICES; d++) {
    const k = secp256k1.utils.randomPrivateKey()
    const p = secp256k1.getPublicKey(k, false)
    store.upsertDevice({ id: `dev-${d}`, kind: 'signed', config: JSON.stringify({ address: publicKeyToAddress(p), publicKey: bytesToHex(p) }) })
    for (let c = 1; c <= PER; c++) msgs.push(encodeSignedBinary(signBody({ deviceId: `dev-${d}`, counter: BigInt(c), metrics: [{ name: 'temperature_c', unit: 'Cel', value: c / 10 }] }, k)))
  }
  const received = { bootId: '00'.repeat(16), monoNs: 1n, wallMs: Date.now(), clock: 'unsynchronized' as const }
  const t0 = performance.now()
  const out = await Promise.all(msgs.map((x) => reg.ingestSigned(x, { source: 'mqtt', received, ingest: (r) => pipeline.ingest(r) })))
  const e2e = msgs.length / ((performance.now() - t0) / 1000)
  const failed = out.filter((o) => !o.ok).length
  await reg.close()
  pipeline.stop()
  store.close()
  rmSync(dir, { recursive: true, force: true })

  console.log(`  node:crypto ECDSA verify, raw ceiling (1 core)      ${ceiling.toFixed(0).padStart(6)} /s`)
  console.log(`  EIP-191 check vs registered key via node:crypto     ${fast.toFixed(0).padStart(6)} /s   = ${pct(fast, ceiling)} of the ceiling (1 core)`)
  console.log(`  EIP-191 recovery, pure JS (@noble/curves)           ${noble.toFixed(0).padStart(6)} /s   = ${pct(noble, ceiling)}`)
  console.log(`  signed readings end to end, durable (${workers} worker + main) ${e2e.toFixed(0).padStart(6)} /s   = ${pct(e2e, ceiling)} of one core's ceiling (goal ≥ 70 % per core used)${failed ? `, ${failed} refused (unexpected)` : ''}`)
  console.log('  (OpenSSL has no Keccak-256 and cannot verify a pre-hashed digest, so each EIP-191 check costs one')
  console.log('   OpenSSL verification plus one fixed-base multiplication and a square root in JS; see core/device-protocol.ts)')
}

await signatures()
await brokers()
process.exit(0)
