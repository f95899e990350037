// Radio metadata within RadioMeta's 32 keys, and witness DevAddr filters.
// NetID → DevAddr prefix vectors: LoRaWAN Backend Interfaces TS002 §13 arithmetic,
// checked against published allocations: TTN NetID 0x000013 → 26000000/7,
// Helium NetID 0xC00053 → FC014C00/22, Grenoble Alps University (CampusIoT) NetID
// 0xC0002B → FC00AC00/22 (DevAddr ranges as published by the operators).
import t from 'tap'
import { CANONICAL_LIMITS } from '../../core/canonical.ts'
import { matchesPrefix, netIdPrefix, parsePrefix, radioMeta, type Reception } from './radio.ts'

t.test('NetID prefixes', async (t) => {
  t.same(netIdPrefix(0x000013), { prefix: 0x26000000, bits: 7 })
  t.same(netIdPrefix(0x00003c), { prefix: 0x78000000, bits: 7 })
  t.same(netIdPrefix(0xc00053), { prefix: 0xfc014c00, bits: 22 })
  t.same(netIdPrefix(0xc0002b), { prefix: 0xfc00ac00, bits: 22 })
  t.same(netIdPrefix(0x600020), { prefix: 0xe0400000, bits: 15 }, 'type 3: 1110 + 11-bit NwkID')
  t.ok(matchesPrefix(0x26012345, netIdPrefix(0x13) ?? { prefix: 0, bits: 32 }))
  t.notOk(matchesPrefix(0x28012345, netIdPrefix(0x13) ?? { prefix: 0, bits: 32 }))
  t.same(parsePrefix('48000000/7'), { prefix: 0x48000000, bits: 7 })
  t.equal(parsePrefix('48000000/33'), undefined)
  t.ok(matchesPrefix(0x01020304, { prefix: 0, bits: 0 }))
})

t.test('radio metadata never exceeds 32 keys; receptions beyond room are counted', async (t) => {
  const rx = (i: number): Reception => ({
    gatewayEui: `aa555a00000000${i.toString(16).padStart(2, '0')}`,
    monoNs: 0n,
    rxpk: { tmst: i, freqHz: 868_100_000, stat: 1, modu: 'LORA', datr: 'SF7BW125', codr: '4/5', rssi: -100 + i, lsnr: i / 2, size: 0, data: new Uint8Array(0), chan: 0, rfch: 0, time: '2025-01-01T00:00:00.000000Z' },
  })
  const frame = { trust: 'session', dev_addr: '26000001', fcnt: 1, mtype: 'unconfirmed-data-up', fport: 1, fctrl: 0, mic: '00000000' }
  const few = radioMeta(frame, [rx(1), rx(3), rx(2)], { data_x: 1 })
  t.equal(few['gateway_eui'], 'aa555a0000000003', 'best SNR first')
  t.equal(few['rx_count'], 3)
  t.match(String(few['rx1']), /^gw=aa555a0000000002 rssi=-98 lsnr=1 tmst=2 chan=0 rfch=0 time=/)
  t.equal(few['data_x'], 1)
  const many = radioMeta(frame, Array.from({ length: 16 }, (_, i) => rx(i)), { data_x: 1 })
  t.equal(Object.keys(many).length, CANONICAL_LIMITS.radioKeys)
  t.equal(many['rx_count'], 16)
  const shown = Object.keys(many).filter((k) => /^rx\d+$/.test(k)).length
  t.equal(Number(many['rx_omitted']) + shown, 15, 'every further reception is shown or counted')
})
