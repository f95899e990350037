import t from 'tap'
import { signBatchHeader, verifySignedBatch } from '../core/batch.ts'
import { leafHash } from '../core/canonical.ts'
import { bytesToHex } from '../core/hex.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import type { BatchHeader } from '../core/types.ts'
import { TEST_ADDRESS, TEST_KEY } from '../../../test/helpers/readings.ts'
import { SealWorker, type SealOutcome } from './seal-worker.ts'

/** n distinct byte strings standing for canonical readings (the thread hashes bytes; it does not decode them). */
function readingsOf(n: number, salt: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => new TextEncoder().encode(`reading ${salt}/${i}`.repeat(1 + (i % 5))))
}

function headerFor(n: number, batchId: bigint): BatchHeader {
  return { gateway: TEST_ADDRESS, batchId, firstSeq: 1n, lastSeq: BigInt(n), count: n, merkleRoot: '0x', prevBatchHash: ('0x' + '11'.repeat(32)) as `0x${string}`, sealedAtMs: 1_764_000_000_000n }
}

const sealOn = (w: SealWorker, header: BatchHeader, canonicals: Uint8Array[]) => new Promise<SealOutcome>((resolve) => w.seal(header, canonicals, resolve))

t.test('the thread builds and signs a batch exactly as the event loop does', async (t) => {
  const w = new SealWorker(TEST_KEY)
  t.teardown(() => w.close())
  t.notOk(w.started, 'no thread before the first job')
  for (const [n, id] of [[1, 1n], [2, 2n], [7, 3n], [1000, 4n]] as const) {
    const canonicals = readingsOf(n, Number(id))
    const header = headerFor(n, id)
    const o = await sealOn(w, header, canonicals)
    if (!o.ok) throw new Error(o.message)
    // The same leaves, root, EIP-712 hash and RFC 6979 signature as made here.
    const leaves = canonicals.map((c, i) => leafHash(header.firstSeq + BigInt(i), c))
    t.equal(bytesToHex(o.leaves), bytesToHex(Buffer.concat(leaves)), `${n} readings: leaves`)
    const root = buildMerkleTree(leaves).root
    const here = signBatchHeader({ ...header, merkleRoot: bytesToHex(root) }, TEST_KEY)
    t.equal(bytesToHex(o.root), bytesToHex(root), `${n} readings: root`)
    t.equal(o.hash, here.hash, `${n} readings: header hash`)
    t.equal(o.signature, here.signature, `${n} readings: signature`)
    t.ok(verifySignedBatch({ header: { ...header, merkleRoot: bytesToHex(o.root) }, hash: o.hash, signature: o.signature }))
  }
  t.ok(w.started)
  t.equal(w.answered, 4)
})

t.test('a job the thread cannot do is answered with the reason', async (t) => {
  const w = new SealWorker(TEST_KEY)
  t.teardown(() => w.close())
  const none = await sealOn(w, headerFor(0, 1n), [])
  t.equal(none.ok, false)
  t.match(!none.ok && none.message, /no leaves/)
  // A header naming another gateway: the key refuses to sign it.
  const other = await sealOn(w, { ...headerFor(2, 1n), gateway: '0x0000000000000000000000000000000000000001' }, readingsOf(2, 9))
  t.equal(other.ok, false)
  t.match(!other.ok && other.message, /signing key is/)
  t.equal(w.answered, 0)
  // The thread is still there for the next job.
  t.equal((await sealOn(w, headerFor(3, 1n), readingsOf(3, 1))).ok, true)
})

t.test('a thread that dies answers its jobs as failed; the next job starts a new one', async (t) => {
  const errors: unknown[] = []
  const w = new SealWorker(TEST_KEY, (e) => errors.push(e))
  t.teardown(() => w.close())
  const p = sealOn(w, headerFor(10, 1n), readingsOf(10, 1))
  // Still loading its modules: it cannot have answered yet.
  await w.terminate()
  const o = await p
  t.equal(o.ok, false)
  t.match(!o.ok && o.message, /seal thread stopped/)
  t.equal(errors.length, 1, 'reported once')
  t.equal(w.pending, 0)
  const again = await sealOn(w, headerFor(10, 1n), readingsOf(10, 1))
  t.equal(again.ok, true, 'a new thread took the next job')
})

t.test('close() answers what is in flight and refuses more', async (t) => {
  const w = new SealWorker(TEST_KEY)
  const p = sealOn(w, headerFor(5, 1n), readingsOf(5, 1))
  await w.close()
  t.equal((await p).ok, false)
  const after = await sealOn(w, headerFor(5, 1n), readingsOf(5, 1))
  t.equal(after.ok, false)
  t.match(!after.ok && after.message, /closed/)
})
