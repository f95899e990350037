// LoRaWAN 1.0.x PHYPayload: parse and build (LoRaWAN L2 1.0.4).
//   §4.2   MAC header: MType (bits 7..5), RFU, Major (bits 1..0, 0 = LoRaWAN R1)
//   §4.3   MACPayload: FHDR = DevAddr (4, LE) | FCtrl (1) | FCnt (2, LE) | FOpts (0..15),
//          then FPort (optional) and FRMPayload
//   §4.3.1.6 MAC commands go in FOpts or in FRMPayload with FPort 0, never both
//   §4.4   MIC (4 bytes, last in the frame)
//   §6.2   Join-request (23 bytes) and Join-accept (17 or 33 bytes, encrypted)
// Parsing is total: every input gives a value, bad input a rejection with a
// stable code. EUIs are lowercase hex, most significant byte first (as printed
// on labels); on air they are little-endian. DevAddr is a uint32.

import {
  type AesKey,
  type Direction,
  bytesEqual,
  bytesToHex,
  cryptFrmPayload,
  dataMic,
  decryptJoinAcceptBody,
  encryptJoinAcceptBody,
  joinAcceptMic,
  joinRequestMic,
} from './crypto.ts'

/** MType names (LoRaWAN 1.0.4 §4.2.1). 6 is RFU in 1.0.x and rejected. */
export type MType =
  | 'join-request'
  | 'join-accept'
  | 'unconfirmed-data-up'
  | 'unconfirmed-data-down'
  | 'confirmed-data-up'
  | 'confirmed-data-down'
  | 'proprietary'

export const MTYPE_CODES: Readonly<Record<MType, number>> = {
  'join-request': 0,
  'join-accept': 1,
  'unconfirmed-data-up': 2,
  'unconfirmed-data-down': 3,
  'confirmed-data-up': 4,
  'confirmed-data-down': 5,
  proprietary: 7,
}

const MTYPE_BY_CODE: readonly (MType | undefined)[] = [
  'join-request',
  'join-accept',
  'unconfirmed-data-up',
  'unconfirmed-data-down',
  'confirmed-data-up',
  'confirmed-data-down',
  undefined,
  'proprietary',
]

/** The largest PHYPayload a LoRa modem carries (255 bytes). */
export const MAX_PHY_PAYLOAD = 255

/** Frame control flags. `adrAckReq` is meaningful uplink only, `fPending` downlink only (§4.3.1). */
export interface FCtrl {
  readonly adr: boolean
  /** Uplink bit 6. */
  readonly adrAckReq: boolean
  readonly ack: boolean
  /** Downlink bit 4 (FPending); uplink bit 4 is ClassB (RFU before 1.0.3) and is reported here too. */
  readonly fPending: boolean
  readonly fOptsLen: number
}

/** A data frame (MType 2..5). FRMPayload is as received (encrypted). */
export interface DataFrame {
  readonly kind: 'data'
  readonly mtype: 'unconfirmed-data-up' | 'unconfirmed-data-down' | 'confirmed-data-up' | 'confirmed-data-down'
  readonly direction: Direction
  readonly confirmed: boolean
  readonly major: number
  readonly devAddr: number
  readonly fctrl: FCtrl
  /** The 16 low bits of the frame counter, as sent. */
  readonly fcnt16: number
  readonly fopts: Uint8Array
  /** null when the frame has no FPort (and then no FRMPayload). */
  readonly fport: number | null
  readonly frmPayload: Uint8Array
  readonly mic: Uint8Array
  /** The whole PHYPayload. */
  readonly bytes: Uint8Array
}

/** A join-request (§6.2). */
export interface JoinRequestFrame {
  readonly kind: 'join-request'
  readonly major: number
  /** JoinEUI (AppEUI in 1.0.2), hex MSB first. */
  readonly joinEui: string
  readonly devEui: string
  readonly devNonce: number
  readonly mic: Uint8Array
  readonly bytes: Uint8Array
}

/** A join-accept as seen on air: encrypted, so only its length is known without the AppKey. */
export interface JoinAcceptFrame {
  readonly kind: 'join-accept'
  readonly major: number
  readonly hasCfList: boolean
  readonly bytes: Uint8Array
}

export interface ProprietaryFrame {
  readonly kind: 'proprietary'
  readonly major: number
  /** Everything after MHDR (the format, MIC included, is not defined by LoRaWAN). */
  readonly payload: Uint8Array
  readonly bytes: Uint8Array
}

export type PhyFrame = DataFrame | JoinRequestFrame | JoinAcceptFrame | ProprietaryFrame

export type PhyErrorCode =
  | 'empty'
  | 'too-short'
  | 'too-large'
  | 'bad-length'
  | 'unsupported-major'
  | 'rfu-mtype'
  | 'fopts-overflow'
  | 'fopts-with-port0'

export type PhyParseResult = { readonly ok: true; readonly frame: PhyFrame } | { readonly ok: false; readonly code: PhyErrorCode; readonly reason: string }

function fail(code: PhyErrorCode, reason: string): PhyParseResult {
  return { ok: false, code, reason }
}

/** Little-endian bytes on air → hex MSB first. */
export function euiFromWire(b: Uint8Array): string {
  return bytesToHex(Uint8Array.from(b).reverse())
}

/** Hex MSB first (16 hex digits, optional separators `-` or `:`) → 8 little-endian bytes; undefined if malformed. */
export function euiToWire(eui: string): Uint8Array | undefined {
  if (typeof eui !== 'string') return undefined
  const clean = eui.replace(/[-:]/g, '')
  if (!/^[0-9a-fA-F]{16}$/.test(clean)) return undefined
  const out = new Uint8Array(8)
  for (let i = 0; i < 8; i++) out[7 - i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** Normalize an EUI string to 16 lowercase hex digits; undefined if malformed. */
export function normalizeEui(eui: string): string | undefined {
  const w = euiToWire(eui)
  return w ? euiFromWire(w) : undefined
}

function u16le(b: Uint8Array, o: number): number {
  return (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8)
}

function u32le(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) | ((b[o + 1] ?? 0) << 8) | ((b[o + 2] ?? 0) << 16) | ((b[o + 3] ?? 0) << 24)) >>> 0
}

/** Parse a PHYPayload. Never throws. */
export function parsePhyPayload(input: Uint8Array): PhyParseResult {
  if (!(input instanceof Uint8Array)) return fail('empty', 'input is not a byte array')
  if (input.length === 0) return fail('empty', 'empty PHYPayload')
  if (input.length > MAX_PHY_PAYLOAD) return fail('too-large', `PHYPayload of ${input.length} bytes exceeds ${MAX_PHY_PAYLOAD}`)
  const bytes = Uint8Array.from(input)
  const mhdr = bytes[0] ?? 0
  const mcode = mhdr >>> 5
  const major = mhdr & 0x03
  const mtype = MTYPE_BY_CODE[mcode]
  if (mtype === undefined) return fail('rfu-mtype', `MType ${mcode} is RFU in LoRaWAN 1.0.x`)
  if (mtype === 'proprietary') return { ok: true, frame: { kind: 'proprietary', major, payload: bytes.slice(1), bytes } }
  if (major !== 0) return fail('unsupported-major', `Major ${major} is not LoRaWAN R1`)

  if (mtype === 'join-request') {
    if (bytes.length !== 23) return fail('bad-length', `join-request must be 23 bytes, got ${bytes.length}`)
    return {
      ok: true,
      frame: {
        kind: 'join-request',
        major,
        joinEui: euiFromWire(bytes.subarray(1, 9)),
        devEui: euiFromWire(bytes.subarray(9, 17)),
        devNonce: u16le(bytes, 17),
        mic: bytes.slice(19, 23),
        bytes,
      },
    }
  }
  if (mtype === 'join-accept') {
    if (bytes.length !== 17 && bytes.length !== 33) return fail('bad-length', `join-accept must be 17 or 33 bytes, got ${bytes.length}`)
    return { ok: true, frame: { kind: 'join-accept', major, hasCfList: bytes.length === 33, bytes } }
  }

  // Data frame: MHDR 1 + DevAddr 4 + FCtrl 1 + FCnt 2 + MIC 4 = 12 bytes at least.
  if (bytes.length < 12) return fail('too-short', `data frame needs at least 12 bytes, got ${bytes.length}`)
  const direction: Direction = mtype === 'unconfirmed-data-up' || mtype === 'confirmed-data-up' ? 'up' : 'down'
  const fctrlByte = bytes[5] ?? 0
  const fOptsLen = fctrlByte & 0x0f
  const macEnd = bytes.length - 4
  const foptsEnd = 8 + fOptsLen
  if (foptsEnd > macEnd) return fail('fopts-overflow', `FOptsLen ${fOptsLen} runs past the end of the frame`)
  let fport: number | null = null
  let frmPayload = new Uint8Array(0)
  if (foptsEnd < macEnd) {
    fport = bytes[foptsEnd] ?? 0
    frmPayload = bytes.slice(foptsEnd + 1, macEnd)
    if (fport === 0 && fOptsLen > 0) return fail('fopts-with-port0', 'MAC commands in both FOpts and an FPort 0 payload')
  }
  return {
    ok: true,
    frame: {
      kind: 'data',
      mtype,
      direction,
      confirmed: mtype === 'confirmed-data-up' || mtype === 'confirmed-data-down',
      major,
      devAddr: u32le(bytes, 1),
      fctrl: {
        adr: (fctrlByte & 0x80) !== 0,
        adrAckReq: (fctrlByte & 0x40) !== 0,
        ack: (fctrlByte & 0x20) !== 0,
        fPending: (fctrlByte & 0x10) !== 0,
        fOptsLen,
      },
      fcnt16: u16le(bytes, 6),
      fopts: bytes.slice(8, foptsEnd),
      fport,
      frmPayload,
      mic: bytes.slice(macEnd),
      bytes,
    },
  }
}

/** Compute the MIC a data frame should carry, given the reconstructed 32-bit FCnt. */
export function computeDataFrameMic(frame: DataFrame, nwkSKey: AesKey, fcnt32: number): Uint8Array {
  return dataMic(nwkSKey, frame.direction, frame.devAddr, fcnt32, frame.bytes.subarray(0, frame.bytes.length - 4))
}

/** True when the frame's MIC is right for this NwkSKey and 32-bit FCnt (whose low 16 bits must match). */
export function verifyDataFrameMic(frame: DataFrame, nwkSKey: AesKey, fcnt32: number): boolean {
  if (!Number.isInteger(fcnt32) || fcnt32 < 0 || fcnt32 > 0xffffffff || (fcnt32 & 0xffff) !== frame.fcnt16) return false
  return bytesEqual(computeDataFrameMic(frame, nwkSKey, fcnt32), frame.mic)
}

/** Session keys for `decryptFrmPayload`: AppSKey for FPort > 0, NwkSKey for FPort 0 (§4.3.3). */
export interface FrameKeys {
  readonly nwkSKey: AesKey
  readonly appSKey: AesKey
}

/** The plaintext FRMPayload (empty when there is no FPort). */
export function decryptFrmPayload(frame: DataFrame, keys: FrameKeys, fcnt32: number): Uint8Array {
  if (frame.fport === null) return new Uint8Array(0)
  const key = frame.fport === 0 ? keys.nwkSKey : keys.appSKey
  return cryptFrmPayload(key, frame.direction, frame.devAddr, fcnt32, frame.frmPayload)
}

/** What to put in a data frame. `payload` is plaintext; it is encrypted here. */
export interface DataFrameSpec {
  readonly mtype: DataFrame['mtype']
  readonly devAddr: number
  /** Full 32-bit frame counter: its low 16 bits go on air, all 32 into the MIC and cipher. */
  readonly fcnt32: number
  readonly adr?: boolean
  readonly adrAckReq?: boolean
  readonly ack?: boolean
  readonly fPending?: boolean
  /** MAC commands in FOpts, 0..15 bytes (sent in clear in 1.0.x). */
  readonly fopts?: Uint8Array
  /** Omit for a frame without FPort and FRMPayload. */
  readonly fport?: number
  readonly payload?: Uint8Array
}

export type BuildResult = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly reason: string }

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff
}

/** Build a data frame: encrypt FRMPayload, compute the MIC. Never throws. */
export function buildDataFrame(spec: DataFrameSpec, keys: FrameKeys): BuildResult {
  const code = MTYPE_CODES[spec.mtype]
  if (code === undefined || code < 2 || code > 5) return { ok: false, reason: `mtype ${String(spec.mtype)} is not a data MType` }
  if (!isU32(spec.devAddr)) return { ok: false, reason: 'devAddr must be a uint32' }
  if (!isU32(spec.fcnt32)) return { ok: false, reason: 'fcnt32 must be a uint32' }
  const fopts = spec.fopts ?? new Uint8Array(0)
  if (fopts.length > 15) return { ok: false, reason: 'FOpts is at most 15 bytes' }
  const payload = spec.payload ?? new Uint8Array(0)
  if (spec.fport === undefined && payload.length > 0) return { ok: false, reason: 'a payload needs an FPort' }
  if (spec.fport !== undefined && (!Number.isInteger(spec.fport) || spec.fport < 0 || spec.fport > 255)) {
    return { ok: false, reason: 'fport must be 0..255' }
  }
  if (spec.fport === 0 && fopts.length > 0) return { ok: false, reason: 'MAC commands in both FOpts and an FPort 0 payload' }
  const size = 1 + 7 + fopts.length + (spec.fport === undefined ? 0 : 1 + payload.length) + 4
  if (size > MAX_PHY_PAYLOAD) return { ok: false, reason: `frame of ${size} bytes exceeds ${MAX_PHY_PAYLOAD}` }
  const direction: Direction = code === 2 || code === 4 ? 'up' : 'down'
  const out = new Uint8Array(size)
  out[0] = code << 5
  out[1] = spec.devAddr & 0xff
  out[2] = (spec.devAddr >>> 8) & 0xff
  out[3] = (spec.devAddr >>> 16) & 0xff
  out[4] = (spec.devAddr >>> 24) & 0xff
  out[5] =
    (spec.adr ? 0x80 : 0) | (spec.adrAckReq ? 0x40 : 0) | (spec.ack ? 0x20 : 0) | (spec.fPending ? 0x10 : 0) | fopts.length
  out[6] = spec.fcnt32 & 0xff
  out[7] = (spec.fcnt32 >>> 8) & 0xff
  out.set(fopts, 8)
  let o = 8 + fopts.length
  if (spec.fport !== undefined) {
    out[o++] = spec.fport
    const key = spec.fport === 0 ? keys.nwkSKey : keys.appSKey
    out.set(cryptFrmPayload(key, direction, spec.devAddr, spec.fcnt32, payload), o)
    o += payload.length
  }
  out.set(dataMic(keys.nwkSKey, direction, spec.devAddr, spec.fcnt32, out.subarray(0, o)), o)
  return { ok: true, bytes: out }
}

/** Build a join-request (for simulators and tests: a device's side). */
export function buildJoinRequest(spec: { joinEui: string; devEui: string; devNonce: number }, appKey: AesKey): BuildResult {
  const j = euiToWire(spec.joinEui)
  const d = euiToWire(spec.devEui)
  if (!j || !d) return { ok: false, reason: 'EUIs must be 16 hex digits' }
  if (!Number.isInteger(spec.devNonce) || spec.devNonce < 0 || spec.devNonce > 0xffff) return { ok: false, reason: 'devNonce must be 0..65535' }
  const out = new Uint8Array(23)
  out[0] = 0x00
  out.set(j, 1)
  out.set(d, 9)
  out[17] = spec.devNonce & 0xff
  out[18] = spec.devNonce >>> 8
  out.set(joinRequestMic(appKey, out.subarray(0, 19)), 19)
  return { ok: true, bytes: out }
}

/** True when a join-request's MIC is right for this AppKey. */
export function verifyJoinRequestMic(frame: JoinRequestFrame, appKey: AesKey): boolean {
  return bytesEqual(joinRequestMic(appKey, frame.bytes.subarray(0, 19)), frame.mic)
}

/** The fields of a join-accept (§6.2; DLSettings and RxDelay decoded). */
export interface JoinAcceptFields {
  /** JoinNonce (AppNonce in 1.0.2), 24 bits. */
  readonly joinNonce: number
  /** NetID, 24 bits. */
  readonly netId: number
  readonly devAddr: number
  /** DLSettings bits 6..4. */
  readonly rx1DrOffset: number
  /** DLSettings bits 3..0. */
  readonly rx2DataRate: number
  /** RxDelay bits 3..0 in seconds; 0 on air means 1 s, and is reported as 1. */
  readonly rxDelayS: number
  /** 16 bytes when present: 5 frequencies + CFListType (type 0) or a channel mask (type 1). */
  readonly cfList?: Uint8Array
}

/**
 * Build an encrypted join-accept PHYPayload: MHDR | aes128_decrypt(AppKey, body | MIC),
 * MIC over MHDR | body with the AppKey (1.0.x, §6.2).
 */
export function buildJoinAccept(fields: JoinAcceptFields, appKey: AesKey): BuildResult {
  const u24 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffff
  if (!u24(fields.joinNonce)) return { ok: false, reason: 'joinNonce must be a 24-bit unsigned integer' }
  if (!u24(fields.netId)) return { ok: false, reason: 'netId must be a 24-bit unsigned integer' }
  if (!isU32(fields.devAddr)) return { ok: false, reason: 'devAddr must be a uint32' }
  if (!Number.isInteger(fields.rx1DrOffset) || fields.rx1DrOffset < 0 || fields.rx1DrOffset > 7) return { ok: false, reason: 'rx1DrOffset must be 0..7' }
  if (!Number.isInteger(fields.rx2DataRate) || fields.rx2DataRate < 0 || fields.rx2DataRate > 15) return { ok: false, reason: 'rx2DataRate must be 0..15' }
  if (!Number.isInteger(fields.rxDelayS) || fields.rxDelayS < 0 || fields.rxDelayS > 15) return { ok: false, reason: 'rxDelayS must be 0..15' }
  if (fields.cfList !== undefined && fields.cfList.length !== 16) return { ok: false, reason: 'CFList must be 16 bytes' }
  const plain = new Uint8Array(fields.cfList ? 33 : 17)
  plain[0] = 0x20
  plain[1] = fields.joinNonce & 0xff
  plain[2] = (fields.joinNonce >>> 8) & 0xff
  plain[3] = (fields.joinNonce >>> 16) & 0xff
  plain[4] = fields.netId & 0xff
  plain[5] = (fields.netId >>> 8) & 0xff
  plain[6] = (fields.netId >>> 16) & 0xff
  plain[7] = fields.devAddr & 0xff
  plain[8] = (fields.devAddr >>> 8) & 0xff
  plain[9] = (fields.devAddr >>> 16) & 0xff
  plain[10] = (fields.devAddr >>> 24) & 0xff
  plain[11] = ((fields.rx1DrOffset & 0x07) << 4) | (fields.rx2DataRate & 0x0f)
  plain[12] = fields.rxDelayS & 0x0f
  if (fields.cfList) plain.set(fields.cfList, 13)
  const micAt = plain.length - 4
  plain.set(joinAcceptMic(appKey, plain.subarray(0, micAt)), micAt)
  const out = new Uint8Array(plain.length)
  out[0] = plain[0] ?? 0x20
  out.set(encryptJoinAcceptBody(appKey, plain.subarray(1)), 1)
  return { ok: true, bytes: out }
}

export type JoinAcceptOpenResult =
  | { readonly ok: true; readonly fields: JoinAcceptFields; readonly micValid: boolean; readonly plaintext: Uint8Array }
  | { readonly ok: false; readonly code: PhyErrorCode | 'not-join-accept'; readonly reason: string }

/** Decrypt and parse a join-accept as a device does (AES encrypt with the AppKey), and check its MIC. */
export function openJoinAccept(bytes: Uint8Array, appKey: AesKey): JoinAcceptOpenResult {
  const p = parsePhyPayload(bytes)
  if (!p.ok) return p
  if (p.frame.kind !== 'join-accept') return { ok: false, code: 'not-join-accept', reason: `frame is ${p.frame.kind}` }
  const enc = p.frame.bytes
  const plain = new Uint8Array(enc.length)
  plain[0] = enc[0] ?? 0
  plain.set(decryptJoinAcceptBody(appKey, enc.subarray(1)), 1)
  const micAt = plain.length - 4
  const micValid = bytesEqual(joinAcceptMic(appKey, plain.subarray(0, micAt)), plain.subarray(micAt))
  const dl = plain[11] ?? 0
  const rxDelayRaw = (plain[12] ?? 0) & 0x0f
  const fields: JoinAcceptFields = {
    joinNonce: (plain[1] ?? 0) | ((plain[2] ?? 0) << 8) | ((plain[3] ?? 0) << 16),
    netId: (plain[4] ?? 0) | ((plain[5] ?? 0) << 8) | ((plain[6] ?? 0) << 16),
    devAddr: u32le(plain, 7),
    rx1DrOffset: (dl >>> 4) & 0x07,
    rx2DataRate: dl & 0x0f,
    rxDelayS: rxDelayRaw === 0 ? 1 : rxDelayRaw,
    ...(plain.length === 33 ? { cfList: plain.slice(13, 29) } : {}),
  }
  return { ok: true, fields, micValid, plaintext: plain }
}

/**
 * CFList type 0 (a list of frequencies, RP002-1.0.3 §2.4.4 for EU868): five 24-bit
 * little-endian frequencies in units of 100 Hz, then CFListType = 0. A frequency of
 * 0 means "no channel". Returns undefined for more than 5 frequencies or a frequency
 * that is not a multiple of 100 Hz or does not fit 24 bits.
 */
export function encodeCfListFrequencies(freqsHz: readonly number[]): Uint8Array | undefined {
  if (freqsHz.length > 5) return undefined
  const out = new Uint8Array(16)
  for (let i = 0; i < freqsHz.length; i++) {
    const f = freqsHz[i] ?? 0
    if (!Number.isInteger(f) || f < 0 || f % 100 !== 0 || f / 100 > 0xffffff) return undefined
    const v = f / 100
    out[3 * i] = v & 0xff
    out[3 * i + 1] = (v >>> 8) & 0xff
    out[3 * i + 2] = (v >>> 16) & 0xff
  }
  out[15] = 0
  return out
}

/** Decode a type 0 CFList; undefined when it is not type 0. Zero entries are kept as 0. */
export function decodeCfListFrequencies(cfList: Uint8Array): number[] | undefined {
  if (cfList.length !== 16 || cfList[15] !== 0) return undefined
  const out: number[] = []
  for (let i = 0; i < 5; i++) out.push(((cfList[3 * i] ?? 0) | ((cfList[3 * i + 1] ?? 0) << 8) | ((cfList[3 * i + 2] ?? 0) << 16)) * 100)
  return out
}
