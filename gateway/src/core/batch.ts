// The batch header as EIP-712 typed data (https://eips.ethereum.org/EIPS/eip-712).
//
// digest = keccak256(0x19 0x01 || domainSeparator || hashStruct(Batch))
//   domainSeparator = hashStruct(EIP712Domain{ name: 'Fieldproof', version: '1' })
//   hashStruct(s)   = keccak256(typeHash || encodeData(s)), every field one
//                     32-byte word (EIP-712 "Definition of encodeData":
//                     address and uintN left-padded, bytes32 as is, strings
//                     as keccak256 of their bytes).
// The domain has no chainId and no verifyingContract on purpose: a batch is
// signed once, when it is sealed, and the same signed header may then be
// anchored on any chain and any contract (or none). Replay across chains is
// harmless: the signature attests what the gateway sealed, not an action.
//
// Signatures are 65 bytes r || s || v with v = 27 or 28 (Ethereum's
// convention) and a low s (EIP-2), as viem's signTypedData produces.

import { secp256k1 } from '@noble/curves/secp256k1'
import { FieldproofError } from './errors.ts'
import {
  bytesToHex,
  equalBytes,
  isU32,
  isU64,
  keccak256,
  keccak256Into,
  keccak_256,
  parseAddress,
  parseU64Decimal,
  publicKeyToAddress,
  toChecksumAddress,
  tryHexToBytes,
} from './hex.ts'
import type { BatchHeader, Hex, SignedBatch } from './types.ts'

/** EIP-712 domain of every batch header: no chainId, no verifyingContract (see the header comment). */
export const BATCH_DOMAIN = { name: 'Fieldproof', version: '1' } as const

/** EIP-712 types of the batch header, in the shape viem takes. */
export const BATCH_TYPES = {
  Batch: [
    { name: 'gateway', type: 'address' },
    { name: 'batchId', type: 'uint64' },
    { name: 'firstSeq', type: 'uint64' },
    { name: 'lastSeq', type: 'uint64' },
    { name: 'count', type: 'uint32' },
    { name: 'merkleRoot', type: 'bytes32' },
    { name: 'prevBatchHash', type: 'bytes32' },
    { name: 'sealedAtMs', type: 'uint64' },
  ],
} as const

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s)

/** encodeType(Batch) per EIP-712. */
export const BATCH_TYPE_STRING =
  'Batch(address gateway,uint64 batchId,uint64 firstSeq,uint64 lastSeq,uint32 count,bytes32 merkleRoot,bytes32 prevBatchHash,uint64 sealedAtMs)'

const BATCH_TYPEHASH = keccak_256(ascii(BATCH_TYPE_STRING))

const DOMAIN_SEPARATOR: Uint8Array = (() => {
  const buf = new Uint8Array(96)
  buf.set(keccak_256(ascii('EIP712Domain(string name,string version)')), 0)
  buf.set(keccak_256(ascii(BATCH_DOMAIN.name)), 32)
  buf.set(keccak_256(ascii(BATCH_DOMAIN.version)), 64)
  return keccak256(buf)
})()

function bad(field: string, message: string): FieldproofError {
  return new FieldproofError('PROOF_INVALID', `batch header ${field}: ${message}`, { details: { field } })
}

const HEADER_KEYS = ['gateway', 'batchId', 'firstSeq', 'lastSeq', 'count', 'merkleRoot', 'prevBatchHash', 'sealedAtMs'] as const

/**
 * Check the types and ranges of a header's fields (not its semantics).
 * @throws FieldproofError('PROOF_INVALID') naming the field.
 */
export function validateBatchHeader(h: BatchHeader): void {
  if (typeof h !== 'object' || h === null) throw bad('header', 'must be an object')
  if (parseAddress(h.gateway) === undefined) throw bad('gateway', 'must be a 20-byte 0x address (lowercase or EIP-55)')
  for (const k of ['batchId', 'firstSeq', 'lastSeq', 'sealedAtMs'] as const) {
    if (!isU64(h[k])) throw bad(k, 'must be a bigint in 0 … 2^64-1')
  }
  if (!isU32(h.count)) throw bad('count', 'must be an integer in 0 … 2^32-1')
  if (tryHexToBytes(h.merkleRoot, 32) === undefined) throw bad('merkleRoot', 'must be 32 bytes of 0x hex')
  if (tryHexToBytes(h.prevBatchHash, 32) === undefined) throw bad('prevBatchHash', 'must be 32 bytes of 0x hex')
}

// hashStruct input: typeHash + 8 words; digest input: 0x1901 + 2 words.
const structBuf = new Uint8Array(32 * 9)
const structView = new DataView(structBuf.buffer)
const digestBuf = new Uint8Array(66)
digestBuf[0] = 0x19
digestBuf[1] = 0x01
digestBuf.set(DOMAIN_SEPARATOR, 2)

function putU64(word: number, v: bigint): void {
  const off = 32 * word
  structBuf.fill(0, off, off + 24)
  structView.setBigUint64(off + 24, v)
}

/** The EIP-712 digest as bytes. @throws FieldproofError('PROOF_INVALID') for a malformed header. */
export function hashBatchHeaderBytes(h: BatchHeader): Uint8Array {
  validateBatchHeader(h)
  structBuf.set(BATCH_TYPEHASH, 0)
  structBuf.fill(0, 32, 44)
  structBuf.set(parseAddress(h.gateway) as Uint8Array, 44)
  putU64(2, h.batchId)
  putU64(3, h.firstSeq)
  putU64(4, h.lastSeq)
  structBuf.fill(0, 160, 188)
  structView.setUint32(188, h.count)
  structBuf.set(tryHexToBytes(h.merkleRoot, 32) as Uint8Array, 192)
  structBuf.set(tryHexToBytes(h.prevBatchHash, 32) as Uint8Array, 224)
  putU64(8, h.sealedAtMs)
  keccak256Into(structBuf, 0, structBuf.length, digestBuf, 34)
  const out = new Uint8Array(32)
  keccak256Into(digestBuf, 0, 66, out, 0)
  return out
}

/**
 * The EIP-712 digest of a batch header (what is signed, and what the next
 * batch's prevBatchHash holds). Equals viem's hashTypedData(batchTypedData(h)).
 * @throws FieldproofError('PROOF_INVALID') for a malformed header.
 */
export function hashBatchHeader(h: BatchHeader): Hex {
  return bytesToHex(hashBatchHeaderBytes(h))
}

/** The typed-data object viem's signTypedData / verifyTypedData / hashTypedData take. */
export function batchTypedData(h: BatchHeader) {
  return {
    domain: BATCH_DOMAIN,
    types: BATCH_TYPES,
    primaryType: 'Batch' as const,
    message: {
      gateway: h.gateway,
      batchId: h.batchId,
      firstSeq: h.firstSeq,
      lastSeq: h.lastSeq,
      count: h.count,
      merkleRoot: h.merkleRoot,
      prevBatchHash: h.prevBatchHash,
      sealedAtMs: h.sealedAtMs,
    },
  }
}

// --- secp256k1 signatures ----------------------------------------------------

let lastKey: { hex: string; address: Hex } | undefined

function privateKeyAddress(privateKey: Hex): { key: Uint8Array; address: Hex } {
  const key = tryHexToBytes(privateKey, 32)
  if (key === undefined || !secp256k1.utils.isValidPrivateKey(key)) throw new FieldproofError('KEY_INVALID', 'private key must be 32 bytes of 0x hex, in 1 … n-1')
  if (lastKey?.hex !== privateKey) lastKey = { hex: privateKey, address: publicKeyToAddress(secp256k1.getPublicKey(key, false)) }
  return { key, address: lastKey.address }
}

/** Sign a 32-byte digest: 65 bytes r || s || v, v = 27 + recovery id, low s (RFC 6979 nonces). */
export function signDigest(digest: Uint8Array, key: Uint8Array): Hex {
  const sig = secp256k1.sign(digest, key, { lowS: true })
  const out = new Uint8Array(65)
  out.set(sig.toCompactRawBytes(), 0)
  out[64] = 27 + sig.recovery
  return bytesToHex(out)
}

/** Options of recoverSignerAddress. */
export interface RecoverOptions {
  /** Accept v = 0/1 besides 27/28 (devices). Default false. */
  readonly allowV01?: boolean
  /** Accept a high s (not EIP-2 normalized; devices). Default false. */
  readonly allowHighS?: boolean
}

/**
 * The address whose key made `signature` (65 bytes r || s || v) over a
 * 32-byte digest, or undefined when the signature is malformed or recovers
 * nothing. Never throws.
 */
export function recoverSignerAddress(digest: Uint8Array, signature: Hex | Uint8Array, opts: RecoverOptions = {}): Hex | undefined {
  const sig = typeof signature === 'string' ? tryHexToBytes(signature, 65) : signature
  if (sig === undefined || sig.length !== 65 || digest.length !== 32) return undefined
  const v = sig[64] as number
  let rec: number
  if (v === 27 || v === 28) rec = v - 27
  else if (opts.allowV01 === true && (v === 0 || v === 1)) rec = v
  else return undefined
  try {
    const s = secp256k1.Signature.fromCompact(sig.subarray(0, 64))
    if (opts.allowHighS !== true && s.hasHighS()) return undefined
    const point = s.addRecoveryBit(rec).recoverPublicKey(digest)
    return publicKeyToAddress(point.toRawBytes(false))
  } catch {
    return undefined
  }
}

/**
 * Sign a batch header with the gateway key (synchronous).
 * @throws FieldproofError('KEY_INVALID') for a bad key or a key that is not header.gateway's;
 *         FieldproofError('PROOF_INVALID') for a malformed header.
 */
export function signBatchHeader(header: BatchHeader, privateKey: Hex): SignedBatch {
  const { key, address } = privateKeyAddress(privateKey)
  const digest = hashBatchHeaderBytes(header)
  if (address.toLowerCase() !== header.gateway.toLowerCase()) {
    throw new FieldproofError('KEY_INVALID', `the signing key is ${address}, the header names gateway ${header.gateway}`)
  }
  return { header, hash: bytesToHex(digest), signature: signDigest(digest, key) }
}

/**
 * The address that signed a batch (EIP-55), recovered from its signature
 * over the header's recomputed digest.
 * @throws FieldproofError('PROOF_INVALID') for a malformed header or signature.
 */
export function recoverBatchSigner(signed: SignedBatch): Hex {
  const digest = hashBatchHeaderBytes(signed.header)
  const a = recoverSignerAddress(digest, signed.signature)
  if (a === undefined) throw new FieldproofError('PROOF_INVALID', 'batch signature is malformed (65 bytes, v 27/28, low s) or recovers no key')
  return a
}

/**
 * True when `signed.hash` is the header's digest and the signature recovers
 * header.gateway. Never throws.
 */
export function verifySignedBatch(signed: SignedBatch): boolean {
  try {
    const digest = hashBatchHeaderBytes(signed.header)
    const claimed = tryHexToBytes(signed.hash, 32)
    if (claimed === undefined || !equalBytes(claimed, digest)) return false
    const a = recoverSignerAddress(digest, signed.signature)
    return a !== undefined && a.toLowerCase() === signed.header.gateway.toLowerCase()
  } catch {
    return false
  }
}

// --- JSON ----------------------------------------------------------------

/** BatchHeader as JSON: uint64 fields as decimal strings. */
export interface BatchHeaderJson {
  readonly gateway: Hex
  readonly batchId: string
  readonly firstSeq: string
  readonly lastSeq: string
  readonly count: number
  readonly merkleRoot: Hex
  readonly prevBatchHash: Hex
  readonly sealedAtMs: string
}

/** SignedBatch as JSON. */
export interface SignedBatchJson {
  readonly header: BatchHeaderJson
  readonly hash: Hex
  readonly signature: Hex
}

export function batchHeaderToJson(h: BatchHeader): BatchHeaderJson {
  return {
    gateway: h.gateway,
    batchId: h.batchId.toString(),
    firstSeq: h.firstSeq.toString(),
    lastSeq: h.lastSeq.toString(),
    count: h.count,
    merkleRoot: h.merkleRoot,
    prevBatchHash: h.prevBatchHash,
    sealedAtMs: h.sealedAtMs.toString(),
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function hex32(v: unknown, field: string): Hex {
  const b = tryHexToBytes(v, 32)
  if (b === undefined) throw bad(field, 'must be 32 bytes of 0x hex')
  return bytesToHex(b)
}

/**
 * Parse a header's JSON form (strict: unknown keys rejected). The gateway
 * address comes back in EIP-55 form, hashes in lowercase.
 * @throws FieldproofError('PROOF_INVALID') naming the bad key.
 */
export function batchHeaderFromJson(j: unknown): BatchHeader {
  if (!isRecord(j)) throw bad('header', 'must be an object')
  for (const k of Object.keys(j)) if (!(HEADER_KEYS as readonly string[]).includes(k)) throw bad(k.slice(0, 40), 'unknown key')
  const gw = parseAddress(j.gateway)
  if (gw === undefined) throw bad('gateway', 'must be a 20-byte 0x address (lowercase or EIP-55)')
  const u64 = (k: 'batchId' | 'firstSeq' | 'lastSeq' | 'sealedAtMs'): bigint => {
    const v = parseU64Decimal(j[k])
    if (v === undefined) throw bad(k, 'must be a decimal string in 0 … 2^64-1')
    return v
  }
  if (!isU32(j.count)) throw bad('count', 'must be an integer in 0 … 2^32-1')
  return {
    gateway: toChecksumAddress(gw),
    batchId: u64('batchId'),
    firstSeq: u64('firstSeq'),
    lastSeq: u64('lastSeq'),
    count: j.count,
    merkleRoot: hex32(j.merkleRoot, 'merkleRoot'),
    prevBatchHash: hex32(j.prevBatchHash, 'prevBatchHash'),
    sealedAtMs: u64('sealedAtMs'),
  }
}

export function signedBatchToJson(s: SignedBatch): SignedBatchJson {
  return { header: batchHeaderToJson(s.header), hash: s.hash, signature: s.signature }
}

/**
 * Parse a signed batch's JSON form (shape only; verifySignedBatch checks it).
 * @throws FieldproofError('PROOF_INVALID') naming the bad key.
 */
export function signedBatchFromJson(j: unknown): SignedBatch {
  if (!isRecord(j)) throw bad('batch', 'must be an object')
  for (const k of Object.keys(j)) if (k !== 'header' && k !== 'hash' && k !== 'signature') throw bad(k.slice(0, 40), 'unknown key')
  const header = batchHeaderFromJson(j.header)
  const hash = hex32(j.hash, 'hash')
  const sig = tryHexToBytes(j.signature, 65)
  if (sig === undefined) throw bad('signature', 'must be 65 bytes of 0x hex')
  return { header, hash, signature: bytesToHex(sig) }
}
