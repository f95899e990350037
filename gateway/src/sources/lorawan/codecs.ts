// Payload codecs of session devices (docs/lorawan.md, "Payload codecs"):
//   'cayenne-lpp'  decoders/cayenne-lpp.ts (myDevicesIoT Cayenne LPP)
//   'raw'          no metrics; the decrypted payload is kept in the reading's raw
//   'js'           a user codec in The Things Stack's form
//                  (function decodeUplink({ bytes, fPort, recvTime }) { return { data, warnings, errors } }),
//                  run isolated in a child process (codec-worker.ts): fresh vm context,
//                  no host objects, a time limit, a heap limit; a runaway codec is
//                  killed and counted, its reading is stored undecoded, and ingest of
//                  everything else never waits on it for longer than the limit.
// Decoded fields become metrics by name (FIELD_ALIASES below, or any well-known
// metric name of core/units.ts), or through a per-device field map
// { field: { name, unit } }; what cannot be mapped is kept as `data_*` meta and counted.

import { createHash } from 'node:crypto'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { checkMetric, metricInfo, type MetricName } from '../../core/units.ts'
import type { Metric } from '../../core/types.ts'
import { decodeCayenneLpp } from '../../decoders/cayenne-lpp.ts'

export const CODEC_IDS = ['cayenne-lpp', 'raw', 'js'] as const
export type CodecId = (typeof CODEC_IDS)[number]

/** A per-device mapping of one decoded field to a metric. `unit` is needed unless `name` is a well-known metric. */
export interface FieldMapping {
  readonly name: string
  readonly unit?: string
}

/** The codec a device uses, as stored in its config. */
export interface DeviceCodec {
  readonly id: CodecId
  /** JavaScript source for 'js'. */
  readonly source?: string
  /** Field path (dots for nesting, e.g. "sensor.temp") → metric. */
  readonly fields?: Readonly<Record<string, FieldMapping>>
}

/** Outcome of decoding one payload. A failed decode still yields a reading (raw kept, no metrics). */
export interface PayloadDecodeResult {
  readonly status: 'ok' | 'none' | 'error' | 'timeout' | 'oom' | 'busy' | 'disabled' | 'crashed'
  readonly reason?: string
  readonly metrics: readonly Metric[]
  /** Unmapped fields, flattened: `data_<path>` → scalar. */
  readonly meta: Readonly<Record<string, string | number>>
  /** Fields that could not become metrics (kept in meta as far as room allows). */
  readonly unmapped: number
  readonly warnings: readonly string[]
  readonly deviceTimeMs?: number
}

/**
 * Decoded field names (snake_case, after camelCase is split) that map to a
 * well-known metric. Any well-known metric name itself (temperature_c, ...) maps
 * to itself. Ambiguous names (battery: volts or percent?) are left out on
 * purpose: map them per device.
 */
export const FIELD_ALIASES: Readonly<Record<string, MetricName>> = {
  temperature: 'temperature_c',
  temp: 'temperature_c',
  humidity: 'humidity_pct',
  relative_humidity: 'humidity_pct',
  rh: 'humidity_pct',
  pressure: 'pressure_hpa',
  barometric_pressure: 'pressure_hpa',
  co2: 'co2_ppm',
  tvoc: 'tvoc_ppb',
  pm1: 'pm1_0_ugm3',
  pm1_0: 'pm1_0_ugm3',
  pm25: 'pm2_5_ugm3',
  pm2_5: 'pm2_5_ugm3',
  pm10: 'pm10_ugm3',
  illuminance: 'illuminance_lx',
  lux: 'illuminance_lx',
  light: 'illuminance_lx',
  battery_voltage: 'battery_v',
  bat_v: 'battery_v',
  vbat: 'battery_v',
  battery_level: 'battery_pct',
  battery_percent: 'battery_pct',
  voltage: 'voltage_v',
  current: 'current_a',
  power: 'power_w',
  energy: 'energy_kwh',
  lat: 'latitude',
  lon: 'longitude',
  lng: 'longitude',
  altitude: 'altitude_m',
  alt: 'altitude_m',
  wind_speed: 'wind_speed_ms',
  wind_direction: 'wind_direction_deg',
  rain: 'rain_mm',
  rainfall: 'rain_mm',
  uv: 'uv_index',
  moisture: 'moisture_pct',
  soil_moisture: 'moisture_pct',
  counter: 'count',
  motion: 'motion_detected',
  occupancy: 'occupancy_detected',
  door: 'door_open',
  leak: 'moisture_detected',
  water_leak: 'moisture_detected',
}

const MAX_LEAVES = 256
const MAX_DEPTH = 6
const MAX_METRICS = 64

/** camelCase / PascalCase / kebab → snake_case, lowercase. */
export function snakeCase(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toLowerCase()
}

function flatten(v: unknown, path: string[], out: [string[], unknown][], depth: number): void {
  if (out.length >= MAX_LEAVES) return
  if (v !== null && typeof v === 'object' && depth < MAX_DEPTH) {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>)
    for (const [k, x] of entries) flatten(x, [...path, k], out, depth + 1)
    return
  }
  out.push([path, v])
}

/**
 * Map a codec's `data` object to metrics. Numbers (and booleans, as 0/1, for
 * metrics whose unit is "1") become metrics when their field is mapped per
 * device, is an alias, or is a well-known metric name; the rest is returned as
 * meta and counted.
 */
export function mapFields(data: unknown, fields: Readonly<Record<string, FieldMapping>> = {}): { metrics: Metric[]; meta: Record<string, string | number>; unmapped: number } {
  const metrics: Metric[] = []
  const meta: Record<string, string | number> = {}
  const names = new Set<string>()
  let unmapped = 0
  if (data === null || data === undefined) return { metrics, meta, unmapped }
  const leaves: [string[], unknown][] = []
  flatten(data, [], leaves, 0)
  for (const [path, value] of leaves) {
    const dotted = path.join('.')
    const snake = snakeCase(path.join('_')) || 'value'
    const keep = (): void => {
      unmapped++
      const key = `data_${snake}`.slice(0, 64)
      if (typeof value === 'number' && Number.isFinite(value)) meta[key] = value
      else if (typeof value === 'string') meta[key] = value.slice(0, 200)
      else if (typeof value === 'boolean') meta[key] = value ? 1 : 0
      else meta[key] = value === null ? 'null' : typeof value
    }
    const explicit = Object.hasOwn(fields, dotted) ? fields[dotted] : undefined
    let name: string | undefined
    let unit: string | undefined
    if (explicit) {
      name = explicit.name
      unit = explicit.unit
    } else if (Object.hasOwn(FIELD_ALIASES, snake)) {
      name = FIELD_ALIASES[snake]
    } else if (metricInfo(snake)) {
      name = snake
    }
    if (name === undefined) {
      keep()
      continue
    }
    let num: number | undefined
    if (typeof value === 'number') num = value
    else if (typeof value === 'boolean') {
      const info = metricInfo(name)
      const u = unit ?? info?.unit
      if (u === '1') num = value ? 1 : 0
    }
    if (num === undefined || !Number.isFinite(num) || names.has(name) || metrics.length >= MAX_METRICS) {
      keep()
      continue
    }
    const c = checkMetric(name, unit, num)
    if (!c.ok) {
      keep()
      continue
    }
    names.add(name)
    metrics.push({ name, unit: c.unit, value: num })
  }
  return { metrics, meta, unmapped }
}

// ---------------------------------------------------------------- the isolated runner

interface Call {
  readonly id: number
  readonly key: string
  readonly request: Record<string, unknown>
  readonly resolve: (r: RunnerResult) => void
}

/** What one JS codec run gave. */
export type RunnerResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly code: 'timeout' | 'oom' | 'error' | 'busy' | 'disabled' | 'crashed'; readonly reason: string }

export interface CodecRunnerOptions {
  /** vm time limit of one run, ms. */
  readonly timeoutMs: number
  /** Heap limit of the worker, MiB. */
  readonly memoryMb: number
  /** Calls waiting beyond which new calls fail as 'busy'. Default 256. */
  readonly maxQueue?: number
  /** Extra time the main thread grants past timeoutMs before it kills the worker. Default 100 ms. */
  readonly graceMs?: number
  /** Consecutive kills (timeout, out of memory) after which a codec is disabled for `cooldownMs`. Default 3. */
  readonly maxStrikes?: number
  readonly cooldownMs?: number
  /** Longest JSON result accepted. Default 65536 characters. */
  readonly maxOutputBytes?: number
  /** Largest ArrayBuffer/typed array a codec may allocate. Default 1 MiB. */
  readonly maxBufferBytes?: number
}

export interface CodecRunnerStats {
  calls: number
  ok: number
  errors: number
  timeouts: number
  ooms: number
  kills: number
  busy: number
  disabled: number
  workersStarted: number
}

// The same extension as this module: .ts from the sources, .js in the built form (scripts/build-dist.ts).
const WORKER_URL = new URL(`./codec-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
type Worker = ChildProcess
/** How long a fresh worker may take to start before it is considered broken. */
const STARTUP_LIMIT_MS = 10_000

/**
 * Runs user JavaScript codecs one at a time in a child process. `run` never
 * rejects and always settles within timeoutMs + graceMs of the call reaching
 * the worker (queue wait aside, bounded by maxQueue).
 */
export class CodecRunner {
  readonly #o: Required<CodecRunnerOptions>
  #worker: Worker | undefined
  #queue: Call[] = []
  #current: { call: Call; timer: NodeJS.Timeout | undefined } | undefined
  readonly #online = new WeakSet<Worker>()
  #onReady: (() => void) | undefined
  #nextId = 1
  #closed = false
  readonly #strikes = new Map<string, { count: number; until: number }>()
  readonly stats: CodecRunnerStats = { calls: 0, ok: 0, errors: 0, timeouts: 0, ooms: 0, kills: 0, busy: 0, disabled: 0, workersStarted: 0 }

  constructor(o: CodecRunnerOptions) {
    this.#o = {
      maxQueue: 256,
      graceMs: 100,
      maxStrikes: 3,
      cooldownMs: 60_000,
      maxOutputBytes: 65_536,
      maxBufferBytes: 1 << 20,
      ...o,
    }
  }

  /** A stable key for a codec source (its SHA-256). */
  static keyOf(source: string): string {
    return createHash('sha256').update(source).digest('hex')
  }

  run(source: string, input: { bytes: Uint8Array; fPort: number; recvTimeMs: number }, key = CodecRunner.keyOf(source)): Promise<RunnerResult> {
    this.stats.calls++
    if (this.#closed) return Promise.resolve({ ok: false, code: 'crashed', reason: 'the codec runner is closed' })
    const strike = this.#strikes.get(key)
    if (strike && strike.until > performance.now()) {
      this.stats.disabled++
      return Promise.resolve({ ok: false, code: 'disabled', reason: `codec disabled after ${strike.count} runs killed in a row; retried after a cool-down` })
    }
    if (this.#queue.length >= this.#o.maxQueue) {
      this.stats.busy++
      return Promise.resolve({ ok: false, code: 'busy', reason: `${this.#queue.length} codec runs waiting` })
    }
    return new Promise<RunnerResult>((resolve) => {
      const id = this.#nextId++
      const request = {
        id,
        key,
        source,
        input: JSON.stringify({ bytes: Array.from(input.bytes), fPort: input.fPort, recvTime: new Date(input.recvTimeMs).toISOString() }),
        timeoutMs: this.#o.timeoutMs,
        maxOutputBytes: this.#o.maxOutputBytes,
        maxBufferBytes: this.#o.maxBufferBytes,
      }
      this.#queue.push({ id, key, request, resolve })
      this.#pump()
    })
  }

  #spawn(): Worker {
    // A child process, not a worker thread: a codec that crashes V8 itself (a fatal
    // error, not an exception) takes down only its own process, never the gateway.
    const w = fork(fileURLToPath(WORKER_URL), [], {
      execArgv: [
        `--max-old-space-size=${this.#o.memoryMb}`,
        `--max-semi-space-size=${Math.max(1, Math.min(16, Math.floor(this.#o.memoryMb / 8)))}`,
        '--stack-size=984',
      ],
      env: {},
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      serialization: 'json',
    })
    w.unref()
    w.channel?.unref()
    this.stats.workersStarted++
    w.on('message', (m: { id: number; ok: boolean; json?: string; kind?: string; reason?: string; ready?: boolean }) => this.#onMessage(w, m))
    w.on('error', (err: Error) => this.#onDeath(w, 'crashed', err.message))
    w.on('exit', (code, signal) => {
      // V8 aborts when the heap limit is reached (SIGABRT, or SIGTRAP/SIGILL on some builds).
      const oom = signal === 'SIGABRT' || signal === 'SIGTRAP' || signal === 'SIGILL' || code === 134
      this.#onDeath(w, oom ? 'oom' : 'crashed', `codec process ended (${signal ?? `exit code ${code}`})${oom ? ': out of memory' : ''}`)
    })
    return w
  }

  #pump(): void {
    if (this.#current || this.#closed) return
    const call = this.#queue.shift()
    if (!call) return
    this.#worker ??= this.#spawn()
    const w = this.#worker
    const cur: { call: Call; timer: NodeJS.Timeout | undefined } = { call, timer: undefined }
    const arm = (ms: number, what: string): void => {
      if (cur.timer) clearTimeout(cur.timer)
      cur.timer = setTimeout(() => {
        // The vm timeout did not end the run (or the worker is wedged or never started): kill it.
        if (this.#current !== cur) return
        this.#kill(w, call, 'timeout', `${what}; worker terminated`)
      }, ms)
    }
    this.#current = cur
    if (this.#online.has(w)) arm(this.#o.timeoutMs + this.#o.graceMs, `no answer within ${this.#o.timeoutMs + this.#o.graceMs} ms`)
    else {
      // A fresh worker: its start-up does not count against the codec's time.
      arm(STARTUP_LIMIT_MS, `codec worker did not start within ${STARTUP_LIMIT_MS} ms`)
      this.#onReady = () => {
        if (this.#current === cur) arm(this.#o.timeoutMs + this.#o.graceMs, `no answer within ${this.#o.timeoutMs + this.#o.graceMs} ms`)
      }
    }
    w.send(call.request)
  }

  #settle(call: Call, r: RunnerResult): void {
    if (this.#current?.call === call) {
      if (this.#current.timer) clearTimeout(this.#current.timer)
      this.#current = undefined
    }
    if (r.ok) {
      this.stats.ok++
      this.#strikes.delete(call.key)
    } else if (r.code === 'timeout' || r.code === 'oom') {
      if (r.code === 'timeout') this.stats.timeouts++
      else this.stats.ooms++
      const s = this.#strikes.get(call.key) ?? { count: 0, until: 0 }
      s.count++
      if (s.count >= this.#o.maxStrikes) s.until = performance.now() + this.#o.cooldownMs
      this.#strikes.set(call.key, s)
    } else {
      this.stats.errors++
    }
    call.resolve(r)
  }

  #kill(w: Worker, call: Call, code: 'timeout' | 'oom' | 'crashed', reason: string): void {
    this.stats.kills++
    if (this.#worker === w) {
      this.#worker = undefined
      this.#onReady = undefined
    }
    w.removeAllListeners('message')
    w.removeAllListeners('exit')
    w.removeAllListeners('error')
    w.on('error', () => undefined)
    w.kill('SIGKILL')
    this.#settle(call, { ok: false, code, reason })
    this.#pump()
  }

  #onMessage(w: Worker, m: { id: number; ok: boolean; json?: string; kind?: string; reason?: string; ready?: boolean }): void {
    if (m.ready === true) {
      // The worker's handler is installed (module loading done): codec time starts counting now.
      this.#online.add(w)
      const f = this.#onReady
      this.#onReady = undefined
      if (this.#worker === w) f?.()
      return
    }
    const cur = this.#current
    if (!cur || cur.call.id !== m.id || this.#worker !== w) return
    if (m.ok && typeof m.json === 'string') {
      let value: unknown
      try {
        value = JSON.parse(m.json)
      } catch {
        this.#settle(cur.call, { ok: false, code: 'error', reason: 'codec result is not JSON' })
        this.#pump()
        return
      }
      this.#settle(cur.call, { ok: true, value })
    } else {
      this.#settle(cur.call, { ok: false, code: m.kind === 'timeout' ? 'timeout' : 'error', reason: String(m.reason ?? 'codec failed').slice(0, 300) })
    }
    this.#pump()
  }

  #onDeath(w: Worker, code: 'oom' | 'crashed', reason: string): void {
    if (this.#worker !== w) return
    const cur = this.#current
    if (cur) this.#kill(w, cur.call, code, reason.slice(0, 200))
    else {
      this.#worker = undefined
      this.#pump()
    }
  }

  /** Stop the worker; pending calls settle as 'crashed'. */
  async close(): Promise<void> {
    this.#closed = true
    const w = this.#worker
    this.#worker = undefined
    const cur = this.#current
    if (cur) {
      if (cur.timer) clearTimeout(cur.timer)
      this.#current = undefined
      cur.call.resolve({ ok: false, code: 'crashed', reason: 'the codec runner is closed' })
    }
    for (const c of this.#queue.splice(0)) c.resolve({ ok: false, code: 'crashed', reason: 'the codec runner is closed' })
    if (w) {
      w.removeAllListeners()
      w.on('error', () => undefined)
      if (w.exitCode === null && w.signalCode === null) {
        const exited = new Promise((r) => w.once('exit', r))
        w.ref() // keep the loop alive until the exit arrives
        w.kill('SIGKILL')
        await exited
      }
    }
  }
}

// ---------------------------------------------------------------- one payload

function strings(v: unknown, max = 8): string[] {
  if (!Array.isArray(v)) return []
  return v.slice(0, max).map((x) => String(x).slice(0, 200))
}

/**
 * Decode one application payload with a device's codec. Never rejects; a codec
 * failure is a status with a reason, and the caller stores the reading anyway.
 */
export async function decodePayload(
  codec: DeviceCodec,
  runner: CodecRunner | undefined,
  input: { bytes: Uint8Array; fPort: number; recvTimeMs: number },
): Promise<PayloadDecodeResult> {
  const empty = { metrics: [], meta: {}, unmapped: 0, warnings: [] }
  if (codec.id === 'raw' || input.fPort === 0 || input.bytes.length === 0) return { status: 'none', ...empty }
  if (codec.id === 'cayenne-lpp') {
    const r = decodeCayenneLpp(input.bytes)
    if (!r.ok) return { status: 'error', reason: `${r.code}: ${r.reason}`, ...empty }
    return { status: 'ok', metrics: r.metrics, meta: {}, unmapped: 0, warnings: [], ...(r.deviceTimeMs !== undefined ? { deviceTimeMs: r.deviceTimeMs } : {}) }
  }
  if (!runner || codec.source === undefined) return { status: 'error', reason: 'no JavaScript codec source', ...empty }
  const r = await runner.run(codec.source, input)
  if (!r.ok) return { status: r.code, reason: r.reason, ...empty }
  const out = r.value
  if (out === null || typeof out !== 'object' || Array.isArray(out)) return { status: 'error', reason: 'decodeUplink must return an object { data, warnings, errors }', ...empty }
  const o = out as { data?: unknown; warnings?: unknown; errors?: unknown }
  const errors = strings(o.errors)
  const warnings = strings(o.warnings)
  if (errors.length > 0) return { status: 'error', reason: `codec errors: ${errors.join('; ').slice(0, 250)}`, ...empty, warnings }
  const mapped = mapFields(o.data, codec.fields)
  return { status: 'ok', metrics: mapped.metrics, meta: mapped.meta, unmapped: mapped.unmapped, warnings }
}
