// The pipeline with its group commits on the commit thread
// (store/commit-worker.ts): same guarantees as on the event loop — seqs in
// order and gap-free, acknowledgement only after the commit (invariant 1),
// backpressure, drain on stop — plus its failure modes: a failed commit and
// a thread that dies refuse their senders and never acknowledge.

import t, { type Test } from 'tap'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { verifySignedBatch } from '../core/batch.ts'
import { leafHashOf } from '../core/canonical.ts'
import { isFieldproofError } from '../core/errors.ts'
import { bytesToHex, keccak256 } from '../core/hex.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import type { Store } from '../store/store.ts'
import { openPipeline, reading, TEST_ADDRESS } from '../../../test/helpers/readings.ts'
import type { Counter } from './metrics.ts'
import { signedBatchFromRow } from './proofs.ts'

/** Until the pipeline has sent what is queued: it commits on the second check phase after the first reading. */
const turn = async (): Promise<void> => {
  await new Promise<void>((r) => setImmediate(r))
  await new Promise<void>((r) => setImmediate(r))
}

/** Every reading's leaf is leafHash(seq, keccak(canonical)); every batch is signed, rooted in its leaves, linked, gap-free. */
function checkStore(t: Test, store: Store): void {
  const last = store.lastSeq()
  const rows = store.readingsInRange(1n, last)
  t.equal(rows.length, Number(last), `readings 1 … ${last}, no gap`)
  let bad = 0
  for (const r of rows) if (bytesToHex(r.leaf) !== bytesToHex(leafHashOf(r.seq, keccak256(r.canonical)))) bad++
  t.equal(bad, 0, 'every leaf matches its seq and canonical bytes')
  let prev = '0x' + '00'.repeat(32)
  let next = 1n
  for (const b of store.batchesAfter(0n, 1_000_000)) {
    const s = signedBatchFromRow(b)
    if (!verifySignedBatch(s) || s.header.gateway !== TEST_ADDRESS) t.fail(`batch ${b.id} signature`)
    const leaves = store.batchLeaves(b)
    if (rows.slice(Number(b.firstSeq) - 1, Number(b.lastSeq)).some((r, i) => bytesToHex(r.leaf) !== bytesToHex(leaves[i] as Uint8Array))) t.fail(`batch ${b.id} leaves`)
    if (bytesToHex(buildMerkleTree(leaves).root) !== s.header.merkleRoot) t.fail(`batch ${b.id} root`)
    if (s.header.prevBatchHash !== prev || b.firstSeq !== next) t.fail(`batch ${b.id} link`)
    prev = s.hash
    next = b.lastSeq + 1n
  }
  t.equal(next - 1n, store.lastBatch()?.lastSeq ?? 0n, 'batches cover a contiguous range')
}

t.test('commit thread: concurrent readings share transactions, seqs gap-free and in order, leaves right', async (t) => {
  const { pipeline, store, metrics } = openPipeline(t.testdir(), { commitWorker: true, batchMaxReadings: 64 })
  t.ok(pipeline.commitWorker, 'the pipeline runs a commit thread')
  const results = await Promise.all(Array.from({ length: 600 }, (_, i) => pipeline.ingest(i % 3 === 0 ? [reading(i), reading(i + 1000)] : [reading(i)])))
  const seqs = results.flat().sort((a, b) => (a < b ? -1 : 1))
  t.same(seqs, Array.from({ length: 800 }, (_, i) => BigInt(i + 1)), '800 readings, seqs 1 … 800')
  // Within one ingest call the seqs follow the readings' order.
  for (const r of results) if (r.length === 2 && (r[1] as bigint) !== (r[0] as bigint) + 1n) t.fail('a two-reading call got non-consecutive seqs')
  t.equal((metrics.get('fieldproof_readings_ingested_total') as Counter).get({ source: 'http' }), 800, 'ingested counter')
  pipeline.stop()
  checkStore(t, store)
  t.equal(store.lastBatch()?.lastSeq, 800n, 'stop sealed the rest')
  store.close()
})

t.test('commit thread: an ingest resolves only once another connection sees the rows (invariant 1)', async (t) => {
  const dir = t.testdir()
  const { pipeline, store } = openPipeline(dir, { commitWorker: true })
  const observer = new Database(join(dir, 'fieldproof.db'), { readonly: true })
  const count = () => (observer.prepare('SELECT count(*) AS n FROM readings').get() as { n: number }).n
  let visible = -1
  const p = pipeline.ingest([reading(1), reading(2), reading(3)]).then((seqs) => {
    visible = count()
    return seqs
  })
  t.equal(count(), 0, 'nothing is written synchronously by ingest()')
  t.same(await p, [1n, 2n, 3n])
  t.equal(visible, 3, 'committed rows visible when the promise resolves')
  observer.close()
  pipeline.stop()
  store.close()
})

t.test('commit thread: a failed commit refuses every sender of that transaction, stores nothing, and the next one continues the seqs', async (t) => {
  const errors: string[] = []
  const { pipeline, store, metrics } = openPipeline(t.testdir(), { commitWorker: true, onError: (_e, where) => errors.push(where) })
  t.same(await pipeline.ingest([reading(1)]), [1n])
  // A real failure inside SQLite, on the commit thread's connection: the trigger aborts the transaction.
  store.db.exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON readings WHEN NEW.device_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END`)
  const results = await Promise.allSettled([pipeline.ingest([reading(2)]), pipeline.ingest([reading(3, { deviceId: 'boom' })]), pipeline.ingest([reading(4)])])
  for (const r of results) {
    t.equal(r.status, 'rejected', 'each sender of the failed transaction is refused')
    if (r.status === 'rejected') t.ok(isFieldproofError(r.reason, 'INTERNAL') && /boom refused/.test((r.reason as Error).message), 'with the cause')
  }
  t.equal(store.lastSeq(), 1n, 'nothing of the failed transaction stored')
  t.ok(errors.includes('commit'), 'the failure is reported')
  t.equal((metrics.get('fieldproof_readings_rejected_total') as Counter).get({ source: 'http', cause: 'commit-failed' }), 3)
  store.db.exec('DROP TRIGGER refuse_boom')
  t.same(await pipeline.ingest([reading(5), reading(6)]), [2n, 3n], 'the next commit takes the next seqs')
  pipeline.stop()
  checkStore(t, store)
  store.close()
})

t.test('commit thread dies before committing: senders refused, no gap, a new thread takes the next commit', async (t) => {
  const errors: string[] = []
  const { pipeline, store } = openPipeline(t.testdir(), { commitWorker: true, onError: (_e, where) => errors.push(where) })
  t.same(await pipeline.ingest([reading(0)]), [1n])
  const p = pipeline.ingest(Array.from({ length: 20 }, (_, i) => reading(i + 1)))
  const outcome = p.then(() => 'acknowledged', (e: unknown) => e)
  await turn() // the job is sent
  t.ok(pipeline.commitWorker?.busy, 'a commit is in flight')
  const before = pipeline.commitWorker?.threadId
  await pipeline.commitWorker?.terminate()
  const o = await outcome
  t.ok(isFieldproofError(o, 'INTERNAL'), 'no acknowledgement for a transaction whose thread died')
  t.ok(errors.includes('commit-thread'), 'the dead thread is reported')
  // Whether or not the thread got to commit, the next readings continue the stored seqs.
  const last = store.lastSeq()
  t.ok(last === 1n || last === 21n, `stored seqs end at ${last}`)
  const next = await pipeline.ingest([reading(100)])
  t.same(next, [last + 1n], 'next seq follows what is on disk')
  t.not(pipeline.commitWorker?.threadId, before, 'a new thread')
  pipeline.stop()
  checkStore(t, store)
  t.equal(store.lastBatch()?.lastSeq, last + 1n, 'every stored reading sealed')
  store.close()
})

t.test('commit thread dies after its COMMIT, before its answer: the rows stay and are sealed, never acknowledged', async (t) => {
  const dir = t.testdir()
  const { pipeline, store } = openPipeline(dir, { commitWorker: true })
  const observer = new Database(join(dir, 'fieldproof.db'), { readonly: true })
  const p = pipeline.ingest(Array.from({ length: 30 }, (_, i) => reading(i)))
  const outcome = p.then(() => 'acknowledged', (e: unknown) => e)
  await turn()
  t.ok(pipeline.commitWorker?.busy, 'a commit is in flight')
  // Wait without yielding to the event loop: the answer cannot be handled meanwhile.
  const deadline = Date.now() + 20_000
  while ((observer.prepare('SELECT count(*) AS n FROM readings').get() as { n: number }).n < 30 && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2)
  await pipeline.commitWorker?.terminate()
  t.ok(isFieldproofError(await outcome, 'INTERNAL'), 'not acknowledged: the senders get an error')
  t.equal(store.lastSeq(), 30n, 'the committed rows are kept')
  t.same(await pipeline.ingest([reading(99)]), [31n], 'the next seq follows them')
  pipeline.stop()
  checkStore(t, store)
  t.equal(store.lastBatch()?.lastSeq, 31n, 'the unacknowledged rows are sealed with the rest')
  observer.close()
  store.close()
})

t.test('commit thread: backpressure counts the transaction in flight; stop() drains it and the queue', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { commitWorker: true, maxPending: 10, commitMaxReadings: 6 })
  const first = pipeline.ingest(Array.from({ length: 6 }, (_, i) => reading(i)))
  await turn()
  t.ok(pipeline.commitWorker?.busy, 'six readings in flight')
  const second = pipeline.ingest(Array.from({ length: 4 }, (_, i) => reading(10 + i)))
  await t.rejects(pipeline.ingest([reading(20)]), { code: 'BACKPRESSURE' }, 'in flight + queued = maxPending: refused')
  // stop() waits for the transaction in flight, commits the queue on this thread, seals.
  pipeline.stop()
  t.same(await first, [1n, 2n, 3n, 4n, 5n, 6n])
  t.same(await second, [7n, 8n, 9n, 10n])
  await t.rejects(pipeline.ingest([reading(30)]), { code: 'STORE_CLOSED' })
  checkStore(t, store)
  t.equal(store.lastBatch()?.lastSeq, 10n)
  store.close()
})

t.test('commit thread: a failed transaction also refuses the one queued behind it; the seqs resume from the store', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { commitWorker: true, commitMaxReadings: 2 })
  t.same(await pipeline.ingest([reading(0)]), [1n])
  store.db.exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON readings WHEN NEW.device_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END`)
  // Two transactions of two readings go to the thread together; the first fails.
  const first = pipeline.ingest([reading(1, { deviceId: 'boom' }), reading(2)])
  const second = pipeline.ingest([reading(3), reading(4)])
  const outcomes = await Promise.allSettled([first, second])
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected'], 'neither is acknowledged')
  t.equal(store.lastSeq(), 1n, 'nothing stored past the failure')
  store.db.exec('DROP TRIGGER refuse_boom')
  const again = await Promise.all([pipeline.ingest([reading(5), reading(6)]), pipeline.ingest([reading(7), reading(8)]), pipeline.ingest([reading(9)])])
  t.same(again, [[2n, 3n], [4n, 5n], [6n]], 'two transactions in flight again, seqs from the store')
  pipeline.stop()
  checkStore(t, store)
  store.close()
})
