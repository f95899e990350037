// verifyReading / verifyBatch against trees built by @openzeppelin/merkle-tree
// (StandardMerkleTree, leaves ['uint64','bytes32']): reading leaf --readingProof--> batch
// merkleRoot; leaf(batchId, merkleRoot) --batchProof--> anchorRoot stored on chain.
import t from 'tap'
import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import { encodeFunctionData, zeroAddress } from 'viem'
import type { Address, Hex } from 'viem'
import { abi, anchorTree, LEAF_TYPES, makeBatches, readingHash, register, setup } from './fixture.ts'
import type { TestBatch } from './fixture.ts'

const fx = await setup(t)
const G = fx.account(1).address
await register(fx, 1, 2)

const read = <T>(functionName: string, args: readonly unknown[]): Promise<T> =>
  fx.client.readContract({ address: fx.address, abi, functionName, args } as never) as Promise<T>

// Anchor 1: batches 1..4 (1, 2, 5, 8 readings); anchor 2: batch 5 alone (3 readings);
// anchor 3: batches 6..8 (16, 1, 9 readings).
const sizes = [1, 2, 5, 8, 3, 16, 1, 9]
const batches = makeBatches(1n, 1n, sizes)
const groups: Array<{ anchorId: bigint; batches: TestBatch[] }> = [
  { anchorId: 1n, batches: batches.slice(0, 4) },
  { anchorId: 2n, batches: batches.slice(4, 5) },
  { anchorId: 3n, batches: batches.slice(5, 8) },
]
const trees = groups.map((g) => anchorTree(g.batches))
for (const [i, g] of groups.entries()) {
  const first = g.batches[0]?.batchId ?? 0n
  const last = g.batches.at(-1)?.batchId ?? 0n
  await fx.send(1, 'anchor', [first, last, trees[i]?.root])
}

interface Located {
  anchorId: bigint
  batch: TestBatch
  batchProof: Hex[]
}
function locate(batchId: bigint): Located {
  for (const [i, g] of groups.entries()) {
    const idx = g.batches.findIndex((b) => b.batchId === batchId)
    const batch = g.batches[idx]
    const tree = trees[i]
    if (batch !== undefined && tree !== undefined) {
      return { anchorId: g.anchorId, batch, batchProof: tree.getProof([batch.batchId, batch.merkleRoot]) as Hex[] }
    }
  }
  throw new Error(`batch ${batchId} not anchored`)
}

const verifyReading = (
  gateway: Address,
  anchorId: bigint,
  batchId: bigint,
  merkleRoot: Hex,
  seq: bigint,
  hash: Hex,
  readingProof: readonly Hex[],
  batchProof: readonly Hex[],
) => read<boolean>('verifyReading', [gateway, anchorId, batchId, merkleRoot, seq, hash, readingProof, batchProof])

t.test('merkleLeaf equals the StandardMerkleTree leaf hash', async (t) => {
  const b = batches[3]!
  for (const r of b.readings) t.equal(await read('merkleLeaf', [r[0], r[1]]), b.tree.leafHash(r))
  t.equal(await read('merkleLeaf', [2n ** 64n - 1n, readingHash('max')]), StandardMerkleTree.of([[2n ** 64n - 1n, readingHash('max')]], LEAF_TYPES).root)
})

t.test('every reading of every batch verifies on chain', async (t) => {
  let checked = 0
  for (const b of batches) {
    const { anchorId, batchProof } = locate(b.batchId)
    t.equal(await read('findAnchor', [G, b.batchId]), anchorId, `batch ${b.batchId} found in anchor ${anchorId}`)
    t.equal(await read('verifyBatch', [G, anchorId, b.batchId, b.merkleRoot, batchProof]), true)
    const results = await Promise.all(
      b.readings.map((r) => {
        const proof = b.tree.getProof(r) as Hex[]
        if (!StandardMerkleTree.verify(b.merkleRoot, LEAF_TYPES, r, proof)) throw new Error('oracle disagrees')
        return verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof)
      }),
    )
    t.ok(results.every((x) => x), `batch ${b.batchId}: ${results.length} readings`)
    checked += results.length
  }
  t.equal(checked, sizes.reduce((a, b) => a + b, 0))
})

t.test('wrong inputs verify false', async (t) => {
  const b = batches[5]! // batch 6, 16 readings, anchor 3
  const other = batches[3]! // batch 4, anchor 1
  const { anchorId, batchProof } = locate(b.batchId)
  const r = b.readings[7]!
  const proof = b.tree.getProof(r) as Hex[]
  const ok = (label: string, v: Promise<boolean>, want = false) => v.then((got) => t.equal(got, want, label))

  await ok('control: the right inputs', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof), true)
  await ok('wrong seq', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0] + 1n, r[1], proof, batchProof))
  await ok('wrong reading hash', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], readingHash('forged'), proof, batchProof))
  await ok('another reading under this proof', verifyReading(G, anchorId, b.batchId, b.merkleRoot, b.readings[8]![0], b.readings[8]![1], proof, batchProof))
  const flipped = [...proof]
  flipped[1] = `0x${flipped[1]!.slice(2, 65)}${flipped[1]!.slice(65) === '0' ? '1' : '0'}` as Hex
  await ok('tampered reading proof', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], flipped, batchProof))
  await ok('truncated reading proof', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], proof.slice(0, -1), batchProof))
  await ok('empty reading proof', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], [], batchProof))
  await ok('wrong batch proof', verifyReading(G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], proof, locate(8n).batchProof))
  await ok('wrong batch id for the root', verifyReading(G, anchorId, 7n, b.merkleRoot, r[0], r[1], proof, batchProof))
  await ok('wrong anchor id', verifyReading(G, 1n, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof))
  await ok('unknown anchor id', verifyReading(G, 9n, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof))
  await ok('anchor id 0', verifyReading(G, 0n, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof))
  await ok('another gateway', verifyReading(fx.account(3).address, anchorId, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof))
  await ok('zero gateway', verifyReading(zeroAddress, anchorId, b.batchId, b.merkleRoot, r[0], r[1], proof, batchProof))
  await ok('reading of another batch with this batch proof', verifyReading(G, anchorId, b.batchId, other.merkleRoot, other.readings[0]![0], other.readings[0]![1], other.tree.getProof(0) as Hex[], batchProof))

  // verifyBatch: a real leaf of anchor 1 claimed under anchor 3's range is refused by the range check
  const o = locate(other.batchId)
  t.equal(await read('verifyBatch', [G, o.anchorId, other.batchId, other.merkleRoot, o.batchProof]), true, 'control')
  t.equal(await read('verifyBatch', [G, 3n, other.batchId, other.merkleRoot, o.batchProof]), false, 'batch outside the anchor range')
  t.equal(await read('verifyBatch', [G, o.anchorId, other.batchId, b.merkleRoot, o.batchProof]), false, 'wrong merkle root')
})

t.test('single-leaf trees: one batch per anchor, one reading per batch', async (t) => {
  const single = locate(5n) // anchor 2 holds only batch 5: the anchor root is the leaf itself
  t.same(single.batchProof, [])
  t.equal(trees[1]?.root, await read('merkleLeaf', [5n, single.batch.merkleRoot]))
  const r = single.batch.readings[2]!
  t.equal(await verifyReading(G, 2n, 5n, single.batch.merkleRoot, r[0], r[1], single.batch.tree.getProof(r) as Hex[], []), true)

  const one = locate(1n) // batch 1 holds one reading: its merkle root is that reading's leaf
  const r1 = one.batch.readings[0]!
  t.equal(await verifyReading(G, one.anchorId, 1n, one.batch.merkleRoot, r1[0], r1[1], [], one.batchProof), true)
  t.equal(await verifyReading(G, one.anchorId, 1n, one.batch.merkleRoot, r1[0] + 1n, r1[1], [], one.batchProof), false)
})

t.test('verification is a view that any contract can call (gas estimate)', async (t) => {
  const b = batches[5]!
  const { anchorId, batchProof } = locate(b.batchId)
  const r = b.readings[0]!
  const data = encodeFunctionData({
    abi,
    functionName: 'verifyReading',
    args: [G, anchorId, b.batchId, b.merkleRoot, r[0], r[1], b.tree.getProof(r) as Hex[], batchProof],
  })
  const gas = await fx.client.estimateGas({ to: fx.address, data })
  t.ok(gas > 21_000n && gas < 60_000n, `verifyReading costs ${gas} gas with a ${b.tree.getProof(r).length}+${batchProof.length}-node path`)
})

t.test('a leaf outside the anchored range never verifies', async (t) => {
  // gateway account 3 anchors range 1..2 under a tree that also holds a leaf for batch 9
  await register(fx, 3, 2)
  const gw = fx.account(3).address
  const own = makeBatches(1n, 1n, [2, 2], 'g3')
  const stray = makeBatches(9n, 100n, [2], 'g3-stray')
  const tree = anchorTree([...own, ...stray])
  await fx.send(3, 'anchor', [1n, 2n, tree.root])
  const proofOf = (b: TestBatch) => tree.getProof([b.batchId, b.merkleRoot]) as Hex[]
  t.equal(await read('verifyBatch', [gw, 1n, 2n, own[1]!.merkleRoot, proofOf(own[1]!)]), true, 'in range')
  t.equal(await read('verifyBatch', [gw, 1n, 9n, stray[0]!.merkleRoot, proofOf(stray[0]!)]), false, 'batch 9 is not in 1..2')
  const r = stray[0]!.readings[0]!
  t.equal(await verifyReading(gw, 1n, 9n, stray[0]!.merkleRoot, r[0], r[1], stray[0]!.tree.getProof(r) as Hex[], proofOf(stray[0]!)), false)
})
