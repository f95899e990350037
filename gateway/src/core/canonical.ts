// Canonical reading encoding, version 1 (docs/canonical-encoding.md).
//
// One deterministic byte string per Reading: big-endian fixed-width integers,
// length-prefixed UTF-8 strings, fields in a fixed order, a leading
// magic/version byte (0xF1). Metrics are sorted by name and radio keys by
// their UTF-8 bytes; numbers are IEEE-754 binary64 with -0 written as +0;
// optional fields carry a presence byte, so absent and empty are distinct.
// The decoder accepts exactly the bytes the encoder produces, nothing else.
//
// The Merkle leaf of a sequenced reading is the OpenZeppelin
// StandardMerkleTree leaf of ['uint64', 'bytes32'] [seq, keccak256(canonical)]:
// keccak256(keccak256(abi.encode(seq, readingHash))) (OpenZeppelin
// merkle-tree README, "Validating a proof in Solidity"; the double hash
// prevents second-preimage attacks with 64-byte inner nodes).

import { FieldproofError } from './errors.ts'
import {
  bytesToHex,
  bytesToHexNoPrefix,
  decodeHexInto,
  isSafeU64Number,
  isU32,
  isU64,
  keccak256,
  parseAddress,
  parseU64Decimal,
  toChecksumAddress,
  tryHexToBytes,
} from './hex.ts'
import { leafOfHash, seqLeaf, seqLeafInto } from './keccak.ts'
import { AUTH_KINDS, BLE_CCM_SCHEMES, CLOCK_STATES, SOURCE_KINDS } from './types.ts'
import type { AuthKind, BleCcmScheme, ClockState, Hex, Metric, RadioMeta, Reading, ReadingAuth, SourceKind } from './types.ts'
import { checkMetric } from './units.ts'

/** Version of the canonical encoding this module writes and reads. */
export const CANONICAL_VERSION = 1

/** First byte of every version-1 encoding: 0xF0 | version. */
export const CANONICAL_MAGIC = 0xf0 | CANONICAL_VERSION

/** Limits enforced by the encoder and the decoder. */
export const CANONICAL_LIMITS = {
  /** deviceId length in bytes (ASCII, see DEVICE_ID_RE). */
  deviceIdBytes: 128,
  metrics: 64,
  radioKeys: 32,
  /** Any other string (metric name, unit, radio key and string value, username, tokenId). */
  stringBytes: 255,
  /** 64 KiB. */
  rawBytes: 65536,
} as const

/** Device ids: `[A-Za-z0-9._:@/-]{1,128}` (types.ts, Reading.deviceId). */
export const DEVICE_ID_RE = /^[A-Za-z0-9._:@/-]{1,128}$/

const BOOT_ID_RE = /^[0-9a-fA-F]{32}$/
const SIG_RE = /^0x[0-9a-fA-F]{130}$/
const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/

const TAG_NUMBER = 0x01
const TAG_STRING = 0x02

// Index lookups for the u8 enumerations (the order of the arrays in types.ts
// is part of the format: append only).
const SOURCE_INDEX = new Map<string, number>(SOURCE_KINDS.map((k, i) => [k, i]))
const CLOCK_INDEX = new Map<string, number>(CLOCK_STATES.map((k, i) => [k, i]))
const AUTH_INDEX = new Map<string, number>(AUTH_KINDS.map((k, i) => [k, i]))
const CCM_SCHEME_INDEX = new Map<string, number>(BLE_CCM_SCHEMES.map((k, i) => [k, i]))

function invalid(field: string, message: string, cause?: unknown): FieldproofError {
  return new FieldproofError('READING_INVALID', `${field}: ${message}`, cause === undefined ? { details: { field } } : { details: { field }, cause })
}

/**
 * Byte length of `s` in UTF-8, or -1 when it holds a lone surrogate (which
 * UTF-8 cannot represent: encoding it would silently change the string).
 */
function utf8Length(s: string): number {
  let n = 0
  const len = s.length
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c < 0xd800 || c > 0xdfff) n += 3
    else {
      if (c > 0xdbff || i + 1 >= len) return -1
      const d = s.charCodeAt(i + 1)
      if (d < 0xdc00 || d > 0xdfff) return -1
      i++
      n += 4
    }
  }
  return n
}

/** Write well-formed `s` as UTF-8 at `off`; returns the offset after it. */
function writeUtf8(out: Uint8Array, off: number, s: string): number {
  const len = s.length
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i)
    if (c < 0x80) out[off++] = c
    else if (c < 0x800) {
      out[off++] = 0xc0 | (c >> 6)
      out[off++] = 0x80 | (c & 0x3f)
    } else if (c < 0xd800 || c > 0xdfff) {
      out[off++] = 0xe0 | (c >> 12)
      out[off++] = 0x80 | ((c >> 6) & 0x3f)
      out[off++] = 0x80 | (c & 0x3f)
    } else {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00)
      out[off++] = 0xf0 | (c >> 18)
      out[off++] = 0x80 | ((c >> 12) & 0x3f)
      out[off++] = 0x80 | ((c >> 6) & 0x3f)
      out[off++] = 0x80 | (c & 0x3f)
    }
  }
  return off
}

/** Write an ASCII string (already validated) at `off`. */
function writeAscii(out: Uint8Array, off: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[off++] = s.charCodeAt(i)
  return off
}

/**
 * Order of two well-formed strings by their UTF-8 bytes. UTF-16 code units
 * order the same way except that surrogates (code points ≥ U+10000) must
 * sort after U+E000..U+FFFF.
 */
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x !== y) {
      if (x >= 0xd800 && x <= 0xdfff) x += 0x10000
      if (y >= 0xd800 && y <= 0xdfff) y += 0x10000
      return x - y
    }
  }
  return a.length - b.length
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto: unknown = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

// --- Encoder ---------------------------------------------------------------

// Results of the validation pass, handed to the write pass. encodeReading is
// synchronous and not re-entrant, so module-level scratch is safe.
let planMetrics: readonly Metric[] = []
let planRadioKeys: string[] = []

/**
 * Validate `r` and return the exact size of its encoding. Leaves the sorted
 * metrics and radio keys in the plan scratch for the write pass.
 */
function plan(r: Reading): number {
  if (!isPlainObject(r)) throw invalid('reading', 'must be an object')
  const deviceId: unknown = r.deviceId
  if (typeof deviceId !== 'string' || !DEVICE_ID_RE.test(deviceId)) throw invalid('deviceId', `must match ${DEVICE_ID_RE.source}`)
  if (!SOURCE_INDEX.has(r.source)) throw invalid('source', `must be one of ${SOURCE_KINDS.join(', ')}`)
  const rt = r.received as unknown
  if (!isPlainObject(rt)) throw invalid('received', 'must be an object')
  if (typeof rt.bootId !== 'string' || !BOOT_ID_RE.test(rt.bootId)) throw invalid('received.bootId', 'must be 32 hex digits (16 bytes, no 0x)')
  if (!isU64(rt.monoNs)) throw invalid('received.monoNs', 'must be a bigint in 0 … 2^64-1')
  if (!isSafeU64Number(rt.wallMs)) throw invalid('received.wallMs', 'must be an integer in 0 … 2^53-1')
  if (typeof rt.clock !== 'string' || !CLOCK_INDEX.has(rt.clock)) throw invalid('received.clock', `must be one of ${CLOCK_STATES.join(', ')}`)

  // magic, id length + id, source, bootId, monoNs, wallMs, clock, deviceTime presence
  let size = 1 + 1 + deviceId.length + 1 + 16 + 8 + 8 + 1 + 1
  if (r.deviceTimeMs !== undefined) {
    if (!isSafeU64Number(r.deviceTimeMs)) throw invalid('deviceTimeMs', 'must be an integer in 0 … 2^53-1')
    size += 8
  }

  // Metrics: validate, check order, size.
  const metrics: unknown = r.metrics
  if (!Array.isArray(metrics)) throw invalid('metrics', 'must be an array')
  if (metrics.length > CANONICAL_LIMITS.metrics) throw invalid('metrics', `at most ${CANONICAL_LIMITS.metrics} metrics`)
  let sorted = true
  let prev = ''
  size += 1
  for (let i = 0; i < metrics.length; i++) {
    const m: unknown = metrics[i]
    if (!isPlainObject(m)) throw invalid(`metrics[${i}]`, 'must be an object')
    const { name, unit, value } = m
    if (typeof name !== 'string') throw invalid(`metrics[${i}].name`, 'must be a string')
    if (typeof unit !== 'string') throw invalid(`metrics[${i}].unit`, 'must be a string')
    if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(`metrics[${i}].value`, 'must be a finite number')
    const check = checkMetric(name, unit, value)
    if (!check.ok) throw invalid(`metrics[${i}]`, check.reason)
    // Names match METRIC_NAME_RE (ASCII), so string order is byte order.
    if (i > 0 && name <= prev) sorted = false
    prev = name
    size += 1 + name.length + 1 + unit.length + 8
  }
  if (sorted) planMetrics = metrics as readonly Metric[]
  else {
    // Insertion sort: readings hold a few metrics, where it beats Array.prototype.sort's setup.
    const copy = (metrics as readonly Metric[]).slice()
    for (let i = 1; i < copy.length; i++) {
      const m = copy[i] as Metric
      let j = i - 1
      for (; j >= 0 && (copy[j] as Metric).name > m.name; j--) copy[j + 1] = copy[j] as Metric
      copy[j + 1] = m
    }
    for (let i = 1; i < copy.length; i++) {
      if ((copy[i] as Metric).name === (copy[i - 1] as Metric).name) throw invalid('metrics', `duplicate metric name "${(copy[i] as Metric).name}"`)
    }
    planMetrics = copy
  }

  // Radio metadata.
  size += 1
  if (r.radio !== undefined) {
    const radio: unknown = r.radio
    if (!isPlainObject(radio)) throw invalid('radio', 'must be an object')
    const keys = Object.keys(radio)
    if (keys.length > CANONICAL_LIMITS.radioKeys) throw invalid('radio', `at most ${CANONICAL_LIMITS.radioKeys} keys`)
    size += 1
    for (const k of keys) {
      const kl = utf8Length(k)
      if (kl < 1 || kl > CANONICAL_LIMITS.stringBytes) throw invalid(`radio.${k.slice(0, 40)}`, 'keys must be 1 … 255 bytes of well-formed UTF-8')
      const v = radio[k]
      size += 1 + kl + 1
      if (typeof v === 'number') {
        if (!Number.isFinite(v)) throw invalid(`radio.${k}`, 'must be a finite number')
        size += 8
      } else if (typeof v === 'string') {
        const vl = utf8Length(v)
        if (vl < 0 || vl > CANONICAL_LIMITS.stringBytes) throw invalid(`radio.${k}`, 'strings must be 0 … 255 bytes of well-formed UTF-8')
        size += 1 + vl
      } else throw invalid(`radio.${k}`, 'must be a number or a string')
    }
    planRadioKeys = keys.length > 1 ? keys.sort(compareUtf8) : keys
  } else planRadioKeys = []

  // Raw bytes.
  size += 1
  if (r.raw !== undefined) {
    if (!(r.raw instanceof Uint8Array)) throw invalid('raw', 'must be a Uint8Array')
    if (r.raw.length > CANONICAL_LIMITS.rawBytes) throw invalid('raw', `at most ${CANONICAL_LIMITS.rawBytes} bytes`)
    size += 4 + r.raw.length
  }

  // Authentication.
  const auth = r.auth as unknown
  if (!isPlainObject(auth) || typeof auth.kind !== 'string' || !AUTH_INDEX.has(auth.kind)) {
    throw invalid('auth.kind', `must be one of ${AUTH_KINDS.join(', ')}`)
  }
  size += 1
  switch (auth.kind as AuthKind) {
    case 'none':
      break
    case 'device-signature': {
      if (typeof auth.address !== 'string' || !ADDRESS_RE.test(auth.address) || parseAddress(auth.address) === undefined) {
        throw invalid('auth.address', 'must be a 20-byte 0x address (lowercase or valid EIP-55 checksum)')
      }
      if (!isU64(auth.counter)) throw invalid('auth.counter', 'must be a bigint in 0 … 2^64-1')
      if (typeof auth.signature !== 'string' || !SIG_RE.test(auth.signature)) throw invalid('auth.signature', 'must be 65 bytes of 0x hex')
      size += 20 + 8 + 65
      break
    }
    case 'lorawan-mic':
      if (!isU32(auth.devAddr)) throw invalid('auth.devAddr', 'must be an integer in 0 … 2^32-1')
      if (!isU32(auth.fcnt)) throw invalid('auth.fcnt', 'must be an integer in 0 … 2^32-1')
      size += 8
      break
    case 'bthome-encryption':
      if (!isU32(auth.counter)) throw invalid('auth.counter', 'must be an integer in 0 … 2^32-1')
      size += 4
      break
    case 'ble-aes-ccm':
      if (typeof auth.scheme !== 'string' || !CCM_SCHEME_INDEX.has(auth.scheme)) throw invalid('auth.scheme', `must be one of ${BLE_CCM_SCHEMES.join(', ')}`)
      if (!isU32(auth.counter)) throw invalid('auth.counter', 'must be an integer in 0 … 2^32-1')
      size += 5
      break
    case 'mqtt-credentials': {
      const l = typeof auth.username === 'string' ? utf8Length(auth.username) : -1
      if (l < 1 || l > CANONICAL_LIMITS.stringBytes) throw invalid('auth.username', 'must be 1 … 255 bytes of well-formed UTF-8')
      size += 1 + l
      break
    }
    case 'http-token': {
      const l = typeof auth.tokenId === 'string' ? utf8Length(auth.tokenId) : -1
      if (l < 1 || l > CANONICAL_LIMITS.stringBytes) throw invalid('auth.tokenId', 'must be 1 … 255 bytes of well-formed UTF-8')
      size += 1 + l
      break
    }
  }
  return size
}

function writeU64Number(view: DataView, off: number, v: number): void {
  view.setUint32(off, Math.floor(v / 0x1_0000_0000))
  view.setUint32(off + 4, v >>> 0)
}

/** Write a float64, with -0 as +0 (equal values give equal bytes). */
function writeF64(view: DataView, off: number, v: number): void {
  view.setFloat64(off, v === 0 ? 0 : v)
}

// Encodings up to SLAB_MAX_ENCODING bytes are views into a shared slab, as
// Buffer.allocUnsafe pools small buffers: a typed array of its own costs an
// ArrayBuffer allocation (~0.3 µs, and work for the garbage collector) per
// reading. A slab is never written twice (a full one is replaced) and is
// freed once no encoding in it is referenced.
const SLAB_BYTES = 16_384
const SLAB_MAX_ENCODING = 1024
let slab = new Uint8Array(SLAB_BYTES)
let slabView = new DataView(slab.buffer)
let slabAt = 0

/**
 * Encode a reading canonically (docs/canonical-encoding.md, version 1).
 * Metrics are sorted by name and radio keys by bytes, so the input order
 * does not matter.
 *
 * @throws FieldproofError('READING_INVALID') naming the bad field.
 * @example
 * const bytes = encodeReading(reading)
 * const leaf = leafHash(seq, bytes)
 */
export function encodeReading(r: Reading): Uint8Array {
  const size = plan(r)
  let out: Uint8Array
  let view: DataView
  let o: number
  if (size <= SLAB_MAX_ENCODING) {
    if (slabAt + size > SLAB_BYTES) {
      slab = new Uint8Array(SLAB_BYTES)
      slabView = new DataView(slab.buffer)
      slabAt = 0
    }
    out = slab
    view = slabView
    o = slabAt
    slabAt = (slabAt + size + 7) & ~7
  } else {
    out = new Uint8Array(size)
    view = new DataView(out.buffer)
    o = 0
  }
  const base = o
  out[o++] = CANONICAL_MAGIC
  out[o++] = r.deviceId.length
  o = writeAscii(out, o, r.deviceId)
  out[o++] = SOURCE_INDEX.get(r.source) as number
  decodeHexInto(r.received.bootId, 0, out, o, 16)
  o += 16
  view.setBigUint64(o, r.received.monoNs)
  o += 8
  writeU64Number(view, o, r.received.wallMs)
  o += 8
  out[o++] = CLOCK_INDEX.get(r.received.clock) as number
  if (r.deviceTimeMs !== undefined) {
    out[o++] = 1
    writeU64Number(view, o, r.deviceTimeMs)
    o += 8
  } else out[o++] = 0

  const metrics = planMetrics
  out[o++] = metrics.length
  for (let i = 0; i < metrics.length; i++) {
    const m = metrics[i] as Metric
    out[o++] = m.name.length
    o = writeAscii(out, o, m.name)
    out[o++] = m.unit.length
    o = writeAscii(out, o, m.unit)
    writeF64(view, o, m.value)
    o += 8
  }

  if (r.radio !== undefined) {
    const radio = r.radio
    const keys = planRadioKeys
    out[o++] = 1
    out[o++] = keys.length
    for (const k of keys) {
      const lenAt = o++
      o = writeUtf8(out, o, k)
      out[lenAt] = o - lenAt - 1
      const v = radio[k] as number | string
      if (typeof v === 'number') {
        out[o++] = TAG_NUMBER
        writeF64(view, o, v)
        o += 8
      } else {
        out[o++] = TAG_STRING
        const at = o++
        o = writeUtf8(out, o, v)
        out[at] = o - at - 1
      }
    }
  } else out[o++] = 0

  if (r.raw !== undefined) {
    out[o++] = 1
    view.setUint32(o, r.raw.length)
    o += 4
    out.set(r.raw, o)
    o += r.raw.length
  } else out[o++] = 0

  const auth = r.auth
  out[o++] = AUTH_INDEX.get(auth.kind) as number
  switch (auth.kind) {
    case 'none':
      break
    case 'device-signature':
      decodeHexInto(auth.address, 2, out, o, 20)
      o += 20
      view.setBigUint64(o, auth.counter)
      o += 8
      decodeHexInto(auth.signature, 2, out, o, 65)
      o += 65
      break
    case 'lorawan-mic':
      view.setUint32(o, auth.devAddr)
      view.setUint32(o + 4, auth.fcnt)
      o += 8
      break
    case 'bthome-encryption':
      view.setUint32(o, auth.counter)
      o += 4
      break
    case 'ble-aes-ccm':
      out[o++] = CCM_SCHEME_INDEX.get(auth.scheme) as number
      view.setUint32(o, auth.counter)
      o += 4
      break
    case 'mqtt-credentials': {
      const at = o++
      o = writeUtf8(out, o, auth.username)
      out[at] = o - at - 1
      break
    }
    case 'http-token': {
      const at = o++
      o = writeUtf8(out, o, auth.tokenId)
      out[at] = o - at - 1
      break
    }
  }
  planMetrics = []
  planRadioKeys = []
  if (o - base !== size) throw new FieldproofError('INTERNAL', `canonical encoder wrote ${o - base} bytes, planned ${size}`)
  return out === slab ? out.subarray(base, o) : out
}

/**
 * Validate a reading without encoding it.
 * @throws FieldproofError('READING_INVALID') naming the bad field.
 */
export function validateReading(r: Reading): void {
  plan(r)
  planMetrics = []
  planRadioKeys = []
}

// --- Decoder ---------------------------------------------------------------

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

class Reader {
  pos = 0
  readonly bytes: Uint8Array
  readonly view: DataView
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  need(n: number, field: string): void {
    if (this.pos + n > this.bytes.length) throw invalid(field, `truncated: needs ${n} byte(s) at offset ${this.pos}, ${this.bytes.length - this.pos} left`)
  }
  u8(field: string): number {
    this.need(1, field)
    return this.bytes[this.pos++] as number
  }
  u32(field: string): number {
    this.need(4, field)
    const v = this.view.getUint32(this.pos)
    this.pos += 4
    return v
  }
  u64(field: string): bigint {
    this.need(8, field)
    const v = this.view.getBigUint64(this.pos)
    this.pos += 8
    return v
  }
  /** A u64 that must fit a JavaScript number exactly. */
  u64Number(field: string): number {
    const v = this.u64(field)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(field, 'exceeds 2^53-1')
    return Number(v)
  }
  f64(field: string): number {
    this.need(8, field)
    const hi = this.view.getUint32(this.pos)
    const lo = this.view.getUint32(this.pos + 4)
    if (hi === 0x8000_0000 && lo === 0) throw invalid(field, 'negative zero is not canonical (write +0)')
    const v = this.view.getFloat64(this.pos)
    if (!Number.isFinite(v)) throw invalid(field, 'NaN and Infinity are not allowed')
    this.pos += 8
    return v
  }
  take(n: number, field: string): Uint8Array {
    this.need(n, field)
    const b = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }
  str(field: string, min: number, max: number): string {
    const n = this.u8(field)
    if (n < min || n > max) throw invalid(field, `length ${n} not in ${min} … ${max}`)
    const b = this.take(n, field)
    try {
      return utf8Decoder.decode(b)
    } catch (e) {
      throw invalid(field, 'not well-formed UTF-8', e)
    }
  }
  presence(field: string): boolean {
    const p = this.u8(field)
    if (p > 1) throw invalid(field, `presence byte must be 0 or 1, got ${p}`)
    return p === 1
  }
}

function decodeUnchecked(bytes: Uint8Array): Reading {
  const rd = new Reader(bytes)
  const magic = rd.u8('magic')
  if (magic !== CANONICAL_MAGIC) throw invalid('magic', `expected 0x${CANONICAL_MAGIC.toString(16)}, got 0x${magic.toString(16).padStart(2, '0')}`)
  const deviceId = rd.str('deviceId', 1, CANONICAL_LIMITS.deviceIdBytes)
  if (!DEVICE_ID_RE.test(deviceId)) throw invalid('deviceId', `must match ${DEVICE_ID_RE.source}`)
  const si = rd.u8('source')
  const source = SOURCE_KINDS[si]
  if (source === undefined) throw invalid('source', `unknown source index ${si}`)
  const bootId = bytesToHexNoPrefix(rd.take(16, 'received.bootId'))
  const monoNs = rd.u64('received.monoNs')
  const wallMs = rd.u64Number('received.wallMs')
  const ci = rd.u8('received.clock')
  const clock = CLOCK_STATES[ci]
  if (clock === undefined) throw invalid('received.clock', `unknown clock state index ${ci}`)
  const deviceTimeMs = rd.presence('deviceTimeMs') ? rd.u64Number('deviceTimeMs') : undefined

  const mcount = rd.u8('metrics')
  if (mcount > CANONICAL_LIMITS.metrics) throw invalid('metrics', `count ${mcount} exceeds ${CANONICAL_LIMITS.metrics}`)
  const metrics: Metric[] = []
  let prev = ''
  for (let i = 0; i < mcount; i++) {
    const name = rd.str(`metrics[${i}].name`, 1, CANONICAL_LIMITS.stringBytes)
    const unit = rd.str(`metrics[${i}].unit`, 1, CANONICAL_LIMITS.stringBytes)
    const value = rd.f64(`metrics[${i}].value`)
    const check = checkMetric(name, unit, value)
    if (!check.ok) throw invalid(`metrics[${i}]`, check.reason)
    if (i > 0 && name <= prev) throw invalid(`metrics[${i}].name`, 'metrics must be sorted by name, names unique')
    prev = name
    metrics.push({ name, unit, value })
  }

  let radio: RadioMeta | undefined
  if (rd.presence('radio')) {
    const n = rd.u8('radio')
    if (n > CANONICAL_LIMITS.radioKeys) throw invalid('radio', `count ${n} exceeds ${CANONICAL_LIMITS.radioKeys}`)
    const entries: [string, number | string][] = []
    let prevKey: Uint8Array | undefined
    for (let i = 0; i < n; i++) {
      const keyStart = rd.pos + 1
      const key = rd.str(`radio[${i}].key`, 1, CANONICAL_LIMITS.stringBytes)
      const keyBytes = bytes.subarray(keyStart, rd.pos)
      if (prevKey !== undefined && compareRaw(prevKey, keyBytes) >= 0) throw invalid(`radio[${i}].key`, 'keys must be sorted by bytes, unique')
      prevKey = keyBytes
      const tag = rd.u8(`radio.${key}`)
      if (tag === TAG_NUMBER) entries.push([key, rd.f64(`radio.${key}`)])
      else if (tag === TAG_STRING) entries.push([key, rd.str(`radio.${key}`, 0, CANONICAL_LIMITS.stringBytes)])
      else throw invalid(`radio.${key}`, `unknown value tag 0x${tag.toString(16).padStart(2, '0')}`)
    }
    radio = Object.fromEntries(entries)
  }

  let raw: Uint8Array | undefined
  if (rd.presence('raw')) {
    const n = rd.u32('raw')
    if (n > CANONICAL_LIMITS.rawBytes) throw invalid('raw', `length ${n} exceeds ${CANONICAL_LIMITS.rawBytes}`)
    raw = rd.take(n, 'raw').slice()
  }

  const ai = rd.u8('auth.kind')
  const kind = AUTH_KINDS[ai]
  let auth: ReadingAuth
  switch (kind) {
    case 'none':
      auth = { kind }
      break
    case 'device-signature': {
      const address = toChecksumAddress(rd.take(20, 'auth.address'))
      const counter = rd.u64('auth.counter')
      const signature = bytesToHex(rd.take(65, 'auth.signature'))
      auth = { kind, address, counter, signature }
      break
    }
    case 'lorawan-mic': {
      const devAddr = rd.u32('auth.devAddr')
      auth = { kind, devAddr, fcnt: rd.u32('auth.fcnt') }
      break
    }
    case 'bthome-encryption':
      auth = { kind, counter: rd.u32('auth.counter') }
      break
    case 'ble-aes-ccm': {
      const si = rd.u8('auth.scheme')
      const scheme = BLE_CCM_SCHEMES[si]
      if (scheme === undefined) throw invalid('auth.scheme', `unknown scheme index ${si}`)
      auth = { kind, scheme, counter: rd.u32('auth.counter') }
      break
    }
    case 'mqtt-credentials':
      auth = { kind, username: rd.str('auth.username', 1, CANONICAL_LIMITS.stringBytes) }
      break
    case 'http-token':
      auth = { kind, tokenId: rd.str('auth.tokenId', 1, CANONICAL_LIMITS.stringBytes) }
      break
    default:
      throw invalid('auth.kind', `unknown auth kind index ${ai}`)
  }
  if (rd.pos !== bytes.length) throw invalid('canonical', `${bytes.length - rd.pos} trailing byte(s) after the reading`)

  return {
    deviceId,
    source,
    received: { bootId, monoNs, wallMs, clock },
    ...(deviceTimeMs !== undefined ? { deviceTimeMs } : {}),
    metrics,
    ...(radio !== undefined ? { radio } : {}),
    ...(raw !== undefined ? { raw } : {}),
    auth,
  }
}

function compareRaw(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
  return a.length - b.length
}

/**
 * Decode a canonical encoding. Strict: only the exact bytes encodeReading
 * produces for some reading are accepted (no trailing bytes, sorted metrics
 * and radio keys, presence bytes 0/1, no -0, NaN or Infinity, valid UTF-8,
 * known enumeration indexes, limits).
 *
 * @throws FieldproofError('READING_INVALID') and nothing else, whatever the input.
 */
export function decodeReading(bytes: Uint8Array): Reading {
  if (!(bytes instanceof Uint8Array)) throw invalid('canonical', 'must be a Uint8Array')
  let r: Reading
  try {
    r = decodeUnchecked(bytes)
  } catch (e) {
    if (e instanceof FieldproofError) throw e
    throw invalid('canonical', `undecodable: ${e instanceof Error ? e.message : String(e)}`, e)
  }
  // Belt and braces: the accepted bytes must be exactly the re-encoding.
  let again: Uint8Array
  try {
    again = encodeReading(r)
  } catch (e) {
    if (e instanceof FieldproofError) throw invalid('canonical', `not canonical: ${e.message}`, e)
    throw invalid('canonical', 'not canonical', e)
  }
  if (again.length !== bytes.length || compareRaw(again, bytes) !== 0) throw invalid('canonical', 'not the canonical form of the reading it decodes to')
  return r
}

// --- Hashes ----------------------------------------------------------------

/** keccak256 of a canonical encoding. */
export function readingHash(canonical: Uint8Array): Uint8Array {
  return keccak256(canonical)
}

/**
 * The Merkle leaf from a reading hash: OpenZeppelin StandardMerkleTree leaf
 * of ['uint64', 'bytes32'] [seq, readingHash], i.e.
 * keccak256(bytes.concat(keccak256(abi.encode(seq, readingHash)))).
 * abi.encode of two static values is two 32-byte words: seq left-padded
 * with zeros, then the hash.
 */
export function leafHashOf(seq: bigint, readingHash32: Uint8Array): Uint8Array {
  if (!isU64(seq)) throw invalid('seq', 'must be a bigint in 0 … 2^64-1')
  if (readingHash32.length !== 32) throw invalid('readingHash', 'must be 32 bytes')
  return leafOfHash(seq, readingHash32)
}

/** The Merkle leaf of a sequenced reading: leafHashOf(seq, keccak256(canonical)), in one call into the Keccak module. */
export function leafHash(seq: bigint, canonical: Uint8Array): Uint8Array {
  if (!isU64(seq)) throw invalid('seq', 'must be a bigint in 0 … 2^64-1')
  return seqLeaf(seq, canonical)
}

/**
 * leafHash written to out[outOff .. outOff+32]. A commit writes its leaves
 * into one buffer: a 32-byte array of its own lives on V8's heap, and
 * binding it to a SQLite statement moves it off the heap first.
 */
export function leafHashInto(seq: bigint, canonical: Uint8Array, out: Uint8Array, outOff: number): void {
  if (!isU64(seq)) throw invalid('seq', 'must be a bigint in 0 … 2^64-1')
  seqLeafInto(seq, canonical, out, outOff)
}

/**
 * The leaves of contiguous readings firstSeq, firstSeq+1, … (a batch), 32
 * bytes each in one buffer.
 */
export function leafHashes(firstSeq: bigint, canonicals: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(32 * canonicals.length)
  for (let i = 0; i < canonicals.length; i++) leafHashInto(firstSeq + BigInt(i), canonicals[i] as Uint8Array, out, 32 * i)
  return out
}

/** The 32-byte leaves in a buffer made by leafHashes, as views. */
export function splitLeaves(leaves: Uint8Array): Uint8Array[] {
  const n = leaves.length >>> 5
  const out = new Array<Uint8Array>(n)
  for (let i = 0; i < n; i++) out[i] = leaves.subarray(32 * i, 32 * i + 32)
  return out
}

// --- JSON form -------------------------------------------------------------

/** ReceiveTime in JSON: monoNs as a decimal string. */
export interface ReceiveTimeJson {
  readonly bootId: string
  readonly monoNs: string
  readonly wallMs: number
  readonly clock: ClockState
}

/** ReadingAuth in JSON: the device-signature counter as a decimal string. */
export type ReadingAuthJson =
  | { readonly kind: 'none' }
  | { readonly kind: 'device-signature'; readonly address: Hex; readonly counter: string; readonly signature: Hex }
  | { readonly kind: 'lorawan-mic'; readonly devAddr: number; readonly fcnt: number }
  | { readonly kind: 'bthome-encryption'; readonly counter: number }
  | { readonly kind: 'mqtt-credentials'; readonly username: string }
  | { readonly kind: 'http-token'; readonly tokenId: string }
  | { readonly kind: 'ble-aes-ccm'; readonly scheme: BleCcmScheme; readonly counter: number }

/**
 * A Reading as JSON (HTTP API, vectors, proof bundles): bigints as decimal
 * strings, bytes as 0x-hex, everything else as in Reading.
 *
 * @example
 * { "deviceId": "sim-th-01", "source": "sim",
 *   "received": { "bootId": "00112233445566778899aabbccddeeff", "monoNs": "5000000000", "wallMs": 1700000000000, "clock": "ntp" },
 *   "metrics": [{ "name": "temperature_c", "unit": "Cel", "value": 21.5 }],
 *   "auth": { "kind": "none" } }
 */
export interface ReadingJson {
  readonly deviceId: string
  readonly source: SourceKind
  readonly received: ReceiveTimeJson
  readonly deviceTimeMs?: number
  readonly metrics: readonly Metric[]
  readonly radio?: RadioMeta
  readonly raw?: Hex
  readonly auth: ReadingAuthJson
}

function authToJson(a: ReadingAuth): ReadingAuthJson {
  switch (a.kind) {
    case 'device-signature':
      return { kind: a.kind, address: a.address, counter: a.counter.toString(), signature: a.signature }
    case 'lorawan-mic':
      return { kind: a.kind, devAddr: a.devAddr, fcnt: a.fcnt }
    case 'bthome-encryption':
      return { kind: a.kind, counter: a.counter }
    case 'mqtt-credentials':
      return { kind: a.kind, username: a.username }
    case 'http-token':
      return { kind: a.kind, tokenId: a.tokenId }
    case 'ble-aes-ccm':
      return { kind: a.kind, scheme: a.scheme, counter: a.counter }
    default:
      return { kind: 'none' }
  }
}

/** A reading in its JSON form. Does not validate (readingFromJson and encodeReading do). */
export function readingToJson(r: Reading): ReadingJson {
  return {
    deviceId: r.deviceId,
    source: r.source,
    received: { bootId: r.received.bootId, monoNs: r.received.monoNs.toString(), wallMs: r.received.wallMs, clock: r.received.clock },
    ...(r.deviceTimeMs !== undefined ? { deviceTimeMs: r.deviceTimeMs } : {}),
    metrics: r.metrics.map((m) => ({ name: m.name, unit: m.unit, value: m.value })),
    ...(r.radio !== undefined ? { radio: { ...r.radio } } : {}),
    ...(r.raw !== undefined ? { raw: bytesToHex(r.raw) } : {}),
    auth: authToJson(r.auth),
  }
}

function checkKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalid(`${path}.${k.slice(0, 40)}`, 'unknown key')
  }
}

function objectAt(v: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(v)) throw invalid(path, 'must be an object')
  return v
}

const READING_KEYS = ['deviceId', 'source', 'received', 'deviceTimeMs', 'metrics', 'radio', 'raw', 'auth'] as const
const RECEIVED_KEYS = ['bootId', 'monoNs', 'wallMs', 'clock'] as const
const METRIC_KEYS = ['name', 'unit', 'value'] as const
const AUTH_KEYS: Readonly<Record<AuthKind, readonly string[]>> = {
  none: ['kind'],
  'device-signature': ['kind', 'address', 'counter', 'signature'],
  'lorawan-mic': ['kind', 'devAddr', 'fcnt'],
  'bthome-encryption': ['kind', 'counter'],
  'mqtt-credentials': ['kind', 'username'],
  'http-token': ['kind', 'tokenId'],
  'ble-aes-ccm': ['kind', 'scheme', 'counter'],
}

function authFromJson(v: unknown): ReadingAuth {
  const a = objectAt(v, 'auth')
  const kind = a.kind
  if (typeof kind !== 'string' || !AUTH_INDEX.has(kind)) throw invalid('auth.kind', `must be one of ${AUTH_KINDS.join(', ')}`)
  checkKeys(a, AUTH_KEYS[kind as AuthKind], 'auth')
  switch (kind as AuthKind) {
    case 'device-signature': {
      const counter = parseU64Decimal(a.counter)
      if (counter === undefined) throw invalid('auth.counter', 'must be a decimal string in 0 … 2^64-1')
      return { kind: 'device-signature', address: a.address as Hex, counter, signature: a.signature as Hex }
    }
    case 'lorawan-mic':
      return { kind: 'lorawan-mic', devAddr: a.devAddr as number, fcnt: a.fcnt as number }
    case 'bthome-encryption':
      return { kind: 'bthome-encryption', counter: a.counter as number }
    case 'mqtt-credentials':
      return { kind: 'mqtt-credentials', username: a.username as string }
    case 'http-token':
      return { kind: 'http-token', tokenId: a.tokenId as string }
    case 'ble-aes-ccm':
      return { kind: 'ble-aes-ccm', scheme: a.scheme as BleCcmScheme, counter: a.counter as number }
    default:
      return { kind: 'none' }
  }
}

/**
 * Parse and validate a reading's JSON form (strict: unknown keys are
 * rejected, every field is checked as encodeReading checks it).
 *
 * @throws FieldproofError('READING_INVALID') naming the bad key.
 */
export function readingFromJson(j: unknown): Reading {
  const o = objectAt(j, 'reading')
  checkKeys(o, READING_KEYS, 'reading')
  const rt = objectAt(o.received, 'received')
  checkKeys(rt, RECEIVED_KEYS, 'received')
  const monoNs = parseU64Decimal(rt.monoNs)
  if (monoNs === undefined) throw invalid('received.monoNs', 'must be a decimal string in 0 … 2^64-1')
  if (!Array.isArray(o.metrics)) throw invalid('metrics', 'must be an array')
  const metrics = o.metrics.map((m: unknown, i: number): Metric => {
    const mo = objectAt(m, `metrics[${i}]`)
    checkKeys(mo, METRIC_KEYS, `metrics[${i}]`)
    return { name: mo.name as string, unit: mo.unit as string, value: mo.value as number }
  })
  let raw: Uint8Array | undefined
  if (o.raw !== undefined) {
    raw = tryHexToBytes(o.raw)
    if (raw === undefined) throw invalid('raw', 'must be 0x-prefixed hex with an even number of digits')
  }
  let radio: RadioMeta | undefined
  if (o.radio !== undefined) radio = Object.fromEntries(Object.entries(objectAt(o.radio, 'radio'))) as RadioMeta
  const r: Reading = {
    deviceId: o.deviceId as string,
    source: o.source as SourceKind,
    received: { bootId: rt.bootId as string, monoNs, wallMs: rt.wallMs as number, clock: rt.clock as ClockState },
    ...(o.deviceTimeMs !== undefined ? { deviceTimeMs: o.deviceTimeMs as number } : {}),
    metrics,
    ...(radio !== undefined ? { radio } : {}),
    ...(raw !== undefined ? { raw } : {}),
    auth: authFromJson(o.auth),
  }
  validateReading(r)
  return r
}
