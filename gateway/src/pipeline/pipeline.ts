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

import { encodeReading, leafHashOf } from '../core/canonical.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import { FieldproofError, isFieldproofError } from '../core/errors.ts'
import { bytesToHex, keccak256 } from '../core/hex.ts'
import type { BatchHeader, Hex, Reading, SignedBatch } from '../core/types.ts'
import type { Store } from '../store/store.ts'
import { ReadingBus } from './bus.ts'
import type { MetricsRegistry, Counter, Histogram } from './metrics.ts'

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
  readonly now?: () => number
  readonly onError?: (err: unknown, where: string) => void
}

interface Pending {
  readonly reading: Reading
  readonly canonical: Uint8Array
  readonly enqueuedAt: number
  readonly resolve: (seq: bigint) => void
  readonly reject: (e: unknown) => void
}

interface OpenLeaf {
  readonly seq: bigint
  readonly leaf: Uint8Array
  readonly bytes: number
  readonly at: number
}

const ZERO_HASH = ('0x' + '00'.repeat(32)) as Hex
const hexToBytes = (h: Hex): Uint8Array => new Uint8Array(Buffer.from(h.slice(2), 'hex'))

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
  #open: OpenLeaf[] = []
  #lastBatch: { id: bigint; hash: Hex; lastSeq: bigint }
  #sealTimer: NodeJS.Timeout | undefined
  #maintenanceTimer: NodeJS.Timeout | undefined
  #storeFull = false
  #lastSizeCheck = -Infinity
  #stopping = false
  #stopped = false

  readonly #m: {
    ingested: Counter
    rejected: Counter
    commitLatency: Histogram
    commitSize: Histogram
    sealLatency: Histogram
    sealed: Counter
    pruned: Counter
  }

  constructor(o: PipelineOptions) {
    this.#o = o
    this.store = o.store
    this.bus = o.bus ?? new ReadingBus()
    this.#now = o.now ?? Date.now
    this.#nextSeq = o.store.lastSeq() + 1n
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
      this.#open.push({ seq: u.seq, leaf: u.leaf, bytes: u.bytes, at: Math.min(u.receivedMs, now) })
    }

    const m = o.metrics
    this.#m = {
      ingested: m.counter('fieldproof_readings_ingested_total', 'Readings durably stored, by source'),
      rejected: m.counter('fieldproof_readings_rejected_total', 'Readings refused before the store, by source and cause'),
      commitLatency: m.histogram('fieldproof_ingest_to_durable_seconds', 'Time from ingest to durable commit', [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]),
      commitSize: m.histogram('fieldproof_commit_readings', 'Readings per group-commit transaction', [1, 2, 5, 10, 50, 100, 500, 1000, 5000]),
      sealLatency: m.histogram('fieldproof_batch_seal_seconds', 'Time to build the Merkle tree, sign and store a batch', [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]),
      sealed: m.counter('fieldproof_batches_sealed_total', 'Batches sealed'),
      pruned: m.counter('fieldproof_pruned_total', 'Rows removed by retention, by kind'),
    }
    m.gauge('fieldproof_pipeline_pending', 'Readings waiting for commit', () => [[{}, this.#queue.length]])
    m.gauge('fieldproof_batch_open_readings', 'Readings committed but not yet sealed', () => [[{}, this.#open.length]])
    m.gauge('fieldproof_store_full', '1 while the store refuses input because it is full', () => [[{}, this.#storeFull ? 1 : 0]])
    m.gauge('fieldproof_last_seq', 'Highest sequence number assigned', () => [[{}, Number(this.#nextSeq - 1n)]])
    m.gauge('fieldproof_last_batch_id', 'Highest batch id sealed', () => [[{}, Number(this.#lastBatch.id)]])

    this.#scheduleSeal()
    this.#maintenanceTimer = setInterval(() => this.#maintenance(), 1000)
    this.#maintenanceTimer.unref()
    this.#maintenance()
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
    if (this.#queue.length + readings.length > this.#o.maxPending) {
      return this.#refuse(source, 'backpressure', new FieldproofError('BACKPRESSURE', `the store is behind (${this.#queue.length} readings waiting); retry shortly`, { details: { retryAfterMs: 1000 } }))
    }
    let canonicals: Uint8Array[]
    try {
      canonicals = readings.map((r) => encodeReading(r))
    } catch (e) {
      return this.#refuse(source, 'invalid', e)
    }
    const t = performance.now()
    const promises = readings.map(
      (reading, i) =>
        new Promise<bigint>((resolve, reject) => {
          this.#queue.push({ reading, canonical: canonicals[i] as Uint8Array, enqueuedAt: t, resolve, reject })
        }),
    )
    this.#scheduleFlush()
    return Promise.all(promises)
  }

  #refuse(source: string, cause: string, e: unknown): Promise<never> {
    this.#m.rejected.inc({ source, cause })
    return Promise.reject(e)
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      this.flush()
    })
  }

  /** Commit what is queued (up to commitMaxReadings per transaction). Synchronous. */
  flush(): void {
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
    const rows = items.map((p, i) => {
      const seq = first + BigInt(i)
      return {
        seq,
        deviceId: p.reading.deviceId,
        source: p.reading.source,
        receivedMs: p.reading.received.wallMs,
        canonical: p.canonical,
        // leafHash(seq, canonical), with the WebAssembly Keccak for readings of any length.
        leaf: leafHashOf(seq, keccak256(p.canonical)),
      }
    })
    try {
      this.store.insertReadings(rows)
    } catch (e) {
      // Nothing was stored: every sender gets the error and may retry.
      const err = isFieldproofError(e) ? e : new FieldproofError('INTERNAL', `commit failed: ${(e as Error).message}`, { cause: e })
      if (/SQLITE_FULL|database or disk is full/i.test(String((e as Error).message))) this.#storeFull = true
      for (const p of items) {
        this.#m.rejected.inc({ source: p.reading.source, cause: 'commit-failed' })
        p.reject(err)
      }
      this.#o.onError?.(e, 'commit')
      return
    }
    this.#nextSeq = first + BigInt(items.length)
    const done = performance.now()
    this.#m.commitSize.observe(items.length)
    for (let i = 0; i < items.length; i++) {
      const p = items[i] as Pending
      const row = rows[i] as (typeof rows)[number]
      this.#m.ingested.inc({ source: p.reading.source })
      this.#m.commitLatency.observe((done - p.enqueuedAt) / 1000)
      this.#open.push({ seq: row.seq, leaf: row.leaf, bytes: row.canonical.length, at: now })
      p.resolve(row.seq)
    }
    if (this.bus.subscribers > 0) {
      for (let i = 0; i < items.length; i++) {
        const p = items[i] as Pending
        this.bus.publishReading({ seq: (rows[i] as (typeof rows)[number]).seq, reading: p.reading, canonical: p.canonical })
      }
    }
    while (this.#open.length >= this.#o.batchMaxReadings) this.seal(this.#o.batchMaxReadings)
    this.#scheduleSeal()
  }

  #scheduleSeal(): void {
    if (this.#sealTimer || this.#open.length === 0 || this.#stopped) return
    const oldest = (this.#open[0] as OpenLeaf).at
    const due = Math.max(0, oldest + this.#o.batchMaxAgeMs - this.#now())
    this.#sealTimer = setTimeout(() => {
      this.#sealTimer = undefined
      try {
        if (this.#open.length > 0 && this.#now() - (this.#open[0] as OpenLeaf).at >= this.#o.batchMaxAgeMs - 5) this.seal()
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
    if (this.#open.length === 0) return undefined
    const t0 = performance.now()
    const take = this.#open.slice(0, Math.min(max, this.#open.length))
    const firstLeaf = take[0] as OpenLeaf
    const lastLeaf = take[take.length - 1] as OpenLeaf
    const tree = buildMerkleTree(take.map((l) => l.leaf))
    const header: BatchHeader = {
      gateway: this.#o.signer.address,
      batchId: this.#lastBatch.id + 1n,
      firstSeq: firstLeaf.seq,
      lastSeq: lastLeaf.seq,
      count: take.length,
      merkleRoot: bytesToHex(tree.root),
      prevBatchHash: this.#lastBatch.hash,
      sealedAtMs: BigInt(this.#now()),
    }
    const signed = this.#o.signer.sign(header)
    let bytes = 0
    for (const l of take) bytes += l.bytes
    this.store.insertBatch({
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
    })
    this.#open.splice(0, take.length)
    this.#lastBatch = { id: header.batchId, hash: signed.hash, lastSeq: header.lastSeq }
    this.#m.sealed.inc()
    this.#m.sealLatency.observe((performance.now() - t0) / 1000)
    this.bus.publishBatch(signed)
    return signed
  }

  /** Retention and the size cap; runs every second (cheap when nothing is due). */
  #maintenance(): void {
    if (this.#stopped) return
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
  }
}

