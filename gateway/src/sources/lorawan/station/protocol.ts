// LoRa Basics Station, the LNS side of its protocol (doc.sm.tc/station,
// "The LNS Protocol"), with field names and encodings as emitted and parsed by
// the station itself, lorabasics/basicstation:
//   src/lora.c   s2e_parse_lora_frame  updf / jreq / rejoin / propdf fields:
//                MHdr, DevAddr (signed int32), FCtrl, FCnt, FOpts (hex), FPort
//                (-1 = absent), FRMPayload (hex), MIC (signed int32); JoinEui,
//                DevEui, DevNonce; propdf carries the whole frame as FRMPayload
//   src/s2e.c    s2e_flushRxjobs  RefTime, DR, Freq, upinfo {rctx, xtime, gpstime,
//                fts, rssi, snr, rxtime}; handle_router_config (freq_range, DRs
//                [[SF, BW, DNONLY] x16, SF -1 = undefined, 0 = FSK], NetID, JoinEui,
//                region, hwspec, sx1301_conf, nocca/nodc/nodwell, MuxTime);
//                handle_dnmsg (DevEui, dC, diid, pdu, RxDelay, RX1DR, RX1Freq, RX2DR,
//                RX2Freq, priority, xtime, rctx, MuxTime: the station adds RxDelay
//                seconds to the uplink's xtime); send_dntxed (diid, DevEui, xtime,
//                txtime, gpstime); handle_timesync (txtime, gpstime)
// cross-checked against the LNS backends chirpstack/chirpstack-gateway-bridge
// internal/backend/basicstation/structs/*.go (router_config with "EU863"/"US902"
// region names, hwspec "sx1301/1", the ID6 forms of router-info) and
// TheThingsNetwork/lorawan-stack pkg/gatewayserver/io/ws/lbslns/upstream.go and
// upstream_test.go (JSON examples and field-to-frame vectors).
//
// Parsing is total: every function returns a value with a reason, never throws.
// xtime values use 53+ bits (a session id above a 48-bit µs counter), beyond
// IEEE doubles: messages are parsed keeping the source text of integers, and
// xtime travels as a bigint and is written back digit for digit.

import { bytesToHex } from '../../../core/lorawan/crypto.ts'
import { EU868_CFLIST_FREQS_HZ, REGIONS, type DataRate, type Region, type RegionId } from '../region.ts'

// ---------------------------------------------------------------- JSON

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Parse JSON keeping integers beyond 2^53 exact (as bigint). Never throws. */
export function parseJsonExact(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    const reviver = (_k: string, v: unknown, ctx?: { source?: string }): unknown => {
      if (typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source !== undefined && /^-?\d+$/.test(ctx.source)) return BigInt(ctx.source)
      return v
    }
    return { ok: true, value: JSON.parse(text, reviver as (this: unknown, key: string, value: unknown) => unknown) }
  } catch (e) {
    return { ok: false, reason: `JSON does not parse: ${e instanceof Error ? e.message.slice(0, 120) : 'error'}` }
  }
}

class FieldError extends Error {}

/** Case-insensitive field lookup (Go's encoding/json, used by other LNSs, matches this way); an exact match wins. */
function field(o: Obj, name: string): unknown {
  if (Object.hasOwn(o, name)) return o[name]
  const lower = name.toLowerCase()
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k]
  return undefined
}

function intField(o: Obj, name: string, min: number, max: number, required: true): number
function intField(o: Obj, name: string, min: number, max: number, required: false): number | undefined
function intField(o: Obj, name: string, min: number, max: number, required: boolean): number | undefined {
  const v = field(o, name)
  if (v === undefined || v === null) {
    if (required) throw new FieldError(`${name} is required`)
    return undefined
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new FieldError(`${name} must be an integer`)
  if (v < min || v > max) throw new FieldError(`${name} = ${v} is outside ${min}..${max}`)
  return v
}

function numField(o: Obj, name: string, min: number, max: number): number | undefined {
  const v = field(o, name)
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new FieldError(`${name} must be a number`)
  if (v < min || v > max) throw new FieldError(`${name} = ${v} is outside ${min}..${max}`)
  return v
}

/** A non-negative integer of up to 64 bits, as bigint (xtime, rctx, gpstime). */
function bigField(o: Obj, name: string, required: boolean): bigint | undefined {
  const v = field(o, name)
  if (v === undefined || v === null) {
    if (required) throw new FieldError(`${name} is required`)
    return undefined
  }
  let b: bigint
  if (typeof v === 'bigint') b = v
  else if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v)
  else throw new FieldError(`${name} must be an integer`)
  if (b < 0n || b > 0xffffffffffffffffn) throw new FieldError(`${name} is outside 0..2^64-1`)
  return b
}

function hexField(o: Obj, name: string, maxBytes: number): Uint8Array {
  const v = field(o, name)
  if (v === undefined || v === null || v === '') return new Uint8Array(0)
  if (typeof v !== 'string') throw new FieldError(`${name} must be a hex string`)
  if (v.length > 2 * maxBytes) throw new FieldError(`${name} is longer than ${maxBytes} bytes`)
  if (v.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(v)) throw new FieldError(`${name} is not hex`)
  return Uint8Array.from(Buffer.from(v, 'hex'))
}

// ---------------------------------------------------------------- EUIs and ID6

const U64 = 0xffffffffffffffffn

/**
 * An EUI-64 in any form Basics Station uses: an integer, "xx-xx-xx-xx-xx-xx-xx-xx",
 * 16 hex digits, or ID6 ("1:2:3:4", "::0", "f::1": four 16-bit groups, "::" once).
 * Returns 16 lowercase hex digits, or undefined when malformed.
 */
export function parseEui(v: unknown): string | undefined {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) return undefined
    return v.toString(16).padStart(16, '0')
  }
  if (typeof v === 'bigint') return v >= 0n && v <= U64 ? v.toString(16).padStart(16, '0') : undefined
  if (typeof v !== 'string' || v.length > 40) return undefined
  if (/^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){7}$/.test(v)) return v.replace(/-/g, '').toLowerCase()
  if (/^[0-9A-Fa-f]{16}$/.test(v)) return v.toLowerCase()
  return parseId6(v)
}

function parseId6(s: string): string | undefined {
  if (!/^[0-9A-Fa-f:]+$/.test(s)) return undefined
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const groups = (part: string): string[] | undefined => {
    if (part === '') return []
    const g = part.split(':')
    return g.every((x) => /^[0-9A-Fa-f]{1,4}$/.test(x)) ? g : undefined
  }
  const head = groups(halves[0] as string)
  const tail = halves.length === 2 ? groups(halves[1] as string) : []
  if (!head || !tail) return undefined
  let all: string[]
  if (halves.length === 2) {
    const fill = 4 - head.length - tail.length
    if (fill < 1) return undefined
    all = [...head, ...Array<string>(fill).fill('0'), ...tail]
  } else {
    all = head
  }
  if (all.length !== 4) return undefined
  return all.map((g) => g.padStart(4, '0')).join('').toLowerCase()
}

/** 16 hex digits → ID6 "a:b:c:d" (groups without leading zeros), as router-info answers. */
export function formatId6(eui: string): string {
  const g = [0, 4, 8, 12].map((i) => parseInt(eui.slice(i, i + 4), 16).toString(16))
  return g.join(':')
}

/** 16 hex digits → "xx-xx-xx-xx-xx-xx-xx-xx" (the form the station prints and parses). */
export function formatEuiDashed(eui: string): string {
  return (eui.match(/../g) ?? []).join('-')
}

// ---------------------------------------------------------------- uplinks

/** Radio metadata of an uplink message (s2e.c s2e_flushRxjobs). */
export interface StationRadio {
  readonly dr: number
  readonly freqHz: number
  /** Concentrator time of the reception: 48-bit µs counter with a session id above (echoed in dnmsg). */
  readonly xtime: bigint
  /** Receive context (antenna / radio unit), echoed in dnmsg. */
  readonly rctx: bigint
  /** µs since the GPS epoch, when the station has GPS time (0 = none). */
  readonly gpstime: bigint
  readonly rssi?: number
  readonly snr?: number
  /** The station's UTC clock at reception, seconds (not GPS-grade). */
  readonly rxtime?: number
  readonly refTime?: number
}

export type StationUplink =
  | { readonly msgtype: 'updf' | 'jreq'; readonly phyPayload: Uint8Array; readonly radio: StationRadio }
  | { readonly msgtype: 'propdf'; readonly phyPayload: Uint8Array; readonly radio: StationRadio }

/** Messages a station sends (the LNS side only acts on these). */
export type StationMessage =
  | { readonly msgtype: 'version'; readonly station: string; readonly firmware: string | null; readonly model: string | null; readonly protocol: number | null; readonly features: string | null }
  | StationUplink
  | { readonly msgtype: 'dntxed'; readonly diid: number; readonly devEui?: string; readonly xtime?: bigint; readonly gpstime?: bigint }
  | { readonly msgtype: 'timesync'; readonly txtime: number | bigint }

export type StationParseResult = { readonly ok: true; readonly message: StationMessage } | { readonly ok: false; readonly code: 'bad-json' | 'not-object' | 'no-msgtype' | 'unknown-msgtype' | 'unsupported-msgtype' | 'bad-field'; readonly reason: string }

const I32_MIN = -0x80000000
const U32_MAX = 0xffffffff
/** Largest message body considered (a station's largest uplink message is about 1 kB). */
export const MAX_STATION_MESSAGE_BYTES = 16 * 1024

function radioOf(o: Obj, region: Region): StationRadio {
  const dr = intField(o, 'DR', 0, 15, true)
  if (!region.dataRates[dr]) throw new FieldError(`DR${dr} is not a data rate of ${region.id}`)
  const freqHz = intField(o, 'Freq', 1, 10_000_000_000, true)
  const up = field(o, 'upinfo')
  if (!isObj(up)) throw new FieldError('upinfo must be an object')
  const xtime = bigField(up, 'xtime', true) as bigint
  const rctx = bigField(up, 'rctx', false) ?? 0n
  const gpstime = bigField(up, 'gpstime', false) ?? 0n
  const rssi = numField(up, 'rssi', -250, 250)
  const snr = numField(up, 'snr', -50, 50)
  const rxtime = numField(up, 'rxtime', 0, 1e11)
  const refTime = numField(o, 'RefTime', 0, 1e11)
  return {
    dr,
    freqHz,
    xtime,
    rctx,
    gpstime,
    ...(rssi !== undefined ? { rssi } : {}),
    ...(snr !== undefined ? { snr } : {}),
    ...(rxtime !== undefined ? { rxtime } : {}),
    ...(refTime !== undefined ? { refTime } : {}),
  }
}

function u32le(out: number[], v: number): void {
  const u = v >>> 0
  out.push(u & 0xff, (u >>> 8) & 0xff, (u >>> 16) & 0xff, (u >>> 24) & 0xff)
}

function euiLe(out: number[], eui: string): void {
  for (let i = 7; i >= 0; i--) out.push(parseInt(eui.slice(2 * i, 2 * i + 2), 16))
}

/** Rebuild the PHYPayload of an updf from its fields (lora.c layout: all fields little endian). */
export function updfToPhyPayload(o: Obj): Uint8Array {
  const mhdr = intField(o, 'MHdr', 0, 255, true)
  const ftype = mhdr & 0xe0
  if ((ftype !== 0x40 && ftype !== 0x80) || (mhdr & 0x1f) !== 0) throw new FieldError(`MHdr 0x${mhdr.toString(16)} is not a LoRaWAN R1 data uplink`)
  const devAddr = intField(o, 'DevAddr', I32_MIN, U32_MAX, true)
  let fctrl = intField(o, 'FCtrl', 0, 255, true)
  const fcnt = intField(o, 'FCnt', 0, 0xffff, true)
  const fopts = hexField(o, 'FOpts', 15)
  // The station sends the FCtrl byte as on air (FOptsLen included); some LNS codecs mask FOptsLen out.
  if ((fctrl & 0x0f) === 0) fctrl |= fopts.length
  else if (fopts.length !== (fctrl & 0x0f)) throw new FieldError(`FOpts has ${fopts.length} bytes, FCtrl.FOptsLen says ${fctrl & 0x0f}`)
  const fport = intField(o, 'FPort', -1, 255, true)
  const frm = hexField(o, 'FRMPayload', 255)
  if (fport === -1 && frm.length > 0) throw new FieldError('FRMPayload without FPort')
  const mic = intField(o, 'MIC', I32_MIN, U32_MAX, true)
  const out: number[] = [mhdr]
  u32le(out, devAddr)
  out.push(fctrl, fcnt & 0xff, fcnt >>> 8, ...fopts)
  if (fport >= 0) out.push(fport, ...frm)
  u32le(out, mic)
  if (out.length > 255) throw new FieldError(`frame of ${out.length} bytes exceeds 255`)
  return Uint8Array.from(out)
}

/** Rebuild the PHYPayload of a jreq (23 bytes: MHdr, JoinEUI, DevEUI, DevNonce, MIC, little endian). */
export function jreqToPhyPayload(o: Obj): Uint8Array {
  const mhdr = intField(o, 'MHdr', 0, 255, true)
  if (mhdr !== 0x00) throw new FieldError(`MHdr 0x${mhdr.toString(16)} is not a join-request`)
  const joinRaw = field(o, 'JoinEui') ?? field(o, 'JoinEUI') ?? field(o, 'AppEui')
  const joinEui = parseEui(joinRaw)
  if (joinEui === undefined) throw new FieldError('JoinEui is not an EUI')
  const devEui = parseEui(field(o, 'DevEui'))
  if (devEui === undefined) throw new FieldError('DevEui is not an EUI')
  const devNonce = intField(o, 'DevNonce', 0, 0xffff, true)
  const mic = intField(o, 'MIC', I32_MIN, U32_MAX, true)
  const out: number[] = [mhdr]
  euiLe(out, joinEui)
  euiLe(out, devEui)
  out.push(devNonce & 0xff, devNonce >>> 8)
  u32le(out, mic)
  return Uint8Array.from(out)
}

/** Parse one text message from a station. `region` gives the DR table. Never throws. */
export function parseStationMessage(text: string, region: Region): StationParseResult {
  if (text.length > MAX_STATION_MESSAGE_BYTES) return { ok: false, code: 'bad-field', reason: `message of ${text.length} characters` }
  const j = parseJsonExact(text)
  if (!j.ok) return { ok: false, code: 'bad-json', reason: j.reason }
  const o = j.value
  if (!isObj(o)) return { ok: false, code: 'not-object', reason: 'message is not a JSON object' }
  const mt = o['msgtype']
  if (typeof mt !== 'string') return { ok: false, code: 'no-msgtype', reason: 'msgtype missing or not a string' }
  try {
    switch (mt) {
      case 'version': {
        const s = (k: string): string | null => {
          const v = field(o, k)
          return typeof v === 'string' ? v.slice(0, 200) : null
        }
        const p = field(o, 'protocol')
        return { ok: true, message: { msgtype: 'version', station: s('station') ?? '', firmware: s('firmware'), model: s('model'), protocol: typeof p === 'number' ? p : null, features: s('features') } }
      }
      case 'updf':
        return { ok: true, message: { msgtype: 'updf', phyPayload: updfToPhyPayload(o), radio: radioOf(o, region) } }
      case 'jreq':
        return { ok: true, message: { msgtype: 'jreq', phyPayload: jreqToPhyPayload(o), radio: radioOf(o, region) } }
      case 'propdf': {
        const frame = hexField(o, 'FRMPayload', 255)
        if (frame.length === 0 || ((frame[0] ?? 0) & 0xe0) !== 0xe0) throw new FieldError('propdf FRMPayload must be a proprietary frame (MHdr 111xxxxx)')
        return { ok: true, message: { msgtype: 'propdf', phyPayload: frame, radio: radioOf(o, region) } }
      }
      case 'dntxed': {
        const diid = intField(o, 'diid', 0, Number.MAX_SAFE_INTEGER, false) ?? intField(o, 'seqno', 0, Number.MAX_SAFE_INTEGER, true)
        const devEui = parseEui(field(o, 'DevEui'))
        const xtime = bigField(o, 'xtime', false)
        const gpstime = bigField(o, 'gpstime', false)
        return { ok: true, message: { msgtype: 'dntxed', diid, ...(devEui !== undefined ? { devEui } : {}), ...(xtime !== undefined ? { xtime } : {}), ...(gpstime !== undefined ? { gpstime } : {}) } }
      }
      case 'timesync': {
        const t = field(o, 'txtime')
        if (typeof t === 'bigint' && t >= 0n) return { ok: true, message: { msgtype: 'timesync', txtime: t } }
        if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new FieldError('txtime must be a non-negative number')
        return { ok: true, message: { msgtype: 'timesync', txtime: t } }
      }
      case 'rejoin':
      case 'jacc':
      case 'dndf':
      case 'getxtime':
      case 'rmtsh':
      case 'event':
        return { ok: false, code: 'unsupported-msgtype', reason: `msgtype ${mt} is not handled by this LNS` }
      default:
        return { ok: false, code: 'unknown-msgtype', reason: `msgtype "${mt.slice(0, 32)}"` }
    }
  } catch (e) {
    if (e instanceof FieldError) return { ok: false, code: 'bad-field', reason: `${mt}: ${e.message.slice(0, 200)}` }
    return { ok: false, code: 'bad-field', reason: `${mt}: unexpected ${e instanceof Error ? e.message.slice(0, 160) : 'error'}` }
  }
}

/** The Semtech-style `datr` of a data rate index ("SF7BW125", or the FSK bit rate). */
export function datrOfDr(region: Region, dr: number): { modu: 'LORA' | 'FSK'; datr: string | number } | undefined {
  const r = region.dataRates[dr]
  if (!r) return undefined
  return r.modulation === 'LORA' ? { modu: 'LORA', datr: `SF${r.sf}BW${r.bwKhz}` } : { modu: 'FSK', datr: r.bitrate }
}

// ---------------------------------------------------------------- GPS time

/** The GPS epoch, 1980-01-06T00:00:00Z, in Unix ms. */
export const GPS_EPOCH_UNIX_MS = 315_964_800_000
/** GPS − UTC in seconds: 18 since 2017-01-01 (IERS Bulletin C; no leap second announced since). */
export const GPS_LEAP_SECONDS = 18

/** µs since the GPS epoch for a Unix time in ms. */
export function gpsTimeUs(unixMs: number): number {
  return Math.round((unixMs - GPS_EPOCH_UNIX_MS + GPS_LEAP_SECONDS * 1000) * 1000)
}

// ---------------------------------------------------------------- router_config

/** Region names as Basics Station knows them (s2e.c handle_router_config; chirpstack regionNameMapping). */
export const STATION_REGION_NAMES: Readonly<Record<RegionId, string>> = {
  EU868: 'EU863',
  US915: 'US902',
  AU915: 'AU915',
  AS923: 'AS923',
  KR920: 'KR920',
  IN865: 'IN865',
}

/**
 * Frequency range downlinks may use, per region (RP002-1.0.3 band edges: EU863-870,
 * US902-928, AU915-928, AS923 915-928, KR920-923, IN865-867).
 */
export const STATION_FREQ_RANGES: Readonly<Record<RegionId, readonly [number, number]>> = {
  EU868: [863_000_000, 870_000_000],
  US915: [902_000_000, 928_000_000],
  AU915: [915_000_000, 928_000_000],
  AS923: [915_000_000, 928_000_000],
  KR920: [920_900_000, 923_300_000],
  IN865: [865_000_000, 867_000_000],
}

/** One receive channel of the gateway's plan. */
export interface PlanChannel {
  readonly freqHz: number
  /** multiSF: 125 kHz, every spreading factor; std: one LoRa setting; fsk: the FSK channel. */
  readonly kind: 'multiSF' | 'std' | 'fsk'
  readonly bwHz: number
  readonly sf?: number
  readonly bitrate?: number
}

/**
 * The channels a gateway of this region listens on, from the region table:
 *   EU868  the three default channels + the five CFList channels this server sends
 *          in join-accepts (867.1-867.9 MHz); DR6 (SF7BW250) on 868.3 MHz and DR7
 *          (FSK 50 kbit/s) on 868.8 MHz, the widely deployed 8+2 channel plan
 *   US915, AU915  sub-band `subBand` (1..8): its eight 125 kHz uplink channels and
 *          its 500 kHz channel (64 + subBand − 1) as the single-SF channel (DR4/DR6)
 *   others the region's default channels
 */
export function channelPlan(region: Region, subBand: number): PlanChannel[] {
  const multi = (f: number): PlanChannel => ({ freqHz: f, kind: 'multiSF', bwHz: 125_000 })
  if (region.rx1Channel.kind === 'mod8') {
    const sb = Math.min(8, Math.max(1, Math.trunc(subBand)))
    const { up125, up500 } = region.rx1Channel
    const chans: PlanChannel[] = []
    for (let i = 0; i < 8; i++) chans.push(multi(up125.firstHz + ((sb - 1) * 8 + i) * up125.stepHz))
    const dr500 = region.dataRates.findIndex((d, i) => i < 8 && d?.modulation === 'LORA' && d.bwKhz === 500)
    const d = region.dataRates[dr500]
    if (d && d.modulation === 'LORA') chans.push({ freqHz: up500.firstHz + (sb - 1) * up500.stepHz, kind: 'std', bwHz: 500_000, sf: d.sf })
    return chans
  }
  if (region.id === 'EU868') {
    const chans = [...region.defaultChannelsHz, ...EU868_CFLIST_FREQS_HZ].map(multi)
    const d6 = region.dataRates[6]
    const d7 = region.dataRates[7]
    if (d6?.modulation === 'LORA') chans.push({ freqHz: 868_300_000, kind: 'std', bwHz: d6.bwKhz * 1000, sf: d6.sf })
    if (d7?.modulation === 'FSK') chans.push({ freqHz: 868_800_000, kind: 'fsk', bwHz: 125_000, bitrate: d7.bitrate })
    return chans
  }
  return region.defaultChannelsHz.map(multi)
}

/**
 * Largest |IF| of a channel on an SX1257/SX1255 radio of the SX1301: the IF plus half the
 * channel bandwidth must stay within half the radio's receive bandwidth, 925/1000/1100 kHz
 * for 125/250/500 kHz channels (Lora-net/lora_gateway libloragw loragw_hal.h
 * LGW_RF_RX_BANDWIDTH_*).
 */
export function maxIfHz(bwHz: number): number {
  const rf = bwHz <= 125_000 ? 925_000 : bwHz <= 250_000 ? 1_000_000 : 1_100_000
  return (rf - bwHz) / 2
}

/** sx1301_conf for one SX1301 board, in the field names of the station (chirpstack structs/router_config.go). */
export interface Sx1301Conf {
  readonly radio_0: { readonly enable: boolean; readonly freq: number }
  readonly radio_1: { readonly enable: boolean; readonly freq: number }
  readonly chan_FSK: { readonly enable: boolean; readonly radio?: number; readonly if?: number; readonly bandwidth?: number; readonly datarate?: number }
  readonly chan_Lora_std: { readonly enable: boolean; readonly radio?: number; readonly if?: number; readonly bandwidth?: number; readonly spread_factor?: number }
  readonly [chan: `chan_multiSF_${number}`]: { readonly enable: boolean; readonly radio?: number; readonly if?: number }
}

/**
 * Place channels on the two radios of one SX1301: channels sorted by frequency are
 * grouped while some radio frequency keeps every IF of the group within `maxIfHz`;
 * the radio sits in the middle of the feasible range (rounded to 100 Hz).
 */
export function sx1301ConfFor(chans: readonly PlanChannel[]): { ok: true; conf: Sx1301Conf } | { ok: false; reason: string } {
  const multi = chans.filter((c) => c.kind === 'multiSF')
  if (multi.length > 8) return { ok: false, reason: `${multi.length} multi-SF channels, an SX1301 has 8` }
  if (chans.filter((c) => c.kind === 'std').length > 1 || chans.filter((c) => c.kind === 'fsk').length > 1) return { ok: false, reason: 'at most one single-SF and one FSK channel' }
  const sorted = [...chans].sort((a, b) => a.freqHz - b.freqHz)
  const groups: { lo: number; hi: number; members: PlanChannel[] }[] = []
  for (const c of sorted) {
    const lim = maxIfHz(c.bwHz)
    const g = groups[groups.length - 1]
    if (g && Math.max(g.lo, c.freqHz - lim) <= Math.min(g.hi, c.freqHz + lim)) {
      g.lo = Math.max(g.lo, c.freqHz - lim)
      g.hi = Math.min(g.hi, c.freqHz + lim)
      g.members.push(c)
    } else {
      groups.push({ lo: c.freqHz - lim, hi: c.freqHz + lim, members: [c] })
    }
  }
  if (groups.length > 2) return { ok: false, reason: `the channels need ${groups.length} radios, an SX1301 has 2` }
  const radios = groups.map((g) => {
    const mid = Math.round((g.lo + g.hi) / 2 / 100) * 100
    return mid < g.lo || mid > g.hi ? Math.round((g.lo + g.hi) / 2) : mid
  })
  const radioOf = (c: PlanChannel): number => groups.findIndex((g) => g.members.includes(c))
  const conf: Record<string, unknown> = {
    radio_0: { enable: radios[0] !== undefined, freq: radios[0] ?? 0 },
    radio_1: { enable: radios[1] !== undefined, freq: radios[1] ?? 0 },
  }
  const std = chans.find((c) => c.kind === 'std')
  const fsk = chans.find((c) => c.kind === 'fsk')
  conf['chan_FSK'] = fsk ? { enable: true, radio: radioOf(fsk), if: fsk.freqHz - (radios[radioOf(fsk)] as number), bandwidth: fsk.bwHz, datarate: fsk.bitrate } : { enable: false }
  conf['chan_Lora_std'] = std
    ? { enable: true, radio: radioOf(std), if: std.freqHz - (radios[radioOf(std)] as number), bandwidth: std.bwHz, spread_factor: std.sf }
    : { enable: false }
  const ms = [...multi].sort((a, b) => a.freqHz - b.freqHz)
  for (let i = 0; i < 8; i++) {
    const c = ms[i]
    conf[`chan_multiSF_${i}`] = c ? { enable: true, radio: radioOf(c), if: c.freqHz - (radios[radioOf(c)] as number) } : { enable: false }
  }
  return { ok: true, conf: conf as unknown as Sx1301Conf }
}

/** The DRs table of router_config: 16 × [SF, BW kHz, DNONLY]; SF −1 = undefined, 0 = FSK. */
export function drsTable(region: Region): [number, number, number][] {
  const out: [number, number, number][] = []
  for (let i = 0; i < 16; i++) {
    const d: DataRate | undefined = region.dataRates[i]
    // US915/AU915 DR8..DR13 are downlink-only (RP002-1.0.3 §2.5.3, §2.8.3).
    const dnOnly = region.rx1Channel.kind === 'mod8' && i >= 8 ? 1 : 0
    if (!d) out.push([-1, 0, 0])
    else if (d.modulation === 'FSK') out.push([0, 0, dnOnly])
    else out.push([d.sf, d.bwKhz, dnOnly])
  }
  return out
}

export interface RouterConfigOptions {
  readonly region: RegionId
  readonly subBand: number
  /** Unix ms, sent as MuxTime (seconds). */
  readonly nowMs: number
}

/** The router_config message for a station of this gateway's region. */
export function buildRouterConfig(o: RouterConfigOptions): { ok: true; message: Record<string, unknown> } | { ok: false; reason: string } {
  const region = REGIONS[o.region]
  const sx = sx1301ConfFor(channelPlan(region, o.subBand))
  if (!sx.ok) return sx
  return {
    ok: true,
    message: {
      msgtype: 'router_config',
      // No NetID or JoinEUI filter: witness mode may want every frame; session devices are matched here.
      NetID: null,
      JoinEui: null,
      region: STATION_REGION_NAMES[o.region],
      hwspec: 'sx1301/1',
      freq_range: [...STATION_FREQ_RANGES[o.region]],
      DRs: drsTable(region),
      sx1301_conf: [sx.conf],
      // Regulatory limits stay on (these flags only switch them off, and only in non-production station builds).
      nocca: false,
      nodc: false,
      nodwell: false,
      MuxTime: o.nowMs / 1000,
    },
  }
}

// ---------------------------------------------------------------- dnmsg

export interface DnmsgOptions {
  readonly devEui: string
  readonly diid: number
  readonly pdu: Uint8Array
  /** Seconds from the uplink to RX1 (the station adds them to xtime). */
  readonly rxDelayS: number
  readonly rx1?: { readonly dr: number; readonly freqHz: number }
  readonly rx2?: { readonly dr: number; readonly freqHz: number }
  readonly priority: number
  readonly xtime: bigint
  readonly rctx: bigint
  readonly nowMs: number
}

/** A class A dnmsg (dC 0), as JSON text with xtime and rctx written digit for digit. */
export function buildDnmsg(o: DnmsgOptions): string {
  const body: Record<string, unknown> = {
    msgtype: 'dnmsg',
    DevEui: formatEuiDashed(o.devEui),
    dC: 0,
    diid: o.diid,
    pdu: bytesToHex(o.pdu),
    RxDelay: o.rxDelayS,
    ...(o.rx1 ? { RX1DR: o.rx1.dr, RX1Freq: o.rx1.freqHz } : {}),
    ...(o.rx2 ? { RX2DR: o.rx2.dr, RX2Freq: o.rx2.freqHz } : {}),
    priority: o.priority,
  }
  const head = JSON.stringify(body).slice(0, -1)
  return `${head},"xtime":${o.xtime.toString()},"rctx":${o.rctx.toString()},"MuxTime":${JSON.stringify(o.nowMs / 1000)}}`
}
