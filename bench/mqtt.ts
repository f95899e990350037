// MQTT and device-signature benchmark. Prints, never asserts.
//
//   bash scripts/run-node bench/mqtt.ts [--help]
//
// 1. QoS 1 messages per second from N mqtt.js clients (each keeping 20
//    publishes in flight), against three brokers, each in its own process:
//      - Fieldproof: `fieldproof start` with the broker on; every PUBACK
//        waits for the SQLite commit (synchronous=FULL, group commit);
//      - aedes alone: the same aedes, no hooks, in-memory (the ceiling of
//        the broker library itself);
//      - Debian's mosquitto (/usr/sbin/mosquitto), when installed.
//    The three run at once and are measured in turn, round after round; the
//    ratio is taken within a round, and each broker's CPU time per message
//    (from /proc) is printed beside its rate. Goal: Fieldproof durable
//    ≥ 50 % of aedes alone.
// 2. Device-signed readings per second through DeviceRegistry (parse,
//    counter check, signature check in the worker pool, durable ingest),
//    beside the raw node:crypto ECDSA verification ceiling of one core
//    measured in the same run (rates per CPU second: other load on the
//    machine does not move the ratios). Goal: ≥ 70 % of the ceiling per
//    core used (process CPU time over wall time).

import { spawn, type ChildProcess } from 'node:child_process'
import { createPublicKey, createPrivateKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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
import { FastDeviceVerifier } from '../gateway/src/pipeline/signature-pool-verifier.ts'
import { MetricsRegistry } from '../gateway/src/pipeline/metrics.ts'
import { Pipeline } from '../gateway/src/pipeline/pipeline.ts'
import { Store } from '../gateway/src/store/store.ts'
import { CLI, runCli } from '../test/helpers/gateway-process.ts'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    only: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', default: false },
    'serve-aedes': { type: 'string' },
  },
})
if (values.help) {
  console.log(`usage: node bench/mqtt.ts [--seconds 5] [--clients 10] [--workers 1] [--rounds 2] [--only brokers|signatures] [--profile DIR]
  --seconds   length of each broker measurement
  --clients   MQTT clients (each keeps 20 QoS 1 publishes in flight)
  --rounds    broker measurement rounds (each: aedes alone, mosquitto, Fieldproof)
  --workers   signature worker threads for the end-to-end signed measurement
  --only      run one part
  --profile   write a CPU profile of the Fieldproof gateway process (node --cpu-prof) into DIR`)
  process.exit(0)
}

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
const ROUNDS = Number(values.rounds)
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

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(rest[11]) + Number(rest[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN
  }
}

/** QoS 1 publishes acknowledged per second over SECONDS from CLIENTS clients, and the broker's CPU µs per message. */
async function load(port: number, auth: (i: number) => { username?: string; password?: string; topic: string }, pid?: number, seconds = SECONDS): Promise<{ rate: number; cpuUs: number }> {
  const payload = '{"AM2301":{"Temperature":21.5,"Humidity":40.5},"TempUnit":"C"}'
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...auth(i) })))
  let acked = 0
  const cpu0 = cpuSeconds(pid)
  const end = performance.now() + seconds * 1000
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
  const cpuUs = ((cpuSeconds(pid) - cpu0) * 1e6) / acked
  await Promise.all(clients.map((c) => c.endAsync()))
  return { rate, cpuUs }
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
  console.log(`\nQoS 1 publishes per second, ${CLIENTS} clients × ${WINDOW} in flight, ${SECONDS} s each, ${ROUNDS} rounds (aedes, mosquitto, Fieldproof in turn)`)
  const dir = mkdtempSync(join(tmpdir(), 'fp-bench-mqtt-'))
  const children: ChildProcess[] = []
  try {
    // All three brokers run at once (idle ones cost nothing) and are measured
    // in turn, round after round, so a change in the machine's load hits
    // them alike; the ratio is taken within each round.
    const state = join(dir, 'state')
    const creds: { username: string; password: string }[] = []
    for (let i = 0; i < CLIENTS; i++) {
      const r = await runCli(['devices', 'add', 'mqtt', '--id', `plug-${i}`, '--prefix', `tele/plug${i}`, '--format', 'tasmota', '--state-dir', state, '--json'])
      creds.push(JSON.parse(r.stdout) as { username: string; password: string })
    }
    // Fieldproof: a real gateway process (store synchronous=FULL, PUBACK after the commit).
    const fpPort = await freePort()
    writeFileSync(join(dir, 'fp.toml'), `[clock]\nsync_check = "none"\n[sources.sim]\nenabled = false\n[sources.mqtt]\nenabled = true\nlisten = "127.0.0.1:${fpPort}"\n[store]\nmax_pending = 100000\n[discovery]\nmdns = false\n`)
    const prof = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : []
    const httpPort = await freePort()
    const gw = spawn(process.execPath, [...prof, CLI, 'start', '--config', join(dir, 'fp.toml'), '--state-dir', state, '--http-listen', `127.0.0.1:${httpPort}`], { stdio: 'ignore' })
    children.push(gw)
    const aPort = await freePort()
    const aedesProc = spawn(process.execPath, [import.meta.filename, '--serve-aedes', String(aPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(aedesProc)
    let mPort: number | undefined = await freePort()
    writeFileSync(join(dir, 'mosquitto.conf'), `listener ${mPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
    const mosqProc = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' })
    mosqProc.on('error', () => undefined)
    children.push(mosqProc)
    await waitPort(fpPort)
    await waitPort(aPort)
    try {
      await waitPort(mPort)
    } catch (e) {
      console.log(`  mosquitto: not measured (${(e as Error).message})`)
      mPort = undefined
    }
    const anon = (i: number) => ({ topic: `tele/plug${i}/SENSOR` })
    type M = { rate: number; cpuUs: number }
    const rows: { alone: M; mosq?: M; fp: M }[] = []
    const show = (m: M | undefined) => (m === undefined ? '      n/a' : `${m.rate.toFixed(0).padStart(7)} (${m.cpuUs.toFixed(1)} µs CPU)`)
    // Warm-up (JIT, SQLite cache), not counted.
    const fpAuth = (i: number) => ({ username: creds[i]?.username ?? '', password: creds[i]?.password ?? '', topic: `tele/plug${i}/SENSOR` })
    await load(aPort, anon, undefined, 1)
    await load(fpPort, fpAuth, undefined, 1)
    for (let round = 0; round < ROUNDS; round++) {
      const alone = await load(aPort, anon, aedesProc.pid)
      const mosq = mPort !== undefined ? await load(mPort, anon, mosqProc.pid) : undefined
      const fp = await load(fpPort, fpAuth, gw.pid)
      rows.push({ alone, fp, ...(mosq !== undefined ? { mosq } : {}) })
      console.log(`  round ${round + 1}: aedes alone ${show(alone)}  mosquitto ${show(mosq)}  Fieldproof ${show(fp)} msg/s = ${pct(fp.rate, alone.rate)} of aedes alone`)
    }
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
    const sum = Number(/^fieldproof_commit_readings_sum(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
    const count = Number(/^fieldproof_commit_readings_count(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
    const ratios = rows.map((r) => r.fp.rate / r.alone.rate)
    const range = (xs: number[], d = 0) => `${Math.min(...xs).toFixed(d)} … ${Math.max(...xs).toFixed(d)}`
    console.log(`  aedes alone (no hooks, in memory)   ${range(rows.map((r) => r.alone.rate))} msg/s, ${range(rows.map((r) => r.alone.cpuUs), 1)} µs broker CPU per message`)
    if (mPort !== undefined) console.log(`  mosquitto (Debian, no persistence)  ${range(rows.map((r) => r.mosq?.rate ?? 0))} msg/s, ${range(rows.map((r) => r.mosq?.cpuUs ?? 0), 1)} µs`)
    console.log(`  Fieldproof (durable before PUBACK)  ${range(rows.map((r) => r.fp.rate))} msg/s, ${range(rows.map((r) => r.fp.cpuUs), 1)} µs, ${(sum / count).toFixed(1)} readings per commit`)
    console.log(`  Fieldproof / aedes alone            ${range(ratios.map((x) => 100 * x))} % (goal ≥ 50 %)`)
  } finally {
    await Promise.all(children.map((c) => stopChild(c)))
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
  // Rates per second of this thread's CPU time, so that other processes on a
  // busy machine do not skew the ratios; each is the best of three rounds.
  const threadCpu = () => {
    const u = (process as unknown as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.() ?? process.cpuUsage()
    return (u.user + u.system) / 1e6
  }
  const once = (n: number, f: () => void) => {
    const t0 = threadCpu()
    for (let i = 0; i < n; i++) f()
    return n / (threadCpu() - t0)
  }
  const rate = (n: number, f: () => void) => Math.max(once(n, f), once(n, f), once(n, f))
  const ceiling = rate(1500, () => cryptoVerify('sha256', data, { key: kobj, dsaEncoding: 'ieee-p1363' }, sig))
  const m = signBody({ deviceId: 'd', counter: 1n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] }, key)
  const v = new DeviceVerifier()
  const fast = rate(800, () => v.verify(m.body, m.signature, pub))
  const pv = new FastDeviceVerifier()
  pv.verify(m.body, m.signature, pub) // builds its c·G table once
  const pooled = rate(1000, () => pv.verify(m.body, m.signature, pub))
  const noble = rate(400, () => recoverSignedMessageKey(m))
  // The protocol change proposed in docs/device-protocol.md: ECDSA over SHA-256 of the body,
  // which OpenSSL verifies directly with the registered key (a KeyObject cached per device).
  const sigSha = cryptoSign('sha256', m.body, { key: priv, dsaEncoding: 'ieee-p1363' })
  const sha = rate(1500, () => cryptoVerify('sha256', m.body, { key: kobj, dsaEncoding: 'ieee-p1363' }, sigSha))

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
  const workers = Number(values.workers)
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
  // Warm the workers (module load, c·G table) before timing.
  await Promise.all(Array.from({ length: 4 * workers }, () => reg.ingestSigned(new Uint8Array(0), { source: 'mqtt', received, ingest: (r) => pipeline.ingest(r) })))
  await reg.ingestSigned(msgs.shift() as Uint8Array, { source: 'mqtt', received, ingest: (r) => pipeline.ingest(r) })
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const out = await Promise.all(msgs.map((x) => reg.ingestSigned(x, { source: 'mqtt', received, ingest: (r) => pipeline.ingest(r) })))
  const wall = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const e2e = msgs.length / wall
  // Cores used: CPU time of the whole process (main thread + workers) over wall time.
  const cores = (cpu.user + cpu.system) / 1e6 / wall
  const failed = out.filter((o) => !o.ok).length
  const text = metrics.render()
  const perCommit = Number(/^fieldproof_commit_readings_sum(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN) / Number(/^fieldproof_commit_readings_count(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
  await reg.close()
  pipeline.stop()
  store.close()
  rmSync(dir, { recursive: true, force: true })

  console.log(`  node:crypto ECDSA verify, raw ceiling (1 core)          ${ceiling.toFixed(0).padStart(6)} /s`)
  console.log(`  EIP-191 check, core/device-protocol.ts DeviceVerifier   ${fast.toFixed(0).padStart(6)} /s   = ${pct(fast, ceiling)} of the ceiling`)
  console.log(`  EIP-191 check, signature pool's FastDeviceVerifier      ${pooled.toFixed(0).padStart(6)} /s   = ${pct(pooled, ceiling)} of the ceiling`)
  console.log(`  EIP-191 recovery, pure JS (@noble/curves)               ${noble.toFixed(0).padStart(6)} /s   = ${pct(noble, ceiling)}`)
  console.log(`  proposal: ECDSA/SHA-256 over the body, cached key       ${sha.toFixed(0).padStart(6)} /s   = ${pct(sha, ceiling)}`)
  console.log(
    `  signed readings end to end, durable (${workers} worker + main)  ${e2e.toFixed(0).padStart(6)} /s on ${cores.toFixed(2)} cores = ${(e2e / cores).toFixed(0)} /s per core used = ${pct(e2e / cores, ceiling)} of the ceiling (goal ≥ 70 %), ${perCommit.toFixed(1)} readings per commit${failed ? `, ${failed} refused (unexpected)` : ''}`,
  )
}

if (values.only !== 'brokers') await signatures()
if (values.only !== 'signatures') await brokers()
process.exit(0)
