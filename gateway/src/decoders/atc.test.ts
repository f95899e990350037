// ATC1441 / pvvx decoder behaviour beyond the shared vectors: signed
// temperatures, flag bits, where the MAC comes from, layout selection.

import { createCipheriv } from 'node:crypto'
import t from 'tap'
import type { DecodeOptions, DecodeResult } from '../core/decoder.ts'
import { decodeAtc } from './atc.ts'

const decode = (hex: string, options?: DecodeOptions, mac?: string): DecodeResult =>
  decodeAtc({ transport: 'ble', serviceDataUuid: '181a', bytes: Uint8Array.from(Buffer.from(hex, 'hex')), ...(mac ? { mac } : {}) }, options)
const okOf = (r: DecodeResult) => {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.reason}`)
  return r
}
const code = (r: DecodeResult) => (r.ok ? 'ok' : r.code)
const metric = (r: DecodeResult, name: string) => okOf(r).metrics.find((m) => m.name === name)?.value
const ENC = '11d603fbfa7b6dfb1e26fd' // ble_monitor test_atc_custom_encrypted
const KEY = 'b9ea895fac7eea6d30532432a516f3a3'

t.test('negative temperatures', async (t) => {
  // atc1441: int16 big endian x 0.1 -> 0xFF9C = -100 -> -10.0 degC
  t.equal(metric(decode('a4c1380283f4ff9c2f5f0bf819'), 'temperature_c'), -10)
  // pvvx: int16 little endian x 0.01 -> 0xFC18 = -1000 -> -10.00 degC
  t.equal(metric(decode('f4830238c1a418fc6911b60b58f70d'), 'temperature_c'), -10)
})

t.test('pvvx flag bits', async (t) => {
  const r = okOf(decode('f4830238c1a4a9066911b60b58f71a'))
  t.same(
    [r.meta?.['flags'], r.meta?.['reedSwitch'], r.meta?.['gpioTrgOutput'], r.meta?.['triggerControlled'], r.meta?.['temperatureTrigger'], r.meta?.['humidityTrigger']],
    [0x1a, false, true, false, true, true],
  )
})

t.test('encrypted pvvx: MAC from the frame or the mac option, tampering fails', async (t) => {
  t.equal(metric(decode(ENC, { bindkey: KEY, mac: 'a4c1388d18b2' }), 'temperature_c'), 23.45, 'mac option')
  t.equal(code(decode(ENC, { bindkey: KEY })), 'missing-key', 'no MAC')
  t.equal(code(decode(ENC, { bindkey: 'b9ea' }, 'A4:C1:38:8D:18:B2')), 'missing-key', 'short key')
  t.equal(code(decode(ENC, { bindkey: KEY }, 'A4:C1:38:8D:18:B3')), 'bad-mic', 'other MAC')
  const b = Buffer.from(ENC, 'hex')
  for (let i = 0; i < b.length; i++) {
    const c = Buffer.from(b)
    c[i]! ^= 0x80
    t.equal(code(decode(c.toString('hex'), { bindkey: KEY }, 'A4:C1:38:8D:18:B2')), 'bad-mic', `byte ${i} changed`)
  }
})

t.test('encrypted pvvx round trip with the documented nonce and associated data', async (t) => {
  const mac = Buffer.from('a4c1388d18b2', 'hex')
  const counter = 0x42
  const nonce = Buffer.concat([Buffer.from(mac).reverse(), Buffer.from([0x0e, 0x16, 0x1a, 0x18, counter])])
  const c = createCipheriv('aes-128-ccm', Buffer.from(KEY, 'hex'), nonce, { authTagLength: 4 })
  const pt = Buffer.from('f6ff1027640a', 'hex') // -0.10 degC, 100.00 %, 100 %, flags 0x0a
  c.setAAD(Buffer.from([0x11]), { plaintextLength: pt.length })
  const adv = Buffer.concat([Buffer.from([counter]), c.update(pt), c.final(), c.getAuthTag()]).toString('hex')
  const r = okOf(decode(adv, { bindkey: KEY }, 'a4:c1:38:8d:18:b2'))
  t.same(r.metrics, [
    { name: 'temperature_c', unit: 'Cel', value: -0.1 },
    { name: 'humidity_pct', unit: '%', value: 100 },
    { name: 'battery_pct', unit: '%', value: 100 },
  ])
  t.equal(r.meta?.['counter'], counter)
  t.equal(r.meta?.['flags'], 0x0a)
})

t.test('layout by length', async (t) => {
  t.equal(code(decode('')), 'truncated')
  t.equal(code(decode('00'.repeat(8))), 'unsupported', 'atc1441 encrypted')
  t.equal(code(decode('00'.repeat(14))), 'truncated')
  t.equal(code(decode('00'.repeat(16))), 'malformed')
  t.equal(okOf(decode('00'.repeat(13))).meta?.['format'], 'atc1441')
  t.equal(okOf(decode('00'.repeat(15))).meta?.['format'], 'pvvx')
})
