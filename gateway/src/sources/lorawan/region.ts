// LoRaWAN regional parameters used for joins and downlinks, one table entry
// per region (LoRaWAN Regional Parameters RP002-1.0.3, with the L2 1.0.4
// timing constants). Sections cited per entry:
//   EU868  RP002-1.0.3 §2.4  (EU863-870): DR table, max payload, RX1/RX2, CFList type 0
//   US915  RP002-1.0.3 §2.5  (US902-928): 64+8 uplink channels, 8 downlink channels,
//                            RX1 channel = uplink channel mod 8, RX1 DR table
//   AU915  RP002-1.0.3 §2.8  (AU915-928): as US915 with its own frequencies and DR table
//   AS923  RP002-1.0.3 §2.10 (AS923-1, AS923_FREQ_OFFSET = 0): RX1 on the uplink channel,
//                            RX1DROffset 6/7 raise the data rate, RX2 923.2 MHz DR2
//   KR920  RP002-1.0.3 §2.11 (KR920-923)
//   IN865  RP002-1.0.3 §2.12 (IN865-867)
// Common constants (RP002-1.0.3 §2.x "Default Settings" and L2 1.0.4 §6):
// RECEIVE_DELAY1 1 s, RECEIVE_DELAY2 2 s, JOIN_ACCEPT_DELAY1 5 s, JOIN_ACCEPT_DELAY2 6 s.
// Max payload sizes are the "M" (MACPayload) and "N" (FRMPayload, no FOpts) columns with
// dwell time limits off; LR-FHSS data rates are not used for downlinks and not listed.
// Semtech txpk objects for downlinks are built here from an uplink's `tmst`, a 32-bit
// microsecond counter that wraps (Lora-net/packet_forwarder PROTOCOL.TXT §4, §6).
// Section numbers follow the layout of RP002-1.0.x §2 (2.1 channel plan common names,
// 2.2 revision names, 2.3 default settings, then one section per band from 2.4 EU863-870
// to 2.13 RU864-870) and, within a band, .3 data rates, .4 JoinAccept CFList, .7 receive
// windows. Cross-checked against: the per-band numbering of Regional Parameters 1.0.3revA
// ("2.3.7 US902-928 Receive windows", "2.11.5 RU864-870 LinkAdrReq command": the same
// subsections one band section earlier, before "default settings" became its own section),
// and helium/router src/lora/lora_chmask.erl, which cites RP002-1.0.3 page 33 for the
// US902-928 CFList type 1 (inside §2.5).

import type { Txpk } from './semtech-udp.ts'

export const RECEIVE_DELAY1_S = 1
export const RECEIVE_DELAY2_S = 2
export const JOIN_ACCEPT_DELAY1_S = 5
export const JOIN_ACCEPT_DELAY2_S = 6

/** One data rate: LoRa (spreading factor, bandwidth) or FSK (bit rate). */
export type DataRate =
  | { readonly modulation: 'LORA'; readonly sf: number; readonly bwKhz: 125 | 250 | 500 }
  | { readonly modulation: 'FSK'; readonly bitrate: number }

/** Max sizes per data rate: `m` MACPayload bytes, `n` FRMPayload bytes without FOpts. */
export interface MaxPayload {
  readonly m: number
  readonly n: number
}

/** A region, described as data. */
export interface Region {
  readonly id: 'EU868' | 'US915' | 'AU915' | 'AS923' | 'KR920' | 'IN865'
  readonly spec: string
  /** Data rates by index; undefined = RFU or not supported here (LR-FHSS). */
  readonly dataRates: readonly (DataRate | undefined)[]
  readonly maxPayload: readonly (MaxPayload | undefined)[]
  /** How RX1 picks its frequency. */
  readonly rx1Channel:
    | { readonly kind: 'same-as-uplink' }
    | {
        readonly kind: 'mod8'
        /** Uplink 125 kHz channels: first frequency and step; count 64. */
        readonly up125: { readonly firstHz: number; readonly stepHz: number }
        /** Uplink 500 kHz channels: first frequency and step; count 8 (channels 64..71). */
        readonly up500: { readonly firstHz: number; readonly stepHz: number }
        /** Downlink 500 kHz channels: first frequency and step; count 8. */
        readonly down: { readonly firstHz: number; readonly stepHz: number }
      }
  /** RX1 data rate: table[upDr][rx1DrOffset]; undefined entries are not allowed combinations. */
  readonly rx1DrTable: readonly (readonly number[])[]
  readonly rx2: { readonly freqHz: number; readonly dr: number }
  /** Downlink TX power used for txpk (dBm): within the region's MaxEIRP, a common gateway default. */
  readonly downlinkTxPowerDbm: number
  /** Default channels every device knows (Hz). */
  readonly defaultChannelsHz: readonly number[]
  /** The CFList a join-accept may carry: 0 = up to 5 extra frequencies, 1 = channel mask (cfListChMask). */
  readonly cfListType: 0 | 1 | null
}

const lora = (sf: number, bwKhz: 125 | 250 | 500): DataRate => ({ modulation: 'LORA', sf, bwKhz })
const fsk = (bitrate: number): DataRate => ({ modulation: 'FSK', bitrate })
const mp = (m: number): MaxPayload => ({ m, n: m - 8 })

/** EU868 rows: RX1 DR = max(0, upDr − offset), offsets 0..5 (RP002-1.0.3 §2.4.7). */
function subtractTable(maxDr: number, offsets: number, minDr = 0): number[][] {
  const t: number[][] = []
  for (let dr = 0; dr <= maxDr; dr++) {
    const row: number[] = []
    for (let o = 0; o < offsets; o++) row.push(Math.max(minDr, dr - o))
    t.push(row)
  }
  return t
}

/** AS923 / IN865 rows: effective offsets 0..5, then −1, −2 for RX1DROffset 6, 7; capped at DR5. */
function extendedTable(maxUpDr: number, capDr: number): number[][] {
  const eff = [0, 1, 2, 3, 4, 5, -1, -2]
  const t: number[][] = []
  for (let dr = 0; dr <= maxUpDr; dr++) t.push(eff.map((e) => Math.min(capDr, Math.max(0, dr - e))))
  return t
}

export const REGIONS: Readonly<Record<Region['id'], Region>> = {
  EU868: {
    id: 'EU868',
    spec: 'RP002-1.0.3 §2.4',
    dataRates: [lora(12, 125), lora(11, 125), lora(10, 125), lora(9, 125), lora(8, 125), lora(7, 125), lora(7, 250), fsk(50000)],
    maxPayload: [mp(59), mp(59), mp(59), mp(123), mp(250), mp(250), mp(250), mp(250)],
    rx1Channel: { kind: 'same-as-uplink' },
    rx1DrTable: subtractTable(7, 6),
    rx2: { freqHz: 869_525_000, dr: 0 },
    downlinkTxPowerDbm: 14,
    defaultChannelsHz: [868_100_000, 868_300_000, 868_500_000],
    cfListType: 0,
  },
  US915: {
    id: 'US915',
    spec: 'RP002-1.0.3 §2.5',
    dataRates: [
      lora(10, 125), lora(9, 125), lora(8, 125), lora(7, 125), lora(8, 500), undefined, undefined, undefined,
      lora(12, 500), lora(11, 500), lora(10, 500), lora(9, 500), lora(8, 500), lora(7, 500),
    ],
    maxPayload: [
      mp(19), mp(61), mp(133), mp(250), mp(250), undefined, undefined, undefined,
      mp(61), mp(137), mp(250), mp(250), mp(250), mp(250),
    ],
    rx1Channel: {
      kind: 'mod8',
      up125: { firstHz: 902_300_000, stepHz: 200_000 },
      up500: { firstHz: 903_000_000, stepHz: 1_600_000 },
      down: { firstHz: 923_300_000, stepHz: 600_000 },
    },
    // RP002-1.0.3 §2.5.7 table: rows DR0..DR4, columns RX1DROffset 0..3.
    rx1DrTable: [
      [10, 9, 8, 8],
      [11, 10, 9, 8],
      [12, 11, 10, 9],
      [13, 12, 11, 10],
      [13, 13, 12, 11],
    ],
    rx2: { freqHz: 923_300_000, dr: 8 },
    downlinkTxPowerDbm: 20,
    defaultChannelsHz: [],
    cfListType: 1,
  },
  AU915: {
    id: 'AU915',
    spec: 'RP002-1.0.3 §2.8',
    dataRates: [
      lora(12, 125), lora(11, 125), lora(10, 125), lora(9, 125), lora(8, 125), lora(7, 125), lora(8, 500), undefined,
      lora(12, 500), lora(11, 500), lora(10, 500), lora(9, 500), lora(8, 500), lora(7, 500),
    ],
    maxPayload: [
      mp(59), mp(59), mp(59), mp(123), mp(250), mp(250), mp(250), undefined,
      mp(61), mp(137), mp(250), mp(250), mp(250), mp(250),
    ],
    rx1Channel: {
      kind: 'mod8',
      up125: { firstHz: 915_200_000, stepHz: 200_000 },
      up500: { firstHz: 915_900_000, stepHz: 1_600_000 },
      down: { firstHz: 923_300_000, stepHz: 600_000 },
    },
    // RP002-1.0.3 §2.8.7 table: rows DR0..DR6, columns RX1DROffset 0..5.
    rx1DrTable: [
      [8, 8, 8, 8, 8, 8],
      [9, 8, 8, 8, 8, 8],
      [10, 9, 8, 8, 8, 8],
      [11, 10, 9, 8, 8, 8],
      [12, 11, 10, 9, 8, 8],
      [13, 12, 11, 10, 9, 8],
      [13, 13, 12, 11, 10, 9],
    ],
    rx2: { freqHz: 923_300_000, dr: 8 },
    downlinkTxPowerDbm: 20,
    defaultChannelsHz: [],
    cfListType: 1,
  },
  AS923: {
    id: 'AS923',
    spec: 'RP002-1.0.3 §2.10 (AS923-1)',
    dataRates: [lora(12, 125), lora(11, 125), lora(10, 125), lora(9, 125), lora(8, 125), lora(7, 125), lora(7, 250), fsk(50000)],
    maxPayload: [mp(59), mp(59), mp(123), mp(123), mp(250), mp(250), mp(250), mp(250)],
    rx1Channel: { kind: 'same-as-uplink' },
    // DownlinkDwellTime = 0: minimum DR 0; effective offsets 0..5, −1, −2; capped at DR5.
    rx1DrTable: extendedTable(7, 5),
    rx2: { freqHz: 923_200_000, dr: 2 },
    downlinkTxPowerDbm: 14,
    defaultChannelsHz: [923_200_000, 923_400_000],
    cfListType: 0,
  },
  KR920: {
    id: 'KR920',
    spec: 'RP002-1.0.3 §2.11',
    dataRates: [lora(12, 125), lora(11, 125), lora(10, 125), lora(9, 125), lora(8, 125), lora(7, 125)],
    maxPayload: [mp(59), mp(59), mp(59), mp(123), mp(250), mp(250)],
    rx1Channel: { kind: 'same-as-uplink' },
    rx1DrTable: subtractTable(5, 6),
    rx2: { freqHz: 921_900_000, dr: 0 },
    downlinkTxPowerDbm: 14,
    defaultChannelsHz: [922_100_000, 922_300_000, 922_500_000],
    cfListType: 0,
  },
  IN865: {
    id: 'IN865',
    spec: 'RP002-1.0.3 §2.12',
    dataRates: [lora(12, 125), lora(11, 125), lora(10, 125), lora(9, 125), lora(8, 125), lora(7, 125), undefined, fsk(50000)],
    maxPayload: [mp(59), mp(59), mp(59), mp(123), mp(250), mp(250), undefined, mp(250)],
    rx1Channel: { kind: 'same-as-uplink' },
    rx1DrTable: extendedTable(7, 5),
    rx2: { freqHz: 866_550_000, dr: 2 },
    downlinkTxPowerDbm: 20,
    defaultChannelsHz: [865_062_500, 865_402_500, 865_985_000],
    cfListType: 0,
  },
}

export type RegionId = Region['id']

export function isRegionId(s: string): s is RegionId {
  return Object.hasOwn(REGIONS, s)
}

/** The Semtech `datr` value of a data rate: "SF7BW125" for LoRa, the bit rate for FSK. */
export function datrOf(dr: DataRate): string | number {
  return dr.modulation === 'LORA' ? `SF${dr.sf}BW${dr.bwKhz}` : dr.bitrate
}

/**
 * The data-rate index of a `datr` in a region; for regions where one LoRa setting has
 * two indexes (US915 SF8BW500 is DR4 uplink and DR12 downlink), `direction` picks.
 */
export function drOf(region: Region, datr: string | number, direction: 'up' | 'down' = 'up'): number | undefined {
  const matches: number[] = []
  region.dataRates.forEach((dr, i) => {
    if (dr && datrOf(dr) === datr) matches.push(i)
  })
  if (matches.length === 0) return undefined
  if (region.rx1Channel.kind === 'mod8') {
    const pick = matches.filter((i) => (direction === 'up' ? i < 8 : i >= 8))
    return pick[0]
  }
  return matches[0]
}

export type WindowResult =
  | { readonly ok: true; readonly freqHz: number; readonly dr: number; readonly datr: string | number }
  | { readonly ok: false; readonly reason: string }

function channelIndex(freqHz: number, band: { firstHz: number; stepHz: number }, count: number): number | undefined {
  const d = freqHz - band.firstHz
  if (d < 0 || d % band.stepHz !== 0) return undefined
  const i = d / band.stepHz
  return i < count ? i : undefined
}

/**
 * RX1 for an uplink: frequency by the region's channel rule, data rate from the
 * RX1 table (`rx1DrOffset` from the join-accept's DLSettings, usually 0).
 */
export function rx1(region: Region, uplink: { readonly freqHz: number; readonly datr: string | number }, rx1DrOffset: number): WindowResult {
  if (!Number.isInteger(uplink.freqHz) || uplink.freqHz <= 0) return { ok: false, reason: 'uplink freqHz must be a positive integer' }
  const upDr = drOf(region, uplink.datr, 'up')
  if (upDr === undefined) return { ok: false, reason: `${String(uplink.datr)} is not an uplink data rate of ${region.id}` }
  const row = region.rx1DrTable[upDr]
  const dr = row?.[rx1DrOffset]
  if (dr === undefined) return { ok: false, reason: `no RX1 data rate for DR${upDr} with RX1DROffset ${rx1DrOffset} in ${region.id}` }
  const rate = region.dataRates[dr]
  if (!rate) return { ok: false, reason: `RX1 DR${dr} is not defined in ${region.id}` }
  let freqHz = uplink.freqHz
  if (region.rx1Channel.kind === 'mod8') {
    const rule = region.rx1Channel
    const upRate = region.dataRates[upDr]
    const is500 = upRate?.modulation === 'LORA' && upRate.bwKhz === 500
    const ch = is500 ? channelIndex(uplink.freqHz, rule.up500, 8) : channelIndex(uplink.freqHz, rule.up125, 64)
    if (ch === undefined) return { ok: false, reason: `${uplink.freqHz} Hz is not an uplink channel of ${region.id}` }
    const upCh = is500 ? 64 + ch : ch
    freqHz = rule.down.firstHz + (upCh % 8) * rule.down.stepHz
  }
  return { ok: true, freqHz, dr, datr: datrOf(rate) }
}

/** RX2 defaults of a region (frequency and data rate), or an override from the join-accept's RX2DataRate. */
export function rx2(region: Region, rx2Dr?: number): WindowResult {
  const dr = rx2Dr ?? region.rx2.dr
  const rate = region.dataRates[dr]
  if (!rate) return { ok: false, reason: `RX2 DR${dr} is not defined in ${region.id}` }
  return { ok: true, freqHz: region.rx2.freqHz, dr, datr: datrOf(rate) }
}

/** Max FRMPayload size (no FOpts) and MACPayload size at a data rate. */
export function maxPayload(region: Region, dr: number): MaxPayload | undefined {
  return region.maxPayload[dr]
}

/**
 * The extra channels a type 0 CFList announces in a join-accept. EU868 devices know
 * 868.1/868.3/868.5 MHz; the common 8-channel plan adds these five (RP002-1.0.3 §2.4.4
 * defines the format; the frequencies are the widely deployed EU868 plan).
 */
export const EU868_CFLIST_FREQS_HZ: readonly number[] = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]

/**
 * A type 1 CFList (RP002-1.0.3 §2.5.4 US902-928, §2.8.4 AU915-928 JoinAccept CFList):
 * ChMask0..ChMask5, 16-bit little-endian each (ChMask n bit b = channel 16n + b), 3 RFU
 * bytes, CFListType = 1. Enables the eight 125 kHz channels of sub-band `subBand` (1..8)
 * and its 500 kHz channel 64 + subBand − 1. Undefined for regions without fixed channel
 * plans or a sub-band outside 1..8.
 */
export function cfListChMask(region: Region, subBand: number): Uint8Array | undefined {
  if (region.rx1Channel.kind !== 'mod8' || !Number.isInteger(subBand) || subBand < 1 || subBand > 8) return undefined
  const out = new Uint8Array(16)
  const enable = (ch: number): void => {
    const i = Math.floor(ch / 16) * 2 + (ch % 16 >= 8 ? 1 : 0)
    out[i] = (out[i] ?? 0) | (1 << (ch % 8))
  }
  for (let c = (subBand - 1) * 8; c < subBand * 8; c++) enable(c)
  enable(64 + subBand - 1)
  out[15] = 1
  return out
}

/** What a downlink is sent for: an uplink's reception as the forwarder reported it. */
export interface UplinkTiming {
  /** rxpk.tmst: 32-bit microsecond counter of the concentrator. */
  readonly tmst: number
  readonly freqHz: number
  readonly datr: string | number
}

export interface TxpkRequest {
  readonly region: Region
  readonly uplink: UplinkTiming
  readonly window: 'rx1' | 'rx2'
  /** Seconds after the end of the uplink when RX1 opens: RECEIVE_DELAY1 (data) or JOIN_ACCEPT_DELAY1 (join). RX2 is one second later. */
  readonly rx1DelayS: number
  readonly phyPayload: Uint8Array
  readonly rx1DrOffset?: number
  /** RX2 data-rate index when the session changed it. */
  readonly rx2Dr?: number
  readonly powerDbm?: number
}

export type TxpkResult = { readonly ok: true; readonly txpk: Txpk; readonly dr: number } | { readonly ok: false; readonly reason: string }

/** `(tmst + delayUs) mod 2^32`: the concentrator counter wraps about every 71.6 minutes. */
export function addTmst(tmst: number, delayUs: number): number {
  return (tmst + delayUs) % 0x1_0000_0000
}

/**
 * A Semtech txpk for a class A downlink: at uplink tmst + delay (wrapping), in RX1 or RX2,
 * with inverted polarity (downlinks use ipol = true) and coding rate 4/5, size and data
 * from the PHYPayload. Checks the payload against the region's max size at that DR.
 */
export function txpkFor(req: TxpkRequest): TxpkResult {
  const { region, uplink } = req
  if (!Number.isInteger(uplink.tmst) || uplink.tmst < 0 || uplink.tmst > 0xffffffff) return { ok: false, reason: 'uplink tmst must be a uint32' }
  if (!Number.isInteger(req.rx1DelayS) || req.rx1DelayS < 1 || req.rx1DelayS > 15) return { ok: false, reason: 'rx1DelayS must be 1..15' }
  const w = req.window === 'rx1' ? rx1(region, uplink, req.rx1DrOffset ?? 0) : rx2(region, req.rx2Dr)
  if (!w.ok) return w
  const delayS = req.window === 'rx1' ? req.rx1DelayS : req.rx1DelayS + 1
  const max = region.maxPayload[w.dr]
  // MACPayload = PHYPayload − MHDR − MIC.
  const macLen = req.phyPayload.length - 5
  if (max && macLen > max.m) return { ok: false, reason: `MACPayload of ${macLen} bytes exceeds ${max.m} at DR${w.dr} in ${region.id}` }
  if (req.phyPayload.length === 0 || req.phyPayload.length > 255) return { ok: false, reason: 'PHYPayload must be 1..255 bytes' }
  const rate = region.dataRates[w.dr]
  const isLora = rate?.modulation === 'LORA'
  const txpk: Txpk = {
    imme: false,
    tmst: addTmst(uplink.tmst, delayS * 1_000_000),
    freqHz: w.freqHz,
    rfch: 0,
    powe: req.powerDbm ?? region.downlinkTxPowerDbm,
    modu: isLora ? 'LORA' : 'FSK',
    datr: w.datr,
    ...(isLora ? { codr: '4/5', ipol: true } : { fdev: 25000 }),
    size: req.phyPayload.length,
    data: Uint8Array.from(req.phyPayload),
  }
  return { ok: true, txpk, dr: w.dr }
}
