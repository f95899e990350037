// Cayenne Low Power Payload (LPP) decoder for LoRaWAN application payloads.
//
// Format (myDevicesIoT/cayenne-docs docs/LORA.md, "Cayenne Low Power Payload"):
// a sequence of [channel (1 byte)] [type (1 byte)] [value (size by type)],
// values big-endian. Types are IPSO object ids − 3200. The original types:
//   0 digital input  1 B            1 digital output 1 B
//   2 analog input   2 B s 0.01     3 analog output  2 B s 0.01
// 101 illuminance    2 B u 1 lx   102 presence       1 B
// 103 temperature    2 B s 0.1 °C 104 humidity       1 B u 0.5 %
// 113 accelerometer  3×2 B s 0.001 g   115 barometer 2 B u 0.1 hPa
// 134 gyrometer      3×2 B s 0.01 °/s  136 GPS 3 B s 0.0001° lat, lon, 3 B s 0.01 m alt
// and the extended types of ElectronicCats/CayenneLPP (src/CayenneLPP.h and
// src/CayenneLPP.cpp, as found in its current header and in users' copies of it):
// 100 generic sensor 4 B u        116 voltage  2 B u 0.01 V   117 current 2 B u 0.001 A
// 118 frequency 4 B u 1 Hz        120 percentage 1 B u        121 altitude 2 B s 1 m
// 125 concentration 2 B u 1 ppm   128 power 2 B u 1 W         130 distance 4 B u 0.001 m
// 131 energy 4 B u 0.001 kWh      132 direction 2 B u 1°      133 unix time 4 B u s
// 135 colour 3×1 B (R, G, B)      142 switch 1 B (0/1)
// Not decoded (rejected as 'unsupported', since an unknown type's length is unknown):
// 240 polyline (variable length), the short-lived 143/144 numbering of concentration
// and RGB in an intermediate version of that library, and a "load" type, for which
// no published size and scale was found.
//
// Metric names: the unit-registry name of the quantity, then `_ch<channel>`,
// always (channel 0..255 as sent): channel 3 temperature → `temperature_c_ch3`,
// channel 5 → `temperature_c_ch5`. A channel keeps its meaning across frames
// however many objects a frame carries, so the name of a series never shifts;
// the `_2` repeat suffix of units.ts is not used here. Names match
// METRIC_NAME_RE (at most 26 + 6 characters). Multi-value objects expand:
// accelerometer → acceleration_{x,y,z}_ms2 (g × 9.80665, the standard gravity),
// gyrometer → gyroscope_{x,y,z}_dps, GPS → latitude, longitude, altitude_m,
// colour → colour_{red,green,blue}. Presence maps to occupancy_detected, switch to
// state. A unix time object also sets the reading's deviceTimeMs (first one).
// Two objects giving the same metric name on one channel are a rejection
// ('malformed'): a reading's metric names are unique.

import { type Decoder, type DecodeResult, type RawFrame, reject } from '../core/decoder.ts'
import { METRICS, type MetricName } from '../core/units.ts'
import type { Metric } from '../core/types.ts'

/** Standard gravity, m/s² per g (CGPM 1901; exact). */
export const STANDARD_GRAVITY = 9.80665

interface Field {
  readonly metric: MetricName
  readonly bytes: 1 | 2 | 3 | 4
  readonly signed: boolean
  readonly divisor: number
  readonly multiplier?: number
}

interface LppType {
  readonly name: string
  readonly fields: readonly Field[]
}

const f = (metric: MetricName, bytes: Field['bytes'], signed: boolean, divisor = 1, multiplier?: number): Field =>
  multiplier === undefined ? { metric, bytes, signed, divisor } : { metric, bytes, signed, divisor, multiplier }

/** The type table: one row per LPP type; adding a type is one row and one vector. */
export const LPP_TYPES: ReadonlyMap<number, LppType> = new Map<number, LppType>([
  [0, { name: 'digital input', fields: [f('digital_input', 1, false)] }],
  [1, { name: 'digital output', fields: [f('digital_output', 1, false)] }],
  [2, { name: 'analog input', fields: [f('analog_input', 2, true, 100)] }],
  [3, { name: 'analog output', fields: [f('analog_output', 2, true, 100)] }],
  [100, { name: 'generic sensor', fields: [f('generic_value', 4, false)] }],
  [101, { name: 'illuminance', fields: [f('illuminance_lx', 2, false)] }],
  [102, { name: 'presence', fields: [f('occupancy_detected', 1, false)] }],
  [103, { name: 'temperature', fields: [f('temperature_c', 2, true, 10)] }],
  [104, { name: 'humidity', fields: [f('humidity_pct', 1, false, 2)] }],
  [
    113,
    {
      name: 'accelerometer',
      fields: [
        f('acceleration_x_ms2', 2, true, 1000, STANDARD_GRAVITY),
        f('acceleration_y_ms2', 2, true, 1000, STANDARD_GRAVITY),
        f('acceleration_z_ms2', 2, true, 1000, STANDARD_GRAVITY),
      ],
    },
  ],
  [115, { name: 'barometer', fields: [f('pressure_hpa', 2, false, 10)] }],
  [116, { name: 'voltage', fields: [f('voltage_v', 2, false, 100)] }],
  [117, { name: 'current', fields: [f('current_a', 2, false, 1000)] }],
  [118, { name: 'frequency', fields: [f('frequency_hz', 4, false)] }],
  [120, { name: 'percentage', fields: [f('percentage_pct', 1, false)] }],
  [121, { name: 'altitude', fields: [f('altitude_m', 2, true)] }],
  [125, { name: 'concentration', fields: [f('concentration_ppm', 2, false)] }],
  [128, { name: 'power', fields: [f('power_w', 2, false)] }],
  [130, { name: 'distance', fields: [f('distance_m', 4, false, 1000)] }],
  [131, { name: 'energy', fields: [f('energy_kwh', 4, false, 1000)] }],
  [132, { name: 'direction', fields: [f('direction_deg', 2, false)] }],
  [133, { name: 'unix time', fields: [f('unix_time_s', 4, false)] }],
  [134, { name: 'gyrometer', fields: [f('gyroscope_x_dps', 2, true, 100), f('gyroscope_y_dps', 2, true, 100), f('gyroscope_z_dps', 2, true, 100)] }],
  [135, { name: 'colour', fields: [f('colour_red', 1, false), f('colour_green', 1, false), f('colour_blue', 1, false)] }],
  [136, { name: 'GPS', fields: [f('latitude', 3, true, 10000), f('longitude', 3, true, 10000), f('altitude_m', 3, true, 100)] }],
  [142, { name: 'switch', fields: [f('state', 1, false)] }],
])

/** Longest payload accepted: a LoRaWAN FRMPayload is at most 242 bytes; 255 leaves room for any region. */
export const MAX_LPP_BYTES = 255

function readInt(b: Uint8Array, o: number, n: number, signed: boolean): number {
  let v = 0
  for (let i = 0; i < n; i++) v = v * 256 + (b[o + i] ?? 0)
  if (signed && v >= 2 ** (8 * n - 1)) v -= 2 ** (8 * n)
  return v
}

/** Decode a Cayenne LPP payload into metrics. Never throws. */
export function decodeCayenneLpp(bytes: Uint8Array): DecodeResult {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) return reject('truncated', 'empty payload')
  if (bytes.length > MAX_LPP_BYTES) return reject('out-of-range', `payload of ${bytes.length} bytes exceeds ${MAX_LPP_BYTES}`)
  const metrics: Metric[] = []
  const seen = new Set<string>()
  let deviceTimeMs: number | undefined
  let objects = 0
  let o = 0
  while (o < bytes.length) {
    if (o + 2 > bytes.length) return reject('truncated', `object header at byte ${o} is cut off`)
    const channel = bytes[o] ?? 0
    const type = bytes[o + 1] ?? 0
    const t = LPP_TYPES.get(type)
    if (!t) return reject('unsupported', `unknown Cayenne LPP type ${type} on channel ${channel} at byte ${o}`)
    const size = t.fields.reduce((s, x) => s + x.bytes, 0)
    if (o + 2 + size > bytes.length) return reject('truncated', `${t.name} on channel ${channel} needs ${size} bytes, ${bytes.length - o - 2} left`)
    let p = o + 2
    for (const field of t.fields) {
      const raw = readInt(bytes, p, field.bytes, field.signed)
      p += field.bytes
      const value = (raw / field.divisor) * (field.multiplier ?? 1)
      const name = `${field.metric}_ch${channel}`
      if (seen.has(name)) return reject('malformed', `${name} appears twice`)
      seen.add(name)
      metrics.push({ name, unit: METRICS[field.metric].unit, value })
      if (type === 133 && deviceTimeMs === undefined) deviceTimeMs = raw * 1000
    }
    objects++
    o = p
  }
  return { ok: true, metrics, meta: { objects }, ...(deviceTimeMs !== undefined ? { deviceTimeMs } : {}) }
}

export const cayenneLpp: Decoder = {
  id: 'cayenne-lpp',
  description: 'Cayenne Low Power Payload (myDevices LPP v1 and the ElectronicCats extended types) in LoRaWAN FRMPayloads',
  match: { transport: 'lorawan' },
  input: 'bytes',
  decode(frame: RawFrame): DecodeResult {
    return decodeCayenneLpp(frame.bytes)
  },
}
