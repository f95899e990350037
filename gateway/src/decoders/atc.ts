// Custom firmware for Xiaomi LYWSD03MMC-class thermometers, service data UUID
// 0x181A (the bytes after the UUID). Spec: github.com/pvvx/ATC_MiThermometer
// README, "Custom format (all data little-endian)", "atc1441 format" and
// "Encrypted custom format"; the layouts match custom-components/ble_monitor
// ble_parser/atc.py. The payload length selects the layout:
// - 13 bytes, atc1441 format (big endian): MAC (6, in display order),
//   temperature int16 x 0.1 degC, humidity uint8 %, battery uint8 %,
//   battery uint16 mV, frame counter uint8.
// - 15 bytes, pvvx custom format (little endian): MAC (6, reversed),
//   temperature int16 x 0.01 degC, humidity uint16 x 0.01 %, battery uint16 mV,
//   battery uint8 %, measurement counter uint8, flags (bit 0 reed switch input,
//   bit 1 GPIO_TRG output, bit 2 output controlled by trigger, bit 3
//   temperature trigger event, bit 4 humidity trigger event).
// - 11 bytes, pvvx encrypted custom format: counter uint8, ciphertext (6:
//   temperature int16 x 0.01, humidity uint16 x 0.01, battery %, flags), MIC
//   (4). AES-CCM with the 16-byte bind key (options.bindkey), nonce = MAC
//   reversed (6) + the AD header as sent (length 0x0E, type 0x16, UUID 1A 18)
//   + counter, associated data 0x11. Needs the MAC (frame.mac or options.mac).
// - 8 bytes, atc1441 encrypted format: rejected as 'unsupported' (no published
//   vector to test it against).
// The plain formats carry the sensor's MAC; when the advertiser's MAC is known
// (frame.mac or options.mac) and differs, the frame is rejected as 'malformed'.
// meta: format, counter (for de-duplication: repeats of one measurement carry
// the same counter), mac, flags and its bits (pvvx).

import type { DecodeOptions, DecodeResult, Decoder, RawFrame } from '../core/decoder.ts'
import { reject } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'
import { aesCcmOpen, formatMac, parseKey, parseMac, roundTo, unitOf } from './bthome.ts'

const NAMES = ['temperature_c', 'humidity_pct', 'battery_pct', 'battery_v'] as const
const UNITS = new Map<string, string>(NAMES.map((n) => [n, unitOf(n)]))
const m = (name: (typeof NAMES)[number], value: number): Metric => ({ name, unit: UNITS.get(name) as string, value })

type Meta = Record<string, number | string | boolean>

function flagMeta(meta: Meta, flags: number): void {
  meta['flags'] = flags
  meta['reedSwitch'] = (flags & 0x01) !== 0
  meta['gpioTrgOutput'] = (flags & 0x02) !== 0
  meta['triggerControlled'] = (flags & 0x04) !== 0
  meta['temperatureTrigger'] = (flags & 0x08) !== 0
  meta['humidityTrigger'] = (flags & 0x10) !== 0
}

function decodeAtc1441(b: Uint8Array): DecodeResult {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return {
    ok: true,
    metrics: [
      m('temperature_c', roundTo(dv.getInt16(6, false) / 10, 1)),
      m('humidity_pct', b[8] as number),
      m('battery_pct', b[9] as number),
      m('battery_v', dv.getUint16(10, false) / 1000),
    ],
    meta: { format: 'atc1441', counter: b[12] as number, mac: formatMac(b.subarray(0, 6)) },
  }
}

function decodePvvx(b: Uint8Array): DecodeResult {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const meta: Meta = { format: 'pvvx', counter: b[13] as number, mac: formatMac(b.slice(0, 6).reverse()) }
  flagMeta(meta, b[14] as number)
  return {
    ok: true,
    metrics: [
      m('temperature_c', roundTo(dv.getInt16(6, true) / 100, 2)),
      m('humidity_pct', roundTo(dv.getUint16(8, true) / 100, 2)),
      m('battery_v', dv.getUint16(10, true) / 1000),
      m('battery_pct', b[12] as number),
    ],
    meta,
  }
}

function decodePvvxEncrypted(frame: RawFrame, options: DecodeOptions | undefined): DecodeResult {
  const b = frame.bytes
  if (options?.['bindkey'] === undefined) return reject('missing-key', 'encrypted pvvx advertisement and no bindkey option')
  const key = parseKey(options['bindkey'])
  if (!key) return reject('missing-key', 'bindkey must be 32 hex characters (16 bytes)')
  const mac = parseMac(frame.mac ?? options['mac'])
  if (!mac) return reject('missing-key', 'encrypted pvvx format needs the device MAC (frame.mac or the mac option) for the nonce')
  const counter = b[0] as number
  const nonce = new Uint8Array(11)
  nonce.set(mac.slice().reverse(), 0)
  nonce.set([b.length + 3, 0x16, 0x1a, 0x18, counter], 6)
  const plain = aesCcmOpen(key, nonce, b.subarray(1, 7), b.subarray(7, 11), Uint8Array.of(0x11))
  if (!plain || plain.length !== 6) return reject('bad-mic', 'pvvx MIC check failed (wrong bind key, wrong MAC or altered data)')
  const dv = new DataView(plain.buffer, plain.byteOffset, plain.byteLength)
  const meta: Meta = { format: 'pvvx-encrypted', encrypted: true, counter, mac: formatMac(mac) }
  flagMeta(meta, plain[5] as number)
  return {
    ok: true,
    metrics: [
      m('temperature_c', roundTo(dv.getInt16(0, true) / 100, 2)),
      m('humidity_pct', roundTo(dv.getUint16(2, true) / 100, 2)),
      m('battery_pct', plain[4] as number),
    ],
    meta,
  }
}

/** Decode service data 0x181A in the atc1441 or pvvx custom formats, chosen by length. */
export function decodeAtc(frame: RawFrame, options?: DecodeOptions): DecodeResult {
  const n = frame.bytes.length
  switch (n) {
    case 13:
    case 15: {
      const r = n === 13 ? decodeAtc1441(frame.bytes) : decodePvvx(frame.bytes)
      // The plain formats carry the sensor's MAC: one that differs from the advertiser's is not this
      // sensor's frame (a 15-byte pvvx frame cut to 13 bytes, with its reversed MAC, lands here too).
      const advertiser = parseMac(frame.mac ?? options?.['mac'])
      const carried = r.ok ? r.meta?.['mac'] : undefined
      if (advertiser && typeof carried === 'string' && formatMac(advertiser) !== carried) {
        return reject('malformed', `MAC in the ${n === 13 ? 'atc1441' : 'pvvx'} frame (${carried}) differs from the advertiser (${formatMac(advertiser)})`)
      }
      return r
    }
    case 11:
      return decodePvvxEncrypted(frame, options)
    case 8:
      return reject('unsupported', 'atc1441 encrypted format (8 bytes) is not supported')
    default:
      return n < 15
        ? reject('truncated', `0x181A payload of ${n} bytes: expected 13 (atc1441), 15 (pvvx) or 11 (pvvx encrypted)`)
        : reject('malformed', `0x181A payload of ${n} bytes: expected 13 (atc1441), 15 (pvvx) or 11 (pvvx encrypted)`)
  }
}

/** ATC1441 / pvvx thermometer firmware decoder (service data 0x181A); meta.format says which layout. */
export const atcDecoder: Decoder = {
  id: 'atc',
  description: 'ATC1441 and pvvx custom thermometer firmware (service data 0x181A), pvvx encrypted with the bindkey option',
  match: { transport: 'ble', serviceDataUuid: '181a' },
  input: 'bytes',
  decode: decodeAtc,
}
