// The Fieldproof device protocol, versions 1 and 2 (docs/device-protocol.md):
// how a device that holds a secp256k1 key signs its readings so that the
// gateway, and anyone holding a proof bundle later, can check that the device
// said it.
//
// A signed message is a BODY and a SIGNATURE:
//
//   body (all integers big-endian; the exact bytes signed, stored as the reading's `raw`)
//     magic     4 bytes  0x46 0x50 0x44 0x01 or 0x02  ("FPD", version 1 or 2)
//     device    u8 length (1..128) + UTF-8, matching DEVICE_ID_RE
//     counter   u64, ≥ 1, strictly increasing per device
//     time      u8 presence (0 or 1) [+ u64 ms since the Unix epoch, ≤ 2^53-1]
//     metrics   u8 count (0..64), then per metric, sorted by name bytes, names unique:
//                 u8 length + name (METRIC_NAME_RE), u8 length + unit (units.ts), f64 value
//                 (finite, never -0)
//     nothing after the last metric
//   signature  65 bytes r || s || v (secp256k1, v = 27 + recovery id), over
//     version 1: EIP-191 personal_sign of the body,
//                keccak256("\x19Ethereum Signed Message:\n" + decimal(len(body)) + body);
//                v 0/1 accepted too, high s accepted, v must recover the key;
//     version 2: SHA-256(body) (FIPS 180-4), RFC 6979; s must be low
//                (s ≤ n/2, SEC 1 v2 §4.1.4 verification plus the BIP 62 /
//                EIP-2 low-s rule); v must be 27 or 28 and is a recovery
//                hint only: (r, s) is what proves the device, and a verifier
//                that knows the key checks it with one ECDSA verification.
//
// That is exactly what core/proof.ts checks (its "device-signature" step
// recovers the signer of `raw` over the digest of the body's version and
// compares it with auth.address; for version 2 it tries the other recovery
// id when the given one does not lead to auth.address), so a proof bundle
// of a signed reading proves the device too.
//
// Wire forms (both carry the same body and signature):
//   binary: body || signature (65 bytes)            (MQTT payload)
//   JSON:   {"body": "0x<hex>" | "<base64>", "sig": "0x<130 hex>"}
//           (MQTT payload; HTTP with content-type application/vnd.fieldproof.signed+json)
//
// Verification against a registered public key runs through node:crypto
// (OpenSSL, ~5x faster than a pure-JS ECDSA). Version 2 is a plain
// ECDSA/SHA-256 verification with the registered key as a cached KeyObject.
// For version 1, OpenSSL has no Keccak and cannot take a pre-hashed digest,
// so the check is rewritten as an equivalent ECDSA/SHA-256 verification under
// a derived key; see DeviceVerifier.

import { createPublicKey, createHash, randomBytes, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DEVICE_ID_RE } from './canonical.ts'
import { bytesToHex, keccak256, publicKeyToAddress, tryHexToBytes } from './hex.ts'
import { hashPersonalMessage } from './proof.ts'
import type { Hex, Metric } from './types.ts'
import { checkMetric } from './units.ts'

/** Magic of a version 1 body ("FPD" 1). */
export const SIGNED_BODY_MAGIC = Uint8Array.of(0x46, 0x50, 0x44, 0x01)
/** Magic of a version 2 body ("FPD" 2). */
export const SIGNED_BODY_MAGIC_V2 = Uint8Array.of(0x46, 0x50, 0x44, 0x02)
/** Protocol versions: 1 signs EIP-191 (keccak256), 2 signs SHA-256. */
export type SignedVersion = 1 | 2
/** The signed JSON form's media type (HTTP). */
export const SIGNED_JSON_MEDIA_TYPE = 'application/vnd.fieldproof.signed+json'
/** The binary form's media type (HTTP). */
export const SIGNED_BINARY_MEDIA_TYPE = 'application/vnd.fieldproof.signed'

export const DEVICE_PROTOCOL_LIMITS = {
  deviceIdBytes: 128,
  metrics: 64,
  stringBytes: 64,
  /** Largest body: magic, id, counter, time, 64 metrics of 64+64-byte names and units. */
  bodyBytes: 4 + 129 + 8 + 9 + 1 + 64 * (1 + 64 + 1 + 64 + 8),
  /** Largest JSON form accepted (the body base64 or hex plus the signature). */
  jsonBytes: 32_768,
} as const

/**
 * What a device signs: its id, a counter, optionally its clock, and metrics with units.
 *
 * @example
 * { version: 2, deviceId: 'node-7', counter: 42n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 21.5 }] }
 */
export interface SignedBody {
  /** Protocol version (the body's magic and the digest signed); 1 when omitted. Decoded bodies always carry it. */
  readonly version?: SignedVersion
  readonly deviceId: string
  /** ≥ 1, strictly increasing per device; the gateway refuses a counter it has seen. */
  readonly counter: bigint
  readonly timeMs?: number
  readonly metrics: readonly Metric[]
}

/** A body and the signature over it, as received. */
export interface SignedMessage {
  /** The exact bytes signed (stored as the reading's `raw`). */
  readonly body: Uint8Array
  /** 65 bytes r || s || v. */
  readonly signature: Uint8Array
}

/** Why a message was refused, stable ids (counted in /metrics, returned to the device). */
export type SignedRejectCode = 'malformed' | 'invalid-metric' | 'bad-signature'

export type ParseSignedResult =
  | { readonly ok: true; readonly message: SignedMessage; readonly body: SignedBody }
  | { readonly ok: false; readonly code: SignedRejectCode; readonly reason: string }

const fail = (code: SignedRejectCode, reason: string) => ({ ok: false, code, reason }) as const
const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true })

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
  return a.length - b.length
}

/**
 * Encode a body (deterministic: metrics are sorted here).
 * @throws RangeError for a body the protocol cannot carry (the firmware side of the same rules).
 */
export function encodeSignedBody(b: SignedBody): Uint8Array {
  const version = b.version ?? 1
  if (version !== 1 && version !== 2) throw new RangeError('version must be 1 or 2')
  if (!DEVICE_ID_RE.test(b.deviceId)) throw new RangeError(`deviceId must match ${DEVICE_ID_RE.source}`)
  if (typeof b.counter !== 'bigint' || b.counter < 1n || b.counter > 0xffff_ffff_ffff_ffffn) throw new RangeError('counter must be a bigint in 1 … 2^64-1')
  if (b.timeMs !== undefined && (!Number.isSafeInteger(b.timeMs) || b.timeMs < 0)) throw new RangeError('timeMs must be a non-negative safe integer')
  if (b.metrics.length > DEVICE_PROTOCOL_LIMITS.metrics) throw new RangeError(`at most ${DEVICE_PROTOCOL_LIMITS.metrics} metrics`)
  const metrics = b.metrics.map((m) => ({ m, name: utf8.encode(m.name), unit: utf8.encode(m.unit) })).sort((x, y) => compareBytes(x.name, y.name))
  for (let i = 0; i < metrics.length; i++) {
    const { m, name, unit } = metrics[i] as (typeof metrics)[number]
    const c = checkMetric(m.name, m.unit, m.value)
    if (!c.ok) throw new RangeError(c.reason)
    if (name.length > DEVICE_PROTOCOL_LIMITS.stringBytes || unit.length > DEVICE_PROTOCOL_LIMITS.stringBytes) throw new RangeError(`metric ${m.name}: name and unit at most 64 bytes`)
    if (i > 0 && compareBytes((metrics[i - 1] as (typeof metrics)[number]).name, name) === 0) throw new RangeError(`metric ${m.name} appears twice`)
  }
  const id = utf8.encode(b.deviceId)
  let size = 4 + 1 + id.length + 8 + 1 + (b.timeMs !== undefined ? 8 : 0) + 1
  for (const x of metrics) size += 1 + x.name.length + 1 + x.unit.length + 8
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out.set(version === 2 ? SIGNED_BODY_MAGIC_V2 : SIGNED_BODY_MAGIC, 0)
  let p = 4
  out[p++] = id.length
  out.set(id, p)
  p += id.length
  view.setBigUint64(p, b.counter)
  p += 8
  if (b.timeMs !== undefined) {
    out[p++] = 1
    view.setBigUint64(p, BigInt(b.timeMs))
    p += 8
  } else out[p++] = 0
  out[p++] = metrics.length
  for (const x of metrics) {
    out[p++] = x.name.length
    out.set(x.name, p)
    p += x.name.length
    out[p++] = x.unit.length
    out.set(x.unit, p)
    p += x.unit.length
    view.setFloat64(p, Object.is(x.m.value, -0) ? 0 : x.m.value)
    p += 8
  }
  return out
}

class BodyError extends Error {
  readonly code: SignedRejectCode
  constructor(code: SignedRejectCode, message: string) {
    super(message)
    this.code = code
  }
}

/**
 * Decode a body strictly: only bytes that encodeSignedBody produces for some
 * body are accepted. Never throws.
 */
export function decodeSignedBody(bytes: Uint8Array): { ok: true; body: SignedBody } | { ok: false; code: SignedRejectCode; reason: string } {
  try {
    return { ok: true, body: decodeBodyUnchecked(bytes) }
  } catch (e) {
    if (e instanceof BodyError) return fail(e.code, e.message)
    return fail('malformed', `body: ${e instanceof Error ? e.message : String(e)}`)
  }
}

function decodeBodyUnchecked(bytes: Uint8Array): SignedBody {
  if (bytes.length > DEVICE_PROTOCOL_LIMITS.bodyBytes) throw new BodyError('malformed', `body: ${bytes.length} bytes exceeds ${DEVICE_PROTOCOL_LIMITS.bodyBytes}`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let p = 0
  const need = (n: number, what: string) => {
    if (p + n > bytes.length) throw new BodyError('malformed', `body: truncated in ${what}`)
  }
  need(4, 'magic')
  const version = signedBodyVersion(bytes)
  if (version === undefined) throw new BodyError('malformed', 'body: magic must be 46 50 44 01 or 46 50 44 02 ("FPD" version 1 or 2)')
  p = 4
  const str = (what: string, min: number, max: number): string => {
    need(1, what)
    const n = bytes[p++] as number
    if (n < min || n > max) throw new BodyError('malformed', `body: ${what} length ${n} not in ${min} … ${max}`)
    need(n, what)
    let s: string
    try {
      s = utf8Strict.decode(bytes.subarray(p, p + n))
    } catch {
      throw new BodyError('malformed', `body: ${what} is not UTF-8`)
    }
    p += n
    return s
  }
  const deviceId = str('device', 1, DEVICE_PROTOCOL_LIMITS.deviceIdBytes)
  if (!DEVICE_ID_RE.test(deviceId)) throw new BodyError('malformed', `body: device must match ${DEVICE_ID_RE.source}`)
  need(8, 'counter')
  const counter = view.getBigUint64(p)
  p += 8
  if (counter < 1n) throw new BodyError('malformed', 'body: counter must be ≥ 1')
  need(1, 'time presence')
  const tp = bytes[p++] as number
  if (tp > 1) throw new BodyError('malformed', `body: time presence byte must be 0 or 1, got ${tp}`)
  let timeMs: number | undefined
  if (tp === 1) {
    need(8, 'time')
    const t = view.getBigUint64(p)
    p += 8
    if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw new BodyError('malformed', 'body: time exceeds 2^53-1 ms')
    timeMs = Number(t)
  }
  need(1, 'metric count')
  const count = bytes[p++] as number
  if (count > DEVICE_PROTOCOL_LIMITS.metrics) throw new BodyError('malformed', `body: ${count} metrics exceeds ${DEVICE_PROTOCOL_LIMITS.metrics}`)
  const metrics: Metric[] = []
  let prev: Uint8Array | undefined
  for (let i = 0; i < count; i++) {
    const start = p + 1
    const name = str(`metrics[${i}].name`, 1, DEVICE_PROTOCOL_LIMITS.stringBytes)
    const nameBytes = bytes.subarray(start, p)
    if (prev !== undefined && compareBytes(prev, nameBytes) >= 0) throw new BodyError('malformed', `body: metrics must be sorted by name, names unique (at ${name})`)
    prev = nameBytes
    const unit = str(`metrics[${i}].unit`, 1, DEVICE_PROTOCOL_LIMITS.stringBytes)
    need(8, `metrics[${i}].value`)
    const value = view.getFloat64(p)
    if (value === 0 && 1 / value < 0) throw new BodyError('malformed', `body: metric ${name} is -0 (write +0)`)
    p += 8
    const c = checkMetric(name, unit, value)
    if (!c.ok) throw new BodyError('invalid-metric', `body: ${c.reason}`)
    metrics.push({ name, unit, value })
  }
  if (p !== bytes.length) throw new BodyError('malformed', `body: ${bytes.length - p} trailing byte(s)`)
  return { version, deviceId, counter, ...(timeMs !== undefined ? { timeMs } : {}), metrics }
}

/** The protocol version a body's magic names, or undefined for anything else. */
export function signedBodyVersion(body: Uint8Array): SignedVersion | undefined {
  if (body.length < 4 || body[0] !== 0x46 || body[1] !== 0x50 || body[2] !== 0x44) return undefined
  return body[3] === 0x01 ? 1 : body[3] === 0x02 ? 2 : undefined
}

// --- Wire forms ------------------------------------------------------------------

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/

/** The binary form: body || signature. */
export function encodeSignedBinary(m: SignedMessage): Uint8Array {
  const out = new Uint8Array(m.body.length + 65)
  out.set(m.body, 0)
  out.set(m.signature, m.body.length)
  return out
}

/** The JSON form: {"body": "0x…", "sig": "0x…"}. */
export function encodeSignedJson(m: SignedMessage): string {
  return JSON.stringify({ body: bytesToHex(m.body), sig: bytesToHex(m.signature) })
}

/**
 * Parse either wire form (JSON when the first non-blank byte is `{`, binary
 * when it is the magic) and decode the body. Does not check the signature.
 * Never throws.
 */
export function parseSignedMessage(payload: Uint8Array): ParseSignedResult {
  let i = 0
  while (i < payload.length && (payload[i] === 0x20 || payload[i] === 0x0a || payload[i] === 0x0d || payload[i] === 0x09)) i++
  let body: Uint8Array
  let signature: Uint8Array
  if (payload[i] === 0x7b) {
    if (payload.length > DEVICE_PROTOCOL_LIMITS.jsonBytes) return fail('malformed', `message: ${payload.length} bytes exceeds ${DEVICE_PROTOCOL_LIMITS.jsonBytes}`)
    let j: unknown
    try {
      j = JSON.parse(utf8Strict.decode(payload))
    } catch (e) {
      return fail('malformed', `message: not JSON: ${e instanceof Error ? e.message.slice(0, 100) : ''}`)
    }
    if (!isRecord(j)) return fail('malformed', 'message: must be a JSON object {"body", "sig"}')
    for (const k of Object.keys(j)) if (k !== 'body' && k !== 'sig') return fail('malformed', `message: unknown key "${k.slice(0, 40)}"`)
    const b = j['body']
    if (typeof b !== 'string') return fail('malformed', 'message.body: must be 0x-hex or base64 of the signed body')
    if (b.startsWith('0x')) {
      const x = tryHexToBytes(b)
      if (x === undefined) return fail('malformed', 'message.body: invalid hex')
      body = x
    } else {
      if (b.length % 4 !== 0 || !BASE64_RE.test(b)) return fail('malformed', 'message.body: invalid base64')
      body = new Uint8Array(Buffer.from(b, 'base64'))
    }
    const s = tryHexToBytes(j['sig'], 65)
    if (s === undefined) return fail('malformed', 'message.sig: must be 65 bytes of 0x-hex (r || s || v)')
    signature = s
  } else if (i === 0 && payload.length >= 4 && payload[0] === 0x46 && payload[1] === 0x50 && payload[2] === 0x44) {
    if (payload.length < 65 + 4) return fail('malformed', 'message: binary form shorter than a body and a 65-byte signature')
    body = payload.subarray(0, payload.length - 65)
    signature = payload.subarray(payload.length - 65)
  } else {
    return fail('malformed', 'message: neither the JSON form ({"body","sig"}) nor the binary form (body starting "FPD" || 65-byte signature)')
  }
  const v = signature[64] as number
  if (signedBodyVersion(body) === 2) {
    if (v !== 27 && v !== 28) return fail('bad-signature', `signature: v must be 27 or 28 (version 2), got ${v}`)
    if (!isLowS(signature)) return fail('bad-signature', 'signature: s must be at most n/2 (version 2 takes low-s signatures only)')
  } else if (v !== 27 && v !== 28 && v !== 0 && v !== 1) return fail('bad-signature', `signature: v must be 27, 28, 0 or 1, got ${v}`)
  const d = decodeSignedBody(body)
  if (!d.ok) return d
  return { ok: true, message: { body: body.slice(), signature: signature.slice() }, body: d.body }
}

// --- Signing (devices, tests, vectors) -------------------------------------------

/**
 * The digest a device signs, by the body's version: SHA-256(body) for
 * version 2, the EIP-191 digest otherwise (version 1, and any other bytes).
 */
export function signedBodyDigest(body: Uint8Array): Uint8Array {
  return signedBodyVersion(body) === 2 ? sha256(body) : hashPersonalMessage(body)
}

/** n/2 as 32 big-endian bytes: the largest low s. */
const HALF_N_BYTES = Buffer.from((secp256k1.CURVE.n >> 1n).toString(16).padStart(64, '0'), 'hex')

/** True when the s of a 64- or 65-byte r || s [|| v] signature is at most n/2 (BIP 62, EIP-2). */
export function isLowS(signature: Uint8Array): boolean {
  if (signature.length < 64) return false
  for (let i = 0; i < 32; i++) {
    const a = signature[32 + i] as number
    const b = HALF_N_BYTES[i] as number
    if (a !== b) return a < b
  }
  return true
}

/** Sign a body with a device key (RFC 6979 over the digest of its version, low s, v = 27/28). For firmware vectors, tests and simulators. */
export function signBody(body: SignedBody, privateKey: Uint8Array): SignedMessage {
  const bytes = encodeSignedBody(body)
  const sig = secp256k1.sign(signedBodyDigest(bytes), privateKey, { lowS: true })
  const signature = new Uint8Array(65)
  signature.set(sig.toCompactRawBytes(), 0)
  signature[64] = 27 + sig.recovery
  return { body: bytes, signature }
}

// --- Keys -------------------------------------------------------------------------

/** A device's registered key: uncompressed public key and its Ethereum address. */
export interface DevicePublicKey {
  /** 65 bytes 0x04 || X || Y. */
  readonly publicKey: Uint8Array
  readonly address: Hex
}

/** Parse a public key (33-byte compressed or 65-byte uncompressed, 0x-hex or bytes). Undefined when it is not on the curve. */
export function parseDevicePublicKey(value: string | Uint8Array): DevicePublicKey | undefined {
  const bytes = typeof value === 'string' ? tryHexToBytes(value) : value
  if (bytes === undefined || (bytes.length !== 33 && bytes.length !== 65) || (bytes.length === 65 && bytes[0] !== 4)) return undefined
  try {
    const point = secp256k1.ProjectivePoint.fromHex(bytes)
    point.assertValidity()
    // An uncompressed key on the curve is already its own uncompressed encoding.
    const publicKey = bytes.length === 65 ? bytes.slice() : point.toRawBytes(false)
    return { publicKey, address: publicKeyToAddress(publicKey) }
  } catch {
    return undefined
  }
}

/**
 * Recover the key that signed a message over the digest of its body's
 * version (pure JS, ~4x slower than DeviceVerifier.verify). Used once for a
 * device registered by address only, to learn its public key, and as the
 * reference in tests. Version 2 takes v 27/28 and low s only; its v is a
 * hint, so with `expectAddress` the other recovery id is tried too when the
 * given one does not lead to that address (what core/proof.ts does).
 * Never throws.
 */
export function recoverSignedMessageKey(m: SignedMessage, expectAddress?: string): DevicePublicKey | undefined {
  if (m.signature.length !== 65) return undefined
  const v = m.signature[64] as number
  const v2 = signedBodyVersion(m.body) === 2
  if (v2 && (!isLowS(m.signature) || (v !== 27 && v !== 28))) return undefined
  const rec = v === 27 || v === 28 ? v - 27 : v === 0 || v === 1 ? v : -1
  if (rec < 0) return undefined
  const digest = signedBodyDigest(m.body)
  const recover = (bit: number): DevicePublicKey | undefined => {
    try {
      const sig = secp256k1.Signature.fromCompact(m.signature.subarray(0, 64)).addRecoveryBit(bit)
      const publicKey = sig.recoverPublicKey(digest).toRawBytes(false)
      return { publicKey, address: publicKeyToAddress(publicKey) }
    } catch {
      return undefined
    }
  }
  const first = recover(rec)
  if (!v2 || expectAddress === undefined || first?.address.toLowerCase() === expectAddress.toLowerCase()) return first
  const other = recover(rec ^ 1)
  return other?.address.toLowerCase() === expectAddress.toLowerCase() ? other : first
}

// --- Version 2 through node:crypto -------------------------------------------------
//
// SHA-256 is OpenSSL's own digest, so a version-2 check is one ECDSA
// verification (SEC 1 v2 §4.1.4) of (r, s) over the body with the registered
// key, imported once as a KeyObject and cached. OpenSSL compares only
// x(u1·G + u2·Q) mod n with r, so it accepts (r, s) whichever y parity that
// point has: v is not checked here (finding the parity would cost a second
// scalar multiplication, as much as the verification), and core/proof.ts
// accordingly treats a version-2 v as a hint, trying the other recovery id
// when the given one does not lead to the device's address. The recovery
// ids 2 and 3 (x(R) ≥ n) are outside v 27/28; a signature that needs them
// occurs with probability below 2^-127 and cannot be aimed at.

/** DER SubjectPublicKeyInfo prefix for an uncompressed secp256k1 point (RFC 5480 §2, OID 1.3.132.0.10). */
const SPKI_PREFIX = Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex')

/** Import an uncompressed public key (65 bytes) as a node:crypto KeyObject; undefined when it is not a curve point. */
export function devicePublicKeyObject(publicKey: Uint8Array): KeyObject | undefined {
  if (publicKey.length !== 65 || publicKey[0] !== 4) return undefined
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
  } catch {
    return undefined
  }
}

/**
 * The version-2 check with a KeyObject already imported: v 27/28, low s, and
 * (r, s) an ECDSA signature of SHA-256(body) by `key`. Never throws.
 */
export function verifyV2WithKey(body: Uint8Array, signature: Uint8Array, key: KeyObject): boolean {
  if (signature.length !== 65) return false
  const v = signature[64] as number
  if ((v !== 27 && v !== 28) || !isLowS(signature)) return false
  try {
    return cryptoVerify('sha256', body, { key, dsaEncoding: 'ieee-p1363' }, signature.subarray(0, 64))
  } catch {
    return false
  }
}

/** Cached KeyObjects by public key bytes (bounded; cleared when full). */
export class DeviceKeyCache {
  readonly #keys = new Map<string, KeyObject | null>()
  readonly #max: number

  constructor(max = 4096) {
    this.#max = max
  }

  /** The KeyObject of a 65-byte uncompressed key, or undefined when it is not a curve point. */
  get(publicKey: Uint8Array): KeyObject | undefined {
    const k = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1')
    let key = this.#keys.get(k)
    if (key === undefined) {
      key = devicePublicKeyObject(publicKey) ?? null
      if (this.#keys.size >= this.#max) this.#keys.clear()
      this.#keys.set(k, key)
    }
    return key ?? undefined
  }
}

// --- Fast verification through node:crypto -----------------------------------------
//
// Notation: G the generator, n its order, Q the device key, e = keccak digest,
// (r, s, v) the signature, R_v the curve point with x = r and y parity v.
// What proof.ts accepts is exactly: R_v = P where P = u1·G + u2·Q,
// u1 = e/s, u2 = r/s (recovery with v yields Q). OpenSSL computes only
// x(u1'·G + u2'·Q') mod n for SHA-256 digests e' of data we pass. So:
//   pick a secret random z (Z = z·G), T = R_v + Z, r2 = x(T) mod n,
//   s2 = r2·s/r  (so r2/s2 = u2),  c = ((u1 + z)·s2 − e')/r2,  Q' = Q + c·G
// then OpenSSL's point is (e'/s2)·G + (r2/s2)·(Q + c·G) = u1·G + u2·Q + Z = P + Z,
// and it accepts iff x(P + Z) ≡ x(R_v + Z), i.e. P + Z = ±(R_v + Z):
//   P = R_v                (a valid signature whose v recovers Q), or
//   P = −R_v − 2Z          (requires knowing z, which never leaves this object).
// Cost: one fixed-base multiplication and a square root in JS, one OpenSSL
// verification; z is replaced every ROTATE_EVERY checks. (Constant-time
// multiply: noble-curves 1.9.1 multiplyUnsafe on the base point returns wrong
// points for some full-size scalars.)

const CURVE = secp256k1.CURVE
const N = CURVE.n
const Point = secp256k1.ProjectivePoint
const EMPTY = new Uint8Array(0)
const E_EMPTY = BigInt('0x' + createHash('sha256').update(EMPTY).digest('hex')) % N
const ROTATE_EVERY = 4096

function mod(a: bigint, m = N): bigint {
  const r = a % m
  return r >= 0n ? r : r + m
}

function invert(a: bigint, m = N): bigint {
  // Extended Euclid; a is in 1 … m-1 here.
  let [old, cur] = [mod(a, m), m]
  let [x, y] = [1n, 0n]
  while (cur !== 0n) {
    const q = old / cur
    ;[old, cur] = [cur, old - q * cur]
    ;[x, y] = [y, x - q * y]
  }
  return mod(x, m)
}

function bytesToBigint(b: Uint8Array): bigint {
  return BigInt('0x' + (Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') || '0'))
}

function bigintTo32(v: bigint): Buffer {
  return Buffer.from(v.toString(16).padStart(64, '0'), 'hex')
}

/**
 * Checks device signatures against registered public keys through
 * node:crypto. One instance per thread; not shared across threads.
 */
export class DeviceVerifier {
  readonly #keys = new DeviceKeyCache()
  #z = 0n
  #Z = Point.ZERO
  #uses = ROTATE_EVERY

  #rotate(): void {
    const z = mod(bytesToBigint(randomBytes(32)), N - 1n) + 1n
    this.#z = z
    this.#Z = Point.BASE.multiply(z)
    this.#uses = 0
  }

  /**
   * True when `signature` (65 bytes r || s || v) is `publicKey`'s signature
   * of `body` (65 bytes uncompressed) under the body's version, i.e. exactly
   * when core/proof.ts's device-signature check will pass:
   * - version 2: (r, s) over SHA-256(body), low s, v 27/28 (one cached
   *   OpenSSL verification, see verifyV2WithKey);
   * - version 1 (any other bytes): EIP-191, and v recovers the key; high s
   *   and v 0/1 accepted (as proof.ts does).
   * Never throws.
   */
  verify(body: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
    if (signedBodyVersion(body) === 2) {
      const key = this.#keys.get(publicKey)
      return key !== undefined && verifyV2WithKey(body, signature, key)
    }
    return this.verifyDigest(hashPersonalMessage(body), signature, publicKey)
  }

  /** verify() of version 1 for an EIP-191 digest already computed. */
  verifyDigest(digest: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
    try {
      if (signature.length !== 65 || digest.length !== 32 || publicKey.length !== 65) return false
      const v = signature[64] as number
      const parity = v === 27 || v === 28 ? v - 27 : v === 0 || v === 1 ? v : -1
      if (parity < 0) return false
      const r = bytesToBigint(signature.subarray(0, 32))
      const s = bytesToBigint(signature.subarray(32, 64))
      if (r <= 0n || r >= N || s <= 0n || s >= N) return false
      if (this.#uses++ >= ROTATE_EVERY) this.#rotate()
      const e = mod(bytesToBigint(digest))
      const rBytes = new Uint8Array(33)
      rBytes[0] = 2 + parity
      rBytes.set(bigintTo32(r), 1)
      let Rv
      try {
        Rv = Point.fromHex(rBytes)
      } catch {
        return false // r is not the x of any curve point
      }
      const T = Rv.add(this.#Z)
      if (T.equals(Point.ZERO)) return false
      const r2 = mod(T.toAffine().x)
      if (r2 === 0n) return false
      const u1 = mod(e * invert(s))
      const s2 = mod(r2 * s * invert(r))
      if (s2 === 0n) return false
      const c = mod((mod(u1 + this.#z) * s2 - E_EMPTY) * invert(r2))
      const Q = Point.fromHex(publicKey)
      const Qc = c === 0n ? Q : Q.add(Point.BASE.multiply(c))
      if (Qc.equals(Point.ZERO)) return false
      const a = Qc.toAffine()
      const key: KeyObject = createPublicKey({
        key: { kty: 'EC', crv: 'secp256k1', x: bigintTo32(a.x).toString('base64url'), y: bigintTo32(a.y).toString('base64url') },
        format: 'jwk',
      })
      const sig2 = Buffer.concat([bigintTo32(r2), bigintTo32(s2)])
      return cryptoVerify('sha256', EMPTY, { key, dsaEncoding: 'ieee-p1363' }, sig2)
    } catch {
      return false
    }
  }
}

/** The reference check (pure JS recovery, as proof.ts does it): the signer's address, or undefined. */
export function signerAddressOf(m: SignedMessage): Hex | undefined {
  return recoverSignedMessageKey(m)?.address
}

/** keccak256 of body || signature: identifies one exact message (duplicate detection). WebAssembly Keccak (core/hex.ts). */
export function signedMessageId(m: SignedMessage): string {
  const buf = new Uint8Array(m.body.length + m.signature.length)
  buf.set(m.body, 0)
  buf.set(m.signature, m.body.length)
  const d = keccak256(buf)
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex')
}
