// Ruuvi BLE manufacturer data (company id 0x0499), the bytes after the
// company id. Specs:
// - Data format 5 (RAWv2): https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2
//   24 bytes, big endian: format 5, temperature int16 x 0.005 degC, humidity
//   uint16 x 0.0025 %, pressure uint16 + 50000 Pa, acceleration X/Y/Z int16 mG,
//   power info (11 bits battery mV above 1600, 5 bits TX power in 2 dBm steps
//   above -40 dBm), movement counter uint8, measurement sequence uint16, MAC.
// - Data format 6: https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-6
//   20 bytes: format 6, temperature, humidity, pressure as in format 5,
//   PM2.5 uint16 x 0.1 ug/m3, CO2 uint16 ppm, VOC and NOx indexes (9 bits,
//   least significant bit in the flags byte), logarithmic luminosity code,
//   reserved, measurement sequence uint8, flags, lowest 3 bytes of the MAC.
// "Not available" (largest unsigned / smallest signed value, MAC all ones)
// leaves the metric out: an absent value is never reported as zero.
// Units: acceleration is converted from mG to m/s2 with standard gravity
// 9.80665; pressure from Pa to hPa; battery from mV to V.
// meta: dataFormat, sequence (de-duplication), movementCounter (format 5),
// calibrationInProgress (format 6), mac / macSuffix.

import type { DecodeResult, Decoder, RawFrame } from '../core/decoder.ts'
import { reject } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'
import { formatMac, roundTo, unitOf } from './bthome.ts'

/** Standard gravity, m/s2 per g. */
export const STANDARD_GRAVITY = 9.80665

const METRIC_NAMES = [
  'temperature_c',
  'humidity_pct',
  'pressure_hpa',
  'acceleration_x_ms2',
  'acceleration_y_ms2',
  'acceleration_z_ms2',
  'battery_v',
  'tx_power_dbm',
  'pm2_5_ugm3',
  'co2_ppm',
  'voc_index',
  'nox_index',
  'illuminance_lx',
] as const
const UNITS = new Map<string, string>(METRIC_NAMES.map((n) => [n, unitOf(n)]))

function metric(name: (typeof METRIC_NAMES)[number], value: number): Metric {
  return { name, unit: UNITS.get(name) as string, value }
}

function u16(b: Uint8Array, off: number): number {
  return ((b[off] as number) << 8) | (b[off + 1] as number)
}
function i16(b: Uint8Array, off: number): number {
  const u = u16(b, off)
  return u >= 0x8000 ? u - 0x10000 : u
}

/** Temperature, humidity and pressure: the same encoding in formats 5 and 6. */
function climate(b: Uint8Array, out: Metric[]): void {
  const t = i16(b, 1)
  if (t !== -0x8000) out.push(metric('temperature_c', roundTo(t * 0.005, 3)))
  const h = u16(b, 3)
  if (h !== 0xffff) out.push(metric('humidity_pct', roundTo(h * 0.0025, 4)))
  const p = u16(b, 5)
  if (p !== 0xffff) out.push(metric('pressure_hpa', roundTo((p + 50000) / 100, 2)))
}

function decodeFormat5(b: Uint8Array): DecodeResult {
  if (b.length < 24) return reject('truncated', `Ruuvi data format 5 is 24 bytes, got ${b.length}`)
  if (b.length > 24) return reject('malformed', `Ruuvi data format 5 is 24 bytes, got ${b.length}`)
  const metrics: Metric[] = []
  const meta: Record<string, number | string | boolean> = { dataFormat: 5 }
  climate(b, metrics)
  const axes = ['acceleration_x_ms2', 'acceleration_y_ms2', 'acceleration_z_ms2'] as const
  axes.forEach((name, i) => {
    const mg = i16(b, 7 + 2 * i)
    if (mg !== -0x8000) metrics.push(metric(name, roundTo((mg / 1000) * STANDARD_GRAVITY, 6)))
  })
  const power = u16(b, 13)
  const batteryMv = power >> 5
  const tx = power & 0x1f
  if (batteryMv !== 2047) metrics.push(metric('battery_v', (1600 + batteryMv) / 1000))
  if (tx !== 31) metrics.push(metric('tx_power_dbm', -40 + 2 * tx))
  const movement = b[15] as number
  if (movement !== 0xff) meta['movementCounter'] = movement
  const sequence = u16(b, 16)
  if (sequence !== 0xffff) meta['sequence'] = sequence
  const mac = b.subarray(18, 24)
  if (!mac.every((x) => x === 0xff)) meta['mac'] = formatMac(mac)
  return { ok: true, metrics, meta }
}

/** Luminosity code (0..254) to lux: exp(code * ln(65536) / 254) - 1, rounded to 0.01. */
export function ruuviLuminosity(code: number): number {
  return roundTo(Math.exp((code * Math.log(65536)) / 254) - 1, 2)
}

function decodeFormat6(b: Uint8Array): DecodeResult {
  if (b.length < 20) return reject('truncated', `Ruuvi data format 6 is 20 bytes, got ${b.length}`)
  if (b.length > 20) return reject('malformed', `Ruuvi data format 6 is 20 bytes, got ${b.length}`)
  const metrics: Metric[] = []
  const flags = b[16] as number
  const meta: Record<string, number | string | boolean> = {
    dataFormat: 6,
    sequence: b[15] as number,
    calibrationInProgress: (flags & 0x01) !== 0,
  }
  climate(b, metrics)
  const pm = u16(b, 7)
  if (pm !== 0xffff) metrics.push(metric('pm2_5_ugm3', roundTo(pm * 0.1, 1)))
  const co2 = u16(b, 9)
  if (co2 !== 0xffff) metrics.push(metric('co2_ppm', co2))
  const voc = ((b[11] as number) << 1) | ((flags >> 6) & 1)
  if (voc !== 0x1ff) metrics.push(metric('voc_index', voc))
  const nox = ((b[12] as number) << 1) | ((flags >> 7) & 1)
  if (nox !== 0x1ff) metrics.push(metric('nox_index', nox))
  const lum = b[13] as number
  if (lum !== 0xff) metrics.push(metric('illuminance_lx', ruuviLuminosity(lum)))
  const mac = b.subarray(17, 20)
  if (!mac.every((x) => x === 0xff)) meta['macSuffix'] = formatMac(mac)
  return { ok: true, metrics, meta }
}

/** Decode Ruuvi manufacturer data (after company id 0x0499): formats 5 and 6. */
export function decodeRuuvi(frame: RawFrame): DecodeResult {
  const b = frame.bytes
  if (b.length < 1) return reject('truncated', 'empty Ruuvi payload: no data format byte')
  const format = b[0] as number
  if (format === 5) return decodeFormat5(b)
  if (format === 6) return decodeFormat6(b)
  return reject('unsupported', `Ruuvi data format 0x${format.toString(16).padStart(2, '0')}: only formats 5 (RAWv2) and 6 are supported`)
}

/** Ruuvi decoder: data formats 5 (RAWv2, RuuviTag) and 6 (Ruuvi Air). */
export const ruuviDecoder: Decoder = {
  id: 'ruuvi',
  description: 'Ruuvi BLE manufacturer data 0x0499: data formats 5 (RAWv2) and 6',
  match: { transport: 'ble', manufacturerId: 0x0499 },
  input: 'bytes',
  decode: decodeRuuvi,
}
