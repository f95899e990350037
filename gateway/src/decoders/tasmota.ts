// Tasmota telemetry over MQTT (https://tasmota.github.io/docs/MQTT/,
// "tele/%topic%/SENSOR" and "tele/%topic%/STATE"; sensor JSON as in the
// per-sensor pages, e.g. https://tasmota.github.io/docs/AM2301, and the
// ENERGY object of https://tasmota.github.io/docs/Power-Monitoring/).
//
// SENSOR: one object per sensor (AM2301, BME280, DS18B20-1, ENERGY, ...) with
// Temperature (unit from "TempUnit", C or F), Humidity, DewPoint, Pressure
// (unit from "PressureUnit": hPa, mmHg, inHg), Illuminance, CarbonDioxide /
// eCO2, TVOC, PM1/PM2.5/PM10, and for ENERGY: Total (kWh), Power, ApparentPower,
// ReactivePower, Factor, Voltage, Current, Frequency (arrays per phase).
// STATE: POWER / POWER<n> ("ON"/"OFF") and Wifi.Signal (dBm).
// Other telemetry topics (LWT, INFO, RESULT) are not readings: not-matched.

import { reject, type Decoder, type DecodeResult, strictUtf8 } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

const SENSOR_FIELDS: Readonly<Record<string, { name: string; unit: string }>> = {
  Temperature: { name: 'temperature_c', unit: 'Cel' },
  DewPoint: { name: 'dewpoint_c', unit: 'Cel' },
  Humidity: { name: 'humidity_pct', unit: '%' },
  Pressure: { name: 'pressure_hpa', unit: 'hPa' },
  Illuminance: { name: 'illuminance_lx', unit: 'lx' },
  CarbonDioxide: { name: 'co2_ppm', unit: 'ppm' },
  eCO2: { name: 'co2_ppm', unit: 'ppm' },
  TVOC: { name: 'tvoc_ppb', unit: 'ppb' },
  PM1: { name: 'pm1_0_ugm3', unit: 'ug/m3' },
  'PM2.5': { name: 'pm2_5_ugm3', unit: 'ug/m3' },
  PM10: { name: 'pm10_ugm3', unit: 'ug/m3' },
  Total: { name: 'energy_kwh', unit: 'kWh' },
  Power: { name: 'power_w', unit: 'W' },
  ApparentPower: { name: 'apparent_power_va', unit: 'VA' },
  ReactivePower: { name: 'reactive_power_var', unit: 'var' },
  Factor: { name: 'power_factor', unit: '1' },
  Voltage: { name: 'voltage_v', unit: 'V' },
  Current: { name: 'current_a', unit: 'A' },
  Frequency: { name: 'frequency_hz', unit: 'Hz' },
}
// Maps, not object lookups: a key from the payload such as "__proto__" or
// "constructor" must find nothing.
const FIELDS: ReadonlyMap<string, { name: string; unit: string }> = new Map(Object.entries(SENSOR_FIELDS))
const PRESSURE_TO_HPA: ReadonlyMap<string, number> = new Map([['hPa', 1], ['mmHg', 1.333224], ['inHg', 33.863886]])
const MAX_METRICS = 64

class Metrics {
  readonly list: Metric[] = []
  add(name: string, unit: string, value: number): void {
    if (!Number.isFinite(value) || this.list.length >= MAX_METRICS) return
    let n = name
    for (let i = 2; this.#has(n); i++) n = `${name}_${i}`
    if (nameOk(n)) this.list.push({ name: n, unit, value })
  }

  #has(name: string): boolean {
    for (const m of this.list) if (m.name === name) return true
    return false
  }
}
const NAME_OK = new Map<string, boolean>()
// Names are SENSOR_FIELDS' with a repeat suffix (_2 … _64): a small, fixed set, checked once each.
const nameOk = (n: string): boolean => {
  let ok = NAME_OK.get(n)
  if (ok === undefined) NAME_OK.set(n, (ok = /^[a-z][a-z0-9_]{0,63}$/.test(n) && !/_(\d{3,})$/.test(n)))
  return ok
}

function parse(bytes: Uint8Array): Record<string, unknown> | string {
  if (bytes.length > 16_384) return 'payload larger than 16 KiB'
  try {
    const j = JSON.parse(strictUtf8.decode(bytes)) as unknown
    return isObj(j) ? j : 'payload is not a JSON object'
  } catch (e) {
    return `not JSON: ${e instanceof Error ? e.message.slice(0, 80) : ''}`
  }
}

function sensor(j: Record<string, unknown>): DecodeResult {
  const tempF = j['TempUnit'] === 'F'
  const pressureUnit = j['PressureUnit']
  const pScale = typeof pressureUnit === 'string' ? PRESSURE_TO_HPA.get(pressureUnit) : 1
  const out = new Metrics()
  const sensors: string[] = []
  // for…in over a JSON.parse result: its own keys, in Object.entries' order.
  for (const key in j) {
    const block = j[key]
    if (!isObj(block)) continue
    sensors.push(key)
    for (const field in block) {
      const f = FIELDS.get(field)
      if (f === undefined) continue
      const raw = block[field]
      if (Array.isArray(raw)) for (const v of raw) addValue(out, f, v, tempF, pScale)
      else addValue(out, f, raw, tempF, pScale)
    }
  }
  if (sensors.length === 0) return reject('not-matched', 'SENSOR payload holds no sensor object')
  return { ok: true, metrics: out.list, meta: { sensors: sensors.join(',').slice(0, 200) } }
}

function addValue(out: Metrics, f: { name: string; unit: string }, v: unknown, tempF: boolean, pScale: number | undefined): void {
  if (typeof v !== 'number') return
  let value = v
  if (f.name === 'temperature_c' || f.name === 'dewpoint_c') value = tempF ? ((v - 32) * 5) / 9 : v
  if (f.name === 'pressure_hpa') {
    if (pScale === undefined) return
    value = v * pScale
  }
  out.add(f.name, f.unit, value)
}

function state(j: Record<string, unknown>): DecodeResult {
  const out = new Metrics()
  const powers = Object.keys(j).filter((k) => /^POWER\d{0,2}$/.test(k)).sort((a, b) => Number(a.slice(5) || '1') - Number(b.slice(5) || '1'))
  for (const k of powers) {
    const v = j[k]
    if (v === 'ON' || v === 'OFF') out.add('power_on', '1', v === 'ON' ? 1 : 0)
  }
  const wifi = j['Wifi']
  if (isObj(wifi) && typeof wifi['Signal'] === 'number') out.add('rssi_dbm', 'dBm', wifi['Signal'])
  return { ok: true, metrics: out.list }
}

export const tasmotaDecoder: Decoder = {
  id: 'tasmota',
  description: 'Tasmota telemetry: tele/<topic>/SENSOR (sensors, ENERGY) and tele/<topic>/STATE (relays, WiFi signal)',
  match: { transport: 'mqtt', topic: 'tele/#' },
  input: 'json',
  decode(frame) {
    // tele/<topic>/SENSOR or tele/<topic>/STATE, read without splitting the topic (once per message).
    const topic = frame.topic ?? ''
    const kind = topic.endsWith('/SENSOR') ? 'SENSOR' : topic.endsWith('/STATE') ? 'STATE' : undefined
    if (kind === undefined || !topic.startsWith('tele/') || topic.length - kind.length - 1 <= 4) return reject('not-matched', 'only tele/<topic>/SENSOR and tele/<topic>/STATE carry readings')
    const j = parse(frame.bytes)
    if (typeof j === 'string') return reject('malformed', j)
    return kind === 'SENSOR' ? sensor(j) : state(j)
  },
}
