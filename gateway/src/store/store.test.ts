// The store's write path and its queries: pages written per group commit
// (what the fsync waits for and what wears an SD card), the last seq across
// pruning, device counters written with their reading, bounded filtered
// pages, and the migration from schema version 3.

import t, { type Test } from 'tap'
import Database from 'better-sqlite3'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { encodeReading, leafHash, leafHashes } from '../core/canonical.ts'
import type { Reading } from '../core/types.ts'
import { reading } from '../../../test/helpers/readings.ts'
import { rng } from '../../../test/helpers/fuzz.ts'
import { CommitWorker } from './commit-worker.ts'
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.ts'
import { Store, type ReadingRow } from './store.ts'

const signed = (i: number, deviceId: string, counter: bigint): Reading =>
  reading(i, { deviceId, auth: { kind: 'device-signature', address: `0x${'ab'.repeat(20)}`, counter, signature: `0x${'11'.repeat(65)}` } })

function row(seq: bigint, r: Reading): ReadingRow {
  const canonical = encodeReading(r)
  return { seq, deviceId: r.deviceId, source: r.source, receivedMs: r.received.wallMs, canonical, leaf: leafHash(seq, canonical), counter: r.auth.kind === 'device-signature' ? r.auth.counter : undefined }
}

/** A database file at schema `version`, written by the migrations up to it (as an older gateway left it). */
function databaseAt(path: string, version: number): Database.Database {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  for (const m of MIGRATIONS.filter((m) => m.version <= version)) {
    db.exec(m.sql)
    db.pragma(`user_version = ${m.version}`)
  }
  return db
}

/** WAL frames (pages) written by one call, from an empty WAL. */
function pagesWritten(t: Test, store: Store, write: () => void): number {
  store.checkpoint()
  const before = statSync(store.path + '-wal').size
  t.equal(before, 0, 'WAL empty after a TRUNCATE checkpoint')
  write()
  const pageSize = Number(store.db.pragma('page_size', { simple: true }))
  return (statSync(store.path + '-wal').size - 32) / (24 + pageSize)
}

t.test('a group commit of readings from many devices writes a handful of pages, not one per device', async (t) => {
  const store = new Store(join(t.testdir(), 'fieldproof.db'))
  let seq = 0n
  // Enough readings from 50 devices that a per-device index would spread over many pages.
  for (let k = 0; k < 40; k++) store.insertReadings(Array.from({ length: 250 }, (_, i) => row(++seq, reading(k * 250 + i, { deviceId: `device-${i % 50}` }))))
  const pages = pagesWritten(t, store, () => store.insertReadings(Array.from({ length: 8 }, (_, i) => row(++seq, reading(i, { deviceId: `device-${i * 6}` })))))
  // The appended readings leaf (and its parent when a leaf splits) and the
  // database header page (the file grew). Measured with the former
  // (device_id, seq) index and the per-commit meta row: 13–17 pages.
  t.ok(pages >= 1 && pages <= 4, `8 readings of 8 devices: ${pages} pages`)
  const signedPages = pagesWritten(t, store, () => store.insertReadings(Array.from({ length: 8 }, (_, i) => row(++seq, signed(i, `signed-${i}`, 1n)))))
  t.ok(signedPages <= 5, `8 signed readings: ${signedPages} pages (device_counters adds one)`)
  store.close()
})

t.test('the last seq survives pruning every reading and a reopen', async (t) => {
  const path = join(t.testdir(), 'fieldproof.db')
  const store = new Store(path)
  t.equal(store.lastSeq(), 0n, 'empty store')
  store.insertReadings(Array.from({ length: 10 }, (_, i) => row(BigInt(i + 1), reading(i))))
  t.equal(store.lastSeq(), 10n)
  t.throws(() => store.insertReadings([row(12n, reading(12))]), /sequence gap: expected seq 11, got 12/, 'a gap is refused')
  store.insertBatch({ id: 1n, firstSeq: 1n, lastSeq: 10n, count: 10, merkleRoot: new Uint8Array(32), prevHash: new Uint8Array(32), hash: new Uint8Array(32).fill(1), signature: new Uint8Array(65), gateway: `0x${'00'.repeat(20)}`, sealedAtMs: 1, bytes: 1, leaves: new Uint8Array(32 * 10) })
  t.same(store.prune(1n, Date.now()), { batches: 1, readings: 10 })
  t.equal(store.stats().readings, 0, 'every reading pruned')
  t.equal(store.lastSeq(), 10n, 'the last seq is kept by the last batch')
  store.close()
  const again = new Store(path)
  t.equal(again.lastSeq(), 10n, 'and after a reopen')
  again.insertReadings([row(11n, reading(11))])
  t.equal(again.lastSeq(), 11n)
  again.close()
})

t.test('a group commit stores every row as given, through the multi-row statements and the rest one by one', async (t) => {
  const store = new Store(join(t.testdir(), 'fieldproof.db'))
  let seq = 0n
  for (const n of [1, 15, 16, 17, 37, 64]) {
    const rows = Array.from({ length: n }, (_, i) => row(++seq, reading(i, { deviceId: `device-${i % 7}`, source: i % 2 ? 'mqtt' : 'http' })))
    store.insertReadings(rows)
    const back = store.readingsInRange(rows[0]?.seq as bigint, seq)
    t.equal(back.length, n, `${n} rows`)
    t.same(
      back.map((r) => [r.seq, r.deviceId, r.source, r.receivedMs, Buffer.from(r.canonical).toString('hex'), Buffer.from(r.leaf).toString('hex')]),
      rows.map((r) => [r.seq, r.deviceId, r.source, r.receivedMs, Buffer.from(r.canonical).toString('hex'), Buffer.from(r.leaf).toString('hex')]),
      `${n} rows read back as written`,
    )
  }
  // A gap anywhere in a commit refuses all of it, the rows before the gap included.
  const gapped = Array.from({ length: 20 }, (_, i) => row(seq + 1n + BigInt(i === 19 ? 20 : i), reading(i)))
  t.throws(() => store.insertReadings(gapped), /sequence gap/)
  t.equal(store.lastSeq(), seq, 'nothing of the refused commit is stored')
  store.close()
})

t.test('device counters are written in the transaction of their reading', async (t) => {
  const dir = t.testdir()
  const store = new Store(join(dir, 'fieldproof.db'))
  t.equal(store.deviceCounter('d1'), undefined)
  store.insertReadings([row(1n, signed(1, 'd1', 5n)), row(2n, reading(2, { deviceId: 'd1' })), row(3n, signed(3, 'd2', 18_446_744_073_709_551_615n))])
  t.same(store.deviceCounter('d1'), { counter: 5n, seq: 1n }, 'an unsigned reading does not touch it')
  t.same(store.deviceCounter('d2'), { counter: 18_446_744_073_709_551_615n, seq: 3n }, 'a 64-bit counter round-trips')
  store.insertReadings([row(4n, signed(4, 'd1', 9n))])
  t.same(store.deviceCounter('d1'), { counter: 9n, seq: 4n })
  // A failed transaction leaves neither the reading nor the counter.
  t.throws(() => store.insertReadings([row(5n, signed(5, 'd1', 10n)), row(7n, reading(7))]))
  t.same(store.deviceCounter('d1'), { counter: 9n, seq: 4n }, 'rolled back with the readings')
  t.equal(store.lastSeq(), 4n)

  // The commit thread writes them too.
  const w = new CommitWorker({ path: store.path })
  const outcome = await new Promise<{ ok: boolean }>((resolve) => {
    const r = signed(5, 'd1', 11n)
    w.commit(5n, [{ deviceId: 'd1', source: 'http', receivedMs: 1, canonical: encodeReading(r), counter: 11n }], resolve)
  })
  t.ok(outcome.ok)
  await w.close()
  t.same(store.deviceCounter('d1'), { counter: 11n, seq: 5n }, 'from the commit thread')
  store.close()
})

t.test('filtered pages examine a bounded number of readings and their cursors reach every match', async (t) => {
  const store = new Store(join(t.testdir(), 'fieldproof.db'))
  const random = rng(7)
  const all: ReadingRow[] = []
  let seq = 0n
  for (let k = 0; k < 30; k++) {
    const rows = Array.from({ length: 100 }, (_, i) => {
      const x = random()
      const deviceId = x < 0.01 ? 'rare' : x < 0.2 ? 'mid' : 'common'
      return row(++seq, reading(k * 100 + i, { deviceId, source: random() < 0.5 ? 'http' : 'mqtt' }))
    })
    store.insertReadings(rows)
    all.push(...rows)
  }
  // Retention pruned the oldest readings: the scan starts at the first stored one.
  store.insertBatch({ id: 1n, firstSeq: 1n, lastSeq: 250n, count: 250, merkleRoot: new Uint8Array(32), prevHash: new Uint8Array(32), hash: new Uint8Array(32), signature: new Uint8Array(65), gateway: `0x${'00'.repeat(20)}`, sealedAtMs: 1, bytes: 1, leaves: new Uint8Array(32 * 250) })
  store.prune(1n, Date.now())
  const stored = all.filter((r) => r.seq > 250n)
  for (const order of ['asc', 'desc'] as const) {
    for (const q of [{ deviceId: 'rare' }, { deviceId: 'mid', source: 'mqtt' }, { source: 'http' }, { deviceId: 'absent' }, {}]) {
      const want = stored.filter((r) => (q.deviceId === undefined || r.deviceId === q.deviceId) && (q.source === undefined || r.source === q.source)).map((r) => r.seq)
      if (order === 'desc') want.reverse()
      const got: bigint[] = []
      let after: bigint | undefined
      let pages = 0
      let unbounded = 0
      for (;;) {
        const page = store.readingsPage({ ...q, limit: 7, order, ...(after !== undefined ? { afterSeq: after } : {}) }, 300)
        pages++
        got.push(...page.rows.map((r) => r.seq))
        if (page.rows.length > 7) t.fail('more than limit')
        // A filtered page moves its cursor by at most maxScan readings.
        const start = after ?? (order === 'asc' ? 250n : 3001n)
        if (page.next !== undefined && q.deviceId !== undefined && (order === 'asc' ? page.next - start : start - page.next) > 300n) unbounded++
        if (page.next === undefined) break
        after = page.next
        if (pages > 10_000) break
      }
      t.equal(unbounded, 0, `${order} ${JSON.stringify(q)}: no page scans more than 300 readings`)
      t.same(got, want, `${order} ${JSON.stringify(q)}: ${want.length} readings over ${pages} pages, each once, in order`)
    }
  }
  const sparse = store.readingsPage({ deviceId: 'absent', limit: 10 }, 300)
  t.same([sparse.rows.length, sparse.next], [0, 550n], 'a page with no match still moves the cursor')
  t.same(store.readingsPage({ deviceId: 'absent', limit: 10, afterSeq: 2990n }, 300), { rows: [], next: undefined }, 'exhausted: no cursor')
  store.close()
})

t.test('schema version 3 migrates: counters from the newest signed readings, no per-device index, last seq kept', async (t) => {
  const path = join(t.testdir(), 'fieldproof.db')
  const db = databaseAt(path, 3)
  const ins = db.prepare('INSERT INTO readings (seq, device_id, source, received_ms, canonical, leaf) VALUES (?, ?, ?, ?, ?, ?)')
  const put = (seq: number, r: Reading) => ins.run(seq, r.deviceId, r.source, r.received.wallMs, encodeReading(r), leafHash(BigInt(seq), encodeReading(r)))
  db.prepare("INSERT INTO devices (id, kind, config, created_ms) VALUES ('s1', 'signed', '{}', 1), ('s2', 'signed', '{}', 1), ('u1', 'mqtt', '{}', 1)").run()
  put(1, signed(1, 's1', 3n))
  put(2, signed(2, 's1', 4n))
  put(3, reading(3, { deviceId: 's1' }))
  put(4, signed(4, 's2', 70n))
  put(5, signed(5, 'u1', 9n))
  db.prepare("INSERT INTO meta (key, value) VALUES ('last_seq', '5')").run()
  db.close()

  const store = new Store(path)
  t.equal(store.schemaVersion(), SCHEMA_VERSION)
  t.same(store.deviceCounter('s1'), { counter: 4n, seq: 2n }, 'newest signed reading of s1')
  t.same(store.deviceCounter('s2'), { counter: 70n, seq: 4n })
  t.equal(store.deviceCounter('u1'), undefined, 'only devices registered as signed')
  const indexes = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'readings' AND sql IS NOT NULL").all()
  t.same(indexes, [], 'readings has no secondary index')
  t.equal(store.lastSeq(), 5n)
  store.insertReadings([row(6n, reading(6))])
  t.equal(store.lastSeq(), 6n, 'writes continue from there')
  store.close()
})

const batchOf = (id: bigint, first: bigint, canonicals: Uint8Array[], leaves: Uint8Array) => ({
  id,
  firstSeq: first,
  lastSeq: first + BigInt(canonicals.length) - 1n,
  count: canonicals.length,
  merkleRoot: new Uint8Array(32),
  prevHash: new Uint8Array(32),
  hash: new Uint8Array(32).fill(Number(id)),
  signature: new Uint8Array(65),
  gateway: `0x${'00'.repeat(20)}` as const,
  sealedAtMs: 1,
  bytes: 1,
  leaves,
})

t.test('a batch stores its leaves once; batchLeaves reads them, or hashes the readings of a batch stored without them', async (t) => {
  const store = new Store(join(t.testdir(), 'fieldproof.db'))
  const rows = Array.from({ length: 12 }, (_, i) => row(BigInt(i + 1), reading(i, { deviceId: `device-${i % 3}` })))
  store.insertReadings(rows)
  const canonicals = rows.map((r) => r.canonical)
  const hex = (ls: Uint8Array[]) => ls.map((l) => Buffer.from(l).toString('hex'))
  store.insertBatch(batchOf(1n, 1n, canonicals.slice(0, 5), leafHashes(1n, canonicals.slice(0, 5))))
  const b1 = store.batch(1n)
  if (!b1) throw new Error('batch 1 not stored')
  t.notOk('leaves' in b1, 'batch rows are read without their leaves')
  t.same(hex(store.batchLeaves(b1)), hex(rows.slice(0, 5).map((r) => r.leaf)), 'the stored leaves, in seq order')
  // A blob that does not hold the batch's leaves is not trusted: stored as read, a marker for "hash the readings".
  store.insertBatch(batchOf(2n, 6n, canonicals.slice(5, 12), new Uint8Array(0)))
  const b2 = store.batch(2n)
  if (!b2) throw new Error('batch 2 not stored')
  t.same(hex(store.batchLeaves(b2)), hex(rows.slice(5).map((r) => leafHash(r.seq, r.canonical))), 'no leaves stored: hashed from the readings')
  store.prune(2n, Date.now())
  t.throws(() => store.batchLeaves(b2), /batch 2: 0 of its 7 readings are in the store/, 'neither leaves nor readings: refused')
  store.close()
})

t.test('schema version 4 migrates to 5: leaves leave the readings rows and are hashed for the batches stored before', async (t) => {
  const path = join(t.testdir(), 'fieldproof.db')
  const db = databaseAt(path, 4)
  const ins = db.prepare('INSERT INTO readings (seq, device_id, source, received_ms, canonical, leaf) VALUES (?, ?, ?, ?, ?, ?)')
  const rows = Array.from({ length: 6 }, (_, i) => row(BigInt(i + 1), reading(i)))
  for (const r of rows) ins.run(r.seq, r.deviceId, r.source, r.receivedMs, r.canonical, r.leaf)
  db.prepare(
    `INSERT INTO batches (id, first_seq, last_seq, count, merkle_root, prev_hash, hash, signature, gateway, sealed_at_ms, bytes)
     VALUES (1, 1, 4, 4, zeroblob(32), zeroblob(32), zeroblob(32), zeroblob(65), '0x', 1, 1)`,
  ).run()
  db.close()

  const store = new Store(path)
  t.equal(store.schemaVersion(), 5)
  const columns = (table: string) => (store.db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).map((c) => c.name)
  t.notOk(columns('readings').includes('leaf'), 'readings has no leaf column')
  t.ok(columns('batches').includes('leaves'), 'batches has a leaves column')
  const b = store.batch(1n)
  if (!b) throw new Error('batch 1 lost')
  t.same(store.batchLeaves(b).map((l) => Buffer.from(l).toString('hex')), rows.slice(0, 4).map((r) => Buffer.from(r.leaf).toString('hex')), 'the leaves it had, hashed again')
  t.same(store.unsealed().map((r) => r.seq), [5n, 6n], 'the unsealed readings are still there')
  store.insertReadings([row(7n, reading(7))])
  t.equal(store.lastSeq(), 7n, 'writes continue')
  store.close()
})
