// Device-signed readings: check rates and end-to-end throughput beside the
// raw signature-check ceiling measured in the same run (docs/device-protocol.md,
// "Cost of a check"). Prints, never asserts.
//
//   bash scripts/run-node bench/signed.ts [--help]
//
// 1. Check rates, one thread, per second of that thread's CPU time (best of
//    three), so other load on a shared machine does not move the ratios:
//      - the ceiling: node:crypto ECDSA/SHA-256 verify with a cached KeyObject;
//      - version 1 (EIP-191): core DeviceVerifier, the pool's FastDeviceVerifier;
//      - version 2 (SHA-256): DeviceVerifier inline, and FastDeviceVerifier
//        through a SignaturePool of one worker thread (rate per CPU second of
//        the whole process: main thread + worker);
//      - for reference, recovery in pure JS (@noble/curves).
// 2. End to end: a real gateway process (`fieldproof start`, the same entry
//    point as on a device) with its MQTT broker; N mqtt.js clients, each a
//    registered signed device logged in by its id, publish version-2 signed
//    readings (binary form) at QoS 1 with 20 in flight; every PUBACK waits
//    for the SQLite commit (synchronous=FULL). Run with
//    [sources.mqtt] signature_workers = 1 and then 2.
//    Cores used = CPU seconds of the gateway process (utime + stime of every
//    thread, from /proc/<pid>/stat) over the wall time of the measurement;
//    per core used = readings per second / cores used, printed as a ratio of
//    the ceiling of part 1. Goal (issue #5): ≥ 70 % of the ceiling per core used.

import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DeviceVerifier, encodeSignedBinary, recoverSignedMessageKey, signBody } from '../gateway/src/core/device-protocol.ts'
import { bytesToHex, publicKeyToAddress } from '../gateway/src/core/hex.ts'
import { DB_FILE } from '../gateway/src/gateway.ts'
import { FastDeviceVerifier } from '../gateway/src/pipeline/signature-pool-verifier.ts'
import { SignaturePool } from '../gateway/src/pipeline/signature-pool.ts'
import { Store } from '../gateway/src/store/store.ts'
import { startGateway } from '../test/helpers/gateway-process.ts'
import { freePort } from '../test/helpers/ports.ts'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '10' },
    messages: { type: 'string', default: '400' },
    workers: { type: 'string', default: '1,2' },
    only: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  console.log(`usage: node bench/signed.ts [--clients 10] [--messages 400] [--workers 1,2] [--only checks|e2e]
  --clients   MQTT clients, one signed device each (each keeps 20 QoS 1 publishes in flight)
  --messages  signed readings each client publishes per gateway run (signed before timing)
  --workers   signature_workers settings to run the gateway with, comma-separated
  --only      run one part
  --profile   write CPU profiles of the gateway process's threads (node --cpu-prof) into DIR`)
  process.exit(0)
}

const CLIENTS = Number(values.clients)
const MESSAGES = Number(values.messages)
const WORKERS = String(values.workers)
  .split(',')
  .map((x) => Number(x.trim()))
  .filter((x) => Number.isInteger(x) && x >= 0)
const WINDOW = 20
const WARMUP = 20

const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(0)} %` : 'n/a')

/** CPU time of this thread in seconds (process CPU where the per-thread figure is unavailable). */
function threadCpu(): number {
  const u = (process as unknown as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.() ?? process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** CPU seconds (user + system, every thread) a process has used so far, from /proc (Linux); NaN elsewhere. */
function procCpuSeconds(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(rest[11]) + Number(rest[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN
  }
}

/** Operations per CPU second of this thread, best of three rounds of n. */
function rate(n: number, f: () => void): number {
  const once = () => {
    const t0 = threadCpu()
    for (let i = 0; i < n; i++) f()
    return n / (threadCpu() - t0)
  }
  return Math.max(once(), once(), once())
}

/** The ceiling: node:crypto ECDSA/SHA-256 verification with a cached KeyObject, one core. */
function ceiling(): number {
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const jwk = { kty: 'EC', crv: 'secp256k1', x: Buffer.from(pub.subarray(1, 33)).toString('base64url'), y: Buffer.from(pub.subarray(33)).toString('base64url') }
  const kobj = createPublicKey({ key: jwk, format: 'jwk' })
  const priv = createPrivateKey({ key: { ...jwk, d: Buffer.from(key).toString('base64url') }, format: 'jwk' })
  const data = Buffer.from('fieldproof')
  const sig = cryptoSign('sha256', data, { key: priv, dsaEncoding: 'ieee-p1363' })
  return rate(1500, () => cryptoVerify('sha256', data, { key: kobj, dsaEncoding: 'ieee-p1363' }, sig))
}

async function checks(top: number): Promise<void> {
  console.log('\nDevice-signature checks, per CPU second (best of three)')
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const metrics = [{ name: 'temperature_c', unit: 'Cel', value: 20 }]
  const m1 = signBody({ deviceId: 'd', counter: 1n, metrics }, key)
  const m2 = signBody({ version: 2, deviceId: 'd', counter: 1n, metrics }, key)
  const core = new DeviceVerifier()
  const fast = new FastDeviceVerifier()
  fast.verify(m1.body, m1.signature, pub) // builds its c·G table once
  const v1core = rate(800, () => core.verify(m1.body, m1.signature, pub))
  const v1fast = rate(1000, () => fast.verify(m1.body, m1.signature, pub))
  const v2core = rate(1500, () => core.verify(m2.body, m2.signature, pub))
  const v2fast = rate(1500, () => fast.verify(m2.body, m2.signature, pub))
  const noble = rate(300, () => recoverSignedMessageKey(m1))
  // The pool: one worker thread; CPU of the whole process (main thread and worker) per check.
  const pool = new SignaturePool({ workers: 1 })
  let pooled = 0
  try {
    await Promise.all(Array.from({ length: 64 }, () => pool.verify(m2.body, m2.signature, pub)))
    for (let round = 0; round < 3; round++) {
      const n = 3000
      const c0 = process.cpuUsage()
      const ok = await Promise.all(Array.from({ length: n }, () => pool.verify(m2.body, m2.signature, pub)))
      const c = process.cpuUsage(c0)
      if (ok.some((x) => !x)) throw new Error('the pool refused a valid signature')
      pooled = Math.max(pooled, n / ((c.user + c.system) / 1e6))
    }
  } finally {
    await pool.close()
  }
  const row = (label: string, r: number) => console.log(`  ${label.padEnd(62)} ${r.toFixed(0).padStart(6)} /s  ${pct(r, top).padStart(5)} of the ceiling`)
  row('ceiling: node:crypto ECDSA/SHA-256 verify, cached key (1 core)', top)
  row('v1 (EIP-191), core DeviceVerifier', v1core)
  row("v1 (EIP-191), the pool's FastDeviceVerifier, inline", v1fast)
  row('v2 (SHA-256), core DeviceVerifier, inline', v2core)
  row("v2 (SHA-256), the pool's FastDeviceVerifier, inline", v2fast)
  row('v2 (SHA-256), SignaturePool, 1 worker (process CPU)', pooled)
  row('v1 by recovery, pure JS (@noble/curves), for reference', noble)
}

/** An MQTT 5 client logged in as a signed device (retried while the listener comes up). */
async function connect(port: number, username: string): Promise<mqtt.MqttClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, username, protocolVersion: 5 })
    } catch (e) {
      if (attempt >= 50) throw e
      await sleep(100)
    }
  }
}

interface Device {
  readonly id: string
  readonly key: Uint8Array
  readonly pub: Uint8Array
}

/** One gateway run: returns readings per second, cores used and the outcome counts. */
async function endToEnd(workers: number, devices: readonly Device[], warm: readonly Uint8Array[][], msgs: readonly Uint8Array[][]) {
  const dir = mkdtempSync(join(tmpdir(), 'fp-bench-signed-'))
  try {
    const stateDir = join(dir, 'state')
    const store = new Store(join(stateDir, DB_FILE))
    for (const d of devices) store.upsertDevice({ id: d.id, kind: 'signed', name: null, config: JSON.stringify({ address: publicKeyToAddress(d.pub), publicKey: bytesToHex(d.pub) }) })
    store.close()
    const port = await freePort()
    const config = `[clock]\nsync_check = "none"\n[sources.sim]\nenabled = false\n[sources.mqtt]\nenabled = true\nlisten = "127.0.0.1:${port}"\nsignature_workers = ${workers}\n[store]\nmax_pending = 100000\n[discovery]\nmdns = false\n`
    const prof = values.profile ? { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${values.profile}` } } : {}
    const g = await startGateway({ stateDir, config, timeoutMs: 60_000, ...prof })
    try {
      const clients = await Promise.all(devices.map((d) => connect(port, d.id)))
      const publishAll = async (lists: readonly Uint8Array[][]) => {
        let ok = 0
        let refused = 0
        await Promise.all(
          clients.map(async (c, i) => {
            const list = lists[i] as Uint8Array[]
            let next = 0
            await Promise.all(
              Array.from({ length: WINDOW }, async () => {
                while (next < list.length) {
                  const payload = Buffer.from(list[next++] as Uint8Array)
                  await c.publishAsync(`fieldproof/${devices[i]?.id}/up`, payload, { qos: 1 }).then(
                    () => ok++,
                    () => refused++,
                  )
                }
              }),
            )
          }),
        )
        return { ok, refused }
      }
      await publishAll(warm) // JIT, worker start, SQLite cache: not counted
      const cpu0 = procCpuSeconds(g.proc.pid)
      const t0 = performance.now()
      const r = await publishAll(msgs)
      const wall = (performance.now() - t0) / 1000
      const cpu = procCpuSeconds(g.proc.pid) - cpu0
      await Promise.all(clients.map((c) => c.endAsync()))
      const stored = await (await fetch(`${g.url}/metrics`)).text()
      const signedTotal = [...stored.matchAll(/^fieldproof_signed_readings_total\{[^}]*source="mqtt"[^}]*\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0)
      return { rate: r.ok / wall, cores: cpu / wall, ok: r.ok, refused: r.refused, signedTotal, wall }
    } finally {
      await g.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function e2e(top: number): Promise<void> {
  console.log(`\nEnd to end: version-2 signed readings over MQTT (QoS 1, durable before PUBACK), ${CLIENTS} clients × ${WINDOW} in flight, ${MESSAGES} readings each`)
  const devices: Device[] = Array.from({ length: CLIENTS }, (_, i) => {
    const key = secp256k1.utils.randomPrivateKey()
    return { id: `bench-${i}`, key, pub: secp256k1.getPublicKey(key, false) }
  })
  const t0 = performance.now()
  const sign = (d: Device, from: number, n: number) =>
    Array.from({ length: n }, (_, k) => encodeSignedBinary(signBody({ version: 2, deviceId: d.id, counter: BigInt(from + k), metrics: [{ name: 'temperature_c', unit: 'Cel', value: (from + k) / 10 }] }, d.key)))
  const warm = devices.map((d) => sign(d, 1, WARMUP))
  const msgs = devices.map((d) => sign(d, WARMUP + 1, MESSAGES))
  console.log(`  (signed ${CLIENTS * (WARMUP + MESSAGES)} messages in ${((performance.now() - t0) / 1000).toFixed(1)} s, before timing)`)
  for (const w of WORKERS) {
    const r = await endToEnd(w, devices, warm, msgs)
    const perCore = r.rate / r.cores
    console.log(
      `  signature_workers = ${w}: ${r.rate.toFixed(0).padStart(5)} readings/s on ${r.cores.toFixed(2)} cores (gateway CPU s / wall s) = ${perCore.toFixed(0)} /s per core used = ${pct(perCore, top)} of the ceiling (goal ≥ 70 %)` +
        `${r.refused ? `, ${r.refused} refused (unexpected)` : ''}${r.signedTotal !== WARMUP * CLIENTS + r.ok ? `, gateway counted ${r.signedTotal} (expected ${WARMUP * CLIENTS + r.ok})` : ''}`,
    )
  }
}

const top = ceiling()
if (values.only !== 'e2e') await checks(top)
if (values.only !== 'checks') await e2e(top)
// The ceiling again at the end: the machine's load may have changed while the gateway ran.
const again = ceiling()
console.log(`\n  ceiling at the start ${top.toFixed(0)} /s, at the end ${again.toFixed(0)} /s (ratios above use the start)`)
process.exit(0)
