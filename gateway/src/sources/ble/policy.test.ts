import t from 'tap'
import { decodersFor } from '../../decoders/index.ts'
import type { AdvertFrame } from './advert.ts'
import { framesFromProps, macFromPath, shortUuid } from './advert.ts'
import { NearbyTable } from './nearby.ts'
import { BlePolicy, type PolicyOptions, type RegisteredBle } from './policy.ts'

const specific = (f: AdvertFrame) => decodersFor(f).filter((d) => d.match.serviceDataUuid !== undefined || d.match.manufacturerId !== undefined)
const policy = (o: Partial<PolicyOptions> = {}) =>
  new BlePolicy({ acceptAll: new Set(), minIntervalMs: 0, repeatWindowMs: 30_000, maxTracked: 16, decodersFor: specific, ...o })
const bthome = (mac: string, hex: string): AdvertFrame[] => [{ transport: 'ble', mac, serviceDataUuid: 'fcd2', bytes: Uint8Array.from(Buffer.from(hex, 'hex')) }]
const reg = (mac: string, over: Partial<RegisteredBle> = {}): RegisteredBle => ({ id: `ble:${mac.replace(/:/g, '')}`, mac, name: null, state: {}, ...over })

t.test('advertisement data from BlueZ properties', async (t) => {
  t.equal(shortUuid('0000FCD2-0000-1000-8000-00805f9b34fb'), 'fcd2')
  t.equal(shortUuid('6e400001-b5a3-f393-e0a9-e50e24dcca9e'), '6e400001-b5a3-f393-e0a9-e50e24dcca9e')
  t.equal(macFromPath('/org/bluez/hci0/dev_A4_C1_38_00_00_01'), 'a4:c1:38:00:00:01')
  t.equal(macFromPath('/org/bluez/hci0'), undefined)
  const frames = framesFromProps('a4:c1:38:00:00:01', { ServiceData: { '0000181a-0000-1000-8000-00805f9b34fb': Buffer.from([1, 2]) }, ManufacturerData: { 1177: Buffer.from([5]), x: Buffer.from([1]) } })
  t.same(frames.map((f) => [f.serviceDataUuid, f.manufacturerId, [...f.bytes]]), [['181a', undefined, [1, 2]], [undefined, 1177, [5]]])
})

t.test('rate control: minimum interval, per-device override, events pass', async (t) => {
  const p = policy({ minIntervalMs: 10_000 })
  p.setRegistered([reg('a4:c1:38:00:00:01'), reg('a4:c1:38:00:00:02', { minIntervalMs: 0 })])
  const mac = 'a4:c1:38:00:00:01'
  t.equal(p.decide(mac, bthome(mac, '40000102c409'), 0).kind, 'reading')
  t.match(p.decide(mac, bthome(mac, '40000202c509'), 5000), { kind: 'drop', result: 'rate_limited' })
  t.match(p.decide(mac, bthome(mac, '40000202c509'), 6000), { kind: 'drop', result: 'duplicate' }, 'a rate-limited packet id repeated is a duplicate')
  t.equal(p.decide(mac, bthome(mac, '40000302c609'), 10_001).kind, 'reading')
  // A button press (trigger based, 0x44 = v2 + trigger) is never held back.
  t.equal(p.decide(mac, bthome(mac, '4400043a01'), 10_002).kind, 'reading')
  const m2 = 'a4:c1:38:00:00:02'
  t.equal(p.decide(m2, bthome(m2, '40000102c409'), 0).kind, 'reading')
  t.equal(p.decide(m2, bthome(m2, '40000202c409'), 1).kind, 'reading', 'per-device override of 0')
})

t.test('identical data without an id: one measurement within the repeat window', async (t) => {
  const p = policy({ repeatWindowMs: 1000 })
  p.setRegistered([reg('a4:c1:38:00:00:01')])
  const mac = 'a4:c1:38:00:00:01'
  t.equal(p.decide(mac, bthome(mac, '4002c409'), 0).kind, 'reading')
  t.match(p.decide(mac, bthome(mac, '4002c409'), 500), { result: 'duplicate' })
  t.equal(p.decide(mac, bthome(mac, '4002c409'), 1500).kind, 'reading')
})

t.test('owner control: unregistered and undecodable advertisers', async (t) => {
  const p = policy({ acceptAll: new Set(['ruuvi']) })
  const mac = 'aa:bb:cc:dd:ee:ff'
  const d = p.decide(mac, bthome(mac, '40000102c409'), 0)
  t.match(d, { kind: 'drop', result: 'ignored', nearby: { format: 'bthome' } }, 'decodable but not allowed: nearby view only')
  const phone = p.decide(mac, [{ transport: 'ble', mac, manufacturerId: 0x004c, bytes: Uint8Array.of(0x10, 0x05) }], 0)
  t.same(phone, { kind: 'drop', result: 'ignored' }, 'a phone has no decoder: nothing at all')
  t.equal(p.trackedDevices, 0, 'no state kept for either')
})

t.test('8-bit counters (pvvx encrypted) are checked in a window', async (t) => {
  // Drive the window logic through a stand-in decoder that reports an authenticated 8-bit counter.
  const fake = {
    id: 'atc',
    description: 'test',
    input: 'bytes' as const,
    match: { transport: 'ble' as const, serviceDataUuid: '181a' },
    decode: (f: { bytes: Uint8Array }) => ({ ok: true as const, metrics: [], meta: { format: 'pvvx-encrypted', counter: f.bytes[0] as number } }),
  }
  const p = policy({ decodersFor: () => [fake] })
  const mac = 'a4:c1:38:00:00:09'
  p.setRegistered([reg(mac, { bindkey: '00'.repeat(16) })])
  const frame = (c: number, x = 0): AdvertFrame[] => [{ transport: 'ble', mac, serviceDataUuid: '181a', bytes: Uint8Array.of(c, x) }]
  const kinds = [250, 255, 3, 3, 2, 200, 100].map((c, i) => {
    const d = p.decide(mac, frame(c, c === 3 && i === 3 ? 1 : 0), i * 100_000)
    return d.kind === 'reading' ? 'reading' : d.result
  })
  t.same(kinds, ['reading', 'reading', 'reading', 'replay', 'replay', 'replay', 'reading'], 'wrap accepted, behind or reused refused, far ahead (>127 behind) accepted as new')
})

t.test('runtime state of unregistered devices is bounded', async (t) => {
  const p = policy({ acceptAll: new Set(['bthome']), maxTracked: 16 })
  for (let i = 0; i < 1000; i++) {
    const mac = `c0:ff:ee:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`
    p.decide(mac, bthome(mac, '40000102c409'), i)
  }
  t.equal(p.trackedDevices, 16)
})

t.test('nearby view: bounded, expiring, last good values kept', async (t) => {
  const n = new NearbyTable({ max: 3, ttlMs: 1000 })
  const info = (v: number) => ({ format: 'bthome', metrics: [{ name: 'temperature_c', unit: 'Cel', value: v }], encrypted: false, needsKey: false })
  for (let i = 0; i < 5; i++) n.update({ mac: `m${i}`, info: info(i), name: undefined, rssi: -50 - i, nowMs: i * 100, registered: undefined, accepted: false })
  t.same(n.list(450, 0).map((d) => d.mac), ['m2', 'm3', 'm4'], 'oldest evicted; strongest signal first')
  n.update({ mac: 'm4', info: { format: 'bthome', metrics: [], encrypted: true, needsKey: false, error: 'bad-mic: x' }, name: 'x', rssi: undefined, nowMs: 500, registered: undefined, accepted: false })
  t.match(n.list(500, 0).find((d) => d.mac === 'm4'), { metrics: [{ value: 4 }], error: 'bad-mic: x', count: 2 })
  t.same(n.list(1350, 0).map((d) => d.mac), ['m4'], 'entries older than the TTL expire')
})

t.test('authenticated frames say how: BTHome counter, or AES-CCM scheme and counter for MiBeacon and pvvx', async (t) => {
  // Published frames and keys: xiaomi-ble tests/test_parser.py test_Xiaomi_CGDK2 (MiBeacon v5);
  // ble_monitor test/test_atc_parser.py test_atc_custom_encrypted (pvvx); bthome-ble's encrypted
  // example (docs/ble.md "Decoding by hand").
  const p = policy()
  p.setRegistered([
    reg('58:2d:34:12:20:89', { bindkey: 'a3bfe9853dd85a620debe3620caaa351' }),
    reg('a4:c1:38:8d:18:b2', { bindkey: 'b9ea895fac7eea6d30532432a516f3a3' }),
    reg('54:48:e6:8f:80:a5', { bindkey: '231d39c1d7cc1ab1aee224cd096db932' }),
  ])
  const sd = (mac: string, uuid: string, hex: string): AdvertFrame[] => [{ transport: 'ble', mac, serviceDataUuid: uuid, bytes: Uint8Array.from(Buffer.from(hex, 'hex')) }]
  const mi = p.decide('58:2d:34:12:20:89', sd('58:2d:34:12:20:89', 'fe95', '58586f0607892012342d585f176dd54f0200002fa453fa'), 0)
  t.match(mi, { kind: 'reading', format: 'mibeacon', ccm: { scheme: 'mibeacon', counter: 0x0207 } })
  t.notOk('bthomeCounter' in mi)
  const pv = p.decide('a4:c1:38:8d:18:b2', sd('a4:c1:38:8d:18:b2', '181a', '11d603fbfa7b6dfb1e26fd'), 0)
  t.match(pv, { kind: 'reading', format: 'atc', ccm: { scheme: 'pvvx', counter: 17 } })
  const bt = p.decide('54:48:e6:8f:80:a5', sd('54:48:e6:8f:80:a5', 'fcd2', '41a47266c95f730011223378237214'), 0)
  t.match(bt, { kind: 'reading', format: 'bthome' })
  t.ok(bt.kind === 'reading' && typeof bt.bthomeCounter === 'number' && bt.ccm === undefined, 'BTHome keeps its own auth kind')
  // Plain frames carry no authentication.
  const plain = policy({ acceptAll: new Set(['atc']) }).decide('a4:c1:38:02:83:f4', sd('a4:c1:38:02:83:f4', '181a', 'f4830238c1a4a9066911b60b58f70d'), 0)
  t.ok(plain.kind === 'reading' && plain.ccm === undefined && plain.bthomeCounter === undefined, 'plain pvvx: no counter for auth')
})
