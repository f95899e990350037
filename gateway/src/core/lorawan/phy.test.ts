// Vectors: lora-packet test suite (anthonykirby/lora-packet test/test_parse.js @ 0766fc85c672a022162df7d533af2ec9a95949e6,
// test/test_mic.js @ 007154810f921862d43fcf240c167d73abd86731, test/test_decrypt.js @ 1d77dca0a1f09158957dc2e0928a9a7da4747629);
// lora-packet 0.9.3 (node_modules) as an oracle for built frames.
import t from 'tap'
import { createCipheriv } from 'node:crypto'
import lpImport from 'lora-packet'
import { aesKey, bytesToHex, hexToBytes, aesCmac, type AesKey } from './crypto.ts'
import {
  buildDataFrame,
  buildJoinAccept,
  buildJoinRequest,
  decodeCfListFrequencies,
  decryptFrmPayload,
  encodeCfListFrequencies,
  euiToWire,
  normalizeEui,
  openJoinAccept,
  parsePhyPayload,
  verifyDataFrameMic,
  verifyJoinRequestMic,
  type DataFrame,
} from './phy.ts'
// EU868_CFLIST_FREQS_HZ of sources/lorawan/region.ts (core may not import sources).
const EU868_CFLIST_FREQS_HZ: readonly number[] = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]

// lora-packet is CommonJS with an __esModule default: Node hands over the API object itself.
const loraPacket = (lpImport as unknown as { default?: typeof lpImport.default }).default ?? (lpImport as unknown as typeof lpImport.default)

const h = (s: string): Uint8Array => hexToBytes(s) ?? new Uint8Array(0)
const key = (s: string): AesKey => aesKey(s) ?? (new Uint8Array(16) as AesKey)
const NWK_SKEY = key('44024241ed4ce9a68c6a8bc055233fd3')
const APP_SKEY = key('ec925802ae430ca77fd3dd73cb2cc588')
const APP_KEY = key('98929b92c49edba9676d646d3b612456')

function data(hex: string): DataFrame {
  const p = parsePhyPayload(h(hex))
  if (!p.ok || p.frame.kind !== 'data') throw new Error(`not a data frame: ${hex}`)
  return p.frame
}

t.test('decode lora-packet test_parse.js frames exactly', async (t) => {
  const f = data('40f17dbe4900020001954378762b11ff0d')
  t.equal(f.mtype, 'unconfirmed-data-up')
  t.equal(f.direction, 'up')
  t.equal(f.devAddr, 0x49be7df1)
  t.equal(f.fcnt16, 2)
  t.same(f.fctrl, { adr: false, adrAckReq: false, ack: false, fPending: false, fOptsLen: 0 })
  t.equal(f.fport, 1)
  t.equal(bytesToHex(f.frmPayload), '95437876')
  t.equal(bytesToHex(f.mic), '2b11ff0d')
  t.ok(verifyDataFrameMic(f, NWK_SKEY, 2), 'MIC valid')
  t.equal(Buffer.from(decryptFrmPayload(f, { nwkSKey: NWK_SKEY, appSKey: APP_SKEY }, 2)).toString(), 'test')

  const empty = data('40f17dbe49000300012a3518af')
  t.equal(empty.fcnt16, 3)
  t.equal(empty.fport, 1)
  t.equal(empty.frmPayload.length, 0)
  t.ok(verifyDataFrameMic(empty, NWK_SKEY, 3))

  const large = data('40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f28dea8a20af3c5e7')
  t.equal(large.fcnt16, 4)
  t.equal(Buffer.from(decryptFrmPayload(large, { nwkSKey: NWK_SKEY, appSKey: APP_SKEY }, 4)).toString(), 'The quick brown fox jumps over the lazy dog.')
  t.ok(verifyDataFrameMic(large, NWK_SKEY, 4))

  const ack = data('60f17dbe4920020001f9d65d27')
  t.equal(ack.mtype, 'unconfirmed-data-down')
  t.equal(ack.direction, 'down')
  t.equal(ack.fctrl.ack, true)
  t.equal(ack.fcnt16, 2)
  t.ok(verifyDataFrameMic(ack, NWK_SKEY, 2))
})

t.test('MIC fails on any flipped bit, a wrong key or a wrong FCnt', async (t) => {
  const good = h('40f17dbe4900020001954378762b11ff0d')
  for (let bit = 0; bit < good.length * 8; bit++) {
    const b = Uint8Array.from(good)
    b[bit >> 3] = (b[bit >> 3] ?? 0) ^ (1 << (bit & 7))
    const p = parsePhyPayload(b)
    if (!p.ok || p.frame.kind !== 'data') continue // the MHDR bit flips change the frame kind: also a rejection
    t.notOk(verifyDataFrameMic(p.frame, NWK_SKEY, p.frame.fcnt16), `bit ${bit}`)
  }
  const f = data('40f17dbe4900020001954378762b11ff0d')
  t.notOk(verifyDataFrameMic(f, key('44024241ed4ce9a68c6a8bc055233fd4'), 2), 'wrong key')
  t.notOk(verifyDataFrameMic(f, NWK_SKEY, 0x10002), 'right low bits, wrong high bits')
  t.notOk(verifyDataFrameMic(f, NWK_SKEY, 3), 'low bits disagree')
  t.notOk(verifyDataFrameMic(f, NWK_SKEY, -1), 'not a counter')
})

t.test('join-request (lora-packet test_mic.js)', async (t) => {
  const p = parsePhyPayload(h('0039363463336913aa05693574323831330489c65b1304'))
  t.ok(p.ok)
  if (!p.ok || p.frame.kind !== 'join-request') return
  t.equal(p.frame.joinEui, 'aa13693363343639')
  t.equal(p.frame.devEui, '3331383274356905')
  t.equal(p.frame.devNonce, 0x8904)
  t.ok(verifyJoinRequestMic(p.frame, APP_KEY))
  const bad = parsePhyPayload(h('0039363463336913aa05693574323831330489c65b1305'))
  t.ok(bad.ok && bad.frame.kind === 'join-request' && !verifyJoinRequestMic(bad.frame, APP_KEY), 'bodged MIC fails')
  const built = buildJoinRequest({ joinEui: 'aa13693363343639', devEui: '33:31:38:32:74:35:69:05', devNonce: 0x8904 }, APP_KEY)
  t.ok(built.ok)
  if (built.ok) t.equal(bytesToHex(built.bytes), '0039363463336913aa05693574323831330489c65b1304', 'build reproduces the frame')
})

function deviceDecrypt(appKey: AesKey, enc: Uint8Array): Uint8Array {
  // What a device does: AES-128 *encrypt* (ECB) of everything after MHDR.
  const c = createCipheriv('aes-128-ecb', appKey, null)
  c.setAutoPadding(false)
  return new Uint8Array(Buffer.concat([c.update(enc.subarray(1)), c.final()]))
}

t.test('join-accept: built, then decrypted as a device does, every field checked', async (t) => {
  // Same fields as lora-packet test_mic.js "join accept" plaintext 20386337ccbbaae7cd2c010000d9d0a6e7.
  const built = buildJoinAccept({ joinNonce: 0x376338, netId: 0xaabbcc, devAddr: 0x012ccde7, rx1DrOffset: 0, rx2DataRate: 0, rxDelayS: 0 }, APP_KEY)
  t.ok(built.ok)
  if (!built.ok) return
  t.equal(built.bytes.length, 17)
  t.equal(built.bytes[0], 0x20, 'MHDR in clear')
  const body = deviceDecrypt(APP_KEY, built.bytes)
  t.equal('20' + bytesToHex(body), '20386337ccbbaae7cd2c010000d9d0a6e7', 'plaintext equals the published frame, MIC included')
  const mic = aesCmac(APP_KEY, Uint8Array.from([0x20, ...body.subarray(0, 12)])).subarray(0, 4)
  t.equal(bytesToHex(mic), bytesToHex(body.subarray(12)), 'the device finds the MIC valid')
  // lora-packet's own decryption of our frame agrees.
  const lp = loraPacket.fromWire(Buffer.from(built.bytes))
  t.equal(bytesToHex(loraPacket.decryptJoinAccept(lp, Buffer.from(APP_KEY))), bytesToHex(Uint8Array.from([0x20, ...body])))

  const withCf = buildJoinAccept(
    { joinNonce: 5, netId: 0x13, devAddr: 0x26011234, rx1DrOffset: 3, rx2DataRate: 2, rxDelayS: 5, cfList: encodeCfListFrequencies(EU868_CFLIST_FREQS_HZ) ?? new Uint8Array(0) },
    APP_KEY,
  )
  t.ok(withCf.ok)
  if (!withCf.ok) return
  t.equal(withCf.bytes.length, 33)
  const b = deviceDecrypt(APP_KEY, withCf.bytes)
  t.equal(b[0]! | (b[1]! << 8) | (b[2]! << 16), 5, 'JoinNonce')
  t.equal(b[3]! | (b[4]! << 8) | (b[5]! << 16), 0x13, 'NetID')
  t.equal((b[6]! | (b[7]! << 8) | (b[8]! << 16) | (b[9]! << 24)) >>> 0, 0x26011234, 'DevAddr')
  t.equal(b[10], 0x32, 'DLSettings: RX1DROffset 3, RX2DataRate 2')
  t.equal(b[11], 5, 'RxDelay')
  t.equal(bytesToHex(b.subarray(12, 28)), '184f84e85684b85e84886684586e8400', 'CFList: 867.1 .. 867.9 MHz, type 0')
  const mic2 = aesCmac(APP_KEY, Uint8Array.from([0x20, ...b.subarray(0, 28)])).subarray(0, 4)
  t.equal(bytesToHex(mic2), bytesToHex(b.subarray(28)), 'MIC over MHDR..CFList')
  const opened = openJoinAccept(withCf.bytes, APP_KEY)
  t.ok(opened.ok && opened.micValid)
  if (opened.ok) {
    t.same(decodeCfListFrequencies(opened.fields.cfList ?? new Uint8Array(0)), EU868_CFLIST_FREQS_HZ)
    t.equal(opened.fields.rxDelayS, 5)
  }
  const wrong = openJoinAccept(withCf.bytes, key('00'.repeat(16)))
  t.ok(wrong.ok && !wrong.micValid, 'a wrong AppKey gives an invalid MIC')
})

t.test('data frames: build then parse round trips, and lora-packet agrees', async (t) => {
  const keys = { nwkSKey: NWK_SKEY, appSKey: APP_SKEY }
  const specs = [
    { mtype: 'unconfirmed-data-up', devAddr: 0x49be7df1, fcnt32: 2, fport: 1, payload: Buffer.from('test') },
    { mtype: 'confirmed-data-up', devAddr: 0x26011bda, fcnt32: 0x1_0005, fport: 10, payload: Buffer.from('hello world, 17b'), adr: true, ack: true },
    { mtype: 'unconfirmed-data-down', devAddr: 0x01020304, fcnt32: 7, fopts: Uint8Array.of(0x02, 0x05, 0x01), ack: true, fPending: true },
    { mtype: 'confirmed-data-down', devAddr: 0xfffffffe, fcnt32: 0xffffffff, fport: 0, payload: Uint8Array.of(0x03, 0x51, 0xff, 0x00, 0x01) },
  ] as const
  for (const s of specs) {
    const b = buildDataFrame(s, keys)
    t.ok(b.ok, s.mtype)
    if (!b.ok) continue
    const p = parsePhyPayload(b.bytes)
    t.ok(p.ok && p.frame.kind === 'data')
    if (!p.ok || p.frame.kind !== 'data') continue
    const f = p.frame
    t.equal(f.mtype, s.mtype)
    t.equal(f.devAddr, s.devAddr)
    t.equal(f.fcnt16, s.fcnt32 & 0xffff)
    t.equal(f.fport, 'fport' in s ? s.fport : null)
    t.ok(verifyDataFrameMic(f, NWK_SKEY, s.fcnt32), 'MIC verifies with the 32-bit counter')
    t.same(decryptFrmPayload(f, keys, s.fcnt32), 'payload' in s ? new Uint8Array(s.payload) : new Uint8Array(0))
    if ('fopts' in s) t.same(f.fopts, s.fopts)
    t.equal(f.fctrl.adr, 'adr' in s)
    t.equal(f.fctrl.ack, 'ack' in s)
    // Oracle: lora-packet parses our bytes to the same fields and verifies the MIC.
    const lp = loraPacket.fromWire(Buffer.from(b.bytes))
    t.equal(lp.getFCnt(), s.fcnt32 & 0xffff)
    const msb = Buffer.from([(s.fcnt32 >>> 16) & 0xff, (s.fcnt32 >>> 24) & 0xff])
    t.ok(loraPacket.verifyMIC(lp, Buffer.from(NWK_SKEY), undefined, msb), 'lora-packet verifies our MIC')
  }
  t.notOk(buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: 1, fcnt32: 1, fopts: new Uint8Array(16) }, keys).ok, 'FOpts over 15')
  t.notOk(buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: 1, fcnt32: 1, fport: 0, fopts: new Uint8Array(1), payload: new Uint8Array(1) }, keys).ok)
  t.notOk(buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: 1, fcnt32: 2 ** 32, fport: 1 }, keys).ok)
  t.notOk(buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: 1, fcnt32: 1, fport: 1, payload: new Uint8Array(250) }, keys).ok, 'over 255 bytes')
  t.notOk(buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: 1, fcnt32: 1, payload: new Uint8Array(1) }, keys).ok, 'payload without FPort')
})

t.test('malformed frames are rejections with codes', async (t) => {
  const code = (hex: string): string | undefined => {
    const p = parsePhyPayload(h(hex))
    return p.ok ? undefined : p.code
  }
  t.equal(code(''), 'empty')
  t.equal(code('40f17dbe490002000195'), 'too-short', 'data frame under 12 bytes')
  t.equal(code('40f17dbe4906020001954378762b11ff0d'), 'fopts-overflow', 'FOptsLen 6 with 5 bytes before the MIC')
  t.equal(code('40f17dbe4905020001954378762b11ff0d'), undefined, 'FOptsLen 5 filling the frame: valid, no FPort')
  t.equal(code('40f17dbe49010200' + '03' + '00' + '2b11ff0d'), 'fopts-with-port0', 'FOpts and FPort 0')
  t.equal(code('c0f17dbe4900020001954378762b11ff0d'), 'rfu-mtype', 'MType 6')
  t.equal(code('41f17dbe4900020001954378762b11ff0d'), 'unsupported-major')
  t.equal(code('00' + '11'.repeat(21)), 'bad-length', 'join-request of 22 bytes')
  t.equal(code('20' + '11'.repeat(17)), 'bad-length', 'join-accept of 18 bytes')
  t.equal(code('40' + '00'.repeat(255)), 'too-large')
  const prop = parsePhyPayload(h('e0010203'))
  t.ok(prop.ok && prop.frame.kind === 'proprietary')
  const noPort = parsePhyPayload(h('40f17dbe490002002b11ff0d'))
  t.ok(noPort.ok && noPort.frame.kind === 'data' && noPort.frame.fport === null, 'a frame without FPort')
  t.equal(parsePhyPayload('nope' as unknown as Uint8Array).ok, false, 'not bytes')
})

t.test('EUI helpers', async (t) => {
  t.equal(normalizeEui('70-B3-D5-7E-D0-00-00-01'), '70b3d57ed0000001')
  t.same(euiToWire('0102030405060708'), Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1))
  t.equal(euiToWire('0102'), undefined)
  t.equal(encodeCfListFrequencies([868_150_000, 1]), undefined, 'not a multiple of 100 Hz')
  t.equal(encodeCfListFrequencies([1, 2, 3, 4, 5, 6].map((x) => x * 100)), undefined, 'six frequencies')
  t.equal(decodeCfListFrequencies(new Uint8Array(15)), undefined)
})

t.test('fuzz: random bytes never throw', async (t) => {
  let seed = 7
  const rnd = (): number => (seed = (seed * 1664525 + 1013904223) >>> 0)
  let threw = 0
  let ok = 0
  for (let i = 0; i < 20000; i++) {
    const b = new Uint8Array(rnd() % 300)
    for (let j = 0; j < b.length; j++) b[j] = rnd() & 0xff
    try {
      const p = parsePhyPayload(b)
      if (p.ok) {
        ok++
        if (p.frame.kind === 'data') {
          verifyDataFrameMic(p.frame, NWK_SKEY, p.frame.fcnt16)
          decryptFrmPayload(p.frame, { nwkSKey: NWK_SKEY, appSKey: APP_SKEY }, p.frame.fcnt16)
        }
        if (p.frame.kind === 'join-accept') openJoinAccept(p.frame.bytes, APP_KEY)
      }
    } catch {
      threw++
    }
  }
  t.equal(threw, 0)
  t.ok(ok > 0, 'some random frames parse')
})
