// Sink runners: one per enabled sink, each with its own durable cursor
// (sink_cursors), delivering sealed batches in id order, at least once,
// with the batch id as the idempotency key (reliability plan, R2, T08-T12).
//
//   store (batches > cursor) ──▶ runner ──send()──▶ upstream
//          ▲                        │ ok ──────────▶ cursor = id (durable)
//          │ bus 'batch' wakes it   │ parked (4xx) ─▶ sink_rejections + cursor = id
//          │                        └ transient ───▶ backoff with jitter, retry same id
//
// Retries: delay = min(max, base · 2^(n-1)), "equal jitter" (half fixed, half
// random) so a fleet does not retry in lockstep (ChirpStack #226); an
// upstream Retry-After is honoured. After `stuckAfterFailures` consecutive
// failures the circuit opens: the sink is "stuck", its last error shown in
// status, and one probe goes out per backoffMaxMs until one succeeds.
//
// Runners never hold the pipeline: they read committed batches from the store
// on timers and promises, one batch in flight per sink. After a restart each
// resumes at its cursor; the batch that was in flight is sent again (the
// upstream dedupes by batch id). Retention prunes only up to the lowest
// cursor of the enabled sinks (SinkRunners.minAcked, invariant 5).

import { decodeReading, readingToJson, type ReadingJson } from '../core/canonical.ts'
import { bytesToHex } from '../core/hex.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import { buildProofBundle, type ProofBundle } from '../core/proof.ts'
import type { Hex, SignedBatch } from '../core/types.ts'
import type { Logger } from 'pino'
import type { BatchRow, Store } from '../store/store.ts'
import type { ReadingBus } from './bus.ts'
import type { Counter, MetricsRegistry } from './metrics.ts'
import { signedBatchFromRow } from './proofs.ts'
import type { Sink, SinkAck, SinkBatch, SinkReading, SinkRunnerSettings } from './sink.ts'

/** A runner's state, as status and metrics show it. */
export type SinkState = 'idle' | 'sending' | 'backoff' | 'stuck' | 'stopped'

/** One sink's entry in /api/v1/status `sinks`. */
export interface SinkStatus {
  readonly id: string
  /** Highest batch id handled (acknowledged or parked), decimal. */
  readonly ackedBatchId: string
  readonly backlogBatches: number
  readonly backlogBytes: number
  readonly state: SinkState
  readonly lastError: string | null
  /** Wall time of the last acknowledged send, ms since the epoch; null before the first. */
  readonly lastSuccessMs: number | null
  /** Consecutive failures of the batch now being retried. */
  readonly failures: number
  /** Batches the upstream refused for good (sink_rejections). */
  readonly rejectedBatches: number
  /** When the next attempt is due (backoff/stuck), ms since the epoch. */
  readonly nextAttemptMs: number | null
  readonly extra?: Record<string, unknown>
}

/** A SinkBatch over a stored batch row; readings are read on first use. */
export function sinkBatchFromStore(store: Store, row: BatchRow): SinkBatch {
  const signed = signedBatchFromRow(row)
  let readings: SinkReading[] | undefined
  let json: ReadingJson[] | undefined
  let proofs: ProofBundle[] | undefined
  let leaves: Uint8Array[] | undefined
  const load = (): SinkReading[] => {
    if (readings === undefined) {
      const rows = store.readingsInRange(row.firstSeq, row.lastSeq)
      if (rows.length !== row.count) throw new Error(`batch ${row.id}: ${rows.length} of its ${row.count} readings are in the store`)
      const ls = b.leaves()
      readings = rows.map((r, i) => ({ seq: r.seq, canonical: r.canonical, leaf: ls[i] as Uint8Array }))
    }
    return readings
  }
  let prevLoaded = false
  let prev: SignedBatch | undefined
  const b: SinkBatch = {
    id: row.id,
    gateway: row.gateway,
    signed,
    bytes: row.bytes,
    readings: load,
    leaves: () => (leaves ??= store.batchLeaves(row)),
    seqs: () => load().map((r) => r.seq),
    readingJson: () => (json ??= load().map((r) => readingToJson(decodeReading(r.canonical)))),
    prev: () => {
      if (!prevLoaded) {
        const p = row.id > 1n ? store.batch(row.id - 1n) : undefined
        prev = p ? signedBatchFromRow(p) : undefined
        prevLoaded = true
      }
      return prev
    },
    proofs: () => {
      if (proofs === undefined) {
        const rs = load()
        const tree = buildMerkleTree(b.leaves())
        const js = b.readingJson()
        const p = b.prev()
        proofs = rs.map((r, i) =>
          buildProofBundle({
            seq: r.seq,
            reading: js[i] as ReadingJson,
            canonical: r.canonical,
            leaf: r.leaf,
            merkleProof: tree.getProof(i).map((n) => bytesToHex(n) as Hex),
            batch: signed,
            ...(p ? { prevBatch: p } : {}),
          }),
        )
      }
      return proofs
    },
  }
  return b
}

/** Shared counters of every runner (labelled by sink). */
interface RunnerMetrics {
  readonly sends: Counter
  readonly failures: Counter
  readonly rejected: Counter
}

export interface SinkRunnerOptions {
  readonly sink: Sink
  readonly settings: SinkRunnerSettings
  readonly store: Store
  readonly log: Logger
  readonly bus?: ReadingBus
  /** Wall clock (ms) for cursor rows and lastSuccessMs. */
  readonly now?: () => number
  /** Uniform [0, 1) for jitter (tests pin it). */
  readonly random?: () => number
  /** Poll the store this often when idle, besides waking on each sealed batch. */
  readonly idlePollMs?: number
}

const MAX_REASON = 500
const clip = (s: string): string => (s.length > MAX_REASON ? s.slice(0, MAX_REASON - 1) + '…' : s)

/** Delivers one sink's batches; see the header comment. */
export class SinkRunner {
  readonly sink: Sink
  readonly #o: SinkRunnerOptions
  readonly #store: Store
  readonly #now: () => number
  readonly #random: () => number
  #m: RunnerMetrics | undefined
  #acked: bigint
  #state: SinkState = 'idle'
  #lastError: string | null
  #lastSuccessMs: number | null = null
  #failures = 0
  #nextAttemptMs: number | null = null
  #abort = new AbortController()
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #unsubscribe: (() => void) | undefined
  readonly #insertRejection
  readonly #countRejections

  constructor(o: SinkRunnerOptions) {
    this.sink = o.sink
    this.#o = o
    this.#store = o.store
    this.#now = o.now ?? Date.now
    this.#random = o.random ?? Math.random
    this.#insertRejection = o.store.db.prepare<[string, bigint, string, number]>(
      'INSERT INTO sink_rejections (sink_id, batch_id, reason, at_ms) VALUES (?, ?, ?, ?) ON CONFLICT (sink_id, batch_id) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms',
    )
    this.#countRejections = o.store.db.prepare<[string], { n: bigint }>('SELECT count(*) AS n FROM sink_rejections WHERE sink_id = ?')
    const c = o.store.cursor(o.sink.id)
    if (c) {
      this.#acked = c.ackedBatchId
      this.#lastError = c.lastError
      if (c.data) {
        try {
          const d = JSON.parse(c.data) as { lastSuccessMs?: unknown }
          if (typeof d.lastSuccessMs === 'number') this.#lastSuccessMs = d.lastSuccessMs
        } catch {
          // an unreadable note is not worth failing over; it is rewritten on the next success
        }
      }
    } else {
      // A new sink starts at the oldest batch still stored, and its cursor row
      // exists from now on, so retention waits for it (invariant 5).
      const first = o.store.batchesAfter(0n, 1)[0]
      this.#acked = first ? first.id - 1n : o.store.lastBatchId()
      this.#lastError = null
      o.store.setCursor({ sinkId: o.sink.id, ackedBatchId: this.#acked, state: 'idle', lastError: null, nowMs: this.#now() })
    }
  }

  /** The highest batch id handled; retention may prune up to it. */
  get ackedBatchId(): bigint {
    return this.#acked
  }

  get state(): SinkState {
    return this.#state
  }

  /** Attach the shared counters (SinkRunners does this). */
  useMetrics(m: RunnerMetrics): void {
    this.#m = m
  }

  start(): void {
    if (this.#loop) return
    this.#unsubscribe = this.#o.bus?.onBatch(() => this.#wake?.())
    this.#loop = this.#run().catch((err: unknown) => {
      // The loop handles every send outcome itself; reaching here means the store failed.
      this.#state = 'stopped'
      this.#lastError = clip(`runner stopped: ${(err as Error)?.message ?? String(err)}`)
      this.#o.log.error({ err, sink: this.sink.id }, 'sink runner stopped')
    })
  }

  /** Stop: abort the in-flight send (it is resent after the next start), wait for the loop, close the sink. */
  async stop(): Promise<void> {
    this.#abort.abort()
    this.#wake?.()
    this.#unsubscribe?.()
    await this.#loop
    this.#state = 'stopped'
    try {
      await this.sink.close?.()
    } catch (err) {
      this.#o.log.warn({ err, sink: this.sink.id }, 'closing the sink failed')
    }
  }

  status(): SinkStatus {
    const backlog = this.#store.closed ? { batches: 0, bytes: 0 } : this.#store.backlog(this.#acked)
    const rejected = this.#store.closed ? 0 : Number(this.#countRejections.get(this.sink.id)?.n ?? 0n)
    const extra = this.sink.status?.()
    return {
      id: this.sink.id,
      ackedBatchId: this.#acked.toString(),
      backlogBatches: backlog.batches,
      backlogBytes: backlog.bytes,
      state: this.#state,
      lastError: this.#lastError,
      lastSuccessMs: this.#lastSuccessMs,
      failures: this.#failures,
      rejectedBatches: rejected,
      nextAttemptMs: this.#nextAttemptMs,
      ...(extra !== undefined ? { extra } : {}),
    }
  }

  /** The retry delay after `n` consecutive failures (n ≥ 1). */
  retryDelayMs(n: number, retryAfterMs?: number): number {
    const s = this.#o.settings
    if (n >= s.stuckAfterFailures) return Math.max(s.backoffMaxMs, Math.min(retryAfterMs ?? 0, 3_600_000))
    const exp = Math.min(s.backoffMaxMs, s.backoffBaseMs * 2 ** Math.min(n - 1, 30))
    const jittered = exp / 2 + (this.#random() * exp) / 2
    // An upstream's Retry-After wins over a shorter backoff (capped at an hour).
    return Math.round(Math.max(jittered, Math.min(retryAfterMs ?? 0, 3_600_000)))
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const row = this.#store.batchesAfter(this.#acked, 1)[0]
      if (!row) {
        this.#state = 'idle'
        await this.#sleep(this.#o.idlePollMs ?? 1000, true)
        continue
      }
      if (row.id !== this.#acked + 1n) {
        // Only possible for batches pruned while this sink was not enabled.
        this.#o.log.warn({ sink: this.sink.id, from: (this.#acked + 1n).toString(), to: (row.id - 1n).toString() }, 'batches were pruned before this sink was enabled; skipping them')
      }
      const batch = sinkBatchFromStore(this.#store, row)
      if (this.#state !== 'stuck') this.#state = 'sending'
      const ack = await this.#attempt(batch, signal)
      if (signal.aborted) break
      if (ack.ok) {
        this.#advance(row.id, null)
        this.#lastSuccessMs = this.#now()
        this.#persist(null)
        this.#m?.sends.inc({ sink: this.sink.id })
        if (this.#failures > 0) this.#o.log.info({ sink: this.sink.id, batchId: row.id.toString(), after: this.#failures }, 'sink recovered')
        this.#failures = 0
        this.#nextAttemptMs = null
        this.#state = 'sending'
        continue
      }
      if (!ack.retry) {
        const reason = clip(ack.reason)
        this.#store.db.transaction(() => {
          this.#insertRejection.run(this.sink.id, row.id, reason, this.#now())
          this.#advance(row.id, `batch ${row.id} rejected: ${reason}`)
        }).immediate()
        this.#m?.rejected.inc({ sink: this.sink.id })
        this.#o.log.warn({ sink: this.sink.id, batchId: row.id.toString(), reason }, 'upstream rejected a batch; parked it and moved on')
        this.#failures = 0
        this.#nextAttemptMs = null
        continue
      }
      this.#failures++
      this.#m?.failures.inc({ sink: this.sink.id })
      this.#lastError = clip(`batch ${row.id}: ${ack.reason}`)
      const stuck = this.#failures >= this.#o.settings.stuckAfterFailures
      if (stuck && this.#state !== 'stuck') this.#o.log.error({ sink: this.sink.id, batchId: row.id.toString(), failures: this.#failures, lastError: this.#lastError }, 'sink is stuck')
      else this.#o.log.debug({ sink: this.sink.id, batchId: row.id.toString(), failures: this.#failures, reason: ack.reason }, 'sink send failed; will retry')
      this.#state = stuck ? 'stuck' : 'backoff'
      this.#persist(this.#lastError)
      const delay = this.retryDelayMs(this.#failures, ack.retryAfterMs)
      this.#nextAttemptMs = this.#now() + delay
      await this.#sleep(delay, false)
    }
    this.#state = 'stopped'
  }

  /** One send with the request timeout; a throw or a timeout is a transient failure. */
  async #attempt(batch: SinkBatch, stop: AbortSignal): Promise<SinkAck> {
    const timeout = new AbortController()
    const signal = AbortSignal.any([stop, timeout.signal])
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<SinkAck>((resolve) => {
      timer = setTimeout(() => {
        timeout.abort(new Error(`timed out after ${this.#o.settings.timeoutMs} ms`))
        resolve({ ok: false, retry: true, reason: `timed out after ${this.#o.settings.timeoutMs} ms` })
      }, this.#o.settings.timeoutMs)
    })
    let onStop: (() => void) | undefined
    const stopped = new Promise<SinkAck>((resolve) => {
      onStop = () => resolve({ ok: false, retry: true, reason: 'stopping' })
      if (stop.aborted) onStop()
      else stop.addEventListener('abort', onStop, { once: true })
    })
    try {
      const sent = (async (): Promise<SinkAck> => {
        try {
          const a = await this.sink.send(batch, signal)
          if (typeof a !== 'object' || a === null || typeof a.ok !== 'boolean') return { ok: false, retry: true, reason: 'the sink returned no acknowledgement' }
          return a
        } catch (err) {
          return { ok: false, retry: true, reason: (err as Error)?.message ?? String(err) }
        }
      })()
      return await Promise.race([sent, timedOut, stopped])
    } finally {
      clearTimeout(timer)
      if (onStop) stop.removeEventListener('abort', onStop)
    }
  }

  #advance(id: bigint, lastError: string | null): void {
    this.#acked = id
    this.#lastError = lastError
    this.#store.setCursor({
      sinkId: this.sink.id,
      ackedBatchId: id,
      state: 'ok',
      lastError,
      data: JSON.stringify({ lastSuccessMs: this.#lastSuccessMs }),
      nowMs: this.#now(),
    })
  }

  #persist(lastError: string | null): void {
    this.#store.setCursor({
      sinkId: this.sink.id,
      ackedBatchId: this.#acked,
      state: this.#state,
      lastError,
      data: JSON.stringify({ lastSuccessMs: this.#lastSuccessMs }),
      nowMs: this.#now(),
    })
  }

  /** Sleep `ms`, or until stopped; when `wakeOnBatch`, also until a batch is sealed. */
  #sleep(ms: number, wakeOnBatch: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const signal = this.#abort.signal
      if (signal.aborted) return resolve()
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        if (this.#wake === done) this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      if (wakeOnBatch) this.#wake = done
    })
  }
}

/**
 * Every enabled sink's runner, with the shared metrics, the status array
 * and the retention bound.
 */
export class SinkRunners {
  readonly runners: readonly SinkRunner[]
  #started = false

  constructor(runners: readonly SinkRunner[], metrics: MetricsRegistry) {
    this.runners = runners
    const m: RunnerMetrics = {
      sends: metrics.counter('fieldproof_sink_sends_total', 'Batches a sink delivered and the upstream acknowledged, by sink'),
      failures: metrics.counter('fieldproof_sink_failures_total', 'Failed send attempts (retried later), by sink'),
      rejected: metrics.counter('fieldproof_sink_rejected_total', 'Batches the upstream refused for good (parked), by sink'),
    }
    for (const r of runners) r.useMetrics(m)
    const each = (f: (s: SinkStatus) => number) => () => this.runners.map((r) => [{ sink: r.sink.id }, f(r.status())] as [Record<string, string>, number])
    metrics.gauge('fieldproof_sink_backlog_batches', 'Sealed batches a sink has not acknowledged yet', each((s) => s.backlogBatches))
    metrics.gauge('fieldproof_sink_backlog_bytes', 'Canonical bytes of the batches a sink has not acknowledged yet', each((s) => s.backlogBytes))
    metrics.gauge('fieldproof_sink_acked_batch_id', 'Highest batch id a sink has handled', each((s) => Number(s.ackedBatchId)))
    metrics.gauge('fieldproof_sink_stuck', '1 while a sink is stuck (circuit open after repeated failures)', each((s) => (s.state === 'stuck' ? 1 : 0)))
    metrics.gauge('fieldproof_sink_last_success_seconds', 'Wall time of a sink\'s last acknowledged send, seconds since the epoch (0: never)', each((s) => (s.lastSuccessMs ?? 0) / 1000))
  }

  get size(): number {
    return this.runners.length
  }

  /**
   * The highest batch id every sink has handled (for PipelineOptions.ackedBatchId).
   * With no sinks there is nothing to wait for: undefined.
   */
  minAcked(): bigint | undefined {
    let min: bigint | undefined
    for (const r of this.runners) if (min === undefined || r.ackedBatchId < min) min = r.ackedBatchId
    return min
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    for (const r of this.runners) r.start()
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.runners.map((r) => r.stop()))
  }

  status(): SinkStatus[] {
    return this.runners.map((r) => r.status())
  }
}
