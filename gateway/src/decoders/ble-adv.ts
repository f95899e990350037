// A raw BLE advertisement (the AD structures of an advertising or scan
// response PDU) decoded by the format its data announces.
// Spec: Bluetooth Core Specification v5.4, Vol 3, Part C, §11 "Advertising
// and Scan Response Data Format" (each AD structure: length byte, AD type,
// length-1 data bytes; a length of 0 ends the significant part) and the Core
// Specification Supplement v11, Part A: §1.2 local name (0x08 shortened, 0x09
// complete), §1.3 flags (0x01), §1.5 TX power level (0x0A), §1.4 / §1.11
// service data with a 16-bit UUID (0x16, UUID little endian first) and
// manufacturer specific data (0xFF, company id little endian first).
//
// The data element's decoder is found through the registry by service UUID
// or company id (BTHome fcd2, ATC/pvvx 181a, MiBeacon fe95, Ruuvi 0x0499),
// or named with options.format. Options bindkey and mac are passed through.
// The registry lookup is injected (createBleAdvDecoder) so this file imports
// core only and the registry (decoders/index.ts) can list it without an
// import cycle.

import type { DecodeOptions, DecodeResult, Decoder, RawFrame } from '../core/decoder.ts'
import { reject, safeDecode } from '../core/decoder.ts'
import { toHex } from './bthome.ts'

/** One AD structure. */
export interface AdStructure {
  readonly type: number
  readonly data: Uint8Array
}

/** What an advertisement carries, parsed from its AD structures. */
export interface ParsedAdvertisement {
  readonly structures: readonly AdStructure[]
  readonly flags?: number
  readonly name?: string
  readonly txPower?: number
  /** 16-bit service data: UUID (4 lowercase hex digits) and the bytes after it. */
  readonly serviceData: readonly { readonly uuid: string; readonly data: Uint8Array }[]
  readonly manufacturerData: readonly { readonly companyId: number; readonly data: Uint8Array }[]
}

const utf8 = new TextDecoder('utf-8', { fatal: false })

/** Parse AD structures; a structure running past the end is rejected, a zero length ends the data. */
export function parseAdvertisement(b: Uint8Array): ParsedAdvertisement | { readonly error: string; readonly code: 'truncated' | 'malformed' } {
  if (b.length === 0) return { error: 'empty advertisement', code: 'truncated' }
  if (b.length > 255) return { error: `advertisement of ${b.length} bytes: extended advertising data is at most 255 bytes`, code: 'malformed' }
  const structures: AdStructure[] = []
  const serviceData: { uuid: string; data: Uint8Array }[] = []
  const manufacturerData: { companyId: number; data: Uint8Array }[] = []
  let flags: number | undefined
  let name: string | undefined
  let txPower: number | undefined
  let off = 0
  while (off < b.length) {
    const len = b[off] as number
    if (len === 0) break // early termination (Vol 3, Part C, §11): the rest is padding
    if (off + 1 + len > b.length) return { error: `AD structure at offset ${off} declares ${len} bytes, ${b.length - off - 1} left`, code: 'truncated' }
    const type = b[off + 1] as number
    const data = b.subarray(off + 2, off + 1 + len)
    structures.push({ type, data })
    switch (type) {
      case 0x01:
        if (data.length >= 1) flags = data[0]
        break
      case 0x08:
      case 0x09:
        if (type === 0x09 || name === undefined) name = utf8.decode(data)
        break
      case 0x0a:
        if (data.length >= 1) txPower = ((data[0] as number) << 24) >> 24
        break
      case 0x16:
        if (data.length < 2) return { error: `service data AD structure at offset ${off} is shorter than its 16-bit UUID`, code: 'truncated' }
        serviceData.push({ uuid: (((data[1] as number) << 8) | (data[0] as number)).toString(16).padStart(4, '0'), data: data.subarray(2) })
        break
      case 0xff:
        if (data.length < 2) return { error: `manufacturer data AD structure at offset ${off} is shorter than its company id`, code: 'truncated' }
        manufacturerData.push({ companyId: (data[0] as number) | ((data[1] as number) << 8), data: data.subarray(2) })
        break
    }
    off += 1 + len
  }
  return {
    structures,
    serviceData,
    manufacturerData,
    ...(flags !== undefined ? { flags } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(txPower !== undefined ? { txPower } : {}),
  }
}

/** Registry lookups the advertisement decoder needs (decoders/index.ts passes its own). */
export interface BleAdvLookup {
  /** Decoders for a frame, most specific first. */
  decodersFor(frame: Omit<RawFrame, 'bytes'>): readonly Decoder[]
  findDecoder(id: string): Decoder | undefined
}

/** The decoder with id 'ble': a raw advertisement, dispatched by what it announces. */
export function createBleAdvDecoder(lookup: BleAdvLookup): Decoder {
  const decode = (frame: RawFrame, options?: DecodeOptions): DecodeResult => {
    const adv = parseAdvertisement(frame.bytes)
    if ('error' in adv) return reject(adv.code, adv.error)
    const mac = frame.mac ?? options?.['mac']
    const candidates: { frame: RawFrame; decoder: Decoder }[] = []
    const forced = options?.['format']
    const forcedDecoder = forced !== undefined ? lookup.findDecoder(forced) : undefined
    if (forced !== undefined && (!forcedDecoder || forcedDecoder.id === 'ble' || forcedDecoder.match.transport !== 'ble')) {
      return reject('unsupported', `format "${forced}" is not a BLE data decoder`)
    }
    const elements: RawFrame[] = [
      ...adv.serviceData.map((s) => ({ transport: 'ble' as const, serviceDataUuid: s.uuid, bytes: s.data, ...(mac !== undefined ? { mac } : {}) })),
      ...adv.manufacturerData.map((m) => ({ transport: 'ble' as const, manufacturerId: m.companyId, bytes: m.data, ...(mac !== undefined ? { mac } : {}) })),
    ]
    for (const el of elements) {
      if (forcedDecoder) {
        const m = forcedDecoder.match
        if ((m.serviceDataUuid !== undefined && m.serviceDataUuid === el.serviceDataUuid) || (m.manufacturerId !== undefined && m.manufacturerId === el.manufacturerId)) {
          candidates.push({ frame: el, decoder: forcedDecoder })
        }
        continue
      }
      const d = lookup.decodersFor(el).find((x) => x.id !== 'ble' && (x.match.serviceDataUuid !== undefined || x.match.manufacturerId !== undefined))
      if (d) candidates.push({ frame: el, decoder: d })
    }
    if (candidates.length === 0) {
      const seen = [...adv.serviceData.map((s) => `service data ${s.uuid}`), ...adv.manufacturerData.map((m) => `manufacturer 0x${m.companyId.toString(16).padStart(4, '0')}`)]
      return reject(
        forcedDecoder ? 'not-matched' : 'unsupported',
        forcedDecoder ? `no data element for format ${forcedDecoder.id} (${seen.join(', ') || 'no service or manufacturer data'})` : `no decoder for ${seen.join(', ') || 'an advertisement without service or manufacturer data'}`,
      )
    }
    const subOptions: Record<string, string | undefined> = { ...options }
    delete subOptions['format']
    let first: DecodeResult | undefined
    for (const c of candidates) {
      const r = safeDecode(c.decoder, c.frame, subOptions)
      if (r.ok) {
        const meta: Record<string, number | string | boolean> = { ...r.meta, decoder: c.decoder.id, data: toHex(c.frame.bytes) }
        if (c.frame.serviceDataUuid !== undefined) meta['serviceDataUuid'] = c.frame.serviceDataUuid
        if (c.frame.manufacturerId !== undefined) meta['manufacturerId'] = c.frame.manufacturerId
        if (adv.name !== undefined) meta['name'] = adv.name
        if (adv.txPower !== undefined) meta['txPower'] = adv.txPower
        return r.deviceTimeMs === undefined ? { ok: true, metrics: r.metrics, meta } : { ok: true, metrics: r.metrics, meta, deviceTimeMs: r.deviceTimeMs }
      }
      first ??= r
    }
    const f = first as Extract<DecodeResult, { ok: false }>
    return reject(f.code, `${candidates[0]?.decoder.id}: ${f.reason}`)
  }
  return {
    id: 'ble',
    description: 'Raw BLE advertisement (AD structures, hex): detects the format from service data UUID or company id (options: format, bindkey, mac)',
    match: { transport: 'ble' },
    input: 'bytes',
    decode,
  }
}
