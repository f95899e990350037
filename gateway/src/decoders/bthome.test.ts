// BTHome v2 decoder behaviour beyond the shared vectors (conformance.test.ts):
// object table coverage, timestamps, encryption counters, tampering, repeats.

import { createCipheriv } from 'node:crypto'
import t from 'tap'
import type { DecodeOptions, DecodeResult, RawFrame } from '../core/decoder.ts'
import { BTHOME_OBJECTS, bthomeDecoder, decodeBthome } from './bthome.ts'
import { BTHOME_VECTORS } from './bthome.vectors.ts'

const KEY = '231d39c1d7cc1ab1aee224cd096db932'
const MAC = '54:48:E6:8F:80:A5'
const frame = (hex: string, mac?: string): RawFrame => ({
  transport: 'ble',
  serviceDataUuid: 'fcd2',
  bytes: Uint8Array.from(Buffer.from(hex, 'hex')),
  ...(mac !== undefined ? { mac } : {}),
})
const decode = (hex: string, options?: DecodeOptions, mac?: string): DecodeResult => decodeBthome(frame(hex, mac), options)
const okOf = (r: DecodeResult) => {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.reason}`)
  return r
}
const value = (r: DecodeResult, name: string) => okOf(r).metrics.find((m) => m.name === name)?.value

/** Encrypt a BTHome payload the way a sensor does (bthome.io/encryption). */
function encrypt(info: number, plaintextHex: string, counter: number, macHex: string, keyHex = KEY): string {
  const ctr = Buffer.alloc(4)
  ctr.writeUInt32LE(counter)
  const nonce = Buffer.concat([Buffer.from(macHex.replace(/:/g, ''), 'hex'), Buffer.from([0xd2, 0xfc, info]), ctr])
  const c = createCipheriv('aes-128-ccm', Buffer.from(keyHex, 'hex'), nonce, { authTagLength: 4 })
  const pt = Buffer.from(plaintextHex, 'hex')
  c.setAAD(Buffer.alloc(0), { plaintextLength: pt.length })
  const ct = Buffer.concat([c.update(pt), c.final()])
  return Buffer.concat([Buffer.from([info]), ct, ctr, c.getAuthTag()]).toString('hex')
}

t.test('the object table holds every id of the v2 format table', async (t) => {
  const expected = [
    ...Array.from({ length: 0x30 }, (_, i) => i),
    0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
    ...Array.from({ length: 0x65 - 0x40 }, (_, i) => 0x40 + i),
    0xf0, 0xf1, 0xf2,
  ]
  t.same([...BTHOME_OBJECTS.keys()].sort((a, b) => a - b), expected)
  // Each fixed-size object decodes from an all-zero value of its length.
  for (const [id, def] of BTHOME_OBJECTS) {
    if (def.kind === 'text' || def.kind === 'raw' || def.kind === 'command') continue
    const len = def.kind === 'number' ? def.len : def.kind === 'binary' ? 1 : { 'packet-id': 1, button: 1, dimmer: 2, timestamp: 4, 'device-type': 2, fw4: 4, fw3: 3 }[def.kind]
    const r = decode('40' + id.toString(16).padStart(2, '0') + '00'.repeat(len))
    t.ok(r.ok, `object 0x${id.toString(16)} decodes`)
    t.equal(decode('40' + id.toString(16).padStart(2, '0') + '00'.repeat(len - 1)).ok, false, `object 0x${id.toString(16)} one byte short is rejected`)
  }
})

t.test('most object ids appear in a published vector', async (t) => {
  const seen = new Set<number>()
  for (const v of BTHOME_VECTORS) {
    const r = decodeBthome(frame(v.input, v.frame?.mac), v.options)
    if (!r.ok) continue
    // Walk the plaintext vectors object by object: the first byte after the info byte is an id.
    const b = Buffer.from(v.input, 'hex')
    if ((b[0]! & 1) === 0 && (b[0]! & 2) === 0) seen.add(b[1]!)
  }
  t.ok(seen.size >= 60, `${seen.size} object ids lead a published plaintext vector`)
})

t.test('timestamp object sets deviceTimeMs (bthome-ble test_bthome_timestamp: 2023-05-14T19:41:17Z)', async (t) => {
  const r = okOf(decode('44505d396164'))
  t.equal(r.deviceTimeMs, Date.UTC(2023, 4, 14, 19, 41, 17))
})

t.test('encryption counters are returned for replay checks (bthome-ble counter tests)', async (t) => {
  const cases: [string, number][] = [
    ['41e445f3c9962b332211006c7c4519', 1122867], // test_same_service_data
    ['413e932cc7175f3422110055387 6af'.replace(' ', ''), 1122868], // test_increasing_encryption_counter
    ['41723d3035fb88322211009e7414c0', 1122866], // test_decreasing_encryption_counter
    ['41ba0db07aeef6ffffffff21fd4600', 4294967295], // test_reset_encryption_counter
    ['41de40b50e676600000000d7cb95de', 0], // test_reset_encryption_counter
  ]
  for (const [hex, counter] of cases) {
    const r = okOf(decode(hex, { bindkey: KEY }, MAC))
    t.equal(r.meta?.['counter'], counter, `${hex} counter ${counter}`)
    t.equal(r.meta?.['encrypted'], true)
  }
  // The decoder is pure: the same advertisement decodes the same way twice (the source rejects the replay).
  t.same(decode(cases[0]![0], { bindkey: KEY }, MAC), decode(cases[0]![0], { bindkey: KEY }, MAC))
})

t.test('encrypted Shelly BLU button (bthome-ble test_encrypted_shelly_blu_button_event) passes the MIC check', async (t) => {
  const r = okOf(decode('450aeb84467f85ba010000318878 8c'.replace(' ', ''), { bindkey: '90bffd73cb6b26ef58a7a8eba9232036' }, 'B4:35:22:F5:3D:A4'))
  t.equal(r.meta?.['counter'], 0x1ba)
  t.equal(r.meta?.['triggerBased'], true)
})

t.test('any change to an encrypted advertisement fails the MIC', async (t) => {
  const good = '41e445f3c9962b332211006c7c4519'
  t.ok(decode(good, { bindkey: KEY }, MAC).ok)
  const bytes = Buffer.from(good, 'hex')
  for (let i = 0; i < bytes.length; i++) {
    const b = Buffer.from(bytes)
    b[i]! ^= i === 0 ? 0x04 : 0x01 // index 0: flip the trigger flag, keep version and encryption bits
    const r = decode(b.toString('hex'), { bindkey: KEY }, MAC)
    t.same(r.ok ? 'ok' : r.code, 'bad-mic', `byte ${i} changed`)
  }
  const wrongMac = decode(good, { bindkey: KEY }, '54:48:E6:8F:80:A6')
  t.equal(wrongMac.ok ? 'ok' : wrongMac.code, 'bad-mic', 'another MAC changes the nonce')
})

t.test('the MAC for the nonce comes from the frame, the mac option, or the payload', async (t) => {
  const hex = '41e445f3c9962b332211006c7c4519'
  t.equal(value(decode(hex, { bindkey: KEY, mac: MAC }), 'temperature_c'), 25.06, 'mac option')
  t.equal(value(decode(hex, { bindkey: KEY, mac: '5448e68f80a5' }), 'temperature_c'), 25.06, 'mac option without colons')
  const none = decode(hex, { bindkey: KEY })
  t.equal(none.ok ? 'ok' : none.code, 'missing-key', 'no MAC anywhere')
  const badKey = decode(hex, { bindkey: 'zz1d39c1d7cc1ab1aee224cd096db932' }, MAC)
  t.equal(badKey.ok ? 'ok' : badKey.code, 'missing-key', 'bind key that is not hex')
})

t.test('sensor-side encryption round trip, including a MAC carried in the payload', async (t) => {
  const mac = 'a4:c1:38:8d:18:b2'
  const adv = encrypt(0x41, '000901640245013a01', 77, mac)
  const r = okOf(decode(adv, { bindkey: KEY }, mac))
  t.same(r.metrics, [
    { name: 'battery_pct', unit: '%', value: 100 },
    { name: 'temperature_c', unit: 'Cel', value: 3.25 },
    { name: 'button_event', unit: '1', value: 1 },
  ])
  t.same(r.meta, { encrypted: true, triggerBased: false, counter: 77, packetId: 9, button_event: 'press' })
  // With bit 1 set the MAC follows the info byte, reversed, and is used for the nonce.
  const withMac = encrypt(0x43, '02ca09', 5, mac)
  const reversed = Buffer.from(mac.replace(/:/g, ''), 'hex').reverse().toString('hex')
  const payload = withMac.slice(0, 2) + reversed + withMac.slice(2)
  const r2 = okOf(decode(payload, { bindkey: KEY }))
  t.equal(r2.meta?.['mac'], mac)
  t.equal(value(r2, 'temperature_c'), 25.06)
})

t.test('repeats are numbered in order and capped', async (t) => {
  const r = okOf(decode('40' + '0164'.repeat(3)))
  t.same(r.metrics.map((m) => m.name), ['battery_pct', 'battery_pct_2', 'battery_pct_3'])
  const many = decode('40' + '0164'.repeat(100))
  t.equal(many.ok ? 'ok' : many.code, 'malformed', '100 repeats exceed the _99 naming limit')
  const texts = okOf(decode('40530161530162'))
  t.same([texts.meta?.['text'], texts.meta?.['text_2']], ['a', 'b'])
})

t.test('unknown ids, lengths and commands', async (t) => {
  const r = decode('4002ca0965ff')
  t.ok(!r.ok && r.code === 'unsupported' && r.reason.includes('0x65'), 'the reason names the unknown id')
  const text = decode('44530c48656c6c6f')
  t.equal(text.ok ? 'ok' : text.code, 'truncated', 'text shorter than its length byte')
  const cmd = okOf(decode('403be101ab'))
  t.equal(value(cmd, 'command_event'), 1, 'reserved bits of the length byte are ignored')
  t.same([cmd.meta?.['command_event'], cmd.meta?.['command_event_args']], ['on', 'ab'])
  const noArgs = okOf(decode('403b0002'))
  t.equal(noArgs.meta?.['command_event'], 'toggle')
  t.equal(noArgs.meta?.['command_event_args'], undefined)
  const empty = okOf(decode('40'))
  t.same(empty.metrics, [], 'an advertisement with no objects is a radio witness')
  t.equal(bthomeDecoder.match.serviceDataUuid, 'fcd2')
})
