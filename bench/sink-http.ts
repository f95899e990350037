// HTTP sink benchmark: batches per second from the gateway's store through
// the sink runner and the HTTP sink to the reference receiver (which
// verifies every batch and stores it with synchronous=FULL), printed beside
// the receiver's raw verification rate measured in the same run (decode +
// signature recovery + canonical decode + leaves + Merkle root, no HTTP, no
// storage). Never asserted in tests.
//
//   bash scripts/run-node bench/sink-http.ts [--batches 200] [--readings 1000] [--payload canonical|leaves] [--format json|cbor]

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { MetricsRegistry } from '../gateway/src/pipeline/metrics.ts'
import { SinkRunner, SinkRunners, sinkBatchFromStore } from '../gateway/src/pipeline/sink-runner.ts'
import { decodeWire, encodeWire, type WireFormat, type WirePayload } from '../gateway/src/pipeline/upstream-wire.ts'
import { Receiver, ReceiverServer } from '../gateway/src/receiver/receiver.ts'
import { verifyWireBatch } from '../gateway/src/receiver/verify.ts'
import { HttpSink } from '../gateway/src/sinks/http/http.ts'
import { openPipeline, reading } from '../test/helpers/readings.ts'

const { values } = parseArgs({
  options: { batches: { type: 'string', default: '200' }, readings: { type: 'string', default: '1000' }, payload: { type: 'string', default: 'canonical' }, format: { type: 'string', default: 'json' } },
})
const BATCHES = Number(values.batches)
const PER = Number(values.readings)
const payload = values.payload as WirePayload
const format = values.format as WireFormat

const dir = mkdtempSync(join(tmpdir(), 'fieldproof-bench-sink-'))
try {
  // The gateway side: BATCHES sealed batches of PER readings.
  const { store, pipeline } = openPipeline(dir, { batchMaxReadings: PER, commitMaxReadings: 5000, maxPending: PER * 4 })
  for (let b = 0; b < BATCHES; b++) await pipeline.ingest(Array.from({ length: PER }, (_, i) => reading(b * PER + i)))
  pipeline.seal()
  const rows = store.batchesAfter(0n, BATCHES)
  process.stderr.write(`${rows.length} batches of ${PER} readings sealed; payload ${payload}, ${format}\n`)

  // Raw ceiling: the receiver's verification alone, over the same bodies.
  const bodies = rows.map((r) => encodeWire(sinkBatchFromStore(store, r), payload, format))
  let t0 = performance.now()
  for (const { body, contentType } of bodies) {
    const d = decodeWire(body, contentType)
    if (!d.ok || !verifyWireBatch(d.doc).ok) throw new Error('verification failed')
  }
  const rawS = (performance.now() - t0) / 1000

  // Through the sink to a receiving server on 127.0.0.1.
  const rx = new Receiver({ dbPath: join(dir, 'rx.db') })
  const server = new ReceiverServer(rx)
  const { port } = await server.listen('127.0.0.1', 0)
  const sink = new HttpSink({ url: `http://127.0.0.1:${port}/v1/batches`, format, payload })
  const runner = new SinkRunner({ sink, settings: { backoffBaseMs: 10, backoffMaxMs: 100, stuckAfterFailures: 10, timeoutMs: 30_000 }, store, log: pino({ level: 'silent' }) })
  new SinkRunners([runner], new MetricsRegistry())
  t0 = performance.now()
  runner.start()
  const last = rows[rows.length - 1]?.id ?? 0n
  while (runner.ackedBatchId < last) await new Promise((r) => setTimeout(r, 2))
  const sinkS = (performance.now() - t0) / 1000
  await runner.stop()
  await server.close()
  const stored = rx.batchIds(rows[0]?.gateway ?? '').length
  rx.close()
  pipeline.stop()
  store.close()
  if (stored !== rows.length) throw new Error(`receiver stored ${stored} of ${rows.length}`)

  const rawRate = rows.length / rawS
  const sinkRate = rows.length / sinkS
  const bytes = bodies.reduce((n, b) => n + b.body.length, 0)
  console.log(`receiver verification only : ${rawRate.toFixed(1)} batches/s (${((rawRate * PER) / 1000).toFixed(1)}k readings/s)`)
  console.log(`HTTP sink → receiver (verify + store, synchronous=FULL): ${sinkRate.toFixed(1)} batches/s (${((sinkRate * PER) / 1000).toFixed(1)}k readings/s, ${((bytes / sinkS) / 1e6).toFixed(1)} MB/s)`)
  console.log(`ratio: ${(sinkRate / rawRate).toFixed(2)} of the verification ceiling`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
