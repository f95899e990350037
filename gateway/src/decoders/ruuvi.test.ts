// Ruuvi decoder behaviour beyond the shared vectors: the field examples of
// the format 5 and 6 specifications, single not-available fields, lengths.

import t from 'tap'
import type { DecodeResult } from '../core/decoder.ts'
import { decodeRuuvi, ruuviLuminosity, STANDARD_GRAVITY } from './ruuvi.ts'

const VALID5 = '0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F'
const decode = (hex: string): DecodeResult => decodeRuuvi({ transport: 'ble', manufacturerId: 0x0499, bytes: Uint8Array.from(Buffer.from(hex, 'hex')) })
const okOf = (r: DecodeResult) => {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.reason}`)
  return r
}
/** VALID5 with the big-endian uint16 at byte `off` replaced. */
const with16 = (off: number, v: number): string => {
  const b = Buffer.from(VALID5, 'hex')
  b.writeUInt16BE(v, off)
  return b.toString('hex')
}
const metric = (r: DecodeResult, name: string) => okOf(r).metrics.find((m) => m.name === name)?.value

t.test('format 5 field examples from the specification', async (t) => {
  t.equal(metric(decode(with16(1, 0x01c3)), 'temperature_c'), 2.255)
  t.equal(metric(decode(with16(1, 0xfe3d)), 'temperature_c'), -2.255)
  t.equal(metric(decode(with16(1, 0x0000)), 'temperature_c'), 0)
  t.equal(metric(decode(with16(3, 10010)), 'humidity_pct'), 25.025)
  t.equal(metric(decode(with16(3, 40000)), 'humidity_pct'), 100)
  t.equal(metric(decode(with16(5, 51325)), 'pressure_hpa'), 1013.25, '101325 Pa, average sea-level pressure')
  t.equal(metric(decode(with16(7, 0xfc18)), 'acceleration_x_ms2'), -STANDARD_GRAVITY, '-1000 mG')
  t.equal(metric(decode(with16(9, 0x03e8)), 'acceleration_y_ms2'), STANDARD_GRAVITY, '1000 mG')
  const power = decode(with16(13, (1400 << 5) | 22))
  t.equal(metric(power, 'battery_v'), 3.0, 'battery 1400 -> 3000 mV')
  t.equal(metric(power, 'tx_power_dbm'), 4, 'tx 22 -> +4 dBm')
})

t.test('one field not available leaves only that metric out', async (t) => {
  const cases: [number, number, string][] = [
    [1, 0x8000, 'temperature_c'],
    [3, 0xffff, 'humidity_pct'],
    [5, 0xffff, 'pressure_hpa'],
    [7, 0x8000, 'acceleration_x_ms2'],
    [9, 0x8000, 'acceleration_y_ms2'],
    [11, 0x8000, 'acceleration_z_ms2'],
  ]
  for (const [off, v, name] of cases) {
    const r = okOf(decode(with16(off, v)))
    t.equal(r.metrics.length, 7, `${name} missing, 7 left`)
    t.notOk(r.metrics.some((m) => m.name === name), `${name} absent, not zero`)
  }
  const noBattery = okOf(decode(with16(13, (2047 << 5) | 22)))
  t.notOk(noBattery.metrics.some((m) => m.name === 'battery_v'))
  t.equal(metric(noBattery, 'tx_power_dbm'), 4)
  const noTx = okOf(decode(with16(13, (1400 << 5) | 31)))
  t.notOk(noTx.metrics.some((m) => m.name === 'tx_power_dbm'))
  const b = Buffer.from(VALID5, 'hex')
  b[15] = 0xff
  t.equal(okOf(decode(b.toString('hex'))).meta?.['movementCounter'], undefined, 'movement counter 255 is not available')
  t.equal(okOf(decode(with16(16, 0xffff))).meta?.['sequence'], undefined, 'sequence 65535 is not available')
})

t.test('format 6 luminosity examples from the specification', async (t) => {
  t.equal(ruuviLuminosity(0x00), 0)
  t.equal(ruuviLuminosity(0x01), 0.04)
  t.equal(ruuviLuminosity(0x10), 1.01)
  // The specification's table lists 244.06 lux for 0x80, but its own formula (and its
  // valid-data vector, code 0xD9 -> 13026.67) gives 244.06 for code 0x7E and 266.43 for 0x80.
  t.equal(ruuviLuminosity(0x7e), 244.06)
  t.equal(ruuviLuminosity(0x80), 266.43)
  t.equal(ruuviLuminosity(0xd9), 13026.67)
  t.equal(ruuviLuminosity(0xfe), 65535)
})

t.test('format 6 VOC and NOx carry their low bit in the flags byte', async (t) => {
  const b = Buffer.from('06170C5668C79E007000C90501D9FFCD004C884F', 'hex')
  b[16] = 0xc0 // both low bits set, calibration done
  const r = okOf(decode(b.toString('hex')))
  t.equal(metric(r, 'voc_index'), 11)
  t.equal(metric(r, 'nox_index'), 3)
  t.equal(r.meta?.['calibrationInProgress'], false)
})

t.test('lengths and formats', async (t) => {
  const code = (r: DecodeResult) => (r.ok ? 'ok' : r.code)
  t.equal(code(decode('')), 'truncated')
  t.equal(code(decode(VALID5 + '00')), 'malformed', 'format 5 with a trailing byte')
  t.equal(code(decode('06170C5668C79E007000C90501D9FFCD004C88')), 'truncated', 'format 6 cut short')
  t.equal(code(decode('E1' + '00'.repeat(39))), 'unsupported', 'extended format E1')
  const r = decode('08' + '00'.repeat(23))
  t.ok(!r.ok && r.reason.includes('0x08'), 'the reason names the format')
})
