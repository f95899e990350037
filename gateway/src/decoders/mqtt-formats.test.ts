// Tasmota, ESPHome and Shelly decoders: every published vector decodes
// exactly (the shared conformance test checks them too, within a float
// tolerance; here values must be equal to the digit), and 10,000 fuzzed
// payloads per topic family are refused or decoded without a throw.

import t from 'tap'
import type { Decoder, DecoderVector } from '../core/decoder.ts'
import { checkMetric } from '../core/units.ts'
import { esphomeDecoder } from './esphome.ts'
import { ESPHOME_VECTORS } from './esphome.vectors.ts'
import { shellyDecoder } from './shelly.ts'
import { SHELLY_VECTORS } from './shelly.vectors.ts'
import { tasmotaDecoder } from './tasmota.ts'
import { TASMOTA_VECTORS } from './tasmota.vectors.ts'
import { rng } from '../../../test/helpers/fuzz.ts'

const SETS: [Decoder, readonly DecoderVector[], string[]][] = [
  [tasmotaDecoder, TASMOTA_VECTORS, ['tele/dev/SENSOR', 'tele/dev/STATE']],
  [esphomeDecoder, ESPHOME_VECTORS, ['node/sensor/room_temperature/state', 'node/binary_sensor/hall_motion/state', 'node/switch/relay/state']],
  [shellyDecoder, SHELLY_VECTORS, ['shelly1/status/switch:0', 'shelly1/status/temperature:0', 'shelly1/events/rpc']],
]

for (const [decoder, vectors] of SETS) {
  t.test(`${decoder.id}: vectors decode exactly`, async (t) => {
    for (const v of vectors) {
      const r = decoder.decode({ transport: 'mqtt', bytes: new TextEncoder().encode(v.input), ...(v.frame?.topic !== undefined ? { topic: v.frame.topic } : {}) })
      if (!v.expect.ok) {
        t.equal(r.ok ? 'ok' : r.code, v.expect.code, v.name)
        continue
      }
      t.ok(r.ok, v.name)
      if (!r.ok) continue
      const got = [...r.metrics].sort((a, b) => a.name.localeCompare(b.name))
      const want = [...v.expect.metrics].sort((a, b) => a.name.localeCompare(b.name))
      t.same(got, want, v.name)
      if (v.expect.meta) t.has(r.meta, v.expect.meta, `${v.name}: meta`)
    }
  })
}

const FRAGMENTS = ['{', '}', '[', ']', '"', ':', ',', 'null', 'true', 'false', '1e309', '-0', 'NaN', '"ON"', '"OFF"', '"Temperature"', '"ENERGY"', '"switch:0"', '"params"', '"NotifyStatus"', '"method"', '"aenergy"', '"total"', '21.5', '"TempUnit"', '"F"', '"PressureUnit"', '"inHg"', '"__proto__"', '"constructor"', '"toString"', '\u0000', '\uffff', ' ']

t.test('10,000 fuzzed payloads per topic family never throw or produce an invalid metric', async (t) => {
  const rand = rng(2024)
  for (const [decoder, vectors, topics] of SETS) {
    for (const topic of topics) {
      let bad = 0
      for (let i = 0; i < 10_000; i++) {
        let text: string
        const mode = i % 3
        if (mode === 0) text = Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256))).toString('latin1')
        else if (mode === 1) text = Array.from({ length: 1 + Math.floor(rand() * 30) }, () => FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)]).join('')
        else {
          const v = vectors[Math.floor(rand() * vectors.length)] as DecoderVector
          const chars = [...v.input]
          for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) chars[Math.floor(rand() * chars.length)] = FRAGMENTS[Math.floor(rand() * FRAGMENTS.length)] as string
          text = chars.join('')
        }
        try {
          const r = decoder.decode({ transport: 'mqtt', topic, bytes: new TextEncoder().encode(text) })
          if (r.ok) {
            for (const m of r.metrics) if (!checkMetric(m.name, m.unit, m.value).ok) bad++
            if (new Set(r.metrics.map((m) => m.name)).size !== r.metrics.length) bad++
          } else if (!r.reason) bad++
        } catch {
          bad++
        }
      }
      t.equal(bad, 0, `${decoder.id} on ${topic}`)
    }
  }
})

t.test('keys that name Object.prototype members are not fields, units or sensors of their own', async (t) => {
  const decode = (topic: string, json: string) => tasmotaDecoder.decode({ transport: 'mqtt', topic, bytes: new TextEncoder().encode(json) })
  const r = decode('tele/dev/SENSOR', '{"AM2301":{"__proto__":1,"constructor":2,"toString":3,"hasOwnProperty":4,"Temperature":21.5},"PressureUnit":"constructor","BMP280":{"Pressure":1000}}')
  t.ok(r.ok)
  if (r.ok) t.same(r.metrics, [{ name: 'temperature_c', unit: 'Cel', value: 21.5 }], 'only the real field; an unknown pressure unit drops the pressure')
})

t.test('Tasmota reads a topic as tele/<topic>/SENSOR or tele/<topic>/STATE, the same as splitting it into levels', async (t) => {
  const rand = rng(7)
  const parts = ['tele', 'stat', 'SENSOR', 'STATE', 'RESULT', 'LWT', 'plug1', '', 'SENSORS', 'xSTATE', 'tele/']
  const byLevels = (topic: string) => {
    const levels = topic.split('/')
    const kind = levels[levels.length - 1]
    return levels[0] === 'tele' && levels.length >= 3 && (kind === 'SENSOR' || kind === 'STATE')
  }
  const fixed = ['tele/SENSOR', 'tele//SENSOR', 'tele/a/STATE', 'tele/a/b/SENSOR', 'telex/a/SENSOR', 'tele/a/SENSOR/', '/tele/a/SENSOR', 'tele/STATE', 'tele/a/sensor']
  const topics = [...fixed, ...Array.from({ length: 3000 }, () => Array.from({ length: 1 + Math.floor(rand() * 4) }, () => parts[Math.floor(rand() * parts.length)]).join('/'))]
  let differ = 0
  for (const topic of topics) {
    const r = tasmotaDecoder.decode({ transport: 'mqtt', topic, bytes: new TextEncoder().encode('{"AM2301":{"Temperature":1}}') })
    const matched = r.ok || r.code !== 'not-matched'
    if (matched !== byLevels(topic)) differ++
  }
  t.equal(differ, 0)
})
