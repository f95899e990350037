// The SQLite store: short-term data availability for readings, batches,
// sink cursors and devices. WAL with synchronous=FULL (invariant 8): every
// commit is on disk before anything is acknowledged; throughput comes from
// group commit (many readings per transaction), never from a weaker sync.

import Database from 'better-sqlite3'
import { mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { leafHash } from '../core/canonical.ts'
import { FieldproofError } from '../core/errors.ts'
import type { Hex } from '../core/types.ts'
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.ts'

/** A reading to store (insertReadings): its leaf is not stored per row, see BatchRow.leaves. */
export interface NewReadingRow {
  readonly seq: bigint
  readonly deviceId: string
  readonly source: string
  readonly receivedMs: number
  readonly canonical: Uint8Array
  /**
   * The device counter of a device-signed reading. Recorded in
   * device_counters in the same transaction as the reading, so replay
   * protection never depends on a later write.
   */
  readonly counter?: bigint | undefined
}

/** A stored reading. `leaf` (leafHash(seq, canonical)) is computed when first read. */
export interface ReadingRow extends NewReadingRow {
  readonly leaf: Uint8Array
}

/** A committed reading not yet in a batch: what sealing needs. */
export interface OpenReadingRow {
  readonly seq: bigint
  readonly canonical: Uint8Array
  readonly receivedMs: number
}

/** The newest device-signed reading of a device: its counter and seq. */
export interface DeviceCounter {
  readonly counter: bigint
  readonly seq: bigint
}

export interface BatchRow {
  readonly id: bigint
  readonly firstSeq: bigint
  readonly lastSeq: bigint
  readonly count: number
  readonly merkleRoot: Uint8Array
  readonly prevHash: Uint8Array
  readonly hash: Uint8Array
  readonly signature: Uint8Array
  readonly gateway: Hex
  readonly sealedAtMs: number
  /** Bytes of canonical readings in the batch (backlog accounting). */
  readonly bytes: number
}

/**
 * A batch to store: its row and the leaves of its readings, 32 bytes each in
 * seq order. The leaves are stored once per batch (one blob, written with
 * the batch row) instead of once per reading in the group commit: hashing
 * them is then off the ingest path, and the tree of a batch (proofs, the
 * `leaves` payload) is read back without hashing its readings again.
 */
export interface NewBatchRow extends BatchRow {
  readonly leaves: Uint8Array
}

export interface SinkCursor {
  readonly sinkId: string
  readonly ackedBatchId: bigint
  readonly updatedMs: number
  readonly state: string
  readonly lastError: string | null
  readonly data: string | null
}

export interface DeviceRow {
  readonly id: string
  readonly kind: string
  readonly name: string | null
  readonly config: string
  readonly secret: string | null
  readonly createdMs: number
  readonly lastSeenMs: number | null
  readonly accepted: number
  readonly rejected: number
  readonly state: string
}

export interface ReadingQuery {
  readonly deviceId?: string
  readonly source?: string
  /** Readings received at or after this wall time (ms). */
  readonly sinceMs?: number
  /** Readings with seq strictly greater than this (pagination cursor). */
  readonly afterSeq?: bigint
  /** Readings with seq at most this. */
  readonly toSeq?: bigint
  readonly limit: number
  readonly order?: 'asc' | 'desc'
}

/** Stored readings examined at most by one filtered page (readingsPage). */
export const PAGE_SCAN_LIMIT = 100_000
const PAGE_SCAN_WINDOW = 10_000n

export interface StoreStats {
  readonly readings: number
  readonly batches: number
  readonly firstSeq: bigint | null
  readonly lastSeq: bigint
  readonly lastBatchId: bigint
  /** Bytes in use: live pages of the database file plus the WAL file. */
  readonly usedBytes: number
  readonly fileBytes: number
  readonly walBytes: number
}

interface RawReading { seq: bigint; device_id: string; source: string; received_ms: bigint; canonical: Buffer }
interface RawBatch {
  id: bigint; first_seq: bigint; last_seq: bigint; count: bigint; merkle_root: Buffer; prev_hash: Buffer; hash: Buffer
  signature: Buffer; gateway: string; sealed_at_ms: bigint; bytes: bigint
}

const toReading = (r: RawReading): ReadingRow => {
  const canonical = new Uint8Array(r.canonical)
  let leaf: Uint8Array | undefined
  return {
    seq: r.seq,
    deviceId: r.device_id,
    source: r.source,
    receivedMs: Number(r.received_ms),
    canonical,
    get leaf() {
      return (leaf ??= leafHash(r.seq, canonical))
    },
  }
}

/** The batch columns but `leaves` (a blob of 32 bytes per reading, read only by batchLeaves). */
const BATCH_COLUMNS = 'id, first_seq, last_seq, count, merkle_root, prev_hash, hash, signature, gateway, sealed_at_ms, bytes'

const toBatch = (r: RawBatch): BatchRow => ({
  id: r.id,
  firstSeq: r.first_seq,
  lastSeq: r.last_seq,
  count: Number(r.count),
  merkleRoot: new Uint8Array(r.merkle_root),
  prevHash: new Uint8Array(r.prev_hash),
  hash: new Uint8Array(r.hash),
  signature: new Uint8Array(r.signature),
  gateway: r.gateway as Hex,
  sealedAtMs: Number(r.sealed_at_ms),
  bytes: Number(r.bytes),
})

export interface StoreOptions {
  /** Open read-only (status, export, verify from the CLI while the gateway runs). */
  readonly readonly?: boolean
}

/**
 * Rows per multi-row INSERT in a group commit: one statement step instead
 * of sixteen (binding and stepping a statement costs about as much as
 * SQLite's own work for a row).
 */
const INSERT_ROWS_PER_STATEMENT = 16
const INSERT_COLUMNS = 5

/**
 * The gateway's SQLite database. Synchronous (better-sqlite3): each method is
 * one statement or one transaction. Not safe to share across processes for
 * writing: one gateway owns one state directory.
 */
export class Store {
  readonly path: string
  readonly db: Database.Database
  #closed = false
  readonly #readonly: boolean
  readonly #s: ReturnType<Store['prepare']>
  readonly #insertTx: Database.Transaction<(rows: readonly NewReadingRow[]) => void>

  constructor(path: string, options: StoreOptions = {}) {
    this.path = path
    this.#readonly = options.readonly ?? false
    if (!options.readonly) mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    try {
      this.db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false })
      this.db.defaultSafeIntegers(true)
      if (!options.readonly) {
        const mode = this.db.pragma('journal_mode = WAL', { simple: true })
        if (String(mode).toLowerCase() !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL required`)
      }
      this.db.pragma('synchronous = FULL')
      this.db.pragma('busy_timeout = 5000')
      this.db.pragma('foreign_keys = ON')
      // Keep the WAL from growing without bound after a burst (reliability plan §1.1).
      this.db.pragma('journal_size_limit = 67108864')
      if (!options.readonly) this.#migrate()
      else if (this.schemaVersion() !== SCHEMA_VERSION) {
        throw new Error(`database schema is version ${this.schemaVersion()}, this gateway reads ${SCHEMA_VERSION}`)
      }
    } catch (e) {
      if (e instanceof FieldproofError) throw e
      throw new FieldproofError('STORE_CORRUPT', `cannot open the database ${path}: ${(e as Error).message}`, { cause: e })
    }
    this.#s = this.prepare()
    const s = this.#s
    // Made once: better-sqlite3 builds a wrapper per transaction() call.
    const args = new Array<unknown>(INSERT_COLUMNS * INSERT_ROWS_PER_STATEMENT)
    this.#insertTx = this.db.transaction((rows: readonly NewReadingRow[]) => {
      let expected = this.lastSeq() + 1n
      for (const r of rows) {
        if (r.seq !== expected) {
          throw new FieldproofError('INTERNAL', `sequence gap: expected seq ${expected}, got ${r.seq}`)
        }
        expected++
      }
      // Whole groups of INSERT_ROWS_PER_STATEMENT rows per statement, the rest one by one.
      let i = 0
      for (; i + INSERT_ROWS_PER_STATEMENT <= rows.length; i += INSERT_ROWS_PER_STATEMENT) {
        for (let k = 0; k < INSERT_ROWS_PER_STATEMENT; k++) {
          const r = rows[i + k] as NewReadingRow
          const o = INSERT_COLUMNS * k
          args[o] = r.seq
          args[o + 1] = r.deviceId
          args[o + 2] = r.source
          args[o + 3] = r.receivedMs
          args[o + 4] = r.canonical
        }
        s.insertReadings.run(args)
      }
      for (; i < rows.length; i++) {
        const r = rows[i] as NewReadingRow
        s.insertReading.run(r.seq, r.deviceId, r.source, r.receivedMs, r.canonical)
      }
      args.fill(undefined)
      for (const r of rows) if (r.counter !== undefined) s.upsertCounter.run(r.deviceId, r.counter.toString(), r.seq)
    })
  }

  schemaVersion(): number {
    return Number(this.db.pragma('user_version', { simple: true }))
  }

  #migrate(): void {
    const current = this.schemaVersion()
    if (current > SCHEMA_VERSION) {
      throw new FieldproofError('STORE_CORRUPT', `database ${this.path} has schema version ${current}, newer than this gateway's ${SCHEMA_VERSION}; refusing to touch it`)
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue
      this.db.transaction(() => {
        this.db.exec(m.sql)
        m.run?.(this.db)
        this.db.pragma(`user_version = ${m.version}`)
      }).immediate()
    }
  }

  private prepare() {
    const db = this.db
    return {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      insertReading: db.prepare<[bigint, string, string, number, Uint8Array]>(
        'INSERT INTO readings (seq, device_id, source, received_ms, canonical) VALUES (?, ?, ?, ?, ?)',
      ),
      insertReadings: db.prepare<[unknown[]]>(
        `INSERT INTO readings (seq, device_id, source, received_ms, canonical) VALUES ${Array(INSERT_ROWS_PER_STATEMENT).fill('(?, ?, ?, ?, ?)').join(', ')}`,
      ),
      readingBySeq: db.prepare<[bigint], RawReading>('SELECT * FROM readings WHERE seq = ?'),
      // The highest seq ever assigned: the newest reading, or, once every
      // reading was pruned (only sealed ones are), the last batch's end.
      // 'last_seq' is what schema versions ≤ 3 wrote at every commit.
      lastSeq: db.prepare<[], { s: bigint }>(
        `SELECT max(coalesce((SELECT max(seq) FROM readings), 0),
                    coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_batch_last_seq'), 0),
                    coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0)) AS s`,
      ),
      seqBounds: db.prepare<[], { first: bigint | null; last: bigint | null }>('SELECT min(seq) AS first, max(seq) AS last FROM readings'),
      upsertCounter: db.prepare<[string, string, bigint]>(
        `INSERT INTO device_counters (device_id, counter, seq) VALUES (?, ?, ?)
         ON CONFLICT (device_id) DO UPDATE SET counter = excluded.counter, seq = excluded.seq WHERE excluded.seq > device_counters.seq`,
      ),
      deviceCounter: db.prepare<[string], { counter: string; seq: bigint }>('SELECT counter, seq FROM device_counters WHERE device_id = ?'),
      openInRange: db.prepare<[bigint, bigint], { seq: bigint; canonical: Buffer; received_ms: bigint }>(
        'SELECT seq, canonical, received_ms FROM readings WHERE seq BETWEEN ? AND ? ORDER BY seq',
      ),
      canonicalsInRange: db.prepare<[bigint, bigint], { seq: bigint; canonical: Buffer }>('SELECT seq, canonical FROM readings WHERE seq BETWEEN ? AND ? ORDER BY seq'),
      batchLeaves: db.prepare<[bigint], { leaves: Buffer | null }>('SELECT leaves FROM batches WHERE id = ?'),
      readingsInRange: db.prepare<[bigint, bigint], RawReading>('SELECT * FROM readings WHERE seq BETWEEN ? AND ? ORDER BY seq'),
      unsealed: db.prepare<[bigint], { seq: bigint; canonical: Buffer; received_ms: bigint }>('SELECT seq, canonical, received_ms FROM readings WHERE seq > ? ORDER BY seq'),
      insertBatch: db.prepare(
        `INSERT INTO batches (id, first_seq, last_seq, count, merkle_root, prev_hash, hash, signature, gateway, sealed_at_ms, bytes, leaves)
         VALUES (@id, @firstSeq, @lastSeq, @count, @merkleRoot, @prevHash, @hash, @signature, @gateway, @sealedAtMs, @bytes, @leaves)`,
      ),
      batchById: db.prepare<[bigint], RawBatch>(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id = ?`),
      batchForSeq: db.prepare<[bigint, bigint], RawBatch>(`SELECT ${BATCH_COLUMNS} FROM batches WHERE first_seq <= ? AND last_seq >= ? ORDER BY id DESC LIMIT 1`),
      lastBatch: db.prepare<[], RawBatch>(`SELECT ${BATCH_COLUMNS} FROM batches ORDER BY id DESC LIMIT 1`),
      batchesAfter: db.prepare<[bigint, number], RawBatch>(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id > ? ORDER BY id LIMIT ?`),
      batchesBefore: db.prepare<[bigint, number], RawBatch>(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id < ? ORDER BY id DESC LIMIT ?`),
      backlog: db.prepare<[bigint], { n: bigint; bytes: bigint | null }>('SELECT count(*) AS n, sum(bytes) AS bytes FROM batches WHERE id > ?'),
      counts: db.prepare<[], { readings: bigint; first: bigint | null }>('SELECT count(*) AS readings, min(seq) AS first FROM readings'),
      batchCount: db.prepare<[], { n: bigint }>('SELECT count(*) AS n FROM batches'),
      getCursor: db.prepare<[string], { sink_id: string; acked_batch_id: bigint; updated_ms: bigint; state: string; last_error: string | null; data: string | null }>(
        'SELECT * FROM sink_cursors WHERE sink_id = ?',
      ),
      upsertCursor: db.prepare(
        `INSERT INTO sink_cursors (sink_id, acked_batch_id, updated_ms, state, last_error, data)
         VALUES (@sinkId, @ackedBatchId, @updatedMs, @state, @lastError, @data)
         ON CONFLICT (sink_id) DO UPDATE SET acked_batch_id = max(acked_batch_id, excluded.acked_batch_id),
           updated_ms = excluded.updated_ms, state = excluded.state, last_error = excluded.last_error,
           data = coalesce(excluded.data, data)`,
      ),
      prunableBatches: db.prepare<[bigint, number, number], { id: bigint; last_seq: bigint }>(
        'SELECT id, last_seq FROM batches WHERE id <= ? AND sealed_at_ms < ? ORDER BY id LIMIT ?',
      ),
      deleteReadingsUpTo: db.prepare<[bigint]>('DELETE FROM readings WHERE seq <= ?'),
      deleteBatchesUpTo: db.prepare<[bigint]>('DELETE FROM batches WHERE id <= ?'),
    }
  }

  #check(): void {
    if (this.#closed) throw new FieldproofError('STORE_CLOSED', 'the store is closed')
  }

  // --- meta ---------------------------------------------------------------

  getMeta(key: string): string | undefined {
    return this.#s.getMeta.get(key)?.value
  }

  setMeta(key: string, value: string): void {
    this.#s.setMeta.run(key, value)
  }

  /** The highest sequence number ever assigned (0 before the first reading). Survives pruning. */
  lastSeq(): bigint {
    return this.#s.lastSeq.get()?.s ?? 0n
  }

  // --- readings -----------------------------------------------------------

  /**
   * Insert sequenced readings in ONE transaction (group commit). The first
   * row's seq must be lastSeq() + 1 and the rows contiguous (invariant 2 is
   * enforced here, not only by the caller). When this returns, the rows are
   * on disk (WAL, synchronous=FULL). Rows with a device counter update
   * device_counters in the same transaction.
   *
   * Pages written per commit are what the SD card wears by and what the
   * fsync waits for: the readings table appends, and nothing else is
   * written per reading except device_counters for signed ones (no
   * per-device index, no meta row).
   */
  insertReadings(rows: readonly NewReadingRow[]): void {
    this.#check()
    if (rows.length === 0) return
    this.#insertTx.immediate(rows)
  }

  reading(seq: bigint): ReadingRow | undefined {
    const r = this.#s.readingBySeq.get(seq)
    return r ? toReading(r) : undefined
  }

  readingsInRange(first: bigint, last: bigint): ReadingRow[] {
    return this.#s.readingsInRange.all(first, last).map(toReading)
  }

  /** Readings of a seq range for sealing (the pipeline re-reads what the commit thread stored). */
  openReadings(first: bigint, last: bigint): OpenReadingRow[] {
    return this.#s.openInRange.all(first, last).map((r) => ({ seq: r.seq, canonical: new Uint8Array(r.canonical), receivedMs: Number(r.received_ms) }))
  }

  /** Readings not yet in a sealed batch (after a restart the batcher resumes from these). */
  unsealed(): OpenReadingRow[] {
    const last = this.lastBatch()
    return this.#s.unsealed.all(last ? last.lastSeq : 0n).map((r) => ({ seq: r.seq, canonical: new Uint8Array(r.canonical), receivedMs: Number(r.received_ms) }))
  }

  /**
   * The leaves of a batch's readings, in seq order: the blob stored with the
   * batch, or (for a batch stored before leaves were kept per batch) hashed
   * from its readings. Throws when neither is there.
   */
  batchLeaves(b: BatchRow): Uint8Array[] {
    const blob = this.#s.batchLeaves.get(b.id)?.leaves
    if (blob && blob.length === 32 * b.count) {
      const all = new Uint8Array(blob)
      return Array.from({ length: b.count }, (_, i) => all.subarray(32 * i, 32 * i + 32))
    }
    const rows = this.#s.canonicalsInRange.all(b.firstSeq, b.lastSeq)
    if (rows.length !== b.count) throw new FieldproofError('NOT_FOUND', `batch ${b.id}: ${rows.length} of its ${b.count} readings are in the store`)
    return rows.map((r) => leafHash(r.seq, new Uint8Array(r.canonical)))
  }

  /** The newest device-signed reading's counter and seq for a device (written with the reading). */
  deviceCounter(deviceId: string): DeviceCounter | undefined {
    const r = this.#s.deviceCounter.get(deviceId)
    return r ? { counter: BigInt(r.counter), seq: r.seq } : undefined
  }

  /**
   * Readings matching a query, scanning in seq order without a bound: only
   * seq is indexed, so a filter on device, source or time examines every
   * stored reading in the range. For tools and tests; the API pages with
   * readingsPage.
   */
  queryReadings(q: ReadingQuery): ReadingRow[] {
    const desc = q.order === 'desc'
    const after = q.afterSeq
    return this.#select(q, after !== undefined && !desc ? after + 1n : undefined, after !== undefined && desc ? after - 1n : undefined, q.limit)
  }

  /** Readings matching q's filters (and q.toSeq) with from ≤ seq ≤ to, in q's order. */
  #select(q: ReadingQuery, from: bigint | undefined, to: bigint | undefined, limit: number): ReadingRow[] {
    const where: string[] = []
    const args: (string | number | bigint)[] = []
    if (q.deviceId !== undefined) { where.push('device_id = ?'); args.push(q.deviceId) }
    if (q.source !== undefined) { where.push('source = ?'); args.push(q.source) }
    if (q.sinceMs !== undefined) { where.push('received_ms >= ?'); args.push(q.sinceMs) }
    if (from !== undefined) { where.push('seq >= ?'); args.push(from) }
    if (to !== undefined) { where.push('seq <= ?'); args.push(to) }
    if (q.toSeq !== undefined) { where.push('seq <= ?'); args.push(q.toSeq) }
    const sql = `SELECT * FROM readings ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ?`
    args.push(Math.max(0, Math.min(limit, 10_000)))
    return (this.db.prepare(sql).all(...args) as RawReading[]).map(toReading)
  }

  /**
   * One page of readings for the API. Unfiltered, it is the first `limit`
   * readings after the cursor. Filtered (device, source, since), it examines
   * at most `maxScan` stored readings, in seq windows: a page may then hold
   * fewer than `limit` readings, even none, and `next` says where the scan
   * goes on. `next` is undefined only when the range is exhausted. This
   * keeps a query for a rare device from holding the event loop (and so
   * ingest) for a scan of the whole store.
   */
  readingsPage(q: ReadingQuery, maxScan = PAGE_SCAN_LIMIT): { rows: ReadingRow[]; next: bigint | undefined } {
    const limit = Math.max(0, Math.min(q.limit, 10_000))
    const desc = q.order === 'desc'
    if (q.deviceId === undefined && q.source === undefined && q.sinceMs === undefined) {
      const rows = this.queryReadings(q)
      const last = rows[rows.length - 1]
      return { rows, next: rows.length === limit && last ? last.seq : undefined }
    }
    const bounds = this.#s.seqBounds.get()
    if (!bounds || bounds.first === null || bounds.last === null || limit === 0) return { rows: [], next: undefined }
    // The open interval still to scan, (lo, hi) exclusive of the cursor.
    let lo = bounds.first - 1n
    let hi = (q.toSeq !== undefined && q.toSeq < bounds.last ? q.toSeq : bounds.last) + 1n
    if (q.afterSeq !== undefined) {
      if (desc) hi = q.afterSeq < hi ? q.afterSeq : hi
      else lo = q.afterSeq > lo ? q.afterSeq : lo
    }
    const rows: ReadingRow[] = []
    let budget = BigInt(Math.max(1, maxScan))
    while (rows.length < limit && hi - lo > 1n && budget > 0n) {
      const span = [PAGE_SCAN_WINDOW, budget, hi - lo - 1n].reduce((a, b) => (a < b ? a : b))
      const from = desc ? hi - span : lo + 1n
      const to = desc ? hi - 1n : lo + span
      for (const r of this.#select(q, from, to, limit - rows.length)) rows.push(r)
      budget -= span
      if (desc) hi = from
      else lo = to
    }
    const last = rows[rows.length - 1]
    if (rows.length === limit && last) return { rows, next: last.seq }
    if (hi - lo > 1n) return { rows, next: desc ? hi : lo }
    return { rows, next: undefined }
  }

  // --- batches ------------------------------------------------------------

  insertBatch(b: NewBatchRow): void {
    this.#check()
    this.db.transaction(() => this.#writeBatch(b)).immediate()
  }

  /**
   * insertReadings and then insertBatch, in one transaction (one fsync): a
   * group commit that completes a batch stores both, or neither.
   */
  insertReadingsAndBatch(rows: readonly NewReadingRow[], b: NewBatchRow): void {
    this.#check()
    this.db.transaction(() => {
      this.#insertTx(rows)
      this.#writeBatch(b)
    }).immediate()
  }

  #writeBatch(b: NewBatchRow): void {
    this.#s.insertBatch.run({ ...b, sealedAtMs: b.sealedAtMs })
    this.#s.setMeta.run('last_batch_id', b.id.toString())
    // Kept in meta too, so the chain continues even after every batch row was pruned.
    this.#s.setMeta.run('last_batch_hash', '0x' + Buffer.from(b.hash).toString('hex'))
    this.#s.setMeta.run('last_batch_last_seq', b.lastSeq.toString())
  }

  batch(id: bigint): BatchRow | undefined {
    const r = this.#s.batchById.get(id)
    return r ? toBatch(r) : undefined
  }

  batchForSeq(seq: bigint): BatchRow | undefined {
    const r = this.#s.batchForSeq.get(seq, seq)
    return r ? toBatch(r) : undefined
  }

  lastBatch(): BatchRow | undefined {
    const r = this.#s.lastBatch.get()
    return r ? toBatch(r) : undefined
  }

  /** The highest batch id ever sealed (survives pruning). */
  lastBatchId(): bigint {
    return BigInt(this.getMeta('last_batch_id') ?? '0')
  }

  batchesAfter(afterId: bigint, limit: number): BatchRow[] {
    return this.#s.batchesAfter.all(afterId, limit).map(toBatch)
  }

  batchesBefore(beforeId: bigint, limit: number): BatchRow[] {
    return this.#s.batchesBefore.all(beforeId, limit).map(toBatch)
  }

  /** Batches (and their canonical bytes) sealed after `ackedBatchId`. */
  backlog(ackedBatchId: bigint): { batches: number; bytes: number } {
    const r = this.#s.backlog.get(ackedBatchId)
    return { batches: Number(r?.n ?? 0n), bytes: Number(r?.bytes ?? 0n) }
  }

  // --- sink cursors -------------------------------------------------------

  cursor(sinkId: string): SinkCursor | undefined {
    const r = this.#s.getCursor.get(sinkId)
    return r
      ? { sinkId: r.sink_id, ackedBatchId: r.acked_batch_id, updatedMs: Number(r.updated_ms), state: r.state, lastError: r.last_error, data: r.data }
      : undefined
  }

  /** Move a sink's cursor forward (never backwards) and record its state. */
  setCursor(c: { sinkId: string; ackedBatchId: bigint; state?: string; lastError?: string | null; data?: string | null; nowMs?: number }): void {
    this.#check()
    this.#s.upsertCursor.run({
      sinkId: c.sinkId,
      ackedBatchId: c.ackedBatchId,
      updatedMs: c.nowMs ?? Date.now(),
      state: c.state ?? 'ok',
      lastError: c.lastError ?? null,
      data: c.data ?? null,
    })
  }

  // --- devices ------------------------------------------------------------

  upsertDevice(d: { id: string; kind: string; name?: string | null; config?: string; secret?: string | null; nowMs?: number }): void {
    this.#check()
    this.db
      .prepare(
        `INSERT INTO devices (id, kind, name, config, secret, created_ms) VALUES (@id, @kind, @name, @config, @secret, @now)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, config = excluded.config,
           secret = coalesce(excluded.secret, secret)`,
      )
      .run({ id: d.id, kind: d.kind, name: d.name ?? null, config: d.config ?? '{}', secret: d.secret ?? null, now: d.nowMs ?? Date.now() })
  }

  device(id: string): DeviceRow | undefined {
    const r = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as Record<string, unknown> | undefined
    return r ? rawDevice(r) : undefined
  }

  devices(kind?: string): DeviceRow[] {
    const rows = (kind === undefined
      ? this.db.prepare('SELECT * FROM devices ORDER BY id').all()
      : this.db.prepare('SELECT * FROM devices WHERE kind = ? ORDER BY id').all(kind)) as Record<string, unknown>[]
    return rows.map(rawDevice)
  }

  removeDevice(id: string): boolean {
    return this.db.prepare('DELETE FROM devices WHERE id = ?').run(id).changes > 0
  }

  /** Record device activity (last seen, accept/reject counts, opaque per-device state such as counters). */
  touchDevice(id: string, u: { seenMs?: number; accepted?: number; rejected?: number; state?: string }): void {
    this.db
      .prepare(
        `UPDATE devices SET last_seen_ms = coalesce(@seen, last_seen_ms), accepted = accepted + @acc,
           rejected = rejected + @rej, state = coalesce(@state, state) WHERE id = @id`,
      )
      .run({ id, seen: u.seenMs ?? null, acc: u.accepted ?? 0, rej: u.rejected ?? 0, state: u.state ?? null })
  }

  // --- retention ----------------------------------------------------------

  /**
   * Delete sealed batches (and their readings) that every enabled sink has
   * acknowledged (id ≤ ackedBatchId) and that were sealed before
   * `sealedBeforeMs`. Deletes at most `maxBatches` per call so a large prune
   * never holds the write lock for long. Unsealed readings are never pruned.
   * Returns the number of batches and readings deleted.
   */
  prune(ackedBatchId: bigint, sealedBeforeMs: number, maxBatches = 100): { batches: number; readings: number } {
    this.#check()
    const rows = this.#s.prunableBatches.all(ackedBatchId, sealedBeforeMs, maxBatches)
    const last = rows[rows.length - 1]
    if (!last) return { batches: 0, readings: 0 }
    let readings = 0
    this.db.transaction(() => {
      readings = this.#s.deleteReadingsUpTo.run(last.last_seq).changes
      this.#s.deleteBatchesUpTo.run(last.id)
    }).immediate()
    return { batches: rows.length, readings }
  }

  // --- sizes --------------------------------------------------------------

  stats(): StoreStats {
    const c = this.#s.counts.get()
    const b = this.#s.batchCount.get()
    const size = this.size()
    return {
      readings: Number(c?.readings ?? 0n),
      batches: Number(b?.n ?? 0n),
      firstSeq: c?.first ?? null,
      lastSeq: this.lastSeq(),
      lastBatchId: this.lastBatchId(),
      ...size,
    }
  }

  size(): { usedBytes: number; fileBytes: number; walBytes: number } {
    const pageSize = Number(this.db.pragma('page_size', { simple: true }))
    const pages = Number(this.db.pragma('page_count', { simple: true }))
    const free = Number(this.db.pragma('freelist_count', { simple: true }))
    let walBytes = 0
    try {
      walBytes = statSync(this.path + '-wal').size
    } catch {
      walBytes = 0
    }
    return { usedBytes: (pages - free) * pageSize + walBytes, fileBytes: pages * pageSize, walBytes }
  }

  /** Checkpoint the WAL into the database file and truncate it (after large prunes, on shutdown). */
  checkpoint(): void {
    if (!this.#closed && !this.#readonly) this.db.pragma('wal_checkpoint(TRUNCATE)')
  }

  close(): void {
    if (this.#closed) return
    try {
      this.checkpoint()
    } finally {
      this.#closed = true
      this.db.close()
    }
  }

  get closed(): boolean {
    return this.#closed
  }
}

function rawDevice(r: Record<string, unknown>): DeviceRow {
  return {
    id: String(r['id']),
    kind: String(r['kind']),
    name: r['name'] == null ? null : String(r['name']),
    config: String(r['config']),
    secret: r['secret'] == null ? null : String(r['secret']),
    createdMs: Number(r['created_ms']),
    lastSeenMs: r['last_seen_ms'] == null ? null : Number(r['last_seen_ms']),
    accepted: Number(r['accepted']),
    rejected: Number(r['rejected']),
    state: String(r['state']),
  }
}
