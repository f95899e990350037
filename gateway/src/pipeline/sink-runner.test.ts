import t from 'tap'
import pino from 'pino'
import { verifyProofBundle } from '../core/proof.ts'
import { Store } from '../store/store.ts'
import { openPipeline, reading, TEST_ADDRESS } from '../../../test/helpers/readings.ts'
import { SinkRunner, SinkRunners } from './sink-runner.ts'
import type { Sink, SinkAck, SinkBatch, SinkRunnerSettings } from './sink.ts'
import { MetricsRegistry } from './metrics.ts'
import { join } from 'node:path'

const log = pino({ level: 'silent' })
const FAST: SinkRunnerSettings = { backoffBaseMs: 5, backoffMaxMs: 40, stuckAfterFailures: 3, timeoutMs: 200 }

async function sealBatches(pipeline: ReturnType<typeof openPipeline>['pipeline'], n: number, per = 5): Promise<void> {
  for (let b = 0; b < n; b++) {
    await pipeline.ingest(Array.from({ length: per }, (_, i) => reading(b * per + i)))
    pipeline.seal()
  }
}

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A sink whose behaviour per attempt is scripted. */
function scripted(id: string, decide: (b: SinkBatch, attempt: number) => SinkAck | Promise<SinkAck> | 'throw' | 'hang') {
  const seen: bigint[] = []
  const attempts = new Map<bigint, number>()
  const sink: Sink = {
    id,
    async send(b, signal) {
      const n = (attempts.get(b.id) ?? 0) + 1
      attempts.set(b.id, n)
      const d = await decide(b, n)
      if (d === 'throw') throw new Error(`connection reset on batch ${b.id}`)
      if (d === 'hang') {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
        throw new Error('aborted')
      }
      if (d.ok) seen.push(b.id)
      return d
    },
  }
  return { sink, seen, attempts }
}

t.test('delivers every batch in order, once each, and resumes from the cursor after a restart', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  await sealBatches(pipeline, 6)
  const a = scripted('a', () => ({ ok: true }))
  const metrics = new MetricsRegistry()
  const r1 = new SinkRunner({ sink: a.sink, settings: FAST, store, log, bus: pipeline.bus })
  const group = new SinkRunners([r1], metrics)
  group.start()
  await until(() => r1.ackedBatchId === 6n, 5000, 'batch 6')
  t.same(a.seen, [1n, 2n, 3n, 4n, 5n, 6n])
  // Readings are handed over lazily and verify.
  t.equal(store.cursor('a')?.ackedBatchId, 6n, 'cursor is durable')
  await group.stop()

  // More batches while "down", then a new runner over the same database.
  await sealBatches(pipeline, 3)
  pipeline.stop()
  store.close()
  const store2 = new Store(join(dir, 'fieldproof.db'))
  const b = scripted('a', () => ({ ok: true }))
  const r2 = new SinkRunner({ sink: b.sink, settings: FAST, store: store2, log })
  t.equal(r2.ackedBatchId, 6n, 'resumes at the cursor')
  r2.start()
  await until(() => r2.ackedBatchId === 9n, 5000, 'batch 9')
  t.same(b.seen, [7n, 8n, 9n], 'nothing skipped, nothing resent')
  t.match(metrics.render(), /fieldproof_sink_sends_total\{sink="a"\} 6/)
  await r2.stop()
  store2.close()
})

t.test('transient failures back off, turn stuck with the last error, then recover', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  await sealBatches(pipeline, 3)
  let healthy = false
  const s = scripted('flaky', (b, n) => {
    if (healthy) return { ok: true }
    // A mix of the failure modes: error answer, thrown reset, hang (timeout).
    if (n % 3 === 1) return { ok: false, retry: true, reason: 'HTTP 503: down' }
    if (n % 3 === 2) return 'throw'
    return 'hang'
  })
  const r = new SinkRunner({ sink: s.sink, settings: FAST, store, log, bus: pipeline.bus })
  new SinkRunners([r], new MetricsRegistry())
  r.start()
  await until(() => r.state === 'stuck', 5000, 'stuck')
  const st = r.status()
  t.equal(st.ackedBatchId, '0')
  t.equal(st.backlogBatches, 3)
  t.ok(st.backlogBytes > 0)
  t.ok(st.failures >= 3)
  t.match(st.lastError, /^batch 1: /)
  t.equal(store.cursor('flaky')?.state, 'stuck', 'the state is persisted too')
  t.same(s.seen, [], 'nothing acknowledged while failing')
  t.ok((s.attempts.get(1n) ?? 0) >= 3 && !s.attempts.has(2n), 'head of line: batch 2 waits for batch 1')
  healthy = true
  await until(() => r.ackedBatchId === 3n, 5000, 'recovery')
  t.same(s.seen, [1n, 2n, 3n])
  t.equal(r.status().lastError, null)
  t.ok(r.status().lastSuccessMs !== null)
  await r.stop()
  pipeline.stop()
  store.close()
})

t.test('backoff is exponential with jitter, capped, and honours Retry-After', (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  const settings = { backoffBaseMs: 1000, backoffMaxMs: 60_000, stuckAfterFailures: 10, timeoutMs: 1000 }
  const lo = new SinkRunner({ sink: { id: 'x', send: async () => ({ ok: true }) }, settings, store, log, random: () => 0 })
  const hi = new SinkRunner({ sink: { id: 'y', send: async () => ({ ok: true }) }, settings, store, log, random: () => 0.999999 })
  t.equal(lo.retryDelayMs(1), 500)
  t.equal(Math.round(hi.retryDelayMs(1)), 1000)
  t.equal(lo.retryDelayMs(4), 4000)
  t.equal(lo.retryDelayMs(9), 30_000, 'capped at backoffMaxMs (half fixed, half jitter)')
  t.equal(lo.retryDelayMs(10), 60_000, 'stuck: one probe per backoffMaxMs')
  t.equal(lo.retryDelayMs(1, 20_000), 20_000, 'Retry-After wins over a shorter backoff')
  pipeline.stop()
  store.close()
  t.end()
})

t.test('a refused batch is parked durably and only that one', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  await sealBatches(pipeline, 4)
  const s = scripted('picky', (b) => (b.id === 2n ? { ok: false, retry: false, reason: 'HTTP 422: bad batch' } : { ok: true }))
  const metrics = new MetricsRegistry()
  const r = new SinkRunner({ sink: s.sink, settings: FAST, store, log })
  new SinkRunners([r], metrics)
  r.start()
  await until(() => r.ackedBatchId === 4n, 5000, 'batch 4')
  t.same(s.seen, [1n, 3n, 4n])
  t.equal(s.attempts.get(2n), 1, 'a 4xx is not retried')
  t.equal(r.status().rejectedBatches, 1)
  const rows = store.db.prepare('SELECT sink_id, batch_id, reason FROM sink_rejections').all() as { sink_id: string; batch_id: bigint; reason: string }[]
  t.same(rows.map((x) => [x.sink_id, x.batch_id, x.reason]), [['picky', 2n, 'HTTP 422: bad batch']])
  t.match(metrics.render(), /fieldproof_sink_rejected_total\{sink="picky"\} 1/)
  await r.stop()
  pipeline.stop()
  store.close()
})

t.test('SinkBatch: lazy readings, leaves, JSON and proofs that verify', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  await sealBatches(pipeline, 2, 7)
  let got: SinkBatch | undefined
  const r = new SinkRunner({ sink: { id: 'p', send: async (b) => ((got = b.id === 2n ? b : got), { ok: true }) }, settings: FAST, store, log })
  r.start()
  await until(() => r.ackedBatchId === 2n)
  await r.stop()
  const b = got as SinkBatch
  t.equal(b.gateway, TEST_ADDRESS)
  t.same(b.seqs(), [8n, 9n, 10n, 11n, 12n, 13n, 14n])
  t.equal(b.leaves().length, 7)
  t.equal(b.readingJson()[0]?.deviceId, 'dev-0')
  t.equal(b.prev()?.header.batchId, 1n)
  for (const p of b.proofs()) t.ok(verifyProofBundle(p, { expectedGateway: TEST_ADDRESS }).ok)
  pipeline.stop()
  store.close()
})

t.test('retention prunes only what every sink acknowledged (one sink stuck)', async (t) => {
  const dir = t.testdir({})
  let now = 1_000_000
  const metrics = new MetricsRegistry()
  const holder: { group?: SinkRunners } = {}
  const { store, pipeline } = openPipeline(dir, { retentionMs: 1000, now: () => now, metrics, ackedBatchId: () => holder.group?.minAcked() ?? 0n })
  await sealBatches(pipeline, 5)
  const good = scripted('good', () => ({ ok: true }))
  const stuck = scripted('stuck', (b) => (b.id <= 2n ? { ok: true } : { ok: false, retry: true, reason: 'HTTP 500' }))
  const rg = new SinkRunner({ sink: good.sink, settings: FAST, store, log })
  const rs = new SinkRunner({ sink: stuck.sink, settings: FAST, store, log })
  holder.group = new SinkRunners([rg, rs], metrics)
  holder.group.start()
  await until(() => rg.ackedBatchId === 5n && rs.state === 'stuck', 5000, 'good done, other stuck')
  t.equal(rs.ackedBatchId, 2n)
  now += 10_000
  const pruned = pipeline.prune()
  t.equal(pruned.batches, 2, 'batches 1-2 pruned: both sinks have them')
  t.same(store.batchesAfter(0n, 10).map((b) => b.id), [3n, 4n, 5n], 'batch 3 on, which the stuck sink still needs, are kept')
  t.equal(store.readingsInRange(1n, 10n).length, 0)
  t.equal(store.readingsInRange(11n, 25n).length, 15)
  const status = holder.group.status()
  t.same(status.map((s) => [s.id, s.ackedBatchId, s.backlogBatches, s.state]), [['good', '5', 0, 'idle'], ['stuck', '2', 3, 'stuck']])
  t.match(metrics.render(), /fieldproof_sink_backlog_batches\{sink="stuck"\} 3/)
  await holder.group.stop()
  pipeline.stop()
  store.close()
})

t.test('a new sink starts at the oldest stored batch and holds retention from then on', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  await sealBatches(pipeline, 3)
  const r = new SinkRunner({ sink: { id: 'late', send: async () => ({ ok: false, retry: true, reason: 'down' }) }, settings: FAST, store, log })
  t.equal(r.ackedBatchId, 0n)
  t.equal(store.cursor('late')?.ackedBatchId, 0n, 'cursor row written at creation')
  pipeline.stop()
  store.close()
})
