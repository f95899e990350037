// MQTT benchmark. Prints, never asserts.
//
//   bash scripts/run-node bench/mqtt.ts [--help]
//
// QoS 1 messages per second from N mqtt.js clients (each keeping 20
// publishes in flight), against these brokers, each in its own process:
//   - Fieldproof: `fieldproof start` in its production form (built by
//     scripts/build-dist.ts, with systemd/fieldproof.service's environment)
//     with the broker on; every PUBACK waits for the
//     SQLite commit (synchronous=FULL, group commit) on the event loop
//     ([store] commit_worker = false, the default);
//   - Fieldproof with commit_worker = true (the commit on its own thread);
//   - aedes alone: the same aedes, no hooks, in-memory (the ceiling of the
//     broker library itself);
//   - Debian's mosquitto (/usr/sbin/mosquitto), when installed.
// All run at once and are measured in turn, round after round; the ratio is
// taken within a round. Beside each rate: the broker's CPU time per message
// (from /proc: the whole process, and for Fieldproof its main thread) and
// the share of a core the load generator (this process) used. When that
// share is ~100 %, the load generator, not the broker, set the rate.
// Goal: Fieldproof durable ≥ 50 % of aedes alone. Then resident memory:
// idle, at a paced 1,000 readings/s (also with the default gateway inside a
// 512 MB memory cgroup, V8 sized as on a Pi Zero 2 W: bench/memory-cgroup.ts),
// and the peak under the full load.
//
// Device-signed readings: bench/signed.ts.

import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { ROOT, runCli } from '../test/helpers/gateway-process.ts'
import { freePort } from '../test/helpers/ports.ts'
import { memoryCgroup, serviceEnvironment, spawnNode, type MemoryCgroup } from './memory-cgroup.ts'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    clients: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    only: { type: 'string', default: 'aedes,mosquitto,fieldproof,commit-thread' },
    profile: { type: 'string' },
    help: { type: 'boolean', default: false },
    'serve-aedes': { type: 'string' },
  },
})
if (values.help) {
  console.log(`usage: node bench/mqtt.ts [--seconds 5] [--clients 10] [--rounds 2] [--profile DIR]
  --seconds   length of each broker measurement
  --clients   MQTT clients (each keeps 20 QoS 1 publishes in flight)
  --rounds    broker measurement rounds (each: aedes alone, mosquitto, Fieldproof)
  --only      a comma list of aedes, mosquitto, fieldproof, commit-thread: measure only these
            (memory is measured when fieldproof is)
  --profile   write CPU profiles of the Fieldproof gateway processes (node --cpu-prof) into DIR/inline and DIR/worker`)
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

const ONLY = new Set(values.only.split(',').map((x) => x.trim()))
for (const o of ONLY) if (!['aedes', 'mosquitto', 'fieldproof', 'commit-thread'].includes(o)) throw new Error(`--only: unknown "${o}" (aedes, mosquitto, fieldproof, commit-thread)`)
const SECONDS = Number(values.seconds)
const CLIENTS = Number(values.clients)
const ROUNDS = Number(values.rounds)
const WINDOW = 20

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

/** CPU seconds (user + system) a process (or with `tid`, one of its threads) has used so far, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined, tid?: number): number {
  try {
    const f = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(rest[11]) + Number(rest[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN
  }
}

/** Resident set size of a process in MB (VmRSS, Linux); NaN elsewhere. */
function rssMb(pid: number | undefined): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}

interface LoadResult {
  readonly rate: number
  /** Broker process CPU µs per message (all threads). */
  readonly cpuUs: number
  /** CPU µs per message of the broker's main thread (the event loop). */
  readonly mainUs: number
  /** Highest resident set size seen during the load, MB. */
  readonly peakRssMb: number
  /** Share of one core the load generator (this process) used, %. */
  readonly clientPct: number
}

type Auth = (i: number) => { username?: string; password?: string; topic: string }
const PAYLOAD = '{"AM2301":{"Temperature":21.5,"Humidity":40.5},"TempUnit":"C"}'

/** QoS 1 publishes acknowledged per second over SECONDS from CLIENTS clients, and the broker's CPU µs per message. */
async function load(port: number, auth: Auth, pid?: number, seconds = SECONDS): Promise<LoadResult> {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...auth(i) })))
  let acked = 0
  const cpu0 = cpuSeconds(pid)
  const main0 = cpuSeconds(pid, pid)
  const client0 = process.cpuUsage()
  let peakRssMb = rssMb(pid)
  const sampler = setInterval(() => (peakRssMb = Math.max(peakRssMb, rssMb(pid))), 200)
  const end = performance.now() + seconds * 1000
  const start = performance.now()
  await Promise.all(
    clients.map((c, i) =>
      Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (performance.now() < end) {
            await c.publishAsync(auth(i).topic, PAYLOAD, { qos: 1 })
            acked++
          }
        }),
      ),
    ),
  )
  clearInterval(sampler)
  const elapsed = (performance.now() - start) / 1000
  const rate = acked / elapsed
  const client = process.cpuUsage(client0)
  const clientPct = (client.user + client.system) / 1e4 / elapsed
  const cpuUs = ((cpuSeconds(pid) - cpu0) * 1e6) / acked
  const mainUs = ((cpuSeconds(pid, pid) - main0) * 1e6) / acked
  await Promise.all(clients.map((c) => c.endAsync()))
  return { rate, cpuUs, mainUs, peakRssMb, clientPct }
}

/** Resident memory after `seconds` at `perSecond` QoS 1 readings per second in total, spread over CLIENTS clients. */
async function pacedRss(port: number, auth: Auth, pid: number | undefined, perSecond: number, seconds: number): Promise<{ rate: number; rssMb: number }> {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...auth(i) })))
  const tickMs = 20
  const perTick = (perSecond * tickMs) / 1000 / CLIENTS
  let acked = 0
  let owed = 0
  const start = performance.now()
  const inflight = new Set<Promise<unknown>>()
  while (performance.now() - start < seconds * 1000) {
    owed += perTick
    while (owed >= 1) {
      owed--
      clients.forEach((c, i) => {
        const p = c.publishAsync(auth(i).topic, PAYLOAD, { qos: 1 }).then(() => acked++)
        inflight.add(p)
        void p.finally(() => inflight.delete(p))
      })
    }
    await sleep(tickMs)
  }
  const rss = rssMb(pid)
  await Promise.all(inflight)
  const rate = acked / ((performance.now() - start) / 1000)
  await Promise.all(clients.map((c) => c.endAsync()))
  return { rate, rssMb: rss }
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
  console.log(`\nQoS 1 publishes per second, ${CLIENTS} clients × ${WINDOW} in flight, ${SECONDS} s each, ${ROUNDS} rounds (${[...ONLY].join(', ')}, in turn)`)
  const dir = mkdtempSync(join(tmpdir(), 'fp-bench-mqtt-'))
  const children: ChildProcess[] = []
  const cgroups: MemoryCgroup[] = []
  try {
    // The production form: the sources with their types stripped (scripts/build-dist.ts).
    const built = spawn(process.execPath, [join(ROOT, 'scripts/build-dist.ts'), '--out', join(dir, 'dist'), '--link-modules'], { stdio: 'ignore' })
    const code = await new Promise<number | null>((resolve) => built.once('exit', resolve))
    if (code !== 0) throw new Error(`scripts/build-dist.ts exited with ${code}`)
    const distCli = join(dir, 'dist/gateway/src/cli/main.js')
    // All brokers run at once (idle ones cost nothing) and are measured in
    // turn, round after round, so a change in the machine's load hits them
    // alike; the ratio is taken within each round.
    const state = join(dir, 'state')
    const creds: { username: string; password: string }[] = []
    for (let i = 0; i < CLIENTS; i++) {
      const r = await runCli(['devices', 'add', 'mqtt', '--id', `plug-${i}`, '--prefix', `tele/plug${i}`, '--format', 'tasmota', '--state-dir', state, '--json'])
      creds.push(JSON.parse(r.stdout) as { username: string; password: string })
    }
    // Fieldproof: real gateway processes (store synchronous=FULL, PUBACK after the commit):
    // the default (commit on the event loop), with the commit thread, and the default again
    // inside a 512 MB memory cgroup for the Pi-sized memory figure (not measured for speed).
    interface Gateway { readonly name: string; readonly port: number; readonly httpPort: number; readonly proc: ChildProcess }
    const startGateway = async (name: string, worker: boolean, cg?: MemoryCgroup): Promise<Gateway> => {
      const gwState = join(dir, `state-${name}`)
      cpSync(state, gwState, { recursive: true })
      const port = await freePort()
      const httpPort = await freePort()
      writeFileSync(
        join(dir, `fp-${name}.toml`),
        `[clock]\nsync_check = "none"\n[sources.sim]\nenabled = false\n[sources.mqtt]\nenabled = true\nlisten = "127.0.0.1:${port}"\n[store]\nmax_pending = 100000\ncommit_worker = ${worker}\n[discovery]\nmdns = false\n`,
      )
      const prof = values.profile && !cg ? ['--cpu-prof', '--cpu-prof-dir', join(values.profile, name)] : []
      const argv = [...prof, distCli, 'start', '--config', join(dir, `fp-${name}.toml`), '--state-dir', gwState, '--http-listen', `127.0.0.1:${httpPort}`]
      const proc = spawnNode(argv, { stdio: 'ignore', env: { ...process.env, ...serviceEnvironment(ROOT) } }, cg)
      children.push(proc)
      return { name, port, httpPort, proc }
    }
    const fp = ONLY.has('fieldproof') ? await startGateway('inline', false) : undefined
    const fpWorker = ONLY.has('commit-thread') ? await startGateway('worker', true) : undefined
    const cg = fp ? memoryCgroup('mqtt', 512) : undefined
    if (cg) cgroups.push(cg)
    const fpSmall = cg ? await startGateway('inline-512mb', false, cg) : undefined
    let aPort: number | undefined
    let aedesProc: ChildProcess | undefined
    if (ONLY.has('aedes')) {
      aPort = await freePort()
      aedesProc = spawn(process.execPath, [import.meta.filename, '--serve-aedes', String(aPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
      children.push(aedesProc)
    }
    let mPort: number | undefined
    let mosqProc: ChildProcess | undefined
    if (ONLY.has('mosquitto')) {
      mPort = await freePort()
      writeFileSync(join(dir, 'mosquitto.conf'), `listener ${mPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`)
      mosqProc = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' })
      mosqProc.on('error', () => undefined)
      children.push(mosqProc)
    }
    for (const g of [fp, fpWorker, fpSmall]) if (g) await waitPort(g.port)
    if (aPort !== undefined) await waitPort(aPort)
    if (mPort !== undefined) {
      try {
        await waitPort(mPort)
      } catch (e) {
        console.log(`  mosquitto: not measured (${(e as Error).message})`)
        mPort = undefined
      }
    }
    const anon = (i: number) => ({ topic: `tele/plug${i}/SENSOR` })
    const fpAuth = (i: number) => ({ username: creds[i]?.username ?? '', password: creds[i]?.password ?? '', topic: `tele/plug${i}/SENSOR` })
    // Memory: idle (started, nothing published yet), then after 10 s at a
    // paced 1,000 readings/s; the peak under full load is sampled below.
    await sleep(1000)
    const idleRss = new Map<Gateway, number>()
    const paced = new Map<Gateway, { rate: number; rssMb: number }>()
    for (const g of [fp, fpWorker, fpSmall]) if (g) idleRss.set(g, rssMb(g.proc.pid))
    for (const g of [fp, fpWorker, fpSmall]) if (g) paced.set(g, await pacedRss(g.port, fpAuth, g.proc.pid, 1000, 10))
    // The Pi-sized gateway under the full load once (its peak memory), then it stops before the rounds.
    let smallFull: LoadResult | undefined
    if (fpSmall) {
      await load(fpSmall.port, fpAuth, undefined, 1)
      smallFull = await load(fpSmall.port, fpAuth, fpSmall.proc.pid)
      await stopChild(fpSmall.proc)
      cg?.remove()
    }
    type Row = { alone?: LoadResult; mosq?: LoadResult; fp?: LoadResult; fpWorker?: LoadResult }
    const rows: Row[] = []
    const show = (m: LoadResult | undefined) => (m === undefined ? '      n/a' : `${m.rate.toFixed(0).padStart(7)} (${m.cpuUs.toFixed(1)} µs CPU; load generator ${m.clientPct.toFixed(0)} % of a core)`)
    const showFp = (m: LoadResult) => `${m.rate.toFixed(0).padStart(7)} (${m.cpuUs.toFixed(1)} µs CPU, main thread ${m.mainUs.toFixed(1)}; load generator ${m.clientPct.toFixed(0)} %)`
    // Warm-up (JIT, SQLite cache), not counted.
    if (aPort !== undefined) await load(aPort, anon, undefined, 1)
    for (const g of [fp, fpWorker]) if (g) await load(g.port, fpAuth, undefined, 1)
    for (let round = 0; round < ROUNDS; round++) {
      const row: Row = {}
      if (aPort !== undefined) row.alone = await load(aPort, anon, aedesProc?.pid)
      if (mPort !== undefined) row.mosq = await load(mPort, anon, mosqProc?.pid)
      if (fp) row.fp = await load(fp.port, fpAuth, fp.proc.pid)
      if (fpWorker) row.fpWorker = await load(fpWorker.port, fpAuth, fpWorker.proc.pid)
      rows.push(row)
      console.log(`  round ${round + 1}: aedes alone ${show(row.alone)}`)
      console.log(`           mosquitto   ${show(row.mosq)}`)
      if (row.fp) console.log(`           Fieldproof  ${showFp(row.fp)}${row.alone ? ` = ${pct(row.fp.rate, row.alone.rate)} of aedes alone` : ''}`)
      if (row.fpWorker) console.log(`           Fieldproof, commit thread ${showFp(row.fpWorker)}${row.alone ? ` = ${pct(row.fpWorker.rate, row.alone.rate)}` : ''}`)
    }
    const perCommit = async (httpPort: number) => {
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
      const sum = Number(/^fieldproof_commit_readings_sum(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
      const count = Number(/^fieldproof_commit_readings_count(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
      const batches = Number(/^fieldproof_batches_sealed_total(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
      const onThread = Number(/^fieldproof_batches_sealed_on_thread_total(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? NaN)
      return `${(sum / count).toFixed(1)} readings per commit, ${onThread} of ${batches} batches sealed on the seal thread`
    }
    const range = (xs: number[], d = 0) => `${Math.min(...xs).toFixed(d)} … ${Math.max(...xs).toFixed(d)}`
    const all = (pick: (r: Row) => LoadResult | undefined) => rows.map(pick).filter((m): m is LoadResult => m !== undefined)
    const alone = all((r) => r.alone)
    if (alone.length > 0) {
      console.log(`  aedes alone (no hooks, in memory)   ${range(alone.map((m) => m.rate))} msg/s, ${range(alone.map((m) => m.cpuUs), 1)} µs broker CPU per message`)
      const busy = Math.min(...alone.map((m) => m.clientPct))
      if (busy >= 90) console.log(`  (the load generator used ${busy.toFixed(0)} % or more of a core against aedes alone: that rate is the load generator's ceiling, aedes had more to give)`)
    }
    const mosq = all((r) => r.mosq)
    if (mosq.length > 0) console.log(`  mosquitto (Debian, no persistence)  ${range(mosq.map((m) => m.rate))} msg/s, ${range(mosq.map((m) => m.cpuUs), 1)} µs`)
    for (const [label, pick, g] of [
      ['Fieldproof (default)', (r: Row) => r.fp, fp],
      ['Fieldproof, commit thread', (r: Row) => r.fpWorker, fpWorker],
    ] as const) {
      if (!g) continue
      const ms = all(pick)
      console.log(`  ${label.padEnd(34)} ${range(ms.map((m) => m.rate))} msg/s, ${range(ms.map((m) => m.cpuUs), 1)} µs (main thread ${range(ms.map((m) => m.mainUs), 1)}), ${await perCommit(g.httpPort)}`)
      const ratios = rows.flatMap((r) => (r.alone && pick(r) ? [(100 * (pick(r) as LoadResult).rate) / r.alone.rate] : []))
      if (ratios.length > 0) console.log(`  ${' '.repeat(34)} ${range(ratios)} % of aedes alone (goal ≥ 50 %)`)
    }
    for (const [label, g] of [
      ['Fieldproof (default)', fp],
      ['Fieldproof, commit thread', fpWorker],
      ['Fieldproof (default), 512 MB cgroup', fpSmall],
    ] as const) {
      if (!g) continue
      const p = paced.get(g) as { rate: number; rssMb: number }
      const peak =
        g === fpSmall
          ? `, peak under full load ${smallFull?.peakRssMb.toFixed(0)} MB (at ${smallFull?.rate.toFixed(0)} msg/s)`
          : `, peak under full load ${Math.max(...all((r) => (g === fp ? r.fp : r.fpWorker)).map((m) => m.peakRssMb)).toFixed(0)} MB`
      console.log(`  RSS ${label.padEnd(36)} idle ${(idleRss.get(g) as number).toFixed(0)} MB, at ${p.rate.toFixed(0)} readings/s ${p.rssMb.toFixed(0)} MB${peak}`)
    }
    if (fp && !fpSmall) console.log('  (no memory cgroup could be made — needs root — so the 512 MB run, V8 sized as on a Pi Zero 2 W, was not measured)')
  } finally {
    await Promise.all(children.map((c) => stopChild(c)))
    for (const c of cgroups) c.remove()
    rmSync(dir, { recursive: true, force: true })
  }
}

await brokers()
process.exit(0)
