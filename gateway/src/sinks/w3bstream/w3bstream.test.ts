import t from 'tap'
import { createServer } from 'node:http'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { keccak256 as viemKeccak, recoverAddress, type Hex as ViemHex } from 'viem'
import { sign } from 'viem/accounts'
import { signDigest, verifySignedBatch } from '../../core/batch.ts'
import { leafHash } from '../../core/canonical.ts'
import { bytesToHex, hexToBytes } from '../../core/hex.ts'
import { buildMerkleTree } from '../../core/merkle.ts'
import { MetricsRegistry } from '../../pipeline/metrics.ts'
import { SinkRunner, SinkRunners } from '../../pipeline/sink-runner.ts'
import { decodeWire } from '../../pipeline/upstream-wire.ts'
import { openPipeline, reading, TEST_ADDRESS, TEST_KEY } from '../../../../test/helpers/readings.ts'
import { buildMessage, messageBody, recoverMessageSender, signedBytes } from './message.ts'
import { W3BSTREAM_VECTOR as V } from './w3bstream.vectors.ts'
import { W3bstreamSink } from './w3bstream.ts'

const ROOT = join(import.meta.dirname, '../../../..')

t.test('vector W1: signed bytes, hash and signature', async (t) => {
  const m = { projectID: V.projectID, projectVersion: V.projectVersion, data: V.data }
  const bytes = signedBytes(m)
  t.equal(new TextDecoder().decode(bytes), V.signedText)
  t.equal(bytesToHex(bytes), V.signedHex)
  t.equal(viemKeccak(bytes), V.keccak256, 'keccak256 (viem as oracle)')
  const msg = buildMessage(m, (d) => signDigest(d, hexToBytes(V.privateKey, 32)))
  t.equal(msg.signature, V.signature)
  t.equal(recoverMessageSender(msg), V.address)
  // An independent signer gives the same RFC 6979 signature.
  const s = await sign({ hash: V.keccak256, privateKey: V.privateKey })
  t.equal(s.r.slice(2).padStart(64, '0') + s.s.slice(2).padStart(64, '0') + (s.yParity === 1 ? '01' : '00'), V.signature.slice(2))
  t.equal(await recoverAddress({ hash: V.keccak256, signature: V.signature }), V.address)
  t.equal(messageBody(msg), `{"projectID":42,"projectVersion":"0.1","data":${JSON.stringify(V.data).replace('<', '\\u003c').replace('&', '\\u0026').replace('>', '\\u003e')},"signature":"${V.signature}"}`)
  // A tampered field recovers someone else; v 27/28 is not what go-ethereum accepts.
  t.not(recoverMessageSender({ ...msg, projectID: 43 }), V.address)
  t.equal(recoverMessageSender({ ...msg, signature: msg.signature.slice(0, -2) + '1b' }), undefined)
  // The vector as printed in docs/upstream-protocol.md.
  const doc = readFileSync(join(ROOT, 'docs/upstream-protocol.md'), 'utf8')
  for (const v of [V.signedText, V.signedHex, V.keccak256, V.signature, V.address]) t.ok(doc.includes(v), `docs hold ${v.slice(0, 24)}…`)
})

/**
 * A W3bstream sequencer's POST /message, written from the published handler
 * (cmd/apinode/api/http.go): bind the JSON, blank the signature, marshal the
 * struct again (Go field order, HTML-safe escapes, signature omitted),
 * keccak256, recover the public key from [R || S || V] with V 0/1.
 */
function goString(s: string): string {
  let out = JSON.stringify(s)
  for (const [c, e] of [['<', '\\u003c'], ['>', '\\u003e'], ['&', '\\u0026'], ['\u2028', '\\u2028'], ['\u2029', '\\u2029']]) out = out.split(c as string).join(e as string)
  return out
}

t.test('the sink delivers through a runner to a sequencer built from the published API', async (t) => {
  const dir = t.testdir({})
  const { store, pipeline } = openPipeline(dir)
  for (let b = 0; b < 4; b++) {
    await pipeline.ingest(Array.from({ length: 3 }, (_, i) => reading(b * 3 + i)))
    pipeline.seal()
  }
  const messages: { device: string; projectID: number; projectVersion: string; data: string }[] = []
  let failFirst = true
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      if (req.method !== 'POST' || req.url !== '/message') return void res.writeHead(404).end()
      if (failFirst) {
        failFirst = false
        return void res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"db down"}')
      }
      let body: { projectID?: unknown; projectVersion?: unknown; data?: unknown; signature?: unknown }
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch (e) {
        return void res.writeHead(400).end(JSON.stringify({ error: String(e) }))
      }
      const { projectID, projectVersion, data, signature } = body
      if (typeof projectID !== 'number' || typeof projectVersion !== 'string' || typeof data !== 'string' || typeof signature !== 'string' || !signature) {
        return void res.writeHead(400).end('{"error":"binding"}')
      }
      const reqJson = `{"projectID":${projectID},"projectVersion":${goString(projectVersion)},"data":${goString(data)}}`
      const v = parseInt(signature.slice(-2), 16)
      if (!/^0x[0-9a-f]{130}$/i.test(signature) || v > 1) return void res.writeHead(400).end('{"error":"invalid signature recovery id"}')
      const device = await recoverAddress({ hash: viemKeccak(new TextEncoder().encode(reqJson)), signature: signature as ViemHex })
      messages.push({ device, projectID, projectVersion, data })
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messageID: randomUUID() }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const port = (server.address() as { port: number }).port
  const key = hexToBytes(TEST_KEY, 32)
  const sink = new W3bstreamSink({ url: `http://127.0.0.1:${port}/message`, projectId: 7, projectVersion: '1.0', payload: 'leaves', signDigest: (d) => signDigest(d, key) })
  const runner = new SinkRunner({ sink, settings: { backoffBaseMs: 10, backoffMaxMs: 50, stuckAfterFailures: 5, timeoutMs: 2000 }, store, log: pino({ level: 'silent' }) })
  new SinkRunners([runner], new MetricsRegistry())
  runner.start()
  const end = Date.now() + 10_000
  while (runner.ackedBatchId < 4n && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  await runner.stop()
  t.equal(messages.length, 4, 'one message per batch (the 500 was retried)')
  for (const [i, m] of messages.entries()) {
    t.equal(m.device, TEST_ADDRESS, 'the sequencer recovers the gateway address')
    t.equal(m.projectID, 7)
    const d = decodeWire(new TextEncoder().encode(m.data), 'application/json')
    if (!d.ok) throw new Error(d.reason)
    t.equal(d.doc.signed.header.batchId, BigInt(i + 1))
    t.ok(verifySignedBatch(d.doc.signed), 'the batch inside verifies')
    t.equal(bytesToHex(buildMerkleTree(d.doc.leaves ?? []).root), d.doc.signed.header.merkleRoot)
  }
  // Leaves are the stored ones.
  const first = store.readingsInRange(1n, 3n)
  t.same(first.map((r) => bytesToHex(leafHash(r.seq, r.canonical))), first.map((r) => bytesToHex(r.leaf)))
  t.match(sink.status(), { lastStatus: 200, projectId: 7 })
  pipeline.stop()
  store.close()
})
