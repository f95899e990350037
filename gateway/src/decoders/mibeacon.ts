// Xiaomi MiBeacon BLE advertisements, service data UUID 0xFE95 (the bytes
// after the UUID). Format as documented by Xiaomi's MiBeacon object
// definition (https://iot.mi.com/new/doc/accesses/direct-access/embedded-development/ble/object-definition)
// and implemented by Bluetooth-Devices/xiaomi-ble (src/xiaomi_ble/parser.py,
// _parse_xiaomi and obj10xx):
//   frame control uint16 LE: bit 3 encrypted, bit 4 MAC included, bit 5
//   capability included, bit 6 object included, bit 7 mesh, bits 12-15
//   version; product id uint16 LE; frame counter uint8; MAC (6, reversed) when
//   bit 4; capability byte when bit 5 (plus an I/O capability byte when its bit
//   5 is set); then objects: type uint16 LE, length uint8, value.
// Objects decoded: 0x1004 temperature int16 x 0.1, 0x1006 humidity uint16
// x 0.1, 0x100D both, 0x1007 illuminance uint24 lx, 0x1008 moisture uint8 %,
// 0x1009 conductivity uint16 uS/cm, 0x100A battery uint8 %, 0x1010
// formaldehyde uint16 x 0.01 mg/m3 (reported in ug/m3), 0x1012 power on/off,
// 0x1014 moisture detected, 0x1015 smoke, 0x1018 light, 0x000A body
// temperature int16 x 0.01, and the MIoT objects 0x4803 / 0x4C03 / 0x5403
// battery uint8 %, 0x4806 moisture detected, 0x4C02 humidity uint8 %, 0x4C08
// humidity float32 %. Other objects are skipped (they are length
// prefixed) and listed in meta.skippedObjects; a frame with nothing decodable
// is rejected as 'unsupported'.
// Encryption: MiBeacon v4/v5 (AES-CCM, 4-byte MIC) is decrypted with
// options.bindkey: nonce = MAC reversed (6) + product id (2) + frame counter
// (1) + extended counter (3, sent before the MIC), associated data 0x11.
// Legacy v2/v3 encryption has no MIC, so a wrong key cannot be detected: it is
// rejected as 'unsupported', as are mesh frames and versions below 2.
// meta: version, productId, frameCounter, counter (frame counter, or
// extended counter << 8 | frame counter when encrypted: the 32-bit counter the
// source uses for de-duplication and replay checks), mac, encrypted.

import type { DecodeOptions, DecodeResult, Decoder, RawFrame } from '../core/decoder.ts'
import { reject } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'
import { aesCcmOpen, formatMac, parseKey, parseMac, roundTo, unitOf } from './bthome.ts'

const NAMES = [
  'temperature_c',
  'humidity_pct',
  'illuminance_lx',
  'moisture_pct',
  'conductivity_uscm',
  'battery_pct',
  'formaldehyde_ugm3',
  'power_on',
  'moisture_detected',
  'smoke_detected',
  'light_detected',
] as const
type Name = (typeof NAMES)[number]
const UNITS = new Map<string, string>(NAMES.map((n) => [n, unitOf(n)]))

type Meta = Record<string, number | string | boolean>

interface ObjectDef {
  /** Required value length, or the minimum when `atLeast`. */
  readonly len: number
  readonly atLeast?: boolean
  readonly read: (v: DataView) => ReadonlyArray<readonly [Name, number]>
}

const OBJECTS: ReadonlyMap<number, ObjectDef> = new Map<number, ObjectDef>([
  [0x1004, { len: 2, read: (v) => [['temperature_c', roundTo(v.getInt16(0, true) / 10, 1)]] }],
  [0x1006, { len: 2, read: (v) => [['humidity_pct', roundTo(v.getUint16(0, true) / 10, 1)]] }],
  [
    0x100d,
    {
      len: 4,
      read: (v) => [
        ['temperature_c', roundTo(v.getInt16(0, true) / 10, 1)],
        ['humidity_pct', roundTo(v.getUint16(2, true) / 10, 1)],
      ],
    },
  ],
  [0x1007, { len: 3, read: (v) => [['illuminance_lx', v.getUint16(0, true) + v.getUint8(2) * 65536]] }],
  [0x1008, { len: 1, read: (v) => [['moisture_pct', v.getUint8(0)]] }],
  [0x1009, { len: 2, read: (v) => [['conductivity_uscm', v.getUint16(0, true)]] }],
  [0x100a, { len: 1, read: (v) => [['battery_pct', v.getUint8(0)]] }],
  [0x1010, { len: 2, read: (v) => [['formaldehyde_ugm3', v.getUint16(0, true) * 10]] }],
  [0x1012, { len: 1, read: (v) => [['power_on', v.getUint8(0) === 0 ? 0 : 1]] }],
  [0x1014, { len: 1, read: (v) => [['moisture_detected', v.getUint8(0) === 0 ? 0 : 1]] }],
  [0x1015, { len: 1, read: (v) => [['smoke_detected', v.getUint8(0) === 0 ? 0 : 1]] }],
  [0x1018, { len: 1, read: (v) => [['light_detected', v.getUint8(0) === 0 ? 0 : 1]] }],
  [0x000a, { len: 2, read: (v) => [['temperature_c', roundTo(v.getInt16(0, true) / 100, 2)]] }],
  // MIoT-spec objects sent by newer devices (xiaomi-ble obj4803, obj4806, obj4c02, obj4c03, obj4c08, obj5403).
  [0x4803, { len: 1, read: (v) => [['battery_pct', v.getUint8(0)]] }],
  [0x4806, { len: 1, read: (v) => [['moisture_detected', v.getUint8(0) === 0 ? 0 : 1]] }],
  [0x4c02, { len: 1, read: (v) => [['humidity_pct', v.getUint8(0)]] }],
  [0x4c03, { len: 1, read: (v) => [['battery_pct', v.getUint8(0)]] }],
  [0x4c08, { len: 4, read: (v) => [['humidity_pct', roundTo(v.getFloat32(0, true), 2)]] }],
  [0x5403, { len: 1, read: (v) => [['battery_pct', v.getUint8(0)]] }],
])

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`

function parseObjects(p: Uint8Array, meta: Meta): DecodeResult {
  const metrics: Metric[] = []
  const counts = new Map<string, number>()
  const skipped: string[] = []
  let off = 0
  while (off < p.length) {
    if (off + 3 > p.length) return reject('truncated', `object header at offset ${off} needs 3 bytes, ${p.length - off} left`)
    const type = (p[off] as number) | ((p[off + 1] as number) << 8)
    const len = p[off + 2] as number
    if (off + 3 + len > p.length) return reject('truncated', `object ${hex4(type)} declares ${len} bytes, ${p.length - off - 3} left`)
    const value = p.subarray(off + 3, off + 3 + len)
    off += 3 + len
    const def = OBJECTS.get(type)
    if (!def) {
      skipped.push(hex4(type))
      continue
    }
    if (len !== def.len) return reject('malformed', `object ${hex4(type)} has length ${len}, expected ${def.len}`)
    for (const [base, v] of def.read(new DataView(value.buffer, value.byteOffset, value.byteLength))) {
      const n = (counts.get(base) ?? 0) + 1
      counts.set(base, n)
      if (n > 99) return reject('malformed', `more than 99 ${base} values`)
      metrics.push({ name: n === 1 ? base : `${base}_${n}`, unit: UNITS.get(base) as string, value: v })
    }
  }
  if (skipped.length > 0) meta['skippedObjects'] = skipped.join(',')
  if (metrics.length === 0) {
    return reject('unsupported', skipped.length > 0 ? `no supported MiBeacon object (objects ${skipped.join(', ')})` : 'MiBeacon frame with an empty object list')
  }
  return { ok: true, metrics, meta }
}

/** Decode MiBeacon service data (after UUID 0xFE95). */
export function decodeMiBeacon(frame: RawFrame, options?: DecodeOptions): DecodeResult {
  const b = frame.bytes
  if (b.length < 5) return reject('truncated', `MiBeacon header needs 5 bytes, got ${b.length}`)
  const frctrl = (b[0] as number) | ((b[1] as number) << 8)
  const version = frctrl >> 12
  if ((frctrl & 0x80) !== 0) return reject('unsupported', 'MiBeacon mesh frames are not supported')
  if (version < 2) return reject('unsupported', `MiBeacon version ${version}: only versions 2 to 5 are supported`)
  const encrypted = (frctrl & 0x08) !== 0
  const productId = (b[2] as number) | ((b[3] as number) << 8)
  const frameCounter = b[4] as number
  const meta: Meta = { version, productId, frameCounter, counter: frameCounter, encrypted }
  let i = 5
  let mac: Uint8Array | undefined
  if ((frctrl & 0x10) !== 0) {
    if (b.length < i + 6) return reject('truncated', 'frame control says a MAC follows, but fewer than 6 bytes remain')
    mac = b.slice(i, i + 6).reverse()
    i += 6
    const sourceMac = parseMac(frame.mac)
    if (sourceMac && formatMac(sourceMac) !== formatMac(mac)) {
      return reject('malformed', `MAC in the MiBeacon frame (${formatMac(mac)}) differs from the advertiser (${formatMac(sourceMac)})`)
    }
    meta['mac'] = formatMac(mac)
  }
  if ((frctrl & 0x20) !== 0) {
    if (b.length < i + 1) return reject('truncated', 'frame control says a capability byte follows, none left')
    const capability = b[i] as number
    i += 1
    meta['capability'] = capability
    if ((capability & 0x20) !== 0) {
      if (b.length < i + 1) return reject('truncated', 'capability says an I/O capability byte follows, none left')
      i += 1
    }
  }
  if ((frctrl & 0x40) === 0) return reject('unsupported', 'MiBeacon frame without an object (pairing or capability beacon)')
  if (!encrypted) return parseObjects(b.subarray(i), meta)

  if (version < 4) return reject('unsupported', `MiBeacon v${version} legacy encryption has no MIC and is not supported`)
  // ciphertext (at least one 3-byte object header) + extended counter (3) + MIC (4)
  if (b.length < i + 3 + 7) return reject('truncated', 'encrypted MiBeacon frame too short for ciphertext, extended counter and MIC')
  if (options?.['bindkey'] === undefined) return reject('missing-key', 'encrypted MiBeacon frame and no bindkey option')
  const key = parseKey(options['bindkey'])
  if (!key) return reject('missing-key', 'bindkey must be 32 hex characters (16 bytes)')
  const nonceMac = mac ?? parseMac(frame.mac ?? options['mac'])
  if (!nonceMac) return reject('missing-key', 'encrypted MiBeacon needs the device MAC (frame.mac or the mac option) for the nonce')
  const ext = b.subarray(b.length - 7, b.length - 4)
  const nonce = new Uint8Array(12)
  nonce.set(nonceMac.slice().reverse(), 0)
  nonce.set(b.subarray(2, 5), 6)
  nonce.set(ext, 9)
  const plain = aesCcmOpen(key, nonce, b.subarray(i, b.length - 7), b.subarray(b.length - 4), Uint8Array.of(0x11))
  if (!plain) return reject('bad-mic', 'MiBeacon MIC check failed (wrong bind key, wrong MAC or altered data)')
  meta['counter'] = ((ext[0] as number) | ((ext[1] as number) << 8) | ((ext[2] as number) << 16)) * 256 + frameCounter
  if (meta['mac'] === undefined) meta['mac'] = formatMac(nonceMac)
  return parseObjects(plain, meta)
}

/** Xiaomi MiBeacon decoder (service data 0xFE95): plain v2-v5 frames, v4/v5 encryption with the bindkey option. */
export const miBeaconDecoder: Decoder = {
  id: 'mibeacon',
  description: 'Xiaomi MiBeacon BLE advertisements (service data 0xFE95), v4/v5 encryption with the bindkey option',
  match: { transport: 'ble', serviceDataUuid: 'fe95' },
  input: 'bytes',
  decode: decodeMiBeacon,
}
