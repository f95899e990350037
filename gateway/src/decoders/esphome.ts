// ESPHome MQTT state topics (https://esphome.io/components/mqtt/: every
// component publishes to <topic_prefix>/<component_type>/<object_id>/state;
// the prefix defaults to the node name). A sensor's state is its value as
// text ("21.5"); a binary_sensor's and a switch's are "ON" / "OFF".
//
// The state message carries no unit (the unit lives in the Home Assistant
// discovery config), so the metric is chosen from the object id by the
// keywords below, in that order; an object id without a known keyword is
// refused as unsupported (the device row can carry a JSON format instead).

import { reject, type Decoder, strictUtf8 } from '../core/decoder.ts'

/** Object id keyword → metric (first match wins; more specific first). */
const SENSOR_KEYWORDS: readonly (readonly [RegExp, string, string])[] = [
  [/dew_?point/, 'dewpoint_c', 'Cel'],
  [/temp/, 'temperature_c', 'Cel'],
  [/humid/, 'humidity_pct', '%'],
  [/moisture/, 'moisture_pct', '%'],
  [/pressure/, 'pressure_hpa', 'hPa'],
  [/illuminance|_lux$|^lux$|light_level/, 'illuminance_lx', 'lx'],
  [/co2/, 'co2_ppm', 'ppm'],
  [/tvoc/, 'tvoc_ppb', 'ppb'],
  [/pm_?2_?5/, 'pm2_5_ugm3', 'ug/m3'],
  [/pm_?10/, 'pm10_ugm3', 'ug/m3'],
  [/pm_?1(_0)?$|pm_?1_0/, 'pm1_0_ugm3', 'ug/m3'],
  [/battery_(voltage|v)$/, 'battery_v', 'V'],
  [/battery/, 'battery_pct', '%'],
  [/wifi_signal|rssi/, 'rssi_dbm', 'dBm'],
  [/power_factor/, 'power_factor', '1'],
  [/apparent_power/, 'apparent_power_va', 'VA'],
  [/power/, 'power_w', 'W'],
  [/voltage/, 'voltage_v', 'V'],
  [/current/, 'current_a', 'A'],
  [/frequency/, 'frequency_hz', 'Hz'],
  [/uptime/, 'duration_s', 's'],
]
const BINARY_KEYWORDS: readonly (readonly [RegExp, string])[] = [
  [/motion|pir/, 'motion_detected'],
  [/occupancy|presence/, 'occupancy_detected'],
  [/door/, 'door_open'],
  [/window/, 'window_open'],
  [/smoke/, 'smoke_detected'],
  [/leak|water|moisture/, 'moisture_detected'],
]

export const esphomeDecoder: Decoder = {
  id: 'esphome',
  description: 'ESPHome MQTT state topics: <prefix>/sensor|binary_sensor|switch/<object_id>/state',
  match: { transport: 'mqtt', topic: '#' },
  input: 'json',
  decode(frame) {
    const levels = (frame.topic ?? '').split('/')
    const n = levels.length
    if (n < 4 || levels[n - 1] !== 'state') return reject('not-matched', 'ESPHome state topics end in /<component_type>/<object_id>/state')
    const type = levels[n - 3] as string
    const objectId = (levels[n - 2] as string).toLowerCase()
    if (frame.bytes.length > 64) return reject('malformed', 'a state payload is a short text')
    let text: string
    try {
      text = strictUtf8.decode(frame.bytes).trim()
    } catch {
      return reject('malformed', 'state payload is not UTF-8')
    }
    const meta = { component: type, objectId: objectId.slice(0, 64) }
    if (type === 'sensor') {
      if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) {
        if (/^(nan|NaN|-?inf)$/i.test(text)) return reject('out-of-range', `sensor ${objectId}: no value (${text})`)
        return reject('malformed', `sensor ${objectId}: state "${text.slice(0, 20)}" is not a number`)
      }
      const k = SENSOR_KEYWORDS.find(([re]) => re.test(objectId))
      if (!k) return reject('unsupported', `sensor ${objectId}: no unit is known for this object id (name it after the quantity, e.g. *_temperature)`)
      const value = Number(text)
      if (!Number.isFinite(value)) return reject('out-of-range', `sensor ${objectId}: ${text.slice(0, 20)} is not a finite number`)
      return { ok: true, metrics: [{ name: k[1], unit: k[2], value }], meta }
    }
    if (type === 'binary_sensor' || type === 'switch') {
      if (text !== 'ON' && text !== 'OFF') return reject('malformed', `${type} ${objectId}: state must be ON or OFF`)
      const name = type === 'switch' ? 'power_on' : (BINARY_KEYWORDS.find(([re]) => re.test(objectId))?.[1] ?? 'state')
      return { ok: true, metrics: [{ name, unit: '1', value: text === 'ON' ? 1 : 0 }], meta }
    }
    return reject('not-matched', `component type ${type.slice(0, 40)} carries no reading`)
  },
}
