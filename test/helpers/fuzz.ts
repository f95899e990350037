// Deterministic randomness for fuzz and property tests, and the malleated
// forms of a secp256k1 signature that device-signature checks must decide
// exactly as key recovery does.
import { secp256k1 } from '@noble/curves/secp256k1'
import { bytesToHex, hexToBytes } from '../../gateway/src/core/hex.ts'

/** mulberry32: a small seeded PRNG in [0, 1), so a failing case can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Forms of a 65-byte r || s || v signature (v 27/28): valid twins, forgeries and malformed ones. */
export interface SignatureVariants {
  /** v swapped between 27 and 28. */
  readonly flipV: Uint8Array
  /** v as 0/1 instead of 27/28. */
  readonly v01: Uint8Array
  /** s replaced by n − s with the matching v: the same signature in high-s form. */
  readonly highS: Uint8Array
  /** One random bit of r or s flipped. */
  readonly bitflip: Uint8Array
  /** r = 0. */
  readonly zeroR: Uint8Array
  /** s = 0. */
  readonly zeroS: Uint8Array
  /** s = n (out of range). */
  readonly bigS: Uint8Array
  /** v = 29. */
  readonly badV: Uint8Array
}

const N = secp256k1.CURVE.n

/** The variants of `signature`; `rand` picks the flipped bit (two draws). */
export function signatureVariants(signature: Uint8Array, rand: () => number): SignatureVariants {
  const copy = (): Uint8Array => signature.slice()
  const flipV = copy()
  flipV[64] = flipV[64] === 27 ? 28 : 27
  const v01 = copy()
  v01[64] = (v01[64] as number) - 27
  const s = BigInt(bytesToHex(signature.subarray(32, 64)))
  const highS = copy()
  highS.set(hexToBytes('0x' + (N - s).toString(16).padStart(64, '0')), 32)
  highS[64] = highS[64] === 27 ? 28 : 27
  const bitflip = copy()
  const at = Math.floor(rand() * 64)
  bitflip[at] = (bitflip[at] as number) ^ (1 << Math.floor(rand() * 8))
  const zeroR = copy()
  zeroR.fill(0, 0, 32)
  const zeroS = copy()
  zeroS.fill(0, 32, 64)
  const bigS = copy()
  bigS.set(hexToBytes('0x' + N.toString(16).padStart(64, '0')), 32)
  const badV = copy()
  badV[64] = 29
  return { flipV, v01, highS, bitflip, zeroR, zeroS, bigS, badV }
}
