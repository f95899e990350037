import t from 'tap'
import { join } from 'node:path'
import { decodeReading, encodeReading } from '../core/canonical.ts'
import { hashBatchHeaderBytes, signBatchHeader, signDigest } from '../core/batch.ts'
import { bytesToHex, hexToBytes } from '../core/hex.ts'
import type { Hex, SignedBatch } from '../core/types.ts'
import { sinkBatchFromStore } from '../pipeline/sink-runner.ts'
import type { SinkBatch } from '../pipeline/sink.ts'
import { encodeWire, type WireFormat, type WirePayload } from '../pipeline/upstream-wire.ts'
import { openPipeline, reading, TEST_ADDRESS, TEST_KEY } from '../../../test/helpers/readings.ts'
import { Receiver, ReceiverServer } from './receiver.ts'

const OTHER_KEY = ('0x' + '11'.repeat(32)) as Hex

async function gatewayBatches(dir: string, n: number): Promise<SinkBatch[]> {
  const { store, pipeline } = openPipeline(dir)
  for (let b = 0; b < n; b++) {
    await pipeline.ingest(Array.from({ length: 4 }, (_, i) => reading(b * 4 + i)))
    pipeline.seal()
  }
  const out = store.batchesAfter(0n, 100).map((row) => sinkBatchFromStore(store, row))
  // Load everything before the store closes.
  for (const b of out) b.readings()
  pipeline.stop()
  return out
}

/** A SinkBatch with a replaced signed header and/or readings. */
function variant(b: SinkBatch, over: { signed?: SignedBatch; canonical?: (i: number, c: Uint8Array) => Uint8Array }): SinkBatch {
  const rs = b.readings().map((r, i) => ({ ...r, canonical: over.canonical ? over.canonical(i, r.canonical) : r.canonical }))
  return { ...b, signed: over.signed ?? b.signed, readings: () => rs, leaves: () => rs.map((r) => r.leaf), seqs: () => rs.map((r) => r.seq) }
}

function post(rx: Receiver, b: SinkBatch, payload: WirePayload = 'canonical', format: WireFormat = 'json') {
  const { body, contentType } = encodeWire(b, payload, format)
  return rx.receive(body, contentType)
}

t.test('accepts a chain of batches, answers duplicates 200 and gaps 409', async (t) => {
  const dir = t.testdir({})
  const batches = await gatewayBatches(dir, 5)
  const rx = new Receiver({ dbPath: join(dir, 'rx.db') })
  t.teardown(() => rx.close())
  const [b1, b2, b3, b4, b5] = batches as [SinkBatch, SinkBatch, SinkBatch, SinkBatch, SinkBatch]
  t.equal(post(rx, b2).status, 409, 'first batch must be batch 1')
  t.match(post(rx, b1), { status: 200, body: { code: 'accepted', gateway: TEST_ADDRESS, batchId: '1' } })
  t.match(post(rx, b1), { status: 200, body: { code: 'duplicate', duplicate: true } }, 'exact duplicate is idempotent')
  t.match(post(rx, b3), { status: 409, body: { code: 'gap', expectedBatchId: '2' } }, 'reordered batch: a gap')
  t.match(post(rx, b2, 'leaves'), { status: 200, body: { code: 'accepted' } }, 'leaves payload')
  t.match(post(rx, b3, 'canonical', 'cbor'), { status: 200, body: { code: 'accepted' } }, 'CBOR body')
  t.match(post(rx, b4, 'leaves', 'cbor'), { status: 200 })
  t.match(post(rx, b5), { status: 200 })
  t.match(rx.gateways(), [{ address: TEST_ADDRESS, firstBatchId: '1', lastBatchId: '5', batches: 5, readings: 20, lastHash: b5.signed.hash }])
  t.same(rx.batchIds(TEST_ADDRESS), [1n, 2n, 3n, 4n, 5n])
})

t.test('rejects tampered and forged batches', async (t) => {
  const dir = t.testdir({})
  const batches = await gatewayBatches(dir, 3)
  const rx = new Receiver({ dbPath: join(dir, 'rx.db') })
  t.teardown(() => rx.close())
  const [b1, b2, b3] = batches as [SinkBatch, SinkBatch, SinkBatch]
  t.equal(post(rx, b1).status, 200)

  // An edited reading: still canonical, but its leaf no longer gives the signed root.
  const edited = variant(b2, {
    canonical: (i, c) => {
      if (i !== 1) return c
      const r = decodeReading(c)
      return encodeReading({ ...r, metrics: r.metrics.map((m) => (m.name === 'temperature_c' ? { ...m, value: m.value + 10 } : m)) })
    },
  })
  t.match(post(rx, edited), { status: 422, body: { code: 'invalid-merkle' } })
  // A flipped byte that is no longer a canonical encoding.
  const garbled = variant(b2, { canonical: (i, c) => (i === 0 ? Uint8Array.from(c, (x, k) => (k === c.length - 1 ? x ^ 0xff : x)) : c) })
  t.match(post(rx, garbled), { status: 422, body: { code: /^invalid-(canonical|merkle)$/ } })
  // A tampered leaf in leaves mode.
  const leafTampered: SinkBatch = { ...b2, leaves: () => b2.leaves().map((l, i) => (i === 2 ? new Uint8Array(32).fill(7) : l)) }
  t.match(post(rx, leafTampered, 'leaves'), { status: 422, body: { code: 'invalid-merkle' } })
  // Signed by another key while naming this gateway.
  const forged = variant(b2, { signed: { ...b2.signed, signature: signDigest(hashBatchHeaderBytes(b2.signed.header), hexToBytes(OTHER_KEY, 32)) } })
  t.match(post(rx, forged), { status: 422, body: { code: 'invalid-signature' } })
  // An edited header under the original signature.
  const reheadered = variant(b2, { signed: { ...b2.signed, header: { ...b2.signed.header, sealedAtMs: b2.signed.header.sealedAtMs + 1n } } })
  t.match(post(rx, reheadered), { status: 422, body: { code: 'invalid-signature' } })
  // A broken chain link, properly signed by the gateway (a fork).
  const fork = variant(b2, { signed: signBatchHeader({ ...b2.signed.header, prevBatchHash: bytesToHex(new Uint8Array(32).fill(9)) }, TEST_KEY) })
  t.match(post(rx, fork), { status: 409, body: { code: 'broken-link', expectedBatchId: '2' } })
  // None of that was stored; the real batch 2 still links.
  t.equal(post(rx, b2).status, 200)
  // A different batch under a stored id.
  const twin = variant(b2, { signed: signBatchHeader({ ...b2.signed.header, sealedAtMs: 1n }, TEST_KEY) })
  t.match(post(rx, twin), { status: 409, body: { code: 'conflict' } })
  t.equal(post(rx, b3).status, 200)
  // Malformed bodies.
  t.match(rx.receive(new TextEncoder().encode('{"type":"x"}'), 'application/json'), { status: 400 })
  t.match(rx.receive(new TextEncoder().encode('not json'), 'application/json'), { status: 400 })
  t.match(rx.receive(new Uint8Array([1, 2, 3]), 'text/plain'), { status: 415 })
  t.same(rx.batchIds(TEST_ADDRESS), [1n, 2n, 3n])
})

t.test('HTTP server: token, allowlist, routes', async (t) => {
  const dir = t.testdir({})
  const [b1] = (await gatewayBatches(dir, 1)) as [SinkBatch]
  const other = new Receiver({ dbPath: join(dir, 'a.db'), token: 's3cret', allow: ['0x' + '22'.repeat(20)] })
  const server = new ReceiverServer(other)
  const { port } = await server.listen('127.0.0.1', 0)
  t.teardown(async () => {
    await server.close()
    other.close()
  })
  const url = `http://127.0.0.1:${port}`
  const { body, contentType } = encodeWire(b1, 'canonical', 'json')
  const noAuth = await fetch(`${url}/v1/batches`, { method: 'POST', body, headers: { 'content-type': contentType } })
  t.equal(noAuth.status, 401)
  const wrongGw = await fetch(`${url}/v1/batches`, { method: 'POST', body, headers: { 'content-type': contentType, authorization: 'Bearer s3cret' } })
  t.equal(wrongGw.status, 403)
  t.match(await wrongGw.json(), { code: 'not-allowed' })
  t.equal((await fetch(`${url}/healthz`)).status, 200)
  t.equal((await fetch(`${url}/nope`, { headers: { authorization: 'Bearer s3cret' } })).status, 404)
  const gws = await fetch(`${url}/v1/gateways`, { headers: { authorization: 'Bearer s3cret' } })
  t.same(await gws.json(), { gateways: [] })
  t.throws(() => new Receiver({ dbPath: join(dir, 'b.db'), allow: ['nope'] }), /not a 20-byte/)
})
