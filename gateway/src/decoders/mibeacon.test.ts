// MiBeacon decoder behaviour beyond the shared vectors: frame control flags,
// skipped objects, object lengths, encrypted counters and tampering.

import t from 'tap'
import type { DecodeOptions, DecodeResult } from '../core/decoder.ts'
import { decodeMiBeacon } from './mibeacon.ts'

const decode = (hex: string, options?: DecodeOptions, mac?: string): DecodeResult =>
  decodeMiBeacon({ transport: 'ble', serviceDataUuid: 'fe95', bytes: Uint8Array.from(Buffer.from(hex, 'hex')), ...(mac ? { mac } : {}) }, options)
const okOf = (r: DecodeResult) => {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.reason}`)
  return r
}
const code = (r: DecodeResult) => (r.ok ? 'ok' : r.code)
// xiaomi-ble test_Xiaomi_CGDK2: encrypted v5, extended counter 02 00 00, frame counter 7
const CGDK2 = '58586f0607892012342d585f176dd54f0200002fa453fa'
const CGDK2_KEY = 'a3bfe9853dd85a620debe3620caaa351'

t.test('frame control flags', async (t) => {
  t.equal(code(decode('d020aa01da0d1004fe004802')), 'unsupported', 'mesh bit 7')
  t.equal(code(decode('5010aa01da0d1004fe004802')), 'unsupported', 'version 1')
  t.equal(code(decode('1020aa01da219335342d58')), 'unsupported', 'no object flag')
  // capability byte 0x20 announces an I/O capability byte before the objects
  const io = okOf(decode('6020aa01da20ff0d1004fe004802'))
  t.equal(io.metrics.length, 2)
  t.equal(io.meta?.['capability'], 0x20)
  t.equal(code(decode('6020aa01da20')), 'truncated', 'I/O capability byte missing')
})

t.test('objects: skipped unknowns, lengths, repeats', async (t) => {
  const mixed = okOf(decode('4020aa01da0110030000000d1004fe004802'))
  t.equal(mixed.meta?.['skippedObjects'], '0x1001', 'unknown object skipped and listed')
  t.equal(mixed.metrics.length, 2)
  t.equal(code(decode('4020aa01da0410030000ff')), 'malformed', 'temperature object with 3 bytes')
  t.equal(code(decode('4020aa01da0d1004fe00')), 'truncated', 'object shorter than its length')
  t.equal(code(decode('4020aa01da0d10')), 'truncated', 'object header cut short')
  const twice = okOf(decode('4020aa01da041002fe00041002f400'))
  t.same(twice.metrics.map((m) => m.name), ['temperature_c', 'temperature_c_2'])
  t.equal(code(decode('4020aa01da')), 'unsupported', 'object flag set but no object')
})

t.test('encrypted v5: counter, MAC source, tampering', async (t) => {
  const r = okOf(decode(CGDK2, { bindkey: CGDK2_KEY }))
  t.equal(r.meta?.['counter'], (2 << 8) | 7, 'extended counter << 8 | frame counter')
  t.equal(r.meta?.['frameCounter'], 7)
  // Without the MAC flag the nonce MAC comes from the frame or the mac option.
  const noMacFlag = '48' + CGDK2.slice(2, 10) + CGDK2.slice(22)
  t.equal(code(decode(noMacFlag, { bindkey: CGDK2_KEY })), 'missing-key', 'no MAC anywhere')
  t.equal(code(decode(noMacFlag, { bindkey: CGDK2_KEY, mac: '58:2D:34:12:20:89' })), 'ok', 'mac option')
  t.equal(code(decode(noMacFlag, { bindkey: CGDK2_KEY }, '58:2D:34:12:20:89')), 'ok', 'frame MAC')
  const b = Buffer.from(CGDK2, 'hex')
  for (let i = 2; i < b.length; i++) {
    if (i >= 5 && i < 11) continue // MAC bytes: covered below
    const c = Buffer.from(b)
    c[i]! ^= 0x01
    t.equal(code(decode(c.toString('hex'), { bindkey: CGDK2_KEY })), 'bad-mic', `byte ${i} changed`)
  }
  const otherMac = Buffer.from(b)
  otherMac[5]! ^= 0x01
  t.equal(code(decode(otherMac.toString('hex'), { bindkey: CGDK2_KEY })), 'bad-mic', 'MAC in the frame changed')
  t.equal(code(decode(CGDK2, { bindkey: 'not-a-key' })), 'missing-key')
  t.equal(code(decode(CGDK2.slice(0, 30), { bindkey: CGDK2_KEY })), 'truncated')
})
