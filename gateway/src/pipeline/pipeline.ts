// The pipeline: ingest → sequence → store (group commit) → seal → publish.
//
//   sources ──ingest()──▶ pending queue (bounded: BACKPRESSURE when full)
//                              │ one transaction per flush (group commit)
//                              ▼
//                       SQLite (durable) ──▶ promises resolve (acks go out)
//                              │                └─▶ bus: 'reading'
//                              ▼
//                 batcher: seal every N readings or T seconds
//                 (Merkle root + EIP-712 signature, linked by hash) ──▶ bus: 'batch'
//
// Before the store a full queue refuses input with a reason (the sender
// retries); after the store nothing is ever dropped. Acknowledgements wait
// for the commit (invariant 1).
//
// With `commitWorker` the group commit runs on a worker thread that owns the
// write transaction (store/commit-worker.ts): one transaction in flight at a
// time, seqs reserved when it is sent, promises resolved when it is
// answered; meanwhile the event loop keeps parsing the next readings, which
// make up the next transaction. Sealing and retention write on the main
// connection only between transactions, so they never wait for the lock.
//
// A reading's leaf is hashed when its batch is sealed, not in the group
// commit: leaves are stored once per batch, with the batch row.
//
// Without it, while full batches are sealed less than `sealThreadWithinMs`
// apart, the leaves, Merkle tree and signature of each full batch are made
// on the seal thread (seal-worker.ts), one batch at a time; its readings stay
// open until the answer's batch row rides the next transaction. An answer
// that is no longer the next batch over the same readings is dropped, and any seal
// on the event loop (by age, on stop, when the thread falls behind, after a
// thread failure) supersedes the one on the thread.

import { encodeReading, leafHashes, splitLeaves } from '../core/canonical.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import { FieldproofError, isFieldproofError } from '../core/errors.ts'
import { bytesToHex } from '../core/hex.ts'
import type { BatchHeader, Hex, Reading, SignedBatch } from '../core/types.ts'
import { CommitWorker, type CommitOutcome, type CommitRow } from '../store/commit-worker.ts'
import type { NewBatchRow, Store } from '../store/store.ts'
import { ReadingBus } from './bus.ts'
import type { MetricsRegistry, Counter, Histogram } from './metrics.ts'
import { SealWorker, type SealOutcome } from './seal-worker.ts'

/** Signs batch headers; holds the gateway key so nothing else has to. */
export interface BatchSigner {
  readonly address: Hex
  sign(header: BatchHeader): SignedBatch
}

export interface PipelineOptions {
  readonly store: Store
  readonly signer: BatchSigner
  readonly metrics: MetricsRegistry
  readonly bus?: ReadingBus
  /** Seal when this many readings are open. */
  readonly batchMaxReadings: number
  /** Seal when the oldest open reading is this old. */
  readonly batchMaxAgeMs: number
  /** Readings waiting for commit beyond which ingest is refused (backpressure). */
  readonly maxPending: number
  /** Readings per transaction at most. */
  readonly commitMaxReadings: number
  /** Retention window: acknowledged batches older than this are pruned. */
  readonly retentionMs: number
  /** Size cap of the database (live pages + WAL). */
  readonly maxBytes: number
  /**
   * The highest batch id every enabled sink has acknowledged. Retention
   * prunes only up to it (invariant 5). Default: with no sinks, every sealed
   * batch counts as acknowledged.
   */
  readonly ackedBatchId?: () => bigint
  /**
   * Run each group commit on a worker thread that owns the write
   * transaction ([store] commit_worker), instead of on the event loop.
   * Default false.
   */
  readonly commitWorker?: boolean
  /**
   * The gateway key, for building and signing full batches on a worker
   * thread (seal-worker.ts) while full batches are sealed less than
   * `sealThreadWithinMs` apart. Without it (and with commitWorker) every
   * batch is sealed on the event loop with `signer`, which must hold the
   * same key.
   */
  readonly sealThreadKey?: Hex
  /**
   * Full batches sealed less than this many ms apart are built and signed
   * on the seal thread; slower ones on the event loop, where one costs less
   * than a thread. Default 250 (more than ~4,000 readings a second at 1,000
   * per batch).
   */
  readonly sealThreadWithinMs?: number
  readonly now?: () => number
  readonly onError?: (err: unknown, where: string) => void
}

/** The readings of one ingest() call: one promise, settled once. */
interface Group {
  readonly seqs: bigint[]
  remaining: number
  settled: boolean
  readonly resolve: (seqs: bigint[]) => void
  readonly reject: (e: unknown) => void
}

interface Pending {
  readonly reading: Reading
  readonly canonical: Uint8Array
  readonly enqueuedAt: number
  readonly group: Group
  readonly index: number
}

/** A committed reading not yet in a batch; its leaf is hashed when it is sealed. */
interface OpenReading {
  readonly seq: bigint
  readonly canonical: Uint8Array
  readonly at: number
}

/** A batch built and signed, not yet stored (Pipeline.#prepareSeal). */
interface PreparedSeal {
  readonly signed: SignedBatch
  readonly row: NewBatchRow
  /** Open leaves it closes, from the oldest. */
  readonly count: number
}

/** Transactions queued on the commit thread at most: the next one starts as soon as the previous is on disk. */
const COMMITS_IN_FLIGHT = 2
const ZERO_HASH = ('0x' + '00'.repeat(32)) as Hex
const hexToBytes = (h: Hex): Uint8Array => new Uint8Array(Buffer.from(h.slice(2), 'hex'))
/** A device-signed reading's counter, stored with it for replay protection (DeviceRegistry). */
const counterOf = (r: Reading): bigint | undefined => (r.auth.kind === 'device-signature' ? r.auth.counter : undefined)

export interface PipelineState {
  readonly pending: number
  readonly open: number
  readonly nextSeq: bigint
  readonly lastBatchId: bigint
  readonly storeFull: boolean
  readonly stopping: boolean
}

export class Pipeline {
  readonly store: Store
  readonly bus: ReadingBus
  readonly #o: PipelineOptions
  readonly #now: () => number
  #queue: Pending[] = []
  #flushScheduled = false
  #nextSeq: bigint
  #open: OpenReading[] = []
  #lastBatch: { id: bigint; hash: Hex; lastSeq: bigint }
  #sealTimer: NodeJS.Timeout | undefined
  #maintenanceTimer: NodeJS.Timeout | undefined
  #storeFull = false
  #lastSizeCheck = -Infinity
  #stopping = false
  #stopped = false
  readonly #writer: CommitWorker | undefined
  /** Retention or a seal came due while the commit thread held the write lock. */
  #maintenanceDue = false
  /** Readings in transactions on the commit thread (they count against maxPending). */
  #inFlight = 0
  /** Highest seq committed and either acknowledged or known to be on disk (open or sealed). */
  #durableThrough: bigint
  /** A transaction on the commit thread failed: re-read the store once the thread is idle. */
  #resyncDue = false
  #sealDue = false
  readonly #sealer: SealWorker | undefined
  /** A batch on the seal thread: its generation (a seal on the event loop supersedes it) and start. */
  #sealing: { readonly gen: number; readonly t0: number } | undefined
  #sealGen = 0
  /** A batch the seal thread built and signed, stored with the next transaction. */
  #ready: { readonly sealed: PreparedSeal; readonly t0: number } | undefined
  /** performance.now() of the last full batch sealed (sealThreadWithinMs). */
  #lastFullSealAt = -Infinity

  readonly #m: {
    ingested: Counter
    rejected: Counter
    commitLatency: Histogram
    commitSize: Histogram
    sealLatency: Histogram
    sealed: Counter
    sealedOnThread: Counter
    pruned: Counter
  }

  constructor(o: PipelineOptions) {
    this.#o = o
    this.store = o.store
    this.bus = o.bus ?? new ReadingBus()
    this.#now = o.now ?? Date.now
    this.#nextSeq = o.store.lastSeq() + 1n
    this.#durableThrough = this.#nextSeq - 1n
    const last = o.store.lastBatch()
    const lastId = o.store.lastBatchId()
    if (last && last.id !== lastId) {
      throw new FieldproofError('STORE_CORRUPT', `last batch row ${last.id} disagrees with meta last_batch_id ${lastId}`)
    }
    this.#lastBatch = last
      ? { id: last.id, hash: bytesToHex(last.hash), lastSeq: last.lastSeq }
      : { id: lastId, hash: (o.store.getMeta('last_batch_hash') as Hex | undefined) ?? ZERO_HASH, lastSeq: BigInt(o.store.getMeta('last_batch_last_seq') ?? '0') }
    // Readings committed but not sealed before a stop or a crash: they go into the next batch.
    const now = this.#now()
    for (const u of o.store.unsealed()) {
      if (u.seq <= this.#lastBatch.lastSeq) continue
      this.#open.push({ seq: u.seq, canonical: u.canonical, at: Math.min(u.receivedMs, now) })
    }

    const m = o.metrics
    this.#m = {
      ingested: m.counter('fieldproof_readings_ingested_total', 'Readings durably stored, by source'),
      rejected: m.counter('fieldproof_readings_rejected_total', 'Readings refused before the store, by source and cause'),
      commitLatency: m.histogram('fieldproof_ingest_to_durable_seconds', 'Time from ingest to durable commit', [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]),
      commitSize: m.histogram('fieldproof_commit_readings', 'Readings per group-commit transaction', [1, 2, 5, 10, 50, 100, 500, 1000, 5000]),
      sealLatency: m.histogram('fieldproof_batch_seal_seconds', 'Time to build the Merkle tree, sign and store a batch', [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]),
      sealed: m.counter('fieldproof_batches_sealed_total', 'Batches sealed'),
      sealedOnThread: m.counter('fieldproof_batches_sealed_on_thread_total', 'Batches built and signed on the seal thread (counted in fieldproof_batches_sealed_total too)'),
      pruned: m.counter('fieldproof_pruned_total', 'Rows removed by retention, by kind'),
    }
    m.gauge('fieldproof_pipeline_pending', 'Readings waiting for commit', () => [[{}, this.#queue.length]])
    m.gauge('fieldproof_batch_open_readings', 'Readings committed but not yet sealed', () => [[{}, this.#open.length]])
    m.gauge('fieldproof_store_full', '1 while the store refuses input because it is full', () => [[{}, this.#storeFull ? 1 : 0]])
    m.gauge('fieldproof_last_seq', 'Highest sequence number assigned', () => [[{}, Number(this.#nextSeq - 1n)]])
    m.gauge('fieldproof_last_batch_id', 'Highest batch id sealed', () => [[{}, Number(this.#lastBatch.id)]])
    m.gauge('fieldproof_commit_in_flight', '1 while a group commit is on the commit thread', () => [[{}, this.#writer?.busy ? 1 : 0]])

    this.#writer = o.commitWorker ? new CommitWorker({ path: o.store.path, onError: (err) => o.onError?.(err, 'commit-thread') }) : undefined
    this.#sealer = o.sealThreadKey !== undefined && !o.commitWorker ? new SealWorker(o.sealThreadKey, (err) => o.onError?.(err, 'seal-thread')) : undefined

    this.#scheduleSeal()
    this.#maintenanceTimer = setInterval(() => this.#maintenance(), 1000)
    this.#maintenanceTimer.unref()
    this.#maintenance()
  }

  /** The commit thread's owner, when `commitWorker` is on (diagnostics, tests). */
  get commitWorker(): CommitWorker | undefined {
    return this.#writer
  }

  /** The seal thread's owner, when `sealThreadKey` is given (diagnostics, tests). */
  get sealThread(): SealWorker | undefined {
    return this.#sealer
  }

  get state(): PipelineState {
    return {
      pending: this.#queue.length,
      open: this.#open.length,
      nextSeq: this.#nextSeq,
      lastBatchId: this.#lastBatch.id,
      storeFull: this.#storeFull,
      stopping: this.#stopping,
    }
  }

  /**
   * Ingest readings. Resolves with their sequence numbers once they are
   * durable — only then may the source acknowledge (invariant 1). Rejects
   * with FieldproofError: READING_INVALID (nothing stored), BACKPRESSURE
   * (retry later), STORE_FULL, STORE_CLOSED (shutting down). A batch of
   * readings is all-or-nothing on validation.
   */
  ingest(readings: readonly Reading[]): Promise<bigint[]> {
    const source = readings[0]?.source ?? 'unknown'
    if (this.#stopping) return this.#refuse(source, 'shutting-down', new FieldproofError('STORE_CLOSED', 'the gateway is shutting down; retry shortly'))
    if (this.#storeFull) {
      return this.#refuse(source, 'store-full', new FieldproofError('STORE_FULL', 'storage is full: every stored batch is still waiting for an upstream sink to acknowledge it; new readings are refused until space is freed'))
    }
    if (this.#queue.length + this.#inFlight + readings.length > this.#o.maxPending) {
      return this.#refuse(source, 'backpressure', new FieldproofError('BACKPRESSURE', `the store is behind (${this.#queue.length + this.#inFlight} readings waiting); retry shortly`, { details: { retryAfterMs: 1000 } }))
    }
    let canonicals: Uint8Array[]
    try {
      canonicals = readings.map((r) => encodeReading(r))
    } catch (e) {
      return this.#refuse(source, 'invalid', e)
    }
    if (readings.length === 0) return Promise.resolve([])
    const t = performance.now()
    return new Promise<bigint[]>((resolve, reject) => {
      const group: Group = { seqs: new Array<bigint>(readings.length), remaining: readings.length, settled: false, resolve, reject }
      for (let i = 0; i < readings.length; i++) {
        this.#queue.push({ reading: readings[i] as Reading, canonical: canonicals[i] as Uint8Array, enqueuedAt: t, group, index: i })
      }
      this.#scheduleFlush()
    })
  }

  #refuse(source: string, cause: string, e: unknown): Promise<never> {
    this.#m.rejected.inc({ source, cause })
    return Promise.reject(e)
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    // Group commit one turn of the event loop later than the first reading
    // queued: readings whose requests arrive just after it (clients that were
    // answered by the same commit come back together) then share its fsync.
    // Measured with 8 HTTP clients, one reading per request: 7.8 readings per
    // commit instead of 6.3, about 12 % more readings per second.
    setImmediate(() =>
      setImmediate(() => {
        this.#flushScheduled = false
        if (this.#writer && !this.#stopping) this.#dispatch()
        else this.flush()
      }),
    )
  }

  /**
   * Send what is queued to the commit thread as the next transaction, up to
   * COMMITS_IN_FLIGHT transactions queued there, unless the pipeline waits
   * for the thread to drain (a seal, retention or a failure is due).
   */
  #dispatch(): void {
    const w = this.#writer as CommitWorker
    while (w.pending < COMMITS_IN_FLIGHT && this.#queue.length > 0 && !this.#drainFirst()) {
      const items = this.#queue.splice(0, this.#o.commitMaxReadings)
      const first = this.#nextSeq
      // Reserved now; after a failure the seqs are re-read from the store.
      this.#nextSeq = first + BigInt(items.length)
      this.#inFlight += items.length
      const rows = items.map((p): CommitRow => ({ deviceId: p.reading.deviceId, source: p.reading.source, receivedMs: p.reading.received.wallMs, canonical: p.canonical, counter: counterOf(p.reading) }))
      w.commit(first, rows, (o) => this.#afterCommitThread(items, first, o))
    }
  }

  /** True when the main connection must write (seal, retention) or re-read the store before more commits are sent. */
  #drainFirst(): boolean {
    return this.#resyncDue || this.#sealDue || this.#maintenanceDue
  }

  #afterCommitThread(items: Pending[], first: bigint, o: CommitOutcome): void {
    this.#inFlight -= items.length
    if (o.ok && !this.#resyncDue) {
      this.#accepted(items, first)
      this.#durableThrough = first + BigInt(items.length) - 1n
      // A full batch is sealed once the thread is idle (a failed seal is retried after the next commit).
      if (this.#open.length >= this.#o.batchMaxReadings) this.#sealDue = true
    } else {
      if (!o.ok && o.full) this.#storeFull = true
      // Nothing of a failed transaction is acknowledged, nor of any sent after it.
      this.#resyncDue = true
      const message = o.ok ? 'an earlier transaction failed' : o.message
      this.#failed(items, new FieldproofError('INTERNAL', `commit failed: ${message}`, { details: o.ok ? {} : { code: o.code, crashed: o.crashed } }))
      // A dead thread was reported by the CommitWorker already.
      if (!o.ok && !o.crashed) this.#o.onError?.(new Error(o.message), 'commit')
    }
    const w = this.#writer as CommitWorker
    if (w.pending > 0) {
      // More transactions on the thread: keep it fed unless the main connection must write first.
      if (!this.#stopping) this.#dispatch()
      return
    }
    // The thread is idle: the main connection writes without waiting for the lock.
    if (this.#resyncDue) {
      this.#resyncDue = false
      // What is on disk decides the next seq. A failed commit stored nothing;
      // a thread that died may have committed before it could answer: those
      // rows are kept and sealed, but never acknowledged (their senders
      // retry, at least once).
      try {
        const last = this.store.lastSeq()
        if (last > this.#durableThrough) {
          const now = this.#now()
          for (const r of this.store.openReadings(this.#durableThrough + 1n, last)) this.#open.push({ seq: r.seq, canonical: r.canonical, at: now })
        }
        this.#durableThrough = last
        this.#nextSeq = last + 1n
        if (this.#open.length >= this.#o.batchMaxReadings) this.#sealDue = true
      } catch (e) {
        this.#o.onError?.(e, 'commit-resync')
      }
    }
    try {
      if (this.#sealDue) {
        this.#sealDue = false
        while (this.#open.length >= this.#o.batchMaxReadings) this.seal(this.#o.batchMaxReadings)
        if (this.#open.length > 0 && this.#now() - (this.#open[0] as OpenReading).at >= this.#o.batchMaxAgeMs - 5) this.seal()
      }
    } catch (e) {
      this.#o.onError?.(e, 'seal')
    }
    this.#scheduleSeal()
    if (this.#maintenanceDue) {
      this.#maintenanceDue = false
      this.#maintenance()
    }
    // What queued meanwhile is the next transaction.
    if (!this.#stopping) this.#dispatch()
  }

  /** Commit what is queued (up to commitMaxReadings per transaction) on this thread. Synchronous. */
  flush(): void {
    // A transaction on the commit thread finishes first: seqs stay in order.
    this.#writer?.waitIdle()
    while (this.#queue.length > 0) {
      const take = this.#queue.splice(0, this.#o.commitMaxReadings)
      this.#commit(take)
      // Yield between transactions so sockets keep being served under load.
      if (this.#queue.length > 0 && !this.#stopping) {
        this.#scheduleFlush()
        return
      }
    }
  }

  #commit(items: Pending[]): void {
    const first = this.#nextSeq
    const now = this.#now()
    const rows = items.map((p, i) => ({
      seq: first + BigInt(i),
      deviceId: p.reading.deviceId,
      source: p.reading.source,
      receivedMs: p.reading.received.wallMs,
      canonical: p.canonical,
      counter: counterOf(p.reading),
    }))
    // A commit that fills a batch stores the batch in the same transaction: one fsync for both.
    // Under a high rate the batch is built on the seal thread instead, and
    // rides the first transaction after its answer.
    const offLoop = this.#sealer !== undefined && performance.now() - this.#lastFullSealAt < (this.#o.sealThreadWithinMs ?? 250)
    let batch: { readonly sealed: PreparedSeal; readonly t0: number } | undefined = this.#ready
    if (!batch && !offLoop && this.#open.length + items.length >= this.#o.batchMaxReadings) {
      const t0 = performance.now()
      const take = this.#open.slice(0, this.#o.batchMaxReadings)
      for (let i = 0; take.length < this.#o.batchMaxReadings; i++) {
        take.push({ seq: first + BigInt(i), canonical: (items[i] as Pending).canonical, at: now })
      }
      try {
        batch = { sealed: this.#prepareSeal(take), t0 }
      } catch (e) {
        // Sealed later by seal(), as before; the readings are committed regardless.
        this.#o.onError?.(e, 'seal')
      }
    }
    try {
      if (batch) this.store.insertReadingsAndBatch(rows, batch.sealed.row)
      else this.store.insertReadings(rows)
    } catch (e) {
      // Nothing was stored: every sender gets the error and may retry.
      const err = isFieldproofError(e) ? e : new FieldproofError('INTERNAL', `commit failed: ${(e as Error).message}`, { cause: e })
      if (/SQLITE_FULL|database or disk is full/i.test(String((e as Error).message))) this.#storeFull = true
      // A batch from the seal thread is dropped with it (its leaves stay open and are sealed again).
      this.#ready = undefined
      this.#failed(items, err)
      this.#o.onError?.(e, 'commit')
      return
    }
    this.#nextSeq = first + BigInt(items.length)
    this.#durableThrough = this.#nextSeq - 1n
    this.#accepted(items, first, now)
    if (batch) {
      if (batch === this.#ready) {
        this.#ready = undefined
        this.#m.sealedOnThread.inc()
      }
      this.#sealed(batch.sealed, batch.t0)
    }
    // The seal thread takes the next full batch; when it falls behind by
    // three batches (or is not used) the event loop seals.
    if (offLoop && this.#open.length < 3 * this.#o.batchMaxReadings) this.#sealOnThread()
    else {
      try {
        while (this.#open.length >= this.#o.batchMaxReadings) this.seal(this.#o.batchMaxReadings)
      } catch (e) {
        // The readings are committed and acknowledged; their batch is sealed after the next commit or by age.
        this.#o.onError?.(e, 'seal')
      }
    }
    this.#scheduleSeal()
  }

  /** Send the oldest full batch of open readings to the seal thread, unless one is there or waits to be stored. */
  #sealOnThread(): void {
    const sealer = this.#sealer
    const max = this.#o.batchMaxReadings
    if (!sealer || this.#sealing || this.#ready || this.#open.length < max || this.#stopping) return
    const t0 = performance.now()
    const canonicals = new Array<Uint8Array>(max)
    let bytes = 0
    for (let i = 0; i < max; i++) {
      const c = (this.#open[i] as OpenReading).canonical
      canonicals[i] = c
      bytes += c.length
    }
    const header: BatchHeader = {
      gateway: this.#o.signer.address,
      batchId: this.#lastBatch.id + 1n,
      firstSeq: (this.#open[0] as OpenReading).seq,
      lastSeq: (this.#open[max - 1] as OpenReading).seq,
      count: max,
      merkleRoot: '0x',
      prevBatchHash: this.#lastBatch.hash,
      sealedAtMs: BigInt(this.#now()),
    }
    const gen = ++this.#sealGen
    this.#sealing = { gen, t0 }
    sealer.seal(header, canonicals, (o) => this.#sealAnswered(gen, header, bytes, o))
  }

  /** The seal thread answered: keep the batch for the next transaction (or store it now when none is coming). */
  #sealAnswered(gen: number, header: BatchHeader, bytes: number, o: SealOutcome): void {
    const sealing = this.#sealing
    // Superseded by a seal on the event loop, or the pipeline stopped.
    if (!sealing || sealing.gen !== gen || this.#stopped) return
    this.#sealing = undefined
    if (!o.ok) {
      this.#o.onError?.(new Error(o.message), 'seal-thread')
      try {
        while (this.#open.length >= this.#o.batchMaxReadings) this.seal(this.#o.batchMaxReadings)
      } catch (e) {
        this.#o.onError?.(e, 'seal')
      }
      return
    }
    // Still the next batch, over the same readings (nothing sealed meanwhile).
    if (this.#lastBatch.id + 1n !== header.batchId || this.#lastBatch.hash !== header.prevBatchHash || (this.#open[0] as OpenReading | undefined)?.seq !== header.firstSeq) return
    const signed: SignedBatch = { header: { ...header, merkleRoot: bytesToHex(o.root) }, hash: o.hash, signature: o.signature }
    const row: NewBatchRow = {
      id: header.batchId,
      firstSeq: header.firstSeq,
      lastSeq: header.lastSeq,
      count: header.count,
      merkleRoot: o.root,
      prevHash: hexToBytes(header.prevBatchHash),
      hash: hexToBytes(o.hash),
      signature: hexToBytes(o.signature),
      gateway: header.gateway,
      sealedAtMs: Number(header.sealedAtMs),
      bytes,
      leaves: o.leaves,
    }
    this.#ready = { sealed: { signed, row, count: header.count }, t0: sealing.t0 }
    // A group commit is coming: the batch rides its transaction. Otherwise it is stored now.
    if (this.#flushScheduled && !this.#stopping) return
    const ready = this.#ready
    try {
      this.store.insertBatch(ready.sealed.row)
    } catch (e) {
      // Dropped; its leaves stay open and are sealed again.
      this.#ready = undefined
      this.#o.onError?.(e, 'seal')
      return
    }
    this.#ready = undefined
    this.#m.sealedOnThread.inc()
    this.#sealed(ready.sealed, ready.t0)
    this.#sealOnThread()
  }

  /** Committed as seqs first, first+1, …: open them for sealing, resolve their senders, publish them. */
  #accepted(items: readonly Pending[], first: bigint, now = this.#now()): void {
    const done = performance.now()
    this.#m.commitSize.observe(items.length)
    let source = (items[0] as Pending).reading.source
    let count = 0
    for (let i = 0; i < items.length; i++) {
      const p = items[i] as Pending
      const seq = first + BigInt(i)
      if (p.reading.source !== source) {
        this.#m.ingested.inc({ source }, count)
        source = p.reading.source
        count = 0
      }
      count++
      this.#m.commitLatency.observe((done - p.enqueuedAt) / 1000)
      this.#open.push({ seq, canonical: p.canonical, at: now })
      const g = p.group
      g.seqs[p.index] = seq
      if (--g.remaining === 0 && !g.settled) {
        g.settled = true
        g.resolve(g.seqs)
      }
    }
    this.#m.ingested.inc({ source }, count)
    if (this.bus.subscribers > 0) {
      for (let i = 0; i < items.length; i++) {
        const p = items[i] as Pending
        this.bus.publishReading({ seq: first + BigInt(i), reading: p.reading, canonical: p.canonical })
      }
    }
  }

  /** Nothing of `items` was acknowledged: every sender gets `err` (once per ingest call). */
  #failed(items: readonly Pending[], err: unknown): void {
    for (const p of items) {
      this.#m.rejected.inc({ source: p.reading.source, cause: 'commit-failed' })
      const g = p.group
      if (!g.settled) {
        g.settled = true
        g.reject(err)
      }
    }
  }

  #scheduleSeal(): void {
    if (this.#sealTimer || this.#open.length === 0 || this.#stopped) return
    const oldest = (this.#open[0] as OpenReading).at
    const due = Math.max(0, oldest + this.#o.batchMaxAgeMs - this.#now())
    this.#sealTimer = setTimeout(() => {
      this.#sealTimer = undefined
      try {
        if (this.#open.length > 0 && this.#now() - (this.#open[0] as OpenReading).at >= this.#o.batchMaxAgeMs - 5) {
          // The commit thread holds the write lock: seal right after its answer instead of waiting for the lock.
          if (this.#writer?.busy) this.#sealDue = true
          else this.seal()
        }
      } catch (e) {
        this.#o.onError?.(e, 'seal')
      }
      this.#scheduleSeal()
    }, due)
    this.#sealTimer.unref()
  }

  /**
   * Seal the open readings (up to `max`) into a signed batch linked to the
   * previous one. Returns the batch, or undefined when nothing is open.
   */
  seal(max = this.#open.length): SignedBatch | undefined {
    // Supersedes the seal thread: a batch there or waiting to be stored is dropped (its leaves are still open).
    if (this.#sealing) this.#sealing = undefined
    this.#ready = undefined
    if (this.#open.length === 0) return undefined
    const t0 = performance.now()
    const sealed = this.#prepareSeal(this.#open.slice(0, Math.min(max, this.#open.length)))
    this.store.insertBatch(sealed.row)
    this.#sealed(sealed, t0)
    return sealed.signed
  }

  /** Hash, build and sign the batch of `take` (the oldest open readings, in seq order), chained to the last batch. Writes nothing. */
  #prepareSeal(take: readonly OpenReading[]): PreparedSeal {
    const firstOpen = take[0] as OpenReading
    const lastOpen = take[take.length - 1] as OpenReading
    const leaves = leafHashes(firstOpen.seq, take.map((r) => r.canonical))
    const tree = buildMerkleTree(splitLeaves(leaves))
    const header: BatchHeader = {
      gateway: this.#o.signer.address,
      batchId: this.#lastBatch.id + 1n,
      firstSeq: firstOpen.seq,
      lastSeq: lastOpen.seq,
      count: take.length,
      merkleRoot: bytesToHex(tree.root),
      prevBatchHash: this.#lastBatch.hash,
      sealedAtMs: BigInt(this.#now()),
    }
    const signed = this.#o.signer.sign(header)
    let bytes = 0
    for (const r of take) bytes += r.canonical.length
    const row: NewBatchRow = {
      id: header.batchId,
      firstSeq: header.firstSeq,
      lastSeq: header.lastSeq,
      count: header.count,
      merkleRoot: tree.root,
      prevHash: hexToBytes(header.prevBatchHash),
      hash: hexToBytes(signed.hash),
      signature: hexToBytes(signed.signature),
      gateway: header.gateway,
      sealedAtMs: Number(header.sealedAtMs),
      bytes,
      leaves,
    }
    return { signed, row, count: take.length }
  }

  /** A prepared batch is on disk: close its readings, chain on from it, publish it. */
  #sealed(p: PreparedSeal, t0: number): void {
    if (p.count === this.#o.batchMaxReadings) this.#lastFullSealAt = performance.now()
    this.#open.splice(0, p.count)
    this.#lastBatch = { id: p.row.id, hash: p.signed.hash, lastSeq: p.row.lastSeq }
    this.#m.sealed.inc()
    this.#m.sealLatency.observe((performance.now() - t0) / 1000)
    this.bus.publishBatch(p.signed)
  }

  /** Retention and the size cap; runs every second (cheap when nothing is due). */
  #maintenance(): void {
    if (this.#stopped) return
    if (this.#writer?.busy) {
      this.#maintenanceDue = true
      return
    }
    try {
      this.prune()
    } catch (e) {
      this.#o.onError?.(e, 'retention')
    }
  }

  /**
   * Prune acknowledged batches past the retention window; if the store is
   * over its size cap, prune acknowledged batches oldest first regardless of
   * age; if it is still over, refuse new input (invariant 5) until sinks
   * catch up. Returns what was removed.
   */
  prune(): { batches: number; readings: number; full: boolean } {
    const now = this.#now()
    const acked = this.#acked()
    let batches = 0
    let readings = 0
    const byAge = this.store.prune(acked, now - this.#o.retentionMs)
    batches += byAge.batches
    readings += byAge.readings
    if (now - this.#lastSizeCheck >= 1000 || byAge.batches > 0 || this.#storeFull) {
      this.#lastSizeCheck = now
      let used = this.store.size().usedBytes
      if (used > this.#o.maxBytes) {
        // Over the cap: free acknowledged batches, oldest first, down to 90 %.
        for (;;) {
          const r = this.store.prune(acked, Number.MAX_SAFE_INTEGER, 50)
          batches += r.batches
          readings += r.readings
          if (r.batches > 0) this.store.checkpoint()
          used = this.store.size().usedBytes
          if (r.batches === 0 || used <= this.#o.maxBytes * 0.9) break
        }
      }
      this.#storeFull = used > this.#o.maxBytes
    }
    if (batches > 0) {
      this.#m.pruned.inc({ kind: 'batches' }, batches)
      this.#m.pruned.inc({ kind: 'readings' }, readings)
    }
    return { batches, readings, full: this.#storeFull }
  }

  #acked(): bigint {
    const acked = this.#o.ackedBatchId ? this.#o.ackedBatchId() : this.#lastBatch.id
    return acked < this.#lastBatch.id ? acked : this.#lastBatch.id
  }

  /**
   * Graceful stop: refuse new input, commit what is queued, seal the open
   * batch, close nothing (the owner closes the store).
   */
  stop(): void {
    if (this.#stopped) return
    this.#stopping = true
    // flush() first waits for the transaction on the commit thread, then commits the rest here.
    this.flush()
    if (this.#queue.length > 0) this.flush()
    try {
      this.seal()
    } catch (e) {
      this.#o.onError?.(e, 'seal-on-stop')
    }
    this.#stopped = true
    if (this.#sealTimer) clearTimeout(this.#sealTimer)
    if (this.#maintenanceTimer) clearInterval(this.#maintenanceTimer)
    this.#writer?.close().catch((e: unknown) => this.#o.onError?.(e, 'commit-thread-close'))
    this.#sealer?.close().catch((e: unknown) => this.#o.onError?.(e, 'seal-thread-close'))
  }
}

