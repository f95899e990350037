import t, { type Test } from 'tap'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { verifySignedBatch } from '../core/batch.ts'
import { leafHash } from '../core/canonical.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import { bytesToHex } from '../core/hex.ts'
import { isFieldproofError } from '../core/errors.ts'
import { Store } from '../store/store.ts'
import { SCHEMA_VERSION } from '../store/migrations.ts'
import { openPipeline, reading, TEST_ADDRESS, TEST_KEY } from '../../../test/helpers/readings.ts'
import type { Pipeline } from './pipeline.ts'
import type { SealWorker } from './seal-worker.ts'
import { signedBatchFromRow } from './proofs.ts'
import type { Histogram, Counter } from './metrics.ts'

/** Every batch in the store: signature valid, its stored leaves those of its readings, root = tree of its leaves, linked to the previous one. */
function checkChain(t: Test, store: Store): number {
  let prevHash = '0x' + '00'.repeat(32)
  let expectedFirst = 1n
  let n = 0
  for (const b of store.batchesAfter(0n, 1_000_000)) {
    const s = signedBatchFromRow(b)
    if (!verifySignedBatch(s)) t.fail(`batch ${b.id} signature`)
    if (s.header.gateway !== TEST_ADDRESS) t.fail(`batch ${b.id} signer`)
    const leaves = store.batchLeaves(b)
    const rows = store.readingsInRange(b.firstSeq, b.lastSeq)
    if (leaves.length !== b.count || rows.length !== b.count || BigInt(b.count) !== b.lastSeq - b.firstSeq + 1n) t.fail(`batch ${b.id} count`)
    if (rows.some((r, i) => bytesToHex(leafHash(r.seq, r.canonical)) !== bytesToHex(leaves[i] as Uint8Array))) t.fail(`batch ${b.id} leaves`)
    if (bytesToHex(buildMerkleTree(leaves).root) !== s.header.merkleRoot) t.fail(`batch ${b.id} root`)
    if (s.header.prevBatchHash !== prevHash) t.fail(`batch ${b.id} prev link`)
    if (b.firstSeq !== expectedFirst) t.fail(`batch ${b.id} starts at ${b.firstSeq}, expected ${expectedFirst}`)
    prevHash = s.hash
    expectedFirst = b.lastSeq + 1n
    n++
  }
  return n
}

/** Make the store refuse every batch row (from batch `fromId` on), as a failing disk would; returns the undo. */
function refuseBatches(store: Store, fromId = 1): () => void {
  store.db.exec(`CREATE TEMP TRIGGER fail_batch BEFORE INSERT ON batches WHEN NEW.id >= ${fromId} BEGIN SELECT RAISE(ABORT, 'disk said no'); END`)
  return () => store.db.exec('DROP TRIGGER fail_batch')
}

t.test('the store runs WAL with synchronous=FULL and migrates', async (t) => {
  const dir = t.testdir()
  const store = new Store(join(dir, 'x.db'))
  t.equal(String(store.db.pragma('journal_mode', { simple: true })), 'wal')
  t.equal(Number(store.db.pragma('synchronous', { simple: true })), 2, 'FULL')
  t.equal(store.schemaVersion(), SCHEMA_VERSION)
  store.close()
  const again = new Store(join(dir, 'x.db'))
  t.equal(again.schemaVersion(), SCHEMA_VERSION, 'reopening does not re-run migrations')
  again.close()
})

t.test('group commit: concurrent readings share transactions, seqs are gap-free', async (t) => {
  const { pipeline, store, metrics } = openPipeline(t.testdir(), { batchMaxReadings: 10_000 })
  const results = await Promise.all(Array.from({ length: 500 }, (_, i) => pipeline.ingest([reading(i)])))
  const seqs = results.map((r) => r[0] as bigint).sort((a, b) => (a < b ? -1 : 1))
  t.same(seqs, Array.from({ length: 500 }, (_, i) => BigInt(i + 1)))
  const commits = metrics.get('fieldproof_commit_readings') as Histogram
  const rendered = commits.render().find((l) => l.startsWith('fieldproof_commit_readings_count'))
  const transactions = Number(rendered?.split(' ')[1])
  t.ok(transactions >= 1 && transactions <= 5, `500 readings in ${transactions} transactions`)
  t.equal(store.stats().readings, 500)
  pipeline.stop()
  store.close()
})

t.test('an ingest resolves only once the reading is on disk (invariant 1)', async (t) => {
  const dir = t.testdir()
  const { pipeline, store } = openPipeline(dir)
  const observer = new Database(join(dir, 'fieldproof.db'), { readonly: true })
  let seenBeforeResolve = true
  const p = pipeline.ingest([reading(1), reading(2)]).then((seqs) => {
    // Another connection sees the rows: they are committed, not just queued.
    for (const s of seqs) {
      const row = observer.prepare('SELECT seq FROM readings WHERE seq = ?').get(s)
      if (!row) seenBeforeResolve = false
    }
    return seqs
  })
  t.equal((observer.prepare('SELECT count(*) AS n FROM readings').get() as { n: number }).n, 0, 'nothing is written synchronously by ingest()')
  const seqs = await p
  t.ok(seenBeforeResolve, 'committed rows visible when the promise resolves')
  t.same(seqs, [1n, 2n])
  observer.close()
  pipeline.stop()
  store.close()
})

t.test('batches seal by count, are signed, and link by hash', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 100 })
  const sealed: bigint[] = []
  pipeline.bus.onBatch((b) => sealed.push(b.header.batchId))
  await pipeline.ingest(Array.from({ length: 250 }, (_, i) => reading(i)))
  t.same(sealed, [1n, 2n], 'two full batches sealed at once')
  t.equal(pipeline.state.open, 50)
  const third = pipeline.seal()
  t.equal(third?.header.count, 50)
  t.equal(checkChain(t, store), 3)
  pipeline.stop()
  store.close()
})

t.test('a commit that fills a batch stores the batch in the same transaction; a failed one stores neither', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 100 })
  let separate = 0
  const insertBatch = store.insertBatch.bind(store)
  store.insertBatch = (b) => {
    separate++
    insertBatch(b)
  }
  await pipeline.ingest(Array.from({ length: 60 }, (_, i) => reading(i)))
  t.equal(store.stats().batches, 0)
  await pipeline.ingest(Array.from({ length: 60 }, (_, i) => reading(60 + i)))
  t.equal(store.stats().batches, 1, 'the commit that reached 100 open readings sealed batch 1')
  t.equal(separate, 0, 'in its own transaction, not a second one')
  t.equal(pipeline.state.open, 20)
  // 230 at once: one batch inside the commit, the next full one by seal() after it.
  await pipeline.ingest(Array.from({ length: 230 }, (_, i) => reading(120 + i)))
  t.equal(store.stats().batches, 3)
  t.equal(separate, 1)
  t.equal(pipeline.state.open, 50)
  t.equal(checkChain(t, store), 3)

  // A commit whose transaction fails leaves neither its readings nor its batch.
  const lastSeq = store.lastSeq()
  const insertReadingsAndBatch = store.insertReadingsAndBatch.bind(store)
  store.insertReadingsAndBatch = (rows, b) => {
    const undo = refuseBatches(store)
    try {
      insertReadingsAndBatch(rows, b)
    } finally {
      undo()
    }
  }
  const refused = await pipeline.ingest(Array.from({ length: 50 }, (_, i) => reading(400 + i))).then(
    () => 'stored',
    (e: unknown) => String((e as Error).message),
  )
  t.match(refused, /disk said no/, 'the senders are refused')
  t.equal(store.lastSeq(), lastSeq, 'no reading of it was stored')
  t.equal(store.stats().batches, 3, 'nor its batch')
  store.insertReadingsAndBatch = insertReadingsAndBatch
  // The pipeline goes on from where the store is: same seqs, same chain.
  await pipeline.ingest(Array.from({ length: 50 }, (_, i) => reading(500 + i)))
  t.equal(store.stats().batches, 4)
  t.equal(checkChain(t, store), 4)
  pipeline.stop()
  store.close()
})

t.test('a batch that cannot be stored after its readings commit is reported, not thrown; it is sealed later', async (t) => {
  const errors: string[] = []
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 50, onError: (_e, where) => errors.push(where) })
  const undo = refuseBatches(store, 2)
  // One commit of 120: batch 1 rides it; batch 2, sealed after it on its own, is refused.
  const seqs = await pipeline.ingest(Array.from({ length: 120 }, (_, i) => reading(i)))
  t.equal(seqs.length, 120, 'the readings are acknowledged')
  t.equal(store.stats().readings, 120, 'and on disk')
  t.equal(store.stats().batches, 1)
  t.same(errors, ['seal'], 'the refused seal is reported')
  t.equal(pipeline.state.open, 70, 'its readings stay open')
  undo()
  await pipeline.ingest([reading(500)])
  t.equal(store.stats().batches, 2, 'sealed after the next commit')
  pipeline.stop()
  t.equal(checkChain(t, store), 3)
  t.equal(store.lastBatch()?.lastSeq, 121n)
  store.close()
})

t.test('batches seal by age', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxAgeMs: 150 })
  await pipeline.ingest([reading(1), reading(2), reading(3)])
  t.equal(store.lastBatchId(), 0n)
  await sleep(500)
  t.equal(store.lastBatchId(), 1n, 'sealed after max age')
  t.equal(store.batch(1n)?.count, 3)
  pipeline.stop()
  store.close()
})

t.test('a restart continues the sequence and the batch chain', async (t) => {
  const dir = t.testdir()
  {
    const { pipeline, store } = openPipeline(dir, { batchMaxReadings: 10 })
    await pipeline.ingest(Array.from({ length: 25 }, (_, i) => reading(i)))
    t.equal(pipeline.state.open, 5)
    // No stop(): as after a crash, 5 readings are committed but unsealed.
    store.db.close()
  }
  const { pipeline, store } = openPipeline(dir, { batchMaxReadings: 10 })
  t.equal(pipeline.state.open, 5, 'unsealed readings recovered')
  const seqs = await pipeline.ingest(Array.from({ length: 5 }, (_, i) => reading(100 + i)))
  t.same(seqs, [26n, 27n, 28n, 29n, 30n], 'sequence continues')
  t.equal(store.lastBatchId(), 3n)
  t.equal(checkChain(t, store), 3)
  pipeline.stop()
  store.close()
})

t.test('backpressure: a full queue refuses with a reason and counts it', async (t) => {
  const { pipeline, store, metrics } = openPipeline(t.testdir(), { maxPending: 10 })
  const err = await pipeline.ingest(Array.from({ length: 11 }, (_, i) => reading(i))).catch((e: unknown) => e)
  t.ok(isFieldproofError(err, 'BACKPRESSURE'), 'BACKPRESSURE')
  t.equal((metrics.get('fieldproof_readings_rejected_total') as Counter).get({ source: 'http', cause: 'backpressure' }), 1)
  t.same(await pipeline.ingest(Array.from({ length: 10 }, (_, i) => reading(i))), [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n])
  pipeline.stop()
  store.close()
})

t.test('an invalid reading is refused whole and stores nothing', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir())
  const bad = reading(2, { metrics: [{ name: 'temperature_c', unit: 'Cel', value: Number.NaN }] })
  const err = await pipeline.ingest([reading(1), bad]).catch((e: unknown) => e)
  t.ok(isFieldproofError(err, 'READING_INVALID'))
  t.equal(store.lastSeq(), 0n)
  t.same(await pipeline.ingest([reading(3)]), [1n])
  pipeline.stop()
  store.close()
})

t.test('retention prunes only batches every sink acknowledged (invariant 5)', async (t) => {
  let acked = 0n
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 10, retentionMs: 0, ackedBatchId: () => acked })
  await pipeline.ingest(Array.from({ length: 35 }, (_, i) => reading(i)))
  t.equal(store.lastBatchId(), 3n)
  await sleep(5)
  t.same(pipeline.prune().batches, 0, 'nothing acknowledged: nothing pruned')
  t.equal(store.stats().readings, 35)
  acked = 2n
  const r = pipeline.prune()
  t.equal(r.batches, 2)
  t.equal(r.readings, 20)
  t.equal(store.stats().readings, 15, 'batch 3 and the 5 unsealed readings stay')
  t.equal(store.batch(3n)?.id, 3n)
  t.equal(store.reading(21n)?.seq, 21n)
  t.equal(store.reading(20n), undefined)
  // The chain continues after pruning.
  pipeline.seal()
  t.equal(signedBatchFromRow(store.batch(4n)!).header.prevBatchHash, bytesToHex(store.batch(3n)!.hash))
  pipeline.stop()
  store.close()
})

t.test('a full store refuses new input loudly instead of deleting unacknowledged data', async (t) => {
  let acked = 0n
  const dir = t.testdir()
  const { pipeline, store, metrics } = openPipeline(dir, { batchMaxReadings: 100, ackedBatchId: () => acked, retentionMs: 3_600_000 })
  await pipeline.ingest(Array.from({ length: 1000 }, (_, i) => reading(i)))
  store.checkpoint()
  const used = store.size().usedBytes
  pipeline.stop()
  store.close()

  const reopened = openPipeline(dir, { batchMaxReadings: 100, ackedBatchId: () => acked, retentionMs: 3_600_000, maxBytes: Math.floor(used * 0.8) })
  const before = reopened.store.stats().readings
  t.ok(reopened.pipeline.prune().full, 'over the cap with nothing acknowledged: full')
  t.equal(reopened.store.stats().readings, before, 'no unacknowledged reading deleted')
  const err = await reopened.pipeline.ingest([reading(5000)]).catch((e: unknown) => e)
  t.ok(isFieldproofError(err, 'STORE_FULL'), 'STORE_FULL')
  t.match((err as Error).message, /storage is full/)
  t.equal((reopened.metrics.get('fieldproof_store_full') as unknown as { render(): string[] }).render()[0], 'fieldproof_store_full 1')
  acked = 10n
  const freed = reopened.pipeline.prune()
  t.ok(freed.batches > 0 && !freed.full, `acknowledged batches freed space (${freed.batches} pruned)`)
  t.ok((await reopened.pipeline.ingest([reading(5001)]))[0]! > 1000n, 'input accepted again')
  t.equal(metrics.get('fieldproof_store_full') !== undefined, true)
  reopened.pipeline.stop()
  reopened.store.close()
})

t.test('stop() commits what is queued, seals, then refuses input', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir())
  const p = pipeline.ingest([reading(1), reading(2)])
  pipeline.stop()
  t.same(await p, [1n, 2n], 'queued readings committed by stop()')
  t.equal(store.lastBatchId(), 1n, 'open batch sealed')
  const err = await pipeline.ingest([reading(3)]).catch((e: unknown) => e)
  t.ok(isFieldproofError(err, 'STORE_CLOSED'))
  store.close()
})

/** Ingest `batches` full batches one commit after another, as fast as they commit. */
async function fillBatches(pipeline: Pipeline, size: number, batches: number, from = 0): Promise<void> {
  for (let b = 0; b < batches; b++) await pipeline.ingest(Array.from({ length: size }, (_, i) => reading(from + b * size + i)))
}

/** Wait until `cond` holds (the seal thread answers on the event loop). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await sleep(5)
  if (!cond()) throw new Error(`timed out waiting for ${what}`)
}

t.test('under a high rate full batches are built and signed on the seal thread; the chain is the same', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 50, sealThreadKey: TEST_KEY })
  const seen: bigint[] = []
  pipeline.bus.onBatch((b) => seen.push(b.header.batchId))
  t.notOk(pipeline.sealThread?.started, 'no thread while batches fill slowly')
  await fillBatches(pipeline, 50, 1)
  t.equal(store.stats().batches, 1, 'the first full batch is sealed on the event loop, in its commit')
  t.notOk(pipeline.sealThread?.started)
  await fillBatches(pipeline, 50, 20, 50)
  await until(() => pipeline.state.open === 0, 'every full batch stored')
  const thread = pipeline.sealThread as SealWorker
  t.ok(thread.started, 'batches filling faster than 4 a second started the thread')
  t.ok(thread.answered >= 5, `${thread.answered} of 21 batches sealed on the thread`)
  t.same(seen, Array.from({ length: 21 }, (_, i) => BigInt(i + 1)), 'published in order, once each')
  t.equal(checkChain(t, store), 21, 'signatures, roots, links and seq ranges as if sealed on the event loop')
  pipeline.stop()
  t.equal(store.stats().readings, 21 * 50)
  store.close()
})

t.test('a seal on the event loop supersedes the one on the thread', async (t) => {
  // Every full batch after the first goes to the thread, however slowly they fill.
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 50, sealThreadKey: TEST_KEY, sealThreadWithinMs: 60_000 })
  await fillBatches(pipeline, 50, 4)
  await until(() => pipeline.state.open === 0 && pipeline.sealThread?.pending === 0, 'the first batches stored, the thread idle')
  // The next full batch goes to the (running) thread; seal() right away takes
  // it and the 20 readings after it on the event loop. The thread's answer
  // is then dropped: no second batch over the same readings.
  await pipeline.ingest(Array.from({ length: 70 }, (_, i) => reading(1000 + i)))
  t.equal(pipeline.sealThread?.pending, 1, 'a batch is on the thread')
  const sealed = pipeline.seal()
  t.equal(sealed?.header.count, 70)
  await until(() => pipeline.sealThread?.pending === 0, 'the thread answered')
  await sleep(20)
  t.equal(store.stats().batches, 5)
  t.equal(checkChain(t, store), 5)
  pipeline.stop()
  store.close()
})

t.test('a seal thread that dies: its batch is sealed on the event loop, and a new thread takes the next', async (t) => {
  const errors: string[] = []
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 50, sealThreadKey: TEST_KEY, sealThreadWithinMs: 60_000, onError: (_e, where) => errors.push(where) })
  await fillBatches(pipeline, 50, 2)
  t.equal(pipeline.sealThread?.pending, 1, 'batch 2 is on the thread, which is still starting')
  await (pipeline.sealThread as SealWorker).terminate()
  await until(() => store.stats().batches === 2, 'batch 2 stored')
  t.ok(errors.includes('seal-thread'), 'the death is reported')
  await fillBatches(pipeline, 50, 10, 100)
  await until(() => pipeline.state.open === 0, 'every full batch stored')
  t.ok((pipeline.sealThread as SealWorker).answered > 0, 'a new thread sealed later batches')
  t.equal(checkChain(t, store), 12)
  pipeline.stop()
  store.close()
})

t.test('batches that cannot be stored are sealed again later; nothing acknowledged is lost', async (t) => {
  const { pipeline, store } = openPipeline(t.testdir(), { batchMaxReadings: 50, sealThreadKey: TEST_KEY })
  await fillBatches(pipeline, 50, 3)
  await until(() => pipeline.state.open === 0, 'the first batches stored')
  // Every batch row is refused for a while: a thread's batch riding a commit
  // fails that commit (its senders retry), one stored alone is dropped.
  const undo = refuseBatches(store)
  const acked: bigint[] = []
  for (let i = 0; i < 10; i++) {
    await pipeline.ingest(Array.from({ length: 50 }, (_, k) => reading(500 + 50 * i + k))).then(
      (seqs) => acked.push(...seqs),
      () => undefined,
    )
  }
  await sleep(50)
  t.equal(store.stats().batches, 3, 'no batch stored meanwhile')
  undo()
  await fillBatches(pipeline, 50, 4, 2000)
  pipeline.stop()
  const n = checkChain(t, store)
  t.ok(n > 3, `${n} batches, chain intact`)
  t.equal(store.lastBatch()?.lastSeq, store.lastSeq(), 'stop sealed every committed reading')
  for (const s of acked) if (!store.reading(s)) t.fail(`acknowledged seq ${s} missing`)
  store.close()
})
