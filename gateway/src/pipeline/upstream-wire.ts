// The upstream batch document, version 1 (docs/upstream-protocol.md, "The
// batch document"): what the HTTP sink POSTs, the MQTT sink publishes and
// `fieldproof receive` verifies. Pure: no I/O.
//
//   { "type": "fieldproof.batch", "version": 1,
//     "batch": { "header": {...}, "hash": "0x…", "signature": "0x…" },   // SignedBatchJson
//     "readings": [ { "seq": "17", "canonical": "0xf1…" }, ... ]          // payload "canonical"
//     — or —
//     "leaves": [ "0x…", ... ] }                                          // payload "leaves"
//
// JSON (application/json) carries bytes as 0x-hex. CBOR (application/cbor,
// RFC 8949) is the same map with `readings[].canonical` and `leaves[]` as
// byte strings (major type 2); everything else is as in JSON.

import { Decoder, Encoder } from 'cbor-x'
import { signedBatchFromJson, signedBatchToJson } from '../core/batch.ts'
import { bytesToHex, parseU64Decimal, tryHexToBytes } from '../core/hex.ts'
import type { SignedBatch } from '../core/types.ts'
import type { SinkBatch } from './sink.ts'

export const WIRE_TYPE = 'fieldproof.batch'
export const WIRE_VERSION = 1

export type WireFormat = 'json' | 'cbor'
export type WirePayload = 'canonical' | 'leaves'

export const CONTENT_TYPES: Readonly<Record<WireFormat, string>> = { json: 'application/json', cbor: 'application/cbor' }

/** Most readings (or leaves) one document may carry: batch.max_readings' upper bound. */
export const WIRE_MAX_ITEMS = 1_000_000

// Plain RFC 8949 CBOR: no record extension, maps as maps, Uint8Array as a byte string (no typed-array tag).
const cborEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0])
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true } as ConstructorParameters<typeof Decoder>[0])

/** A decoded document: the signed header and either the readings or the leaves. */
export interface WireBatch {
  readonly signed: SignedBatch
  readonly readings?: readonly { readonly seq: bigint; readonly canonical: Uint8Array }[]
  readonly leaves?: readonly Uint8Array[]
}

export type WireDecodeResult = { readonly ok: true; readonly doc: WireBatch } | { readonly ok: false; readonly reason: string }

/** The document of one batch as a plain object (bytes as hex for JSON, raw for CBOR). */
export function wireDocument(b: SinkBatch, payload: WirePayload, format: WireFormat): Record<string, unknown> {
  const bytes = (u: Uint8Array): string | Uint8Array => (format === 'json' ? bytesToHex(u) : u)
  const base = { type: WIRE_TYPE, version: WIRE_VERSION, batch: signedBatchToJson(b.signed) }
  if (payload === 'leaves') return { ...base, leaves: b.leaves().map(bytes) }
  return { ...base, readings: b.readings().map((r) => ({ seq: r.seq.toString(), canonical: bytes(r.canonical) })) }
}

/** Encode one batch: the body bytes and their content type. */
export function encodeWire(b: SinkBatch, payload: WirePayload, format: WireFormat): { body: Uint8Array; contentType: string } {
  const doc = wireDocument(b, payload, format)
  const body = format === 'json' ? new TextEncoder().encode(JSON.stringify(doc)) : new Uint8Array(cborEncoder.encode(doc))
  return { body, contentType: CONTENT_TYPES[format] }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function toBytes(v: unknown): Uint8Array | undefined {
  if (v instanceof Uint8Array) return v
  return tryHexToBytes(v)
}

/**
 * Decode and shape-check a document (JSON or CBOR by content type). Never
 * throws: a malformed body is a reason. Cryptographic checks are the
 * verifier's (receiver/verify.ts).
 */
export function decodeWire(body: Uint8Array, contentType: string | undefined): WireDecodeResult {
  const ct = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
  let doc: unknown
  try {
    if (ct === 'application/cbor') doc = cborDecoder.decode(body)
    else if (ct === 'application/json' || ct === '') doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
    else return { ok: false, reason: `unsupported content type "${ct.slice(0, 60)}"; use application/json or application/cbor` }
  } catch (e) {
    return { ok: false, reason: `body is not ${ct === 'application/cbor' ? 'CBOR' : 'JSON'}: ${(e as Error).message}` }
  }
  if (!isRecord(doc)) return { ok: false, reason: 'the document must be a map/object' }
  for (const k of Object.keys(doc)) {
    if (!['type', 'version', 'batch', 'readings', 'leaves'].includes(k)) return { ok: false, reason: `unknown key "${k.slice(0, 40)}"` }
  }
  if (doc.type !== WIRE_TYPE) return { ok: false, reason: `type must be "${WIRE_TYPE}"` }
  if (doc.version !== WIRE_VERSION) return { ok: false, reason: `version must be ${WIRE_VERSION}` }
  let signed: SignedBatch
  try {
    signed = signedBatchFromJson(doc.batch)
  } catch (e) {
    return { ok: false, reason: `batch: ${(e as Error).message}` }
  }
  const hasReadings = doc.readings !== undefined
  const hasLeaves = doc.leaves !== undefined
  if (hasReadings === hasLeaves) return { ok: false, reason: 'exactly one of "readings" and "leaves" must be present' }
  if (hasLeaves) {
    if (!Array.isArray(doc.leaves) || doc.leaves.length > WIRE_MAX_ITEMS) return { ok: false, reason: `leaves must be an array of at most ${WIRE_MAX_ITEMS}` }
    const leaves: Uint8Array[] = []
    for (let i = 0; i < doc.leaves.length; i++) {
      const l = toBytes(doc.leaves[i])
      if (l === undefined || l.length !== 32) return { ok: false, reason: `leaves[${i}] must be 32 bytes` }
      leaves.push(l)
    }
    return { ok: true, doc: { signed, leaves } }
  }
  if (!Array.isArray(doc.readings) || doc.readings.length > WIRE_MAX_ITEMS) return { ok: false, reason: `readings must be an array of at most ${WIRE_MAX_ITEMS}` }
  const readings: { seq: bigint; canonical: Uint8Array }[] = []
  for (let i = 0; i < doc.readings.length; i++) {
    const r: unknown = doc.readings[i]
    if (!isRecord(r)) return { ok: false, reason: `readings[${i}] must be an object` }
    const seq = parseU64Decimal(r.seq)
    if (seq === undefined) return { ok: false, reason: `readings[${i}].seq must be a decimal string` }
    const canonical = toBytes(r.canonical)
    if (canonical === undefined || canonical.length === 0) return { ok: false, reason: `readings[${i}].canonical must be non-empty bytes` }
    readings.push({ seq, canonical })
  }
  return { ok: true, doc: { signed, readings } }
}
