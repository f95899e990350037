// ESPHome state messages. Topic layout from https://esphome.io/components/mqtt/
// ("<TOPIC_PREFIX>/<COMPONENT_TYPE>/<COMPONENT_NAME>/state"); object ids as
// ESPHome derives them from the names in its component docs (e.g. the
// "Living Room Temperature" of https://esphome.io/components/sensor/am2315c).

import type { DecoderVector } from '../core/decoder.ts'

const SRC = 'https://esphome.io/components/mqtt/ (state topic <topic_prefix>/<component_type>/<object_id>/state)'

export const ESPHOME_VECTORS: readonly DecoderVector[] = [
  {
    name: 'sensor temperature',
    source: `${SRC}; sensor "Living Room Temperature" of https://esphome.io/components/sensor/am2315c`,
    input: '21.5',
    frame: { topic: 'livingroom/sensor/living_room_temperature/state' },
    expect: { ok: true, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 21.5 }], meta: { component: 'sensor', objectId: 'living_room_temperature' } },
  },
  {
    name: 'sensor humidity',
    source: `${SRC}; sensor "Living Room Humidity" of https://esphome.io/components/sensor/am2315c`,
    input: '45.3',
    frame: { topic: 'livingroom/sensor/living_room_humidity/state' },
    expect: { ok: true, metrics: [{ name: 'humidity_pct', unit: '%', value: 45.3 }] },
  },
  {
    name: 'wifi signal sensor',
    source: `${SRC}; https://esphome.io/components/sensor/wifi_signal (dBm)`,
    input: '-61',
    frame: { topic: 'home/esp1/sensor/wifi_signal/state' },
    expect: { ok: true, metrics: [{ name: 'rssi_dbm', unit: 'dBm', value: -61 }] },
  },
  {
    name: 'binary sensor motion',
    source: `${SRC}; binary_sensor states are ON/OFF`,
    input: 'ON',
    frame: { topic: 'hall/binary_sensor/hall_motion/state' },
    expect: { ok: true, metrics: [{ name: 'motion_detected', unit: '1', value: 1 }] },
  },
  {
    name: 'sensor without a value',
    source: `${SRC}; ESPHome publishes "nan" for a sensor with no state`,
    input: 'nan',
    frame: { topic: 'livingroom/sensor/living_room_temperature/state' },
    expect: { ok: false, code: 'out-of-range' },
  },
  {
    name: 'availability topic is not a reading',
    source: `${SRC} (birth/will messages on <topic_prefix>/status)`,
    input: 'online',
    frame: { topic: 'livingroom/status' },
    expect: { ok: false, code: 'not-matched' },
  },
]
