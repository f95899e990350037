// The WebAssembly Keccak module against @noble/hashes (the reference
// implementation the project already trusts, itself tested against the
// Keccak team's known answers) and against published values.

import { keccak_256 } from '@noble/hashes/sha3'
import t from 'tap'
import { bytesToHex } from './hex.ts'
import { hashTreeNodes, keccak256, keccak256Into, leafOfHash, seqLeaf } from './keccak.ts'
import { rng } from '../../../test/helpers/fuzz.ts'

const random = (rand: () => number, n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256))
const u64Word = (seq: bigint) => {
  const w = new Uint8Array(32)
  new DataView(w.buffer).setBigUint64(24, seq)
  return w
}
/** The OpenZeppelin leaf from the reference implementation: keccak256(keccak256(abi.encode(seq, hash))). */
const referenceLeaf = (seq: bigint, hash: Uint8Array) => keccak_256(keccak_256(new Uint8Array([...u64Word(seq), ...hash])))

t.test('published values', async (t) => {
  // EIP-1052: the code hash of an account without code is keccak256 of the empty string.
  t.equal(bytesToHex(keccak256(new Uint8Array(0))), '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470')
  // Solidity's documentation of selectors: transfer(address,uint256) is 0xa9059cbb.
  t.equal(bytesToHex(keccak256(new TextEncoder().encode('transfer(address,uint256)'))).slice(0, 10), '0xa9059cbb')
})

t.test('every length around the block size (136 bytes) and the chunked path for long inputs', async (t) => {
  const rand = rng(1)
  const lengths = [...Array.from({ length: 700 }, (_, i) => i), 54_399, 54_400, 54_401, 54_536, 108_800, 200_003]
  let mismatches = 0
  for (const n of lengths) {
    const input = random(rand, n)
    if (bytesToHex(keccak256(input)) !== bytesToHex(keccak_256(input))) mismatches++
  }
  t.equal(mismatches, 0, 'all equal the reference')
})

t.test('keccak256Into: a sub-range, aliasing its input, bounds checked', async (t) => {
  const rand = rng(2)
  const buf = random(rand, 300)
  const expected = bytesToHex(keccak_256(buf.subarray(100, 250)))
  keccak256Into(buf, 100, 150, buf, 110)
  t.equal(bytesToHex(buf.subarray(110, 142)), expected)
  t.throws(() => keccak256Into(buf, 290, 20, buf, 0), RangeError)
  t.throws(() => keccak256Into(buf, 0, 10, buf, 290), RangeError)
  t.throws(() => keccak256Into(buf, -1, 10, buf, 0), RangeError)
})

t.test('seqLeaf and leafOfHash equal the OpenZeppelin leaf computed with the reference', async (t) => {
  const rand = rng(3)
  let mismatches = 0
  const seqs = [0n, 1n, 255n, 256n, 0xffff_ffffn, 0x1_0000_0000n, 0xffff_ffff_ffff_ffffn]
  for (let i = 0; i < 400; i++) {
    const seq = i < seqs.length ? (seqs[i] as bigint) : BigInt(Math.floor(rand() * 2 ** 53))
    const bytes = random(rand, i < 300 ? i : 60_000)
    const expected = bytesToHex(referenceLeaf(seq, keccak_256(bytes)))
    if (bytesToHex(seqLeaf(seq, bytes)) !== expected) mismatches++
    if (bytesToHex(leafOfHash(seq, keccak_256(bytes))) !== expected) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('hashTreeNodes: each internal node is the sorted pair hash of its children, across memory growth', async (t) => {
  const rand = rng(4)
  for (const n of [1, 2, 3, 7, 1000, 5000]) {
    const size = 2 * n - 1
    const nodes = new Uint8Array(32 * size)
    for (let k = size - n; k < size; k++) nodes.set(random(rand, 32), 32 * k)
    const expected = nodes.slice()
    for (let i = size - 1 - n; i >= 0; i--) {
      const a = expected.subarray(32 * (2 * i + 1), 32 * (2 * i + 2))
      const b = expected.subarray(32 * (2 * i + 2), 32 * (2 * i + 3))
      const [lo, hi] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a]
      expected.set(keccak_256(new Uint8Array([...lo, ...hi])), 32 * i)
    }
    hashTreeNodes(nodes, size - 1 - n)
    t.equal(bytesToHex(nodes), bytesToHex(expected), `${n} leaves`)
  }
  // Equal children (a tie in every byte) hash as they are.
  const twins = new Uint8Array(96)
  twins.fill(7, 32)
  hashTreeNodes(twins, 0)
  t.equal(bytesToHex(twins.subarray(0, 32)), bytesToHex(keccak_256(new Uint8Array(64).fill(7))))
})
