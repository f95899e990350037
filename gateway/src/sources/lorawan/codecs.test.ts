// Payload codecs: field mapping (FIELD_ALIASES, per-device maps, unmapped
// fields kept) and the isolated JavaScript runner (no host objects, time and
// memory limits, a killed worker is replaced, a repeatedly killed codec is
// disabled for a cool-down).
import t from 'tap'
import { CodecRunner, decodePayload, mapFields, snakeCase } from './codecs.ts'

const input = { bytes: new Uint8Array([0x01, 0x02]), fPort: 3, recvTimeMs: Date.UTC(2025, 0, 2, 3, 4, 5) }

t.test('field names and mapping', async (t) => {
  t.equal(snakeCase('batteryVoltage'), 'battery_voltage')
  t.equal(snakeCase('BatV'), 'bat_v')
  t.equal(snakeCase('PM2.5'), 'pm2_5')
  const m = mapFields({ temperature: 21.5, humidity: 40, co2: 600, BatV: 3.1, status: 'ok', door: true, nested: { pm10: 12 }, temperature_c: 99, weird: 1, list: [1, 2] })
  t.same(
    m.metrics,
    [
      { name: 'temperature_c', unit: 'Cel', value: 21.5 },
      { name: 'humidity_pct', unit: '%', value: 40 },
      { name: 'co2_ppm', unit: 'ppm', value: 600 },
      { name: 'battery_v', unit: 'V', value: 3.1 },
      { name: 'door_open', unit: '1', value: 1 },
    ],
  )
  t.same(m.meta, { data_status: 'ok', data_nested_pm10: 12, data_temperature_c: 99, data_weird: 1, data_list_0: 1, data_list_1: 2 }, 'nested, duplicate and unknown fields kept as meta')
  t.equal(m.unmapped, 6)
  const custom = mapFields({ level: 120, t2: 4.5, bad: 1 }, { level: { name: 'volume_storage_l' }, t2: { name: 'soil_temp_c', unit: 'Cel' }, bad: { name: 'x_y', unit: 'furlong' } })
  t.same(custom.metrics, [{ name: 'volume_storage_l', unit: 'L', value: 120 }, { name: 'soil_temp_c', unit: 'Cel', value: 4.5 }])
  t.same(custom.meta, { data_bad: 1 }, 'a mapping with an unknown unit is not a metric')
})

t.test('JavaScript codecs run isolated, within limits', async (t) => {
  const r = new CodecRunner({ timeoutMs: 60, memoryMb: 32, maxStrikes: 2, cooldownMs: 60_000 })
  t.teardown(() => r.close())
  const run = (src: string) => decodePayload({ id: 'js', source: src }, r, input)
  const ok = await run('function decodeUplink(i) { return { data: { temperature: i.bytes[0] + i.bytes[1] / 10, port: i.fPort, year: i.recvTime.getUTCFullYear() }, warnings: ["w"] } }')
  t.equal(ok.status, 'ok')
  t.same(ok.metrics, [{ name: 'temperature_c', unit: 'Cel', value: 1.2 }])
  t.same(ok.meta, { data_port: 3, data_year: 2025 })
  t.same(ok.warnings, ['w'])
  const legacy = await run('function Decoder(bytes, port) { return { humidity: bytes[1] * 10 } }')
  t.same(legacy.metrics, [{ name: 'humidity_pct', unit: '%', value: 20 }], 'the older Decoder(bytes, port) form')
  const errs = await run('function decodeUplink() { return { errors: ["bad frame"] } }')
  t.equal(errs.status, 'error')
  t.match(errs.reason, /bad frame/)
  const host = await run('function decodeUplink() { return { data: { p: typeof process, r: typeof require, s: typeof setTimeout, f: typeof fetch, b: typeof Buffer, w: typeof WebAssembly, sab: typeof SharedArrayBuffer } } }')
  t.same(host.meta, { data_p: 'undefined', data_r: 'undefined', data_s: 'undefined', data_f: 'undefined', data_b: 'undefined', data_w: 'undefined', data_sab: 'undefined' }, 'no host objects in the context')
  for (const src of [
    'function decodeUplink() { return { data: { x: this.constructor.constructor("return process")() } } }',
    'function decodeUplink(i) { return { data: { x: i.constructor.constructor("return process")() } } }',
    'function decodeUplink() { return { data: { x: eval("1") } } }',
  ]) {
    const e = await run(src)
    t.equal(e.status, 'error', `escape refused: ${src.slice(28, 80)}`)
    t.match(e.reason, /Code generation from strings disallowed/)
  }
  const big = await run('function decodeUplink() { return { data: { n: new Uint8Array(64 * 1024 * 1024).length } } }')
  t.match(big.reason, /buffer larger than the codec limit/, 'large buffers outside the heap limit are refused')
  const t0 = performance.now()
  const loop = await run('function decodeUplink() { for (;;) {} }')
  t.equal(loop.status, 'timeout')
  t.ok(performance.now() - t0 < 1000, 'an infinite loop ends at the time limit')
  const hog = await run('function decodeUplink() { var a = []; for (;;) a.push(new Array(1e5).fill(1)) }')
  t.ok(hog.status === 'oom' || hog.status === 'timeout', `a huge allocation is stopped (${hog.status})`)
  const after = await run('function decodeUplink() { return { data: { co2: 500 } } }')
  t.same(after.metrics, [{ name: 'co2_ppm', unit: 'ppm', value: 500 }], 'a new worker serves the next call')
  await run('function decodeUplink() { for (;;) {} }')
  const disabled = await run('function decodeUplink() { for (;;) {} }')
  t.equal(disabled.status, 'disabled', `a codec killed twice in a row is disabled for a cool-down (${disabled.status}: ${disabled.reason ?? ''}; stats ${JSON.stringify(r.stats)})`)
  t.ok(r.stats.timeouts >= 2, 'timeouts counted')
  // A huge allocation either hits the time limit inside the sandbox or kills its process; each kill starts a new one.
  t.equal(r.stats.workersStarted, 1 + r.stats.kills, 'a fresh codec process after every kill')
})

t.test('cayenne-lpp and raw codecs', async (t) => {
  const lpp = await decodePayload({ id: 'cayenne-lpp' }, undefined, { ...input, bytes: new Uint8Array([0x03, 0x67, 0x01, 0x10]) })
  t.same(lpp.metrics, [{ name: 'temperature_c_ch3', unit: 'Cel', value: 27.2 }])
  const bad = await decodePayload({ id: 'cayenne-lpp' }, undefined, { ...input, bytes: new Uint8Array([0x03, 0x67, 0x01]) })
  t.equal(bad.status, 'error')
  const raw = await decodePayload({ id: 'raw' }, undefined, input)
  t.equal(raw.status, 'none')
  t.same(raw.metrics, [])
})
