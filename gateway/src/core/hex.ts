// Small byte helpers shared by the cryptographic core: hex (0x-prefixed,
// lowercase on output), byte comparison, unsigned decimal strings, EIP-55
// addresses, and keccak256. Keccak-256 is the original Keccak padding (0x01 ... 0x80), as
// Ethereum uses it, not FIPS-202 SHA3-256 (0x06).

import { keccak_256 } from '@noble/hashes/sha3'
import { keccak256 } from './keccak.ts'
import { FieldproofError } from './errors.ts'
import type { Hex } from './types.ts'

export { keccak_256 }

/** 2^64 − 1: the largest uint64. */
export const U64_MAX = 0xffff_ffff_ffff_ffffn

const HEX_CHARS: string[] = []
for (let i = 0; i < 256; i++) HEX_CHARS.push(i.toString(16).padStart(2, '0'))

/** Nibble value of an ASCII code, or -1. */
const NIBBLE = new Int8Array(128).fill(-1)
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i
for (let i = 0; i < 6; i++) {
  NIBBLE[65 + i] = 10 + i
  NIBBLE[97 + i] = 10 + i
}

/** Bytes as lowercase hex with a 0x prefix. */
export function bytesToHex(bytes: Uint8Array): Hex {
  let s = '0x'
  for (let i = 0; i < bytes.length; i++) s += HEX_CHARS[bytes[i] as number] as string
  return s as Hex
}

/** Bytes as lowercase hex without a prefix. */
export function bytesToHexNoPrefix(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i++) s += HEX_CHARS[bytes[i] as number] as string
  return s
}

/**
 * Decode hex digits `s[from..]` (either case) into `out[outOff..]`.
 * Returns false on an odd length, a non-hex character or a length that does
 * not fit.
 */
export function decodeHexInto(s: string, from: number, out: Uint8Array, outOff: number, byteLen: number): boolean {
  if (s.length - from !== byteLen * 2 || outOff + byteLen > out.length) return false
  for (let i = 0; i < byteLen; i++) {
    const a = s.charCodeAt(from + 2 * i)
    const b = s.charCodeAt(from + 2 * i + 1)
    const hi = a < 128 ? (NIBBLE[a] as number) : -1
    const lo = b < 128 ? (NIBBLE[b] as number) : -1
    if (hi < 0 || lo < 0) return false
    out[outOff + i] = (hi << 4) | lo
  }
  return true
}

/**
 * Strict hex to bytes: `0x` prefix, even number of digits, either case.
 * `length`, when given, is the exact number of bytes expected.
 * Returns undefined instead of throwing.
 */
export function tryHexToBytes(value: unknown, length?: number): Uint8Array | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.charCodeAt(0) !== 48 || (value.charCodeAt(1) | 0x20) !== 120) return undefined
  if ((value.length & 1) !== 0) return undefined
  const n = (value.length - 2) / 2
  if (length !== undefined && n !== length) return undefined
  const out = new Uint8Array(n)
  return decodeHexInto(value, 2, out, 0, n) ? out : undefined
}

/**
 * Hex to bytes for trusted values (our own stored or computed hex).
 * @throws FieldproofError('INTERNAL') when `value` is not 0x-hex (of `length` bytes, when given).
 * Use tryHexToBytes for input from outside.
 */
export function hexToBytes(value: string, length?: number): Uint8Array {
  const b = tryHexToBytes(value, length)
  if (b === undefined) {
    throw new FieldproofError('INTERNAL', `not 0x-hex${length === undefined ? '' : ` of ${length} bytes`}: ${String(value).slice(0, 80)}`)
  }
  return b
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lexicographic (bytewise, unsigned) order; a shorter prefix sorts first. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

const DECIMAL_RE = /^(0|[1-9][0-9]{0,19})$/

/** An unsigned decimal string without sign, leading zeros or spaces, within uint64; else undefined. */
export function parseU64Decimal(value: unknown): bigint | undefined {
  if (typeof value !== 'string' || !DECIMAL_RE.test(value)) return undefined
  const v = BigInt(value)
  return v <= U64_MAX ? v : undefined
}

export function isU64(v: unknown): v is bigint {
  return typeof v === 'bigint' && v >= 0n && v <= U64_MAX
}

export function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff
}

/** A non-negative integer a JavaScript number holds exactly (0 … 2^53 − 1). */
export function isSafeU64Number(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

// --- keccak256 ----------------------------------------------------------
//
// Keccak-256 runs in keccak.ts's WebAssembly module. @noble/hashes stays the
// reference: the tests compare the two on random inputs.

export { keccak256, keccak256Into } from './keccak.ts'

// --- Ethereum addresses (EIP-55) ------------------------------------------

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/

/** EIP-55 mixed-case checksum form of a 20-byte address. */
export function toChecksumAddress(address: Uint8Array): Hex {
  const lower = bytesToHexNoPrefix(address)
  const ascii = new Uint8Array(40)
  for (let i = 0; i < 40; i++) ascii[i] = lower.charCodeAt(i)
  const h = keccak256(ascii)
  let s = '0x'
  for (let i = 0; i < 40; i++) {
    const c = lower[i] as string
    const nibble = i % 2 === 0 ? (h[i >> 1] as number) >> 4 : (h[i >> 1] as number) & 0x0f
    s += nibble >= 8 ? c.toUpperCase() : c
  }
  return s as Hex
}

/**
 * Parse an address: `0x` + 40 hex digits, all lowercase, all uppercase, or
 * with a correct EIP-55 checksum. Returns the 20 bytes, or undefined.
 */
export function parseAddress(value: unknown): Uint8Array | undefined {
  if (typeof value !== 'string' || !ADDRESS_RE.test(value)) return undefined
  const bytes = tryHexToBytes(value, 20)
  if (!bytes) return undefined
  const digits = value.slice(2)
  if (digits === digits.toLowerCase() || digits === digits.toUpperCase()) return bytes
  return toChecksumAddress(bytes) === value ? bytes : undefined
}

/** Ethereum address of an uncompressed secp256k1 public key (65 bytes, 0x04 || X || Y). */
export function publicKeyToAddress(uncompressed: Uint8Array): Hex {
  const h = keccak_256(uncompressed.subarray(1))
  return toChecksumAddress(h.subarray(12))
}
