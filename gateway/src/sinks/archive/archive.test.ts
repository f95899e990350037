import t from 'tap'
import { createHash } from 'node:crypto'
import { appendFileSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { verifyProofBundle } from '../../core/proof.ts'
import { MetricsRegistry } from '../../pipeline/metrics.ts'
import { SinkRunner, SinkRunners, sinkBatchFromStore } from '../../pipeline/sink-runner.ts'
import { openPipeline, reading, TEST_ADDRESS } from '../../../../test/helpers/readings.ts'
import { runCli } from '../../../../test/helpers/gateway-process.ts'
import { ArchiveSink, ArchiveWriter, INDEX_FILE, type ArchiveIndexEntry } from './archive.ts'

const files = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
const index = (dir: string) => readFileSync(join(dir, INDEX_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ArchiveIndexEntry)

t.test('content-addressed files whose proofs verify, an index, idempotent rewrites, and export --archive', async (t) => {
  const dir = t.testdir({ state: {} })
  const state = join(dir, 'state')
  const { store, pipeline } = openPipeline(state)
  for (let b = 0; b < 4; b++) {
    await pipeline.ingest(Array.from({ length: 6 }, (_, i) => reading(b * 6 + i)))
    pipeline.seal()
  }
  const out = join(dir, 'archive')
  const sink = new ArchiveSink({ dir: out })
  const runner = new SinkRunner({ sink, settings: { backoffBaseMs: 10, backoffMaxMs: 50, stuckAfterFailures: 3, timeoutMs: 5000 }, store, log: pino({ level: 'silent' }) })
  new SinkRunners([runner], new MetricsRegistry())
  runner.start()
  const end = Date.now() + 10_000
  while (runner.ackedBatchId < 4n && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  await runner.stop()

  const names = files(out)
  t.equal(names.length, 4)
  for (const name of names) {
    const bytes = readFileSync(join(out, name))
    t.equal(name, `${createHash('sha256').update(bytes).digest('hex')}.json`, 'name = sha256 of the content')
    const doc = JSON.parse(bytes.toString('utf8')) as { type: string; batchId: string; proofs: unknown[]; prevBatch?: unknown }
    t.equal(doc.type, 'fieldproof.archive')
    t.equal(doc.proofs.length, 6)
    for (const p of doc.proofs) {
      const r = verifyProofBundle(p, { expectedGateway: TEST_ADDRESS })
      t.ok(r.ok, `batch ${doc.batchId}: proof verifies`)
      if (doc.batchId !== '1') t.match(r.checks.find((c) => c.name === 'prev-link')?.detail, /^links to batch/)
    }
  }
  const idx = index(out)
  t.same(idx.map((e) => e.batchId), ['1', '2', '3', '4'])
  t.same(idx.map((e) => e.file).sort(), names)
  t.ok(readdirSync(out).every((f) => !f.endsWith('.tmp')), 'no temporary files left')

  // Writing a batch again: same file, no second index line; a torn last line is cut off first.
  appendFileSync(join(out, INDEX_FILE), '{"batchId":"9","fi')
  const again = new ArchiveWriter(out)
  const row = store.batch(2n)
  if (!row) throw new Error('batch 2 missing')
  const e = again.write(sinkBatchFromStore(store, row))
  t.equal(e.file, idx[1]?.file)
  t.same(index(out).map((x) => x.batchId), ['1', '2', '3', '4'], 'index unchanged, torn line repaired')
  pipeline.stop()
  store.close()

  // The export command writes the same files.
  const exp = join(dir, 'exported')
  const r = await runCli(['export', '--archive', exp, '--from-batch', '2', '--to-batch', '3', '--state-dir', state])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /archived 2 batches/)
  t.same(files(exp), [idx[1]?.file, idx[2]?.file].sort(), 'identical, content-addressed files')
  t.same(index(exp).map((x) => x.batchId), ['2', '3'])
  const bad = await runCli(['export', '--from-batch', '2', '--state-dir', state])
  t.equal(bad.code, 2, '--from-batch needs --archive')
})
