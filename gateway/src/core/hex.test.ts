import t from 'tap'
import { randomBytes } from 'node:crypto'
import { keccak_256 } from '@noble/hashes/sha3'
import { keccak256 as viemKeccak } from 'viem'
import { bytesToHex, keccak256, keccak256Into } from './hex.ts'

t.test('keccak256 (WebAssembly) equals @noble/hashes and viem on random inputs of every length class', async (t) => {
  let mismatches = 0
  for (let i = 0; i < 3000; i++) {
    const len = i < 300 ? i : Math.floor(Math.random() * 5000)
    const input = new Uint8Array(randomBytes(len))
    const ours = bytesToHex(keccak256(input))
    if (ours !== bytesToHex(keccak_256(input))) mismatches++
    const out = new Uint8Array(40)
    keccak256Into(input, 0, input.length, out, 8)
    if (bytesToHex(out.subarray(8)) !== ours) mismatches++
  }
  t.equal(mismatches, 0)
  // Published value: keccak256("") (Ethereum's empty-string hash).
  t.equal(bytesToHex(keccak256(new Uint8Array(0))), '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470')
  t.equal(bytesToHex(keccak256(new TextEncoder().encode('hello'))), viemKeccak(new TextEncoder().encode('hello')))
})

t.test('keccak256Into hashes a sub-range and may write over its input', async (t) => {
  const buf = new Uint8Array(randomBytes(64))
  const expected = bytesToHex(keccak_256(buf.subarray(16, 48)))
  keccak256Into(buf, 16, 32, buf, 0)
  t.equal(bytesToHex(buf.subarray(0, 32)), expected)
  t.throws(() => keccak256Into(buf, 60, 10, buf, 0), RangeError)
})
