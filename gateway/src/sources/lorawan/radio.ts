// Radio metadata of LoRaWAN readings, within RadioMeta's limits (flat
// key → number|string, at most CANONICAL_LIMITS.radioKeys = 32 keys, strings
// at most 255 bytes), and the witness-mode DevAddr filters.
//
// Scheme (docs/lorawan.md, "Radio metadata"):
//   trust        "session" | "witness"
//   dev_addr     DevAddr, 8 hex digits
//   fcnt         session: the reconstructed 32-bit FCntUp; witness: `fcnt16`, the 16 bits on air
//   mtype, fport, fctrl (the FCtrl byte), fopts (hex, when present), mic (hex)
//   freq (MHz), modu, datr, codr            common to every reception
//   gateway_eui, tmst, time, tmms, chan, rfch, stat, rssi, rssis, lsnr
//                                           the best reception (highest lsnr, then rssi)
//   rx_count     how many forwarders heard the frame
//   rx1 … rxN    every further reception as one string
//                "gw=<eui> rssi=<dBm> lsnr=<dB> tmst=<µs> chan=<n> rfch=<n> [time=<iso>]"
//   rx_omitted   receptions left out for lack of keys (when any)
//   data_*       codec fields that are not metrics (session mode), as room allows
// Keys are added in that order until 32 are used.

import { CANONICAL_LIMITS } from '../../core/canonical.ts'
import type { DataFrame } from '../../core/lorawan/phy.ts'
import type { Rxpk } from './semtech-udp.ts'
import { devAddrHex } from './sessions.ts'

/** One forwarder's reception of a frame. */
export interface Reception {
  readonly gatewayEui: string
  readonly rxpk: Rxpk
  /** process.hrtime.bigint() when the datagram arrived. */
  readonly monoNs: bigint
}

/** Best first: higher SNR, then higher RSSI. */
export function sortReceptions(rs: readonly Reception[]): Reception[] {
  return [...rs].sort((a, b) => (b.rxpk.lsnr ?? -99) - (a.rxpk.lsnr ?? -99) || (b.rxpk.rssi ?? -999) - (a.rxpk.rssi ?? -999))
}

function receptionText(r: Reception): string {
  const x = r.rxpk
  const parts = [`gw=${r.gatewayEui}`]
  if (x.rssi !== undefined) parts.push(`rssi=${x.rssi}`)
  if (x.lsnr !== undefined) parts.push(`lsnr=${x.lsnr}`)
  parts.push(`tmst=${x.tmst}`)
  if (x.chan !== undefined) parts.push(`chan=${x.chan}`)
  if (x.rfch !== undefined) parts.push(`rfch=${x.rfch}`)
  if (x.time !== undefined) parts.push(`time=${x.time}`)
  return parts.join(' ').slice(0, 255)
}

/**
 * Build the radio metadata of a frame: `frameKeys` first (trust, dev_addr, ...),
 * then the receptions, then `extra` (codec meta) while room is left.
 */
export function radioMeta(
  frameKeys: Readonly<Record<string, number | string>>,
  receptions: readonly Reception[],
  extra: Readonly<Record<string, number | string>> = {},
): Record<string, number | string> {
  const max = CANONICAL_LIMITS.radioKeys
  const out: Record<string, number | string> = {}
  let n = 0
  const put = (k: string, v: number | string | undefined): boolean => {
    if (v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return true
    if (n >= max) return false
    out[k] = typeof v === 'string' ? v.slice(0, 255) : v
    n++
    return true
  }
  for (const [k, v] of Object.entries(frameKeys)) put(k, v)
  const sorted = sortReceptions(receptions)
  const best = sorted[0]
  if (best) {
    const x = best.rxpk
    put('freq', Number((x.freqHz / 1e6).toFixed(6)))
    put('modu', x.modu)
    put('datr', x.datr)
    put('codr', x.codr)
    put('gateway_eui', best.gatewayEui)
    put('tmst', x.tmst)
    put('time', x.time)
    put('tmms', x.tmms)
    put('chan', x.chan)
    put('rfch', x.rfch)
    put('stat', x.stat)
    put('rssi', x.rssi)
    put('rssis', x.rssis)
    put('lsnr', x.lsnr)
    put('rx_count', sorted.length)
  }
  // Further receptions, keeping one key free for rx_omitted if they do not all fit.
  const rest = sorted.slice(1)
  let omitted = 0
  for (let i = 0; i < rest.length; i++) {
    const left = max - n
    const needsMarker = rest.length - i > left
    if (left <= 0 || (needsMarker && left <= 1)) {
      omitted = rest.length - i
      break
    }
    put(`rx${i + 1}`, receptionText(rest[i] as Reception))
  }
  if (omitted > 0) put('rx_omitted', omitted)
  for (const [k, v] of Object.entries(extra)) if (!put(k, v)) break
  return out
}

/** Keys describing a data frame, shared by both trust modes. */
export function frameKeys(trust: 'session' | 'witness', f: DataFrame, fcnt: number): Record<string, number | string> {
  return {
    trust,
    dev_addr: devAddrHex(f.devAddr),
    [trust === 'session' ? 'fcnt' : 'fcnt16']: fcnt,
    mtype: f.mtype,
    ...(f.fport !== null ? { fport: f.fport } : {}),
    fctrl: f.bytes[5] ?? 0,
    ...(f.fopts.length > 0 ? { fopts: Buffer.from(f.fopts).toString('hex') } : {}),
    mic: Buffer.from(f.mic).toString('hex'),
  }
}

// ---------------------------------------------------------------- witness filters

/** A DevAddr prefix: the `bits` high bits of `prefix`. */
export interface DevAddrPrefix {
  readonly prefix: number
  readonly bits: number
}

/** "78000000/7" → prefix; undefined when malformed. */
export function parsePrefix(s: string): DevAddrPrefix | undefined {
  const m = /^([0-9A-Fa-f]{8})\/(\d{1,2})$/.exec(s)
  if (!m) return undefined
  const bits = Number(m[2])
  if (bits > 32) return undefined
  return { prefix: parseInt(m[1] as string, 16) >>> 0, bits }
}

/**
 * The DevAddr prefix of a NetID (LoRaWAN Backend Interfaces TS002-1.1.0 §13, "DevAddr
 * assignment"): NetID type t = the 3 high bits; the DevAddr starts with t ones and a zero
 * (t+1 bits), then NwkID, the low bits of the NetID: 6, 6, 9, 11, 12, 13, 15, 17 bits
 * for types 0..7.
 */
export function netIdPrefix(netId: number): DevAddrPrefix | undefined {
  if (!Number.isInteger(netId) || netId < 0 || netId > 0xffffff) return undefined
  const type = netId >>> 21
  const nwkIdBits = [6, 6, 9, 11, 12, 13, 15, 17][type] as number
  const typeBits = type + 1
  const typePrefix = ((0xff << (8 - type)) & 0xff) >>> 0 // t ones then zeros, in a byte
  const nwkId = netId & ((1 << nwkIdBits) - 1)
  const bits = typeBits + nwkIdBits
  const prefix = ((typePrefix << 24) | (nwkId << (32 - bits))) >>> 0
  return { prefix, bits }
}

export function matchesPrefix(devAddr: number, p: DevAddrPrefix): boolean {
  if (p.bits === 0) return true
  const mask = p.bits === 32 ? 0xffffffff : (~0 << (32 - p.bits)) >>> 0
  return ((devAddr & mask) >>> 0) === ((p.prefix & mask) >>> 0)
}
