// Ingest benchmark: readings per second from arrival to durable and sealed,
// printed beside the raw ceiling measured in the same run on the same
// machine. Never asserted in tests; figures go to docs/performance.md.
//
//   npm run bench                 # all of it (about 1 minute)
//   bash scripts/run-node bench/ingest.ts --readings 100000
//   bash scripts/run-node bench/ingest.ts --latency-only   # the paced 1,000/s run: latency and RSS
//
// Ceiling: a bare loop doing the same work — JSON.parse of the body,
// canonical encoding, keccak leaf, better-sqlite3 inserts with
// synchronous=FULL in 1,000-row transactions, a Merkle tree and one
// signature per 1,000 readings.

import Database from 'better-sqlite3'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { signBatchHeader } from '../gateway/src/core/batch.ts'
import { encodeReading, leafHash } from '../gateway/src/core/canonical.ts'
import { buildMerkleTree } from '../gateway/src/core/merkle.ts'
import { bytesToHex } from '../gateway/src/core/hex.ts'
import type { Reading, ReceiveTime } from '../gateway/src/core/types.ts'
import { MetricsRegistry } from '../gateway/src/pipeline/metrics.ts'
import { Pipeline } from '../gateway/src/pipeline/pipeline.ts'
import { parseIngestBody } from '../gateway/src/sources/http/ingest.ts'
import { Store } from '../gateway/src/store/store.ts'
import { ROOT } from '../test/helpers/gateway-process.ts'
import { memoryCgroup, serviceEnvironment, spawnNode } from './memory-cgroup.ts'
import { TEST_ADDRESS, TEST_KEY } from '../test/helpers/readings.ts'

const { values } = parseArgs({
  options: {
    readings: { type: 'string', default: '60000' },
    quick: { type: 'boolean' },
    'latency-only': { type: 'boolean' },
    only: { type: 'string' },
    profile: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  console.log(`usage: bash scripts/run-node bench/ingest.ts [--readings 60000] [--quick] [--latency-only] [--only h1|h100] [--profile DIR]

  --readings      readings for the ceiling, the in-process and the 100-per-POST runs (default 60000);
                  the 1-per-POST run posts a third of them
  --quick         half the readings and a 5 s latency run
  --latency-only  only the paced 1,000 readings/s run (p50/p99 ingest-to-durable, gateway RSS)
  --only h1|h100  only the ceiling and one HTTP run (1 or 100 readings per POST)
  --profile DIR   write CPU profiles of the gateway processes (node --cpu-prof) into DIR

Prints readings per second and the ratio to the raw ceiling measured in the same run; asserts nothing.`)
  process.exit(0)
}
if (values.only !== undefined && values.only !== 'h1' && values.only !== 'h100') {
  console.error(`--only must be h1 or h100, not ${JSON.stringify(values.only)}`)
  process.exit(2)
}
const N = Number(values.readings)
const work = mkdtempSync(join(tmpdir(), 'fieldproof-bench-'))
const received: ReceiveTime = { bootId: '0123456789abcdef0123456789abcdef', monoNs: 123456789n, wallMs: Date.now(), clock: 'ntp' }

const body = (i: number) => ({ device: `bench-${i % 50}`, metrics: { temperature_c: 20 + (i % 100) / 10, humidity_pct: 40 + (i % 30), pressure_hpa: 1013.2 } })
const perPost = 100
const jsonBodies: string[] = []
for (let i = 0; i < N; i += perPost) jsonBodies.push(JSON.stringify(Array.from({ length: Math.min(perPost, N - i) }, (_, k) => body(i + k))))

// The gateway processes run the production form: types stripped ahead of time (scripts/build-dist.ts).
execFileSync(process.execPath, [join(ROOT, 'scripts/build-dist.ts'), '--out', join(work, 'dist'), '--link-modules'])
const CLI = join(work, 'dist/gateway/src/cli/main.js')

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000)
const results: { name: string; perSec: number; ratio?: number; note?: string }[] = []

// --- 1. raw ceiling -------------------------------------------------------
function ceiling(): number {
  const db = new Database(join(work, 'ceiling.db'))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.exec('CREATE TABLE readings (seq INTEGER PRIMARY KEY, device_id TEXT, source TEXT, received_ms INTEGER, canonical BLOB, leaf BLOB)')
  const ins = db.prepare('INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)')
  const t0 = performance.now()
  let seq = 0n
  let pending: { seq: bigint; d: string; c: Uint8Array; l: Uint8Array }[] = []
  const leaves: Uint8Array[] = []
  let prev = ('0x' + '00'.repeat(32)) as `0x${string}`
  const tx = db.transaction((rows: typeof pending) => {
    for (const r of rows) ins.run(r.seq, r.d, 'http', received.wallMs, r.c, r.l)
  })
  for (const text of jsonBodies) {
    for (const j of JSON.parse(text) as ReturnType<typeof body>[]) {
      const r: Reading = {
        deviceId: j.device,
        source: 'http',
        received,
        metrics: Object.entries(j.metrics).map(([name, value]) => ({ name, unit: name === 'temperature_c' ? 'Cel' : name === 'humidity_pct' ? '%' : 'hPa', value })),
        auth: { kind: 'none' },
      }
      const c = encodeReading(r)
      seq++
      const l = leafHash(seq, c)
      pending.push({ seq, d: r.deviceId, c, l })
      leaves.push(l)
      if (pending.length === 1000) {
        tx(pending)
        pending = []
        const root = buildMerkleTree(leaves.splice(0)).root
        prev = signBatchHeader({ gateway: TEST_ADDRESS, batchId: seq / 1000n, firstSeq: seq - 999n, lastSeq: seq, count: 1000, merkleRoot: bytesToHex(root), prevBatchHash: prev, sealedAtMs: 1n }, TEST_KEY).hash
      }
    }
  }
  if (pending.length) tx(pending)
  const ms = performance.now() - t0
  db.close()
  return rate(N, ms)
}

// --- 2. in-process pipeline ----------------------------------------------
async function inProcess(): Promise<number> {
  const store = new Store(join(work, 'inproc', 'fieldproof.db'))
  const pipeline = new Pipeline({
    store,
    metrics: new MetricsRegistry(),
    signer: { address: TEST_ADDRESS, sign: (h) => signBatchHeader(h, TEST_KEY) },
    batchMaxReadings: 1000,
    batchMaxAgeMs: 60_000,
    maxPending: 1_000_000,
    commitMaxReadings: 1000,
    retentionMs: 86_400_000,
    maxBytes: 8 * 2 ** 30,
  })
  const t0 = performance.now()
  const all: Promise<bigint[]>[] = []
  for (const text of jsonBodies) {
    const parsed = parseIngestBody(JSON.parse(text), { received, tokenId: 'bench', maxReadings: 1000 })
    if (!parsed.ok) throw new Error(parsed.reason)
    all.push(pipeline.ingest(parsed.readings))
    // Let commits interleave with arrivals, as they do with real sources.
    if (all.length % 10 === 0) await new Promise((r) => setImmediate(r))
  }
  await Promise.all(all)
  pipeline.stop()
  const ms = performance.now() - t0
  store.close()
  return rate(N, ms)
}

// --- 3. HTTP: a real gateway process, 8 concurrent clients ---------------
async function startGatewayProcess(name: string, memoryMb?: number): Promise<{ port: number; token: string; pid: number; cgroup: boolean; stop: () => Promise<void> }> {
  const dir = join(work, name)
  const cfg = join(work, `${name}.toml`)
  writeFileSync(cfg, `[gateway]\nstate_dir = "${dir}"\nlog_level = "warn"\n[api]\nlisten = "127.0.0.1:0"\nmax_body_bytes = 4194304\n[store]\nmax_pending = 1000000\nmax_bytes = 8589934592\ncommit_max_readings = 1000\n[batch]\nmax_readings = 1000\n[clock]\nsync_check = "none"\n[discovery]\nmdns = false\n[sources.mqtt]\nenabled = false\n`)
  const prof = values.profile ? ['--cpu-prof', '--cpu-prof-dir', join(values.profile, name)] : []
  const cg = memoryMb !== undefined ? memoryCgroup(name, memoryMb) : undefined
  const argv = [...prof, CLI, 'start', '--config', cfg]
  const proc = spawnNode(argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...serviceEnvironment(ROOT), FIELDPROOF_CONFIG: '' } }, cg)
  let err = ''
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
  for (let i = 0; i < 200 && !/API +http:\/\/127\.0\.0\.1:(\d+)/.test(err); i++) await sleep(50)
  const port = Number(/API +http:\/\/127\.0\.0\.1:(\d+)/.exec(err)?.[1])
  if (!port) throw new Error('gateway did not start: ' + err)
  const token = readFileSync(join(dir, 'api-token'), 'utf8').trim()
  return {
    port,
    token,
    pid: proc.pid as number,
    cgroup: cg !== undefined,
    stop: async () => {
      proc.kill('SIGTERM')
      await new Promise((r) => proc.once('exit', r))
      cg?.remove()
    },
  }
}

function post(agent: Agent, port: number, token: string, payload: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/readings', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'content-length': Buffer.byteLength(payload) } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * A keep-alive HTTP/1.1 client on one socket, one request at a time, that
 * parses only the status line and Content-Length. It spends far less CPU per
 * request than node:http's client; on two cores shared with the gateway
 * that matters, while real devices run on their own hardware.
 */
class LeanClient {
  readonly #socket: Socket
  #buf: Buffer = Buffer.alloc(0)
  #waiting: { resolve: (status: number) => void; reject: (e: Error) => void } | undefined

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', (d: Buffer) => this.#data(d))
    socket.on('error', (e) => this.#waiting?.reject(e))
    socket.on('close', () => this.#waiting?.reject(new Error('connection closed')))
  }

  static connect(port: number): Promise<LeanClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new LeanClient(s)))
      s.once('error', reject)
    })
  }

  post(path: string, token: string, body: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject }
      this.#socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    })
  }

  #data(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d])
    const end = this.#buf.indexOf('\r\n\r\n')
    if (end < 0) return
    const head = this.#buf.subarray(0, end).toString('latin1')
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN)
    if (!Number.isFinite(length)) {
      this.#waiting?.reject(new Error(`response without Content-Length: ${head}`))
      return
    }
    if (this.#buf.length < end + 4 + length) return
    this.#buf = this.#buf.subarray(end + 4 + length)
    const w = this.#waiting
    this.#waiting = undefined
    w?.resolve(Number(head.slice(9, 12)))
  }

  close(): void {
    this.#socket.destroy()
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Math.round(Number(m[1]) / 1024) : NaN
}

async function http(per: number, count: number, client: 'node' | 'lean' = 'node'): Promise<number> {
  const g = await startGatewayProcess(`http-${per}-${client}`)
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  const lean = client === 'lean' ? await Promise.all(Array.from({ length: 8 }, () => LeanClient.connect(g.port))) : []
  const payloads: string[] = []
  for (let i = 0; i < count; i += per) payloads.push(JSON.stringify(per === 1 ? body(i) : Array.from({ length: per }, (_, k) => body(i + k))))
  let next = 0
  let bad = 0
  const run = (until: number) =>
    Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        const c = lean[k]
        while (next < until) {
          const p = payloads[next++] as string
          if ((await (c ? c.post('/api/v1/readings', g.token, p) : post(agent, g.port, g.token, p))) !== 201) bad++
        }
      }),
    )
  // The first tenth warms up both processes (JIT, connections, the database file) and is not timed.
  const warm = Math.floor(payloads.length / 10)
  await run(warm)
  const t0 = performance.now()
  await run(payloads.length)
  const ms = performance.now() - t0
  agent.destroy()
  for (const c of lean) c.close()
  await g.stop()
  if (bad) throw new Error(`${bad} requests failed`)
  return rate(count - warm * per, ms)
}

/** Paced load: `perSec` readings/s as 1-reading POSTs from 8 clients; p99 request latency and gateway RSS. */
async function latency(perSec: number, seconds: number, memoryMb?: number): Promise<{ p50: number; p99: number; rss: number; idleRss: number; cgroup: boolean }> {
  const g = await startGatewayProcess(memoryMb === undefined ? 'latency' : `latency-${memoryMb}`, memoryMb)
  await sleep(2000)
  const idleRss = rssMb(g.pid)
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  const lat: number[] = []
  let rss = 0
  const interval = 1000 / (perSec / 8)
  const end = performance.now() + seconds * 1000
  let i = 0
  await Promise.all([
    ...Array.from({ length: 8 }, async (_, k) => {
      let due = performance.now() + (interval * k) / 8
      while (performance.now() < end) {
        const wait = due - performance.now()
        if (wait > 0) await sleep(wait)
        due += interval
        const t = performance.now()
        await post(agent, g.port, g.token, JSON.stringify(body(i++)))
        lat.push(performance.now() - t)
      }
    }),
    (async () => {
      while (performance.now() < end) {
        await sleep(500)
        rss = Math.max(rss, rssMb(g.pid))
      }
    })(),
  ])
  agent.destroy()
  await g.stop()
  lat.sort((a, b) => a - b)
  return { p50: lat[Math.floor(lat.length * 0.5)] ?? NaN, p99: lat[Math.floor(lat.length * 0.99)] ?? NaN, rss, idleRss, cgroup: g.cgroup }
}

try {
  console.log(`Fieldproof ingest benchmark — ${N} readings, Node ${process.version}, ${process.arch}`)
  if (!values['latency-only']) await throughput()
  if (values.only === undefined) {
    const seconds = values.quick ? 5 : 15
    const l = await latency(1000, seconds)
    console.log(`at 1,000 readings/s (1 per POST, 8 clients): p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms ingest-to-durable (goal p99 ≤ 50 ms)`)
    console.log(`  gateway RSS ${l.rss} MB, ${l.idleRss} MB idle before the load — V8 sized for this host (${Math.round(totalmem() / 2 ** 30)} GB)`)
    const pi = await latency(1000, seconds, 512)
    if (pi.cgroup) {
      console.log(`  gateway RSS ${pi.rss} MB (goal ≤ 120 MB), ${pi.idleRss} MB idle — in a 512 MB memory cgroup, V8 sized as on a Pi Zero 2 W (p99 ${pi.p99.toFixed(1)} ms)`)
    } else {
      console.log('  (no memory cgroup could be made — needs root — so the 512 MB run, V8 sized as on a Pi Zero 2 W, was not measured)')
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}

/** Before each timed run: write back what earlier runs left dirty, so one run's disk work does not slow the next's fsyncs. */
async function settle(): Promise<void> {
  execFileSync('sync')
  await sleep(500)
}

async function throughput(): Promise<void> {
  await settle()
  const ceil = ceiling()
  results.push({ name: 'raw ceiling (bare loop: parse, encode, keccak, FULL inserts ×1000, tree, sign)', perSec: ceil })
  if (values.only === undefined) {
    await settle()
    const inproc = await inProcess()
    results.push({ name: 'in-process pipeline (parse → ingest → durable → sealed)', perSec: inproc, ratio: inproc / ceil, note: 'goal ≥ 0.50' })
  }
  if (values.only !== 'h1') {
    await settle()
    const h100 = await http(100, values.quick ? N / 2 : N)
    results.push({ name: 'HTTP, 8 clients, 100 readings per POST', perSec: h100, ratio: h100 / ceil, note: 'goal ≥ 0.60' })
  }
  if (values.only !== 'h100') {
    await settle()
    const h1 = await http(1, Math.round(values.quick ? N / 12 : N / 3))
    results.push({ name: 'HTTP, 8 node:http clients, 1 reading per POST (group commit)', perSec: h1, ratio: h1 / ceil })
    await settle()
    const h1lean = await http(1, Math.round(values.quick ? N / 12 : N / 3), 'lean')
    results.push({ name: 'HTTP, 8 minimal HTTP/1.1 clients, 1 reading per POST (group commit)', perSec: h1lean, ratio: h1lean / ceil, note: 'goal ≥ 0.10' })
  }
  for (const r of results) console.log(`${String(r.perSec).padStart(8)} readings/s  ${r.ratio === undefined ? '      ' : (r.ratio.toFixed(2) + '×').padStart(6)}  ${r.name}${r.note ? `  (${r.note})` : ''}`)
}
