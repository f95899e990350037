// The Merkle tree against @openzeppelin/merkle-tree's StandardMerkleTree
// (the oracle): same root and proofs for values [seq, readingHash] with
// leaf encoding ['uint64', 'bytes32'] and the default sortLeaves: true.

import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import t, { type Test } from 'tap'
import { leafHashOf } from './canonical.ts'
import { FieldproofError } from './errors.ts'
import { bytesToHex, hexToBytes } from './hex.ts'
import { buildMerkleTree, hashPair, processMerkleProof, verifyMerkleProof } from './merkle.ts'
import { rng } from '../../../test/helpers/fuzz.ts'

const rnd = rng(424242)
const randomHash = (): string => bytesToHex(Uint8Array.from({ length: 32 }, () => Math.floor(rnd() * 256)))

/** n values [seq, readingHash] from a random first seq, with optional duplicate values. */
function values(n: number, duplicates = false): [string, string][] {
  const first = BigInt(Math.floor(rnd() * 1e9))
  const out: [string, string][] = []
  for (let i = 0; i < n; i++) {
    if (duplicates && i > 0 && rnd() < 0.2) out.push(out[Math.floor(rnd() * i)] as [string, string])
    else out.push([(first + BigInt(i)).toString(), randomHash()])
  }
  return out
}

function compare(t: Test, vals: [string, string][], sample: number): void {
  const oz = StandardMerkleTree.of(vals, ['uint64', 'bytes32'])
  const leaves = vals.map(([s, h]) => leafHashOf(BigInt(s), hexToBytes(h)))
  const ours = buildMerkleTree(leaves)
  t.equal(bytesToHex(ours.root), oz.root, `n=${vals.length}: root`)
  t.equal(ours.length, vals.length)
  const step = Math.max(1, Math.floor(vals.length / sample))
  for (let i = 0; i < vals.length; i += step) {
    const proof = ours.getProof(i)
    t.same(proof.map(bytesToHex), oz.getProof(i), `n=${vals.length}: proof of input ${i}`)
    const leaf = leaves[i] as Uint8Array
    if (!verifyMerkleProof(leaf, proof, ours.root)) t.fail(`n=${vals.length}: proof ${i} does not verify`)
    if (!StandardMerkleTree.verify(oz.root, ['uint64', 'bytes32'], vals[i] as [string, string], proof.map(bytesToHex))) t.fail('oracle rejects our proof')
    // Flip one bit anywhere: leaf, a proof node or the root.
    const target = Math.floor(rnd() * (proof.length + 2))
    const bit = 1 << Math.floor(rnd() * 8)
    const at = Math.floor(rnd() * 32)
    const l2 = leaf.slice()
    const p2 = proof.map((p) => p.slice())
    const r2 = ours.root.slice()
    const buf = target === 0 ? l2 : target === 1 ? r2 : (p2[target - 2] as Uint8Array)
    buf[at] = (buf[at] as number) ^ bit
    if (verifyMerkleProof(l2, p2, r2)) t.fail(`n=${vals.length}: a flipped bit still verifies`)
  }
  // Lookup by leaf bytes gives a proof that verifies.
  const k = Math.floor(rnd() * vals.length)
  t.ok(verifyMerkleProof(leaves[k] as Uint8Array, ours.getProof(leaves[k] as Uint8Array), ours.root), `n=${vals.length}: proof by leaf bytes`)
}

t.test('every size 1 … 64 equals StandardMerkleTree, every proof', async (t) => {
  for (let n = 1; n <= 64; n++) compare(t, values(n), n)
})

t.test('random sizes up to 1000 (40 trees), sampled proofs', async (t) => {
  for (let i = 0; i < 40; i++) compare(t, values(65 + Math.floor(rnd() * 936)), 24)
})

t.test('duplicate leaves: same root and per-index proofs as the oracle', async (t) => {
  for (let i = 0; i < 10; i++) compare(t, values(2 + Math.floor(rnd() * 60), true), 64)
})

t.test('single leaf: root is the leaf, proof empty', async (t) => {
  const leaf = hexToBytes(randomHash())
  const tree = buildMerkleTree([leaf])
  t.same(tree.root, leaf)
  t.same(tree.getProof(0), [])
  t.ok(verifyMerkleProof(leaf, [], leaf))
})

t.test('hashPair is commutative; processMerkleProof folds it', async (t) => {
  const a = hexToBytes(randomHash())
  const b = hexToBytes(randomHash())
  t.same(hashPair(a, b), hashPair(b, a))
  t.same(processMerkleProof(a, [b]), hashPair(a, b))
  t.same(processMerkleProof(a, []), a)
})

t.test('bad input', async (t) => {
  t.throws(() => buildMerkleTree([]), FieldproofError, 'empty tree')
  t.throws(() => buildMerkleTree([new Uint8Array(31)]), FieldproofError, 'short leaf')
  const tree = buildMerkleTree([hexToBytes(randomHash()), hexToBytes(randomHash())])
  t.throws(() => tree.getProof(2), FieldproofError, 'index out of range')
  t.throws(() => tree.getProof(-1), FieldproofError, 'negative index')
  t.throws(() => tree.getProof(0.5), FieldproofError, 'fractional index')
  t.throws(() => tree.getProof(hexToBytes(randomHash())), FieldproofError, 'unknown leaf')
  t.throws(() => processMerkleProof(new Uint8Array(32), [new Uint8Array(33)]), FieldproofError, 'bad proof node')
  t.equal(verifyMerkleProof(new Uint8Array(31), [], new Uint8Array(32)), false, 'bad leaf: false')
  t.equal(verifyMerkleProof(new Uint8Array(32), [new Uint8Array(2)], new Uint8Array(32)), false, 'bad node: false')
  t.equal(verifyMerkleProof(new Uint8Array(32), [], new Uint8Array(3)), false, 'bad root: false')
  // The input array is left alone.
  const leaves = [hexToBytes(randomHash()), hexToBytes(randomHash()), hexToBytes(randomHash())]
  const copy = leaves.map((l) => l.slice())
  buildMerkleTree(leaves)
  t.same(leaves, copy)
})
