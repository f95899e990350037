// Semtech UDP packet forwarder protocol ("GWMP"), version 2:
// Lora-net/packet_forwarder PROTOCOL.TXT @ 36ab4b40542c7ad59b6b4d083577aa9f13a2ed46
// (v1.3: §3.2 PUSH_DATA, §3.3 PUSH_ACK, §4 rxpk/stat, §5.2 PULL_DATA, §5.3 PULL_ACK,
// §5.4 PULL_RESP, §5.5 TX_ACK, §6 txpk/txpk_ack), with the later fields of
// Lora-net/sx1302_hal packet_forwarder/PROTOCOL.md (v1.5: rxpk.tmms, rssis, foff,
// mid, stat.temp, txpk.tmms, txpk_ack.warn/value) and the multi-antenna `rsig`
// array as read by chirpstack/chirpstack-mqtt-forwarder src/backend/semtech_udp/structs.rs.
//
// Header: byte 0 protocol version, bytes 1-2 random token (read and written
// little-endian, so a token round-trips byte for byte), byte 3 identifier,
// bytes 4-11 gateway EUI (PULL_DATA, PUSH_DATA, TX_ACK; written MSB first by
// the forwarder, reported here as 16 lowercase hex digits), then JSON.
//
// Versions: 2 is the protocol in use. Version 1 (packet_forwarder before
// v2.0) has the same layout for every packet it defines, so PUSH_DATA,
// PUSH_ACK, PULL_DATA, PULL_RESP and PULL_ACK are accepted with version 1
// too; a server must answer with the version it was sent (a version 1
// forwarder drops acks of another version). TX_ACK does not exist in
// version 1 and is refused with it.
//
// Parsing is total: `parseDatagram` never throws; each field is checked for
// type and range, `size` must equal the decoded length of `data`, unknown
// fields are ignored (forwarders add their own). Base64 is decoded strictly
// (standard alphabet, and '-' '_' of the URL-safe one since PROTOCOL.TXT's own
// rxpk example uses '-'; padding optional, non-zero trailing bits tolerated as
// in the examples; anything else is a rejection). Frequencies travel as MHz
// floats on the wire and are held here as integer Hz (`freqHz`).

export const PROTOCOL_VERSION = 2
export const ACCEPTED_VERSIONS: readonly number[] = [1, 2]

/** Largest datagram considered (the UDP payload limit). */
export const MAX_DATAGRAM_BYTES = 65535
/** Most rxpk entries accepted in one PUSH_DATA (the SX1302 forwarder sends at most 255). */
export const MAX_RXPK = 255
/** Largest radio payload (LoRa). */
export const MAX_PAYLOAD_BYTES = 255

export const PACKET_IDS = {
  PUSH_DATA: 0x00,
  PUSH_ACK: 0x01,
  PULL_DATA: 0x02,
  PULL_RESP: 0x03,
  PULL_ACK: 0x04,
  TX_ACK: 0x05,
} as const

export type PacketType = keyof typeof PACKET_IDS

/** Multi-antenna signal details of one reception (one entry per antenna/demodulator). */
export interface Rsig {
  readonly ant: number
  readonly chan: number
  /** RSSI of the channel, dBm. */
  readonly rssic?: number
  /** RSSI of the signal, dBm. */
  readonly rssis?: number
  readonly lsnr?: number
  /** Encrypted fine timestamp (base64 text, kept as sent). */
  readonly etime?: string
  readonly foff?: number
}

/** One received RF packet (PROTOCOL.TXT §4). */
export interface Rxpk {
  /** UTC time of reception, ISO 8601 compact (only with GPS). */
  readonly time?: string
  /** `time` as ms since the epoch, when it parses. */
  readonly timeMs?: number
  /** GPS time of reception, ms since 1980-01-06. */
  readonly tmms?: number
  /** Concentrator counter at "RX finished", µs, 32 bits, wraps. */
  readonly tmst: number
  /** Fine timestamp, ns since the last PPS. */
  readonly ftime?: number
  readonly freqHz: number
  readonly chan?: number
  readonly rfch?: number
  readonly brd?: number
  readonly mid?: number
  /** CRC status: 1 OK, -1 bad, 0 none. */
  readonly stat: 1 | 0 | -1
  readonly modu: 'LORA' | 'FSK' | 'LR-FHSS'
  /** "SF7BW125" for LoRa, bit rate for FSK, "M0CW137" style for LR-FHSS. */
  readonly datr: string | number
  readonly codr?: string
  readonly rssi?: number
  readonly rssis?: number
  readonly lsnr?: number
  readonly foff?: number
  readonly size: number
  readonly data: Uint8Array
  readonly rsig?: readonly Rsig[]
}

/** Gateway status (PROTOCOL.TXT §4). All fields optional, each checked when present. */
export interface Stat {
  /** "2014-01-12 08:59:28 GMT" (ISO 8601 'expanded'). */
  readonly time?: string
  readonly lati?: number
  readonly long?: number
  readonly alti?: number
  readonly rxnb?: number
  readonly rxok?: number
  readonly rxfw?: number
  readonly ackr?: number
  readonly dwnb?: number
  readonly txnb?: number
  readonly temp?: number
}

/** A packet to transmit (PROTOCOL.TXT §6). Exactly one of imme/tmst/tmms/time says when. */
export interface Txpk {
  readonly imme?: boolean
  readonly tmst?: number
  readonly tmms?: number
  readonly time?: string
  readonly freqHz: number
  readonly rfch: number
  readonly powe?: number
  readonly modu: 'LORA' | 'FSK'
  readonly datr: string | number
  readonly codr?: string
  readonly fdev?: number
  readonly ipol?: boolean
  readonly prea?: number
  readonly size: number
  readonly data: Uint8Array
  readonly ncrc?: boolean
}

/** TX_ACK error values (PROTOCOL.TXT §6; FULL and EMPTY are the forwarder's JIT queue states). */
export const TX_ACK_ERRORS = [
  'NONE',
  'TOO_LATE',
  'TOO_EARLY',
  'FULL',
  'EMPTY',
  'COLLISION_PACKET',
  'COLLISION_BEACON',
  'TX_FREQ',
  'TX_POWER',
  'GPS_UNLOCKED',
] as const
export type TxAckError = (typeof TX_ACK_ERRORS)[number]

/** The gateway's verdict on a PULL_RESP. An absent JSON body means NONE. */
export interface TxpkAck {
  /** 'UNKNOWN' for a value outside TX_ACK_ERRORS (kept in `errorText`). */
  readonly error: TxAckError | 'UNKNOWN'
  readonly errorText?: string
  /** SX1302 forwarders: "TX_POWER" when the power was lowered, with the power used in `value`. */
  readonly warn?: string
  readonly value?: number | string
}

export type SemtechPacket =
  | { readonly type: 'PUSH_DATA'; readonly version: number; readonly token: number; readonly gatewayEui: string; readonly rxpk: readonly Rxpk[]; readonly stat?: Stat }
  | { readonly type: 'PUSH_ACK'; readonly version: number; readonly token: number }
  | { readonly type: 'PULL_DATA'; readonly version: number; readonly token: number; readonly gatewayEui: string }
  | { readonly type: 'PULL_RESP'; readonly version: number; readonly token: number; readonly txpk: Txpk }
  | { readonly type: 'PULL_ACK'; readonly version: number; readonly token: number }
  | { readonly type: 'TX_ACK'; readonly version: number; readonly token: number; readonly gatewayEui: string; readonly ack: TxpkAck }

export type ParseErrorCode = 'too-short' | 'too-large' | 'bad-version' | 'unknown-type' | 'bad-json' | 'bad-field' | 'trailing-bytes'

export type ParseResult =
  | { readonly ok: true; readonly packet: SemtechPacket }
  | { readonly ok: false; readonly code: ParseErrorCode; readonly reason: string }

// ---------------------------------------------------------------- base64

const B64 = new Int16Array(128).fill(-1)
for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i
B64['-'.charCodeAt(0)] = 62
B64['_'.charCodeAt(0)] = 63

/** Strict base64 decoding (see the header); undefined when malformed. */
export function decodeBase64(s: string): Uint8Array | undefined {
  let end = s.length
  if (end % 4 === 0 && end > 0) {
    if (s.charCodeAt(end - 1) === 61) end--
    if (s.charCodeAt(end - 1) === 61) end--
  }
  if (end % 4 === 1) return undefined
  const out = new Uint8Array(Math.floor((end * 3) / 4))
  let o = 0
  let acc = 0
  let bits = 0
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i)
    const v = c < 128 ? (B64[c] ?? -1) : -1
    if (v < 0) return undefined
    acc = ((acc << 6) | v) & 0xffffff
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >>> bits) & 0xff
    }
  }
  return out.subarray(0, o)
}

export function encodeBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
}

// ---------------------------------------------------------------- field checks

class FieldError extends Error {}

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function num(o: Obj, k: string, path: string, min: number, max: number, integer: boolean, required: true): number
function num(o: Obj, k: string, path: string, min: number, max: number, integer: boolean, required: false): number | undefined
function num(o: Obj, k: string, path: string, min: number, max: number, integer: boolean, required: boolean): number | undefined {
  const v = o[k]
  if (v === undefined) {
    if (required) throw new FieldError(`${path}.${k} is required`)
    return undefined
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FieldError(`${path}.${k} must be a finite number`)
  if (integer && !Number.isInteger(v)) throw new FieldError(`${path}.${k} must be an integer`)
  if (v < min || v > max) throw new FieldError(`${path}.${k} = ${v} is outside ${min}..${max}`)
  return v
}

function str(o: Obj, k: string, path: string, maxLen: number, required: true): string
function str(o: Obj, k: string, path: string, maxLen: number, required: false): string | undefined
function str(o: Obj, k: string, path: string, maxLen: number, required: boolean): string | undefined {
  const v = o[k]
  if (v === undefined) {
    if (required) throw new FieldError(`${path}.${k} is required`)
    return undefined
  }
  if (typeof v !== 'string') throw new FieldError(`${path}.${k} must be a string`)
  if (v.length > maxLen) throw new FieldError(`${path}.${k} is longer than ${maxLen}`)
  return v
}

function bool(o: Obj, k: string, path: string): boolean | undefined {
  const v = o[k]
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw new FieldError(`${path}.${k} must be a boolean`)
  return v
}

const U32 = 0xffffffff
const LORA_DATR_RE = /^SF([5-9]|1[0-2])BW(125|250|500)$/
const LRFHSS_DATR_RE = /^M0CW(137|336|1523)$/
const CODR = new Set(['4/5', '4/6', '4/7', '4/8', '2/3', '1/2', '1/3', '1/4', '1/6', '2/6', '3/8', '5/6', '4/5LI', '4/6LI', '4/8LI', 'OFF'])
const COMPACT_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/
const FREQ_MAX_MHZ = 10_000

function freqHz(o: Obj, path: string): number {
  const mhz = num(o, 'freq', path, 0, FREQ_MAX_MHZ, false, true)
  if (mhz <= 0) throw new FieldError(`${path}.freq must be positive`)
  return Math.round(mhz * 1e6)
}

function datrFor(o: Obj, modu: string, path: string): string | number {
  const v = o['datr']
  if (modu === 'FSK') {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 500 || v > 300_000) throw new FieldError(`${path}.datr must be an FSK bit rate (500..300000)`)
    return v
  }
  if (typeof v !== 'string') throw new FieldError(`${path}.datr must be a string for ${modu}`)
  if (!(modu === 'LORA' ? LORA_DATR_RE : LRFHSS_DATR_RE).test(v)) throw new FieldError(`${path}.datr "${v.slice(0, 20)}" is not a ${modu} data rate`)
  return v
}

function payload(o: Obj, path: string): { size: number; data: Uint8Array } {
  const size = num(o, 'size', path, 0, MAX_PAYLOAD_BYTES, true, true)
  const text = str(o, 'data', path, 4 * Math.ceil(MAX_PAYLOAD_BYTES / 3) + 4, true)
  const data = decodeBase64(text)
  if (!data) throw new FieldError(`${path}.data is not base64`)
  if (data.length > MAX_PAYLOAD_BYTES) throw new FieldError(`${path}.data is longer than ${MAX_PAYLOAD_BYTES} bytes`)
  if (data.length !== size) throw new FieldError(`${path}.size ${size} disagrees with ${data.length} bytes of data`)
  return { size, data: Uint8Array.from(data) }
}

function modulation(o: Obj, path: string, allowLrFhss: boolean): 'LORA' | 'FSK' | 'LR-FHSS' {
  const m = str(o, 'modu', path, 16, true)
  if (m === 'LORA' || m === 'FSK' || (allowLrFhss && m === 'LR-FHSS')) return m
  throw new FieldError(`${path}.modu "${m.slice(0, 16)}" is not LORA or FSK`)
}

function codr(o: Obj, path: string): string | undefined {
  const c = str(o, 'codr', path, 8, false)
  if (c !== undefined && !CODR.has(c)) throw new FieldError(`${path}.codr "${c}" is not a coding rate`)
  return c
}

function parseRsig(v: unknown, path: string): Rsig {
  if (!isObj(v)) throw new FieldError(`${path} must be an object`)
  const etime = str(v, 'etime', path, 64, false)
  const rssic = num(v, 'rssic', path, -250, 50, false, false)
  const rssis = num(v, 'rssis', path, -250, 50, false, false)
  const lsnr = num(v, 'lsnr', path, -50, 50, false, false)
  const foff = num(v, 'foff', path, -1_000_000, 1_000_000, true, false)
  return {
    ant: num(v, 'ant', path, 0, 255, true, true),
    chan: num(v, 'chan', path, 0, 255, true, true),
    ...(rssic !== undefined ? { rssic } : {}),
    ...(rssis !== undefined ? { rssis } : {}),
    ...(lsnr !== undefined ? { lsnr } : {}),
    ...(etime !== undefined ? { etime } : {}),
    ...(foff !== undefined ? { foff } : {}),
  }
}

function parseRxpk(v: unknown, path: string): Rxpk {
  if (!isObj(v)) throw new FieldError(`${path} must be an object`)
  const time = str(v, 'time', path, 40, false)
  let timeMs: number | undefined
  if (time !== undefined) {
    if (!COMPACT_TIME_RE.test(time)) throw new FieldError(`${path}.time is not ISO 8601`)
    const ms = Date.parse(time)
    if (!Number.isFinite(ms)) throw new FieldError(`${path}.time is not a valid date`)
    timeMs = ms
  }
  const stat = num(v, 'stat', path, -1, 1, true, true) as 1 | 0 | -1
  const modu = modulation(v, path, true)
  const datr = datrFor(v, modu, path)
  const { size, data } = payload(v, path)
  let rsig: Rsig[] | undefined
  if (v['rsig'] !== undefined) {
    const arr = v['rsig']
    if (!Array.isArray(arr) || arr.length > 64) throw new FieldError(`${path}.rsig must be an array of at most 64 entries`)
    rsig = arr.map((r, i) => parseRsig(r, `${path}.rsig[${i}]`))
  }
  const opt = {
    time,
    timeMs,
    tmms: num(v, 'tmms', path, 0, Number.MAX_SAFE_INTEGER, true, false),
    ftime: num(v, 'ftime', path, 0, U32, true, false),
    chan: num(v, 'chan', path, 0, 255, true, false),
    rfch: num(v, 'rfch', path, 0, 255, true, false),
    brd: num(v, 'brd', path, 0, 255, true, false),
    mid: num(v, 'mid', path, 0, 255, true, false),
    codr: codr(v, path),
    rssi: num(v, 'rssi', path, -250, 50, false, false),
    rssis: num(v, 'rssis', path, -250, 50, false, false),
    lsnr: num(v, 'lsnr', path, -50, 50, false, false),
    foff: num(v, 'foff', path, -1_000_000, 1_000_000, true, false),
    rsig,
  }
  const base: Rxpk = { tmst: num(v, 'tmst', path, 0, U32, true, true), freqHz: freqHz(v, path), stat, modu, datr, size, data }
  return { ...base, ...dropUndefined(opt) }
}

function dropUndefined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as { [K in keyof T]?: Exclude<T[K], undefined> }
}

function parseStat(v: unknown): Stat {
  const path = 'stat'
  if (!isObj(v)) throw new FieldError('stat must be an object')
  return dropUndefined({
    time: str(v, 'time', path, 64, false),
    lati: num(v, 'lati', path, -90, 90, false, false),
    long: num(v, 'long', path, -180, 180, false, false),
    alti: num(v, 'alti', path, -10_000, 100_000, false, false),
    rxnb: num(v, 'rxnb', path, 0, U32, true, false),
    rxok: num(v, 'rxok', path, 0, U32, true, false),
    rxfw: num(v, 'rxfw', path, 0, U32, true, false),
    ackr: num(v, 'ackr', path, 0, 100, false, false),
    dwnb: num(v, 'dwnb', path, 0, U32, true, false),
    txnb: num(v, 'txnb', path, 0, U32, true, false),
    temp: num(v, 'temp', path, -100, 200, false, false),
  })
}

function parseTxpk(v: unknown): Txpk {
  const path = 'txpk'
  if (!isObj(v)) throw new FieldError('txpk must be an object')
  const imme = bool(v, 'imme', path)
  const tmst = num(v, 'tmst', path, 0, U32, true, false)
  const tmms = num(v, 'tmms', path, 0, Number.MAX_SAFE_INTEGER, true, false)
  const time = str(v, 'time', path, 40, false)
  if (time !== undefined && !COMPACT_TIME_RE.test(time)) throw new FieldError('txpk.time is not ISO 8601')
  if (imme !== true && tmst === undefined && tmms === undefined && time === undefined) throw new FieldError('txpk needs imme, tmst, tmms or time')
  const modu = modulation(v, path, false) as 'LORA' | 'FSK'
  const datr = datrFor(v, modu, path)
  const c = codr(v, path)
  const fdev = num(v, 'fdev', path, 0, 200_000, true, false)
  if (modu === 'LORA' && c === undefined) throw new FieldError('txpk.codr is required for LORA')
  if (modu === 'FSK' && fdev === undefined) throw new FieldError('txpk.fdev is required for FSK')
  const { size, data } = payload(v, path)
  const base: Txpk = { freqHz: freqHz(v, path), rfch: num(v, 'rfch', path, 0, 255, true, true), modu, datr, size, data }
  return {
    ...base,
    ...dropUndefined({
      imme,
      tmst,
      tmms,
      time,
      powe: num(v, 'powe', path, -10, 40, true, false),
      codr: c,
      fdev,
      ipol: bool(v, 'ipol', path),
      prea: num(v, 'prea', path, 6, 65535, true, false),
      ncrc: bool(v, 'ncrc', path),
    }),
  }
}

function parseTxpkAck(root: Obj | undefined): TxpkAck {
  if (root === undefined) return { error: 'NONE' }
  const a = root['txpk_ack']
  if (a === undefined) return { error: 'NONE' }
  if (!isObj(a)) throw new FieldError('txpk_ack must be an object')
  const e = str(a, 'error', 'txpk_ack', 64, false)
  const warn = str(a, 'warn', 'txpk_ack', 64, false)
  const value = a['value']
  if (value !== undefined && !(typeof value === 'string' && value.length <= 64) && !(typeof value === 'number' && Number.isFinite(value))) {
    throw new FieldError('txpk_ack.value must be a number or a short string')
  }
  const known = e === undefined || e === '' ? 'NONE' : (TX_ACK_ERRORS as readonly string[]).includes(e) ? (e as TxAckError) : undefined
  return {
    error: known ?? 'UNKNOWN',
    ...(known === undefined && e !== undefined ? { errorText: e } : {}),
    ...(warn !== undefined ? { warn } : {}),
    ...(value !== undefined ? { value: value as number | string } : {}),
  }
}

// ---------------------------------------------------------------- datagrams

const decoder = new TextDecoder('utf-8', { fatal: true })

function parseJson(buf: Uint8Array, start: number): { ok: true; value: Obj } | { ok: false; reason: string } {
  let end = buf.length
  // Some forwarders send the C string terminator too.
  while (end > start && buf[end - 1] === 0) end--
  let text: string
  try {
    text = decoder.decode(buf.subarray(start, end))
  } catch {
    return { ok: false, reason: 'JSON body is not UTF-8' }
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    return { ok: false, reason: `JSON body does not parse: ${e instanceof Error ? e.message.slice(0, 120) : 'error'}` }
  }
  if (!isObj(value)) return { ok: false, reason: 'JSON body must be an object' }
  return { ok: true, value }
}

function eui(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset + 4, 8).toString('hex')
}

function bad(code: ParseErrorCode, reason: string): ParseResult {
  return { ok: false, code, reason }
}

/** Parse one UDP datagram of the Semtech protocol. Never throws. */
export function parseDatagram(buf: Uint8Array): ParseResult {
  try {
    return parseUnsafe(buf)
  } catch (e) {
    if (e instanceof FieldError) return bad('bad-field', e.message.slice(0, 200))
    return bad('bad-field', `unexpected: ${e instanceof Error ? e.message.slice(0, 160) : String(e).slice(0, 160)}`)
  }
}

function parseUnsafe(buf: Uint8Array): ParseResult {
  if (!(buf instanceof Uint8Array)) return bad('too-short', 'not a byte array')
  if (buf.length > MAX_DATAGRAM_BYTES) return bad('too-large', `datagram of ${buf.length} bytes`)
  if (buf.length < 4) return bad('too-short', `datagram of ${buf.length} bytes, header needs 4`)
  const version = buf[0] ?? 0
  if (!ACCEPTED_VERSIONS.includes(version)) return bad('bad-version', `protocol version ${version}`)
  const token = (buf[1] ?? 0) | ((buf[2] ?? 0) << 8)
  const id = buf[3] ?? 0xff
  switch (id) {
    case PACKET_IDS.PUSH_DATA: {
      if (buf.length < 14) return bad('too-short', `PUSH_DATA of ${buf.length} bytes, needs 12 + JSON`)
      const j = parseJson(buf, 12)
      if (!j.ok) return bad('bad-json', j.reason)
      const rx = j.value['rxpk']
      let rxpk: Rxpk[] = []
      if (rx !== undefined) {
        if (!Array.isArray(rx)) return bad('bad-field', 'rxpk must be an array')
        if (rx.length > MAX_RXPK) return bad('too-large', `${rx.length} rxpk entries, at most ${MAX_RXPK}`)
        rxpk = rx.map((r, i) => parseRxpk(r, `rxpk[${i}]`))
      }
      const st = j.value['stat']
      return {
        ok: true,
        packet: { type: 'PUSH_DATA', version, token, gatewayEui: eui(buf), rxpk, ...(st !== undefined ? { stat: parseStat(st) } : {}) },
      }
    }
    case PACKET_IDS.PUSH_ACK:
    case PACKET_IDS.PULL_ACK:
      if (buf.length > 4) return bad('trailing-bytes', `${id === 1 ? 'PUSH_ACK' : 'PULL_ACK'} of ${buf.length} bytes, expected 4`)
      return { ok: true, packet: { type: id === PACKET_IDS.PUSH_ACK ? 'PUSH_ACK' : 'PULL_ACK', version, token } }
    case PACKET_IDS.PULL_DATA:
      if (buf.length < 12) return bad('too-short', `PULL_DATA of ${buf.length} bytes, expected 12`)
      if (buf.length > 12) return bad('trailing-bytes', `PULL_DATA of ${buf.length} bytes, expected 12`)
      return { ok: true, packet: { type: 'PULL_DATA', version, token, gatewayEui: eui(buf) } }
    case PACKET_IDS.PULL_RESP: {
      if (buf.length < 6) return bad('too-short', `PULL_RESP of ${buf.length} bytes, needs 4 + JSON`)
      const j = parseJson(buf, 4)
      if (!j.ok) return bad('bad-json', j.reason)
      if (j.value['txpk'] === undefined) return bad('bad-field', 'PULL_RESP without txpk')
      return { ok: true, packet: { type: 'PULL_RESP', version, token, txpk: parseTxpk(j.value['txpk']) } }
    }
    case PACKET_IDS.TX_ACK: {
      if (version < 2) return bad('bad-version', 'TX_ACK exists from protocol version 2')
      if (buf.length < 12) return bad('too-short', `TX_ACK of ${buf.length} bytes, needs 12`)
      let body: Obj | undefined
      let end = buf.length
      while (end > 12 && buf[end - 1] === 0) end--
      if (end > 12) {
        const j = parseJson(buf.subarray(0, end), 12)
        if (!j.ok) return bad('bad-json', j.reason)
        body = j.value
      }
      return { ok: true, packet: { type: 'TX_ACK', version, token, gatewayEui: eui(buf), ack: parseTxpkAck(body) } }
    }
    default:
      return bad('unknown-type', `packet identifier 0x${id.toString(16).padStart(2, '0')}`)
  }
}

// ---------------------------------------------------------------- building

export type BuildResult = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly reason: string }

function header(version: number, token: number, id: number, gatewayEui?: string): Uint8Array | undefined {
  const h = new Uint8Array(gatewayEui === undefined ? 4 : 12)
  h[0] = version
  h[1] = token & 0xff
  h[2] = (token >>> 8) & 0xff
  h[3] = id
  if (gatewayEui !== undefined) {
    if (!/^[0-9a-fA-F]{16}$/.test(gatewayEui)) return undefined
    h.set(Buffer.from(gatewayEui, 'hex'), 4)
  }
  return h
}

function freqMhz(hz: number): number {
  return Number((hz / 1e6).toFixed(6))
}

function rxpkJson(r: Rxpk): Record<string, unknown> {
  return dropUndefined({
    time: r.time,
    tmms: r.tmms,
    tmst: r.tmst,
    ftime: r.ftime,
    chan: r.chan,
    rfch: r.rfch,
    brd: r.brd,
    mid: r.mid,
    freq: freqMhz(r.freqHz),
    stat: r.stat,
    modu: r.modu,
    datr: r.datr,
    codr: r.codr,
    rssi: r.rssi,
    rssis: r.rssis,
    lsnr: r.lsnr,
    foff: r.foff,
    size: r.size,
    data: encodeBase64(r.data),
    rsig: r.rsig,
  })
}

/** JSON of a txpk in the field order of PROTOCOL.TXT §6. */
export function txpkJson(t: Txpk): Record<string, unknown> {
  return dropUndefined({
    imme: t.imme,
    tmst: t.tmst,
    tmms: t.tmms,
    time: t.time,
    freq: freqMhz(t.freqHz),
    rfch: t.rfch,
    powe: t.powe,
    modu: t.modu,
    datr: t.datr,
    codr: t.codr,
    fdev: t.fdev,
    ipol: t.ipol,
    prea: t.prea,
    size: t.size,
    data: encodeBase64(t.data),
    ncrc: t.ncrc,
  })
}

function checked(bytes: Uint8Array): BuildResult {
  const p = parseDatagram(bytes)
  return p.ok ? { ok: true, bytes } : { ok: false, reason: `${p.code}: ${p.reason}` }
}

function withJson(h: Uint8Array, json: unknown): Uint8Array {
  const body = Buffer.from(JSON.stringify(json), 'utf8')
  const out = new Uint8Array(h.length + body.length)
  out.set(h, 0)
  out.set(body, h.length)
  return out
}

function tokenOk(token: number): boolean {
  return Number.isInteger(token) && token >= 0 && token <= 0xffff
}

function versionOk(v: number): boolean {
  return ACCEPTED_VERSIONS.includes(v)
}

/**
 * Serialize a packet. Every datagram built is parsed back before it is returned,
 * so what this returns is what `parseDatagram` accepts. Never throws.
 */
export function buildDatagram(p: SemtechPacket): BuildResult {
  try {
    if (!tokenOk(p.token)) return { ok: false, reason: 'token must be 0..65535' }
    if (!versionOk(p.version)) return { ok: false, reason: `version ${p.version} is not 1 or 2` }
    const id = PACKET_IDS[p.type]
    const withEui = p.type === 'PUSH_DATA' || p.type === 'PULL_DATA' || p.type === 'TX_ACK'
    const h = header(p.version, p.token, id, withEui ? p.gatewayEui : undefined)
    if (!h) return { ok: false, reason: 'gatewayEui must be 16 hex digits' }
    switch (p.type) {
      case 'PUSH_ACK':
      case 'PULL_ACK':
      case 'PULL_DATA':
        return checked(h)
      case 'PUSH_DATA':
        return checked(withJson(h, { ...(p.rxpk.length > 0 ? { rxpk: p.rxpk.map(rxpkJson) } : {}), ...(p.stat ? { stat: p.stat } : {}) }))
      case 'PULL_RESP':
        return checked(withJson(h, { txpk: txpkJson(p.txpk) }))
      case 'TX_ACK': {
        const a = p.ack
        if (a.error === 'NONE' && a.warn === undefined) return checked(h)
        const err = a.error === 'UNKNOWN' ? a.errorText : a.error
        return checked(withJson(h, { txpk_ack: dropUndefined({ error: a.error === 'NONE' ? undefined : err, warn: a.warn, value: a.value }) }))
      }
    }
  } catch (e) {
    return { ok: false, reason: `cannot serialize: ${e instanceof Error ? e.message.slice(0, 160) : 'error'}` }
  }
}

/** PUSH_ACK for a PUSH_DATA: same version and token (§3.3). */
export function buildPushAck(token: number, version: number = PROTOCOL_VERSION): Uint8Array {
  return header(versionOk(version) ? version : PROTOCOL_VERSION, token & 0xffff, PACKET_IDS.PUSH_ACK) ?? new Uint8Array(0)
}

/** PULL_ACK for a PULL_DATA: same version and token (§5.3). */
export function buildPullAck(token: number, version: number = PROTOCOL_VERSION): Uint8Array {
  return header(versionOk(version) ? version : PROTOCOL_VERSION, token & 0xffff, PACKET_IDS.PULL_ACK) ?? new Uint8Array(0)
}

/** PULL_RESP carrying one txpk (§5.4); the gateway answers with TX_ACK and the same token. */
export function buildPullResp(token: number, txpk: Txpk, version: number = PROTOCOL_VERSION): BuildResult {
  return buildDatagram({ type: 'PULL_RESP', version, token, txpk })
}
