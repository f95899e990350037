// Merkle tree build: ours (gateway/src/core/merkle.ts) against
// @openzeppelin/merkle-tree's StandardMerkleTree over the same 10,000
// values [seq, readingHash]. Prints leaves per second; asserts nothing.
//   node bench/merkle.bench.ts [leaves]

import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import { leafHashOf } from '../gateway/src/core/canonical.ts'
import { bytesToHex } from '../gateway/src/core/hex.ts'
import { buildMerkleTree } from '../gateway/src/core/merkle.ts'

const n = Number(process.argv[2] ?? 10_000)
const hashes = Array.from({ length: n }, (_, i) => {
  const b = new Uint8Array(32)
  new DataView(b.buffer).setUint32(0, (i * 2654435761) >>> 0)
  new DataView(b.buffer).setUint32(28, i)
  return b
})
const values = hashes.map((h, i): [string, string] => [String(i + 1), bytesToHex(h)])

function time(label: string, runs: number, fn: () => string): number {
  fn()
  const t0 = performance.now()
  let root = ''
  for (let i = 0; i < runs; i++) root = fn()
  const ms = (performance.now() - t0) / runs
  console.log(`${label.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms  ${Math.round((n / ms) * 1000).toLocaleString('en').padStart(10)} leaves/s  root ${root.slice(0, 18)}…`)
  return ms
}

console.log(`Merkle tree over ${n.toLocaleString('en')} leaves [uint64 seq, bytes32 readingHash]`)
const ours = time('fieldproof (leaf hashes + tree)', 5, () => {
  const leaves = values.map(([s], i) => leafHashOf(BigInt(s), hashes[i] as Uint8Array))
  return bytesToHex(buildMerkleTree(leaves).root)
})
const leaves = values.map(([s], i) => leafHashOf(BigInt(s), hashes[i] as Uint8Array))
time('fieldproof (tree only, leaves precomputed)', 5, () => bytesToHex(buildMerkleTree(leaves).root))
const oz = time('@openzeppelin/merkle-tree StandardMerkleTree', 1, () => StandardMerkleTree.of(values, ['uint64', 'bytes32']).root)
console.log(`ratio: ours is ${(oz / ours).toFixed(1)}× faster`)
