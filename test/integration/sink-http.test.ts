// The HTTP sink against a misbehaving upstream (reliability plan T08, T10,
// T11): 500s, hung requests, reset connections, slow answers, a commit
// followed by an error; then recovery. Every batch must arrive, in order,
// with duplicates only as retries of the same batch; a 4xx parks only its
// batch.

import t from 'tap'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import pino from 'pino'
import { MetricsRegistry } from '../../gateway/src/pipeline/metrics.ts'
import { SinkRunner, SinkRunners } from '../../gateway/src/pipeline/sink-runner.ts'
import { decodeWire } from '../../gateway/src/pipeline/upstream-wire.ts'
import { Receiver } from '../../gateway/src/receiver/receiver.ts'
import { HttpSink } from '../../gateway/src/sinks/http/http.ts'
import { openPipeline, reading, TEST_ADDRESS } from '../helpers/readings.ts'

const log = pino({ level: 'silent' })

type Mode = 'ok' | '500' | 'hang' | 'reset' | 'commit-then-500' | 'slow-ok' | 'drip' | '503-retry-after'

async function upstream(t: { teardown: (fn: () => Promise<void>) => void }, handle: (req: IncomingMessage, body: Buffer, res: ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => handle(req, Buffer.concat(chunks), res))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r())
    server.closeAllConnections()
  }))
  const a = server.address()
  return { url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/v1/batches`, server }
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('a misbehaving upstream: every batch arrives in order, duplicates only as retries', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  for (let b = 0; b < 10; b++) {
    await pipeline.ingest(Array.from({ length: 5 }, (_, i) => reading(b * 5 + i)))
    pipeline.seal()
  }
  const rx = new Receiver({ dbPath: join(dir, 'rx.db') })
  t.teardown(() => rx.close())
  const script: Mode[] = ['500', 'hang', 'reset', 'commit-then-500', 'slow-ok', '500', 'drip', 'reset', '503-retry-after', 'hang', 'commit-then-500', 'reset']
  const ledger: { batchId: string; mode: Mode; code?: string; key?: string }[] = []
  const { url } = await upstream(t, (req, body, res) => {
    const mode = script.shift() ?? 'ok'
    const batchId = String(req.headers['x-fieldproof-batch-id'])
    ledger.push({ batchId, mode, key: String(req.headers['idempotency-key']) })
    const forward = () => {
      const r = rx.receive(body, req.headers['content-type'])
      const last = ledger[ledger.length - 1]
      if (last) last.code = r.body.code
      return r
    }
    switch (mode) {
      case '500':
        res.writeHead(500).end('internal error')
        return
      case 'hang':
        return // never answers: the sink's timeout must fire
      case 'reset':
        req.socket.destroy()
        return
      case 'commit-then-500':
        forward()
        res.writeHead(500).end('stored, then failed to answer')
        return
      case 'slow-ok':
        setTimeout(() => {
          const r = forward()
          res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body))
        }, 120)
        return
      case 'drip':
        // Headers, then one byte now and then: past the timeout.
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{')
        return
      case '503-retry-after':
        res.writeHead(503, { 'retry-after': '0' }).end('busy')
        return
      default: {
        const r = forward()
        res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body))
      }
    }
  })
  const sink = new HttpSink({ url, format: 'json', payload: 'canonical', auth: { header: 'Authorization', value: 'Bearer x' } })
  const runner = new SinkRunner({ sink, settings: { backoffBaseMs: 10, backoffMaxMs: 80, stuckAfterFailures: 100, timeoutMs: 400 }, store, log })
  const metrics = new MetricsRegistry()
  const group = new SinkRunners([runner], metrics)
  group.start()
  await until(() => runner.ackedBatchId === 10n, 20_000, 'all 10 batches')
  await group.stop()

  t.same(rx.batchIds(TEST_ADDRESS), [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n], 'the receiver holds every batch once')
  // Batch ids the upstream saw, in order: never backwards, a repeat only right after a failure of that batch.
  const ids = ledger.map((l) => Number(l.batchId))
  for (let i = 1; i < ids.length; i++) {
    const prev = ids[i - 1] as number
    const cur = ids[i] as number
    t.ok(cur === prev || cur === prev + 1, `request ${i}: batch ${cur} after batch ${prev}`)
    if (cur === prev) t.not(ledger[i - 1]?.mode, 'ok', `batch ${cur} resent only after a failed attempt`)
  }
  t.ok(ledger.every((l) => l.key === `${TEST_ADDRESS}:${l.batchId}`), 'Idempotency-Key is gateway:batch')
  const dupes = ledger.filter((l) => l.code === 'duplicate').map((l) => l.batchId)
  const committed = ledger.filter((l) => l.mode === 'commit-then-500').map((l) => l.batchId)
  t.same(dupes, committed, 'duplicates only where the upstream stored the batch and then failed')
  t.equal(script.length, 0, 'every failure mode was exercised')
  const failed = ledger.filter((l) => l.mode !== 'ok' && l.mode !== 'slow-ok').length
  t.equal(failed, 11)
  t.equal(metrics.render().match(/fieldproof_sink_failures_total\{sink="http"\} (\d+)/)?.[1], String(failed), 'every failed attempt counted')
  t.same(runner.status().lastError, null)
  pipeline.stop()
  store.close()
})

t.test('a 4xx parks only that batch; CBOR and leaves bodies decode', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  for (let b = 0; b < 5; b++) {
    await pipeline.ingest(Array.from({ length: 3 }, (_, i) => reading(b * 3 + i)))
    pipeline.seal()
  }
  const got: string[] = []
  const { url } = await upstream(t, (req, body, res) => {
    const d = decodeWire(body, req.headers['content-type'])
    if (!d.ok) {
      res.writeHead(400).end(d.reason)
      return
    }
    const id = d.doc.signed.header.batchId.toString()
    if (id === '3') {
      res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"batch 3 refused"}')
      return
    }
    t.equal(d.doc.leaves?.length, 3, 'leaves payload')
    got.push(id)
    res.writeHead(201).end()
  })
  const sink = new HttpSink({ url, format: 'cbor', payload: 'leaves' })
  const runner = new SinkRunner({ sink, settings: { backoffBaseMs: 10, backoffMaxMs: 50, stuckAfterFailures: 5, timeoutMs: 1000 }, store, log })
  new SinkRunners([runner], new MetricsRegistry())
  runner.start()
  await until(() => runner.ackedBatchId === 5n, 10_000, 'batch 5')
  await runner.stop()
  t.same(got, ['1', '2', '4', '5'])
  t.equal(runner.status().rejectedBatches, 1)
  t.match(runner.status().lastError, null)
  const rej = store.db.prepare('SELECT batch_id, reason FROM sink_rejections').all() as { batch_id: bigint; reason: string }[]
  t.same(rej.map((r) => [r.batch_id, r.reason]), [[3n, 'HTTP 422: {"error":"batch 3 refused"}']])
  pipeline.stop()
  store.close()
})
