// Basics Station message parsing, PHYPayload reassembly and router_config.
// Vectors (published, cited per case):
//   TTS   TheThingsNetwork/lorawan-stack pkg/gatewayserver/io/ws/lbslns/upstream_test.go
//         (TestFromUplinkDataFrame "ValidFrame": RawPayload ↔ updf fields; TestMarshalJSON
//         "JoinRequest": a jreq message as JSON text)
//   CS    chirpstack/chirpstack-gateway-bridge internal/backend/basicstation/structs/
//         join_request_test.go (jreq fields → PhyPayload), eui64_test.go (ID6 forms)
//   HR    helium/router src/lora/lora_chmask.erl join_cf_list_test_ (US915 CFList type 1,
//         sub-band 2 = channels 8-15: <<0,255,0,0,0,0,0,0,0,0,0,0,0,0,0,1>>)
//   L2    LoRaWAN L2 1.0.4 example frame used across this repository (docs/lorawan.md):
//         40f17dbe4900020001954378762b11ff0d, split into fields as the station does
//         (lorabasics/basicstation src/lora.c s2e_parse_lora_frame)

import t from 'tap'
import { parsePhyPayload } from '../../../core/lorawan/phy.ts'
import { cfListChMask, REGIONS } from '../region.ts'
import {
  buildDnmsg,
  buildRouterConfig,
  channelPlan,
  drsTable,
  formatId6,
  gpsTimeUs,
  jreqToPhyPayload,
  maxIfHz,
  parseEui,
  parseJsonExact,
  parseStationMessage,
  sx1301ConfFor,
  updfToPhyPayload,
  type Sx1301Conf,
} from './protocol.ts'

const EU = REGIONS.EU868
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'))

/** The station's split of a data frame (lora.c s2e_parse_lora_frame), re-implemented for the test. */
function stationFields(frame: Uint8Array): Record<string, unknown> {
  const dv = Buffer.from(frame)
  const foptsLen = (frame[5] ?? 0) & 0x0f
  const portOff = 8 + foptsLen
  return {
    msgtype: 'updf',
    MHdr: frame[0],
    DevAddr: dv.readInt32LE(1),
    FCtrl: frame[5],
    FCnt: dv.readUInt16LE(6),
    FOpts: dv.subarray(8, 8 + foptsLen).toString('hex').toUpperCase(),
    FPort: portOff === frame.length - 4 ? -1 : frame[portOff],
    FRMPayload: dv.subarray(portOff + 1, Math.max(portOff + 1, frame.length - 4)).toString('hex').toUpperCase(),
    MIC: dv.readInt32LE(frame.length - 4),
  }
}

t.test('updf fields → PHYPayload, byte for byte', async (t) => {
  // TTS TestFromUplinkDataFrame "ValidFrame" (its FCtrl 0xb0 has FOptsLen masked out; on air it is 0xb2).
  const tts = updfToPhyPayload({ MHdr: 0x40, DevAddr: 0x42ffffff, FCtrl: 0xb0, FPort: 0x42, FCnt: 0xff42, FOpts: 'feff', FRMPayload: 'feff', MIC: 268435266 })
  t.equal(hex(tts), '40ffffff42b242fffeff42feff42ffff0f', 'TTS RawPayload')
  // L2 example frame, split as the station splits it (DevAddr and MIC as signed int32).
  // The L2 example, then two structural variants of it (confirmed with ADR set; FPort without FRMPayload).
  for (const h of ['40f17dbe4900020001954378762b11ff0d', '80f17dbe4980020003a5d1c7b6b2ff3e5a', '40f17dbe49000300012a3518af']) {
    const f = bytes(h)
    const fields = stationFields(f)
    t.equal(hex(updfToPhyPayload(fields)), h, `round trip of ${h}`)
  }
  // FPort absent (-1) with FOpts, negative DevAddr and MIC (int32 as the station writes them).
  const f2 = updfToPhyPayload({ MHdr: 0x40, DevAddr: -10, FCtrl: 0x82, FCnt: 400, FOpts: '0102', FPort: -1, FRMPayload: '', MIC: -20 })
  t.equal(hex(f2), '40f6ffffff8290010102ecffffff', 'no FPort: MIC follows FOpts')
  t.throws(() => updfToPhyPayload({ MHdr: 0x40, DevAddr: 1, FCtrl: 0x83, FCnt: 1, FOpts: '0102', FPort: 1, MIC: 0 }), /FOptsLen/)
  t.throws(() => updfToPhyPayload({ MHdr: 0x40, DevAddr: 1, FCtrl: 0, FCnt: 1, FOpts: '', FPort: -1, FRMPayload: 'aa', MIC: 0 }), /without FPort/)
  t.throws(() => updfToPhyPayload({ MHdr: 0x20, DevAddr: 1, FCtrl: 0, FCnt: 1, FPort: -1, MIC: 0 }), /data uplink/)
  t.throws(() => updfToPhyPayload({ MHdr: 0x40, DevAddr: 2 ** 32, FCtrl: 0, FCnt: 1, FPort: -1, MIC: 0 }), /DevAddr/)
  t.throws(() => updfToPhyPayload({ MHdr: 0x40, DevAddr: 1, FCtrl: 0, FCnt: 1, FPort: 1, FRMPayload: 'zz', MIC: 0 }), /hex/)
})

t.test('jreq fields → PHYPayload', async (t) => {
  // CS join_request_test.go: JoinEUI 0203..08, DevEUI 0302..08, DevNonce 20, MIC -10.
  const cs = jreqToPhyPayload({ MHdr: 0, JoinEui: '02-02-03-04-05-06-07-08', DevEui: '03-02-03-04-05-06-07-08', DevNonce: 20, MIC: -10 })
  t.equal(hex(cs), '00080706050403020208070605040302031400f6ffffff', 'ChirpStack PhyPayload')
  // TTS TestMarshalJSON "JoinRequest": the message as JSON text, with a 54-bit xtime.
  const text = '{"msgtype":"jreq","MHdr":0,"JoinEui":"2222:2222:2222:2222","DevEui":"1111:1111:1111:1111","DevNonce":18000,"MIC":12345678,"RefTime":0,"DR":1,"Freq":868300000,"upinfo":{"rxtime":1548059982,"rtcx":0,"xtime":12666373963464220,"gpstime":0,"rssi":89,"snr":9.25}}'
  const p = parseStationMessage(text, EU)
  if (!p.ok || p.message.msgtype !== 'jreq') throw new Error(JSON.stringify(p))
  t.equal(p.message.radio.xtime, 12666373963464220n, 'xtime kept exact beyond 2^53')
  t.equal(p.message.radio.dr, 1)
  t.equal(p.message.radio.freqHz, 868_300_000)
  t.equal(p.message.radio.snr, 9.25)
  const jr = parsePhyPayload(p.message.phyPayload)
  if (!jr.ok || jr.frame.kind !== 'join-request') throw new Error('not a join-request')
  t.equal(jr.frame.joinEui, '2222222222222222')
  t.equal(jr.frame.devEui, '1111111111111111')
  t.equal(jr.frame.devNonce, 18000)
  t.equal(hex(jr.frame.mic), '4e61bc00', 'TTS: MIC 12345678 → 4E 61 BC 00')
})

t.test('EUI forms: integer, dashed, hex, ID6', async (t) => {
  // CS eui64_test.go
  t.equal(parseEui('::0'), '0000000000000000')
  t.equal(parseEui('1::'), '0001000000000000')
  t.equal(parseEui('::a:b'), '00000000000a000b')
  t.equal(parseEui('f::1'), '000f000000000001')
  t.equal(parseEui('f:a123:f8:100'), '000fa12300f80100')
  t.equal(parseEui('01-02-03-04-05-06-07-08'), '0102030405060708')
  t.equal(parseEui('B827EBFFFE61A4C2'), 'b827ebfffe61a4c2')
  t.equal(parseEui(0x0102030405), '0000000102030405')
  t.equal(parseEui(0xb827ebfffe61a4c2n), 'b827ebfffe61a4c2')
  for (const bad of ['', ':::', '1:2:3:4:5', '1::2::3', 'g::1', '01-02-03', -1, 1.5, null, {}, '12345::']) t.equal(parseEui(bad), undefined, `refused: ${JSON.stringify(bad)}`)
  t.equal(formatId6('000fa12300f80100'), 'f:a123:f8:100')
  t.equal(parseEui(formatId6('b827ebfffe61a4c2')), 'b827ebfffe61a4c2')
  const big = parseJsonExact('{"router":13269834311787455682}')
  t.ok(big.ok)
  if (big.ok) t.equal(parseEui((big.value as { router: unknown }).router), 'b827ebfffe61a4c2', 'a 64-bit integer router id stays exact')
})

t.test('messages: refusals are values', async (t) => {
  const cases: [string, string][] = [
    ['not json', 'bad-json'],
    ['[1,2]', 'not-object'],
    ['{"x":1}', 'no-msgtype'],
    ['{"msgtype":"nope"}', 'unknown-msgtype'],
    ['{"msgtype":"rejoin"}', 'unsupported-msgtype'],
    ['{"msgtype":"updf"}', 'bad-field'],
    ['{"msgtype":"updf","MHdr":64,"DevAddr":1,"FCtrl":0,"FCnt":1,"FOpts":"","FPort":-1,"FRMPayload":"","MIC":1,"DR":16,"Freq":868100000,"upinfo":{"xtime":1}}', 'bad-field'],
    ['{"msgtype":"updf","MHdr":64,"DevAddr":1,"FCtrl":0,"FCnt":1,"FOpts":"","FPort":-1,"FRMPayload":"","MIC":1,"DR":5,"Freq":868100000}', 'bad-field'],
    ['{"msgtype":"timesync","txtime":"x"}', 'bad-field'],
    ['{"msgtype":"dntxed"}', 'bad-field'],
    ['{"msgtype":"propdf","FRMPayload":"40","DR":5,"Freq":868100000,"upinfo":{"xtime":1}}', 'bad-field'],
  ]
  for (const [text, code] of cases) {
    const p = parseStationMessage(text, EU)
    t.equal(p.ok ? 'ok' : p.code, code, text.slice(0, 60))
  }
  const v = parseStationMessage('{"msgtype":"version","station":"2.0.6(rpi/std)","firmware":null,"package":null,"model":"rpi","protocol":2,"features":"rmtsh"}', EU)
  t.same(v.ok && v.message, { msgtype: 'version', station: '2.0.6(rpi/std)', firmware: null, model: 'rpi', protocol: 2, features: 'rmtsh' })
  // TTS TestMarshalJSON "TxConfirmation"
  const d = parseStationMessage('{"msgtype":"dntxed","diid":35,"DevEui":"1111:1111:1111:1111","rctx":0,"xtime":1552906698,"txtime":1552906698,"gpstime":1552906698}', EU)
  t.same(d.ok && d.message, { msgtype: 'dntxed', diid: 35, devEui: '1111111111111111', xtime: 1552906698n, gpstime: 1552906698n })
})

t.test('router_config for EU868 from the region table', async (t) => {
  const rc = buildRouterConfig({ region: 'EU868', subBand: 2, nowMs: 1_700_000_000_000 })
  if (!rc.ok) throw new Error(rc.reason)
  const m = rc.message
  t.equal(m['msgtype'], 'router_config')
  t.equal(m['region'], 'EU863')
  t.equal(m['hwspec'], 'sx1301/1')
  t.same(m['freq_range'], [863_000_000, 870_000_000])
  t.equal(m['NetID'], null)
  t.equal(m['JoinEui'], null)
  t.same([m['nocca'], m['nodc'], m['nodwell']], [false, false, false])
  t.equal(m['MuxTime'], 1_700_000_000)
  const drs = m['DRs'] as number[][]
  t.equal(drs.length, 16)
  t.same(drs.slice(0, 8), [[12, 125, 0], [11, 125, 0], [10, 125, 0], [9, 125, 0], [8, 125, 0], [7, 125, 0], [7, 250, 0], [0, 0, 0]])
  t.same(drs.slice(8), Array(8).fill([-1, 0, 0]))
  const sx = (m['sx1301_conf'] as Sx1301Conf[])[0] as Sx1301Conf
  const r = [sx.radio_0.freq, sx.radio_1.freq]
  const freqOf = (c: { radio?: number; if?: number }): number => (r[c.radio as number] as number) + (c.if as number)
  const multi = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => sx[`chan_multiSF_${i}`] as { enable: boolean; radio?: number; if?: number })
  t.ok(multi.every((c) => c.enable), 'eight multi-SF channels')
  t.same(multi.map(freqOf).sort(), [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000, 868_100_000, 868_300_000, 868_500_000], 'default + CFList channels')
  t.ok(multi.every((c) => Math.abs(c.if as number) <= maxIfHz(125_000)), 'IFs within the radio bandwidth')
  t.same(sx.radio_0, { enable: true, freq: 867_500_000 })
  t.equal(freqOf(sx.chan_Lora_std as { radio: number; if: number }), 868_300_000)
  t.same([sx.chan_Lora_std.bandwidth, sx.chan_Lora_std.spread_factor], [250_000, 7], 'DR6 SF7BW250')
  t.equal(freqOf(sx.chan_FSK as { radio: number; if: number }), 868_800_000)
  t.equal(sx.chan_FSK.datarate, 50_000, 'DR7 FSK 50 kbit/s')
})

t.test('router_config for US915 sub-bands and the DR table', async (t) => {
  for (let sb = 1; sb <= 8; sb++) {
    const plan = channelPlan(REGIONS.US915, sb)
    const sx = sx1301ConfFor(plan)
    if (!sx.ok) throw new Error(`sub-band ${sb}: ${sx.reason}`)
    const conf = sx.conf
    const r = [conf.radio_0.freq, conf.radio_1.freq]
    const got: number[] = []
    for (let i = 0; i < 8; i++) {
      const c = conf[`chan_multiSF_${i}`] as { radio: number; if: number }
      t.ok(Math.abs(c.if) <= 400_000)
      got.push((r[c.radio] as number) + c.if)
    }
    const first = 902_300_000 + (sb - 1) * 8 * 200_000
    t.same(got, [0, 1, 2, 3, 4, 5, 6, 7].map((i) => first + i * 200_000), `sub-band ${sb} 125 kHz channels`)
    const std = conf.chan_Lora_std as { radio: number; if: number; bandwidth: number; spread_factor: number }
    t.equal((r[std.radio] as number) + std.if, 903_000_000 + (sb - 1) * 1_600_000, `sub-band ${sb} 500 kHz channel`)
    t.ok(Math.abs(std.if) <= maxIfHz(500_000))
    t.same([std.bandwidth, std.spread_factor], [500_000, 8])
  }
  const drs = drsTable(REGIONS.US915)
  t.same(drs.slice(0, 5), [[10, 125, 0], [9, 125, 0], [8, 125, 0], [7, 125, 0], [8, 500, 0]])
  t.same(drs.slice(8, 14), [[12, 500, 1], [11, 500, 1], [10, 500, 1], [9, 500, 1], [8, 500, 1], [7, 500, 1]], 'DR8..13 downlink only')
  const us = buildRouterConfig({ region: 'US915', subBand: 2, nowMs: 0 })
  t.equal(us.ok && us.message['region'], 'US902')
  for (const id of ['AU915', 'AS923', 'KR920', 'IN865'] as const) t.ok(buildRouterConfig({ region: id, subBand: 2, nowMs: 0 }).ok, `${id} router_config`)
  t.equal(sx1301ConfFor([...Array(9)].map((_, i) => ({ freqHz: 868_000_000 + i * 200_000, kind: 'multiSF' as const, bwHz: 125_000 }))).ok, false, 'nine multi-SF channels do not fit')
  t.equal(sx1301ConfFor([868_000_000, 869_000_000, 870_000_000].map((f) => ({ freqHz: f, kind: 'multiSF' as const, bwHz: 125_000 }))).ok, false, 'three radios do not exist')
})

t.test('dnmsg and GPS time', async (t) => {
  const text = buildDnmsg({ devEui: '0004a30b001c0530', diid: 7, pdu: bytes('20aabb'), rxDelayS: 5, rx1: { dr: 5, freqHz: 868_100_000 }, rx2: { dr: 0, freqHz: 869_525_000 }, priority: 2, xtime: 12666373963464220n, rctx: 0n, nowMs: 1_700_000_000_500 })
  t.equal(
    text,
    '{"msgtype":"dnmsg","DevEui":"00-04-a3-0b-00-1c-05-30","dC":0,"diid":7,"pdu":"20aabb","RxDelay":5,"RX1DR":5,"RX1Freq":868100000,"RX2DR":0,"RX2Freq":869525000,"priority":2,"xtime":12666373963464220,"rctx":0,"MuxTime":1700000000.5}',
  )
  // 2017-01-01T00:00:00Z (the last leap second): 1167264018 s after the GPS epoch (GPS − UTC = 18 s).
  t.equal(gpsTimeUs(Date.UTC(2017, 0, 1)), 1_167_264_018_000_000)
})

t.test('US915/AU915 join-accept CFList type 1 (ChMask)', async (t) => {
  const helium = [0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
  const sb2 = cfListChMask(REGIONS.US915, 2)
  // HR enables channels 8-15 only; this server also enables the sub-band's 500 kHz channel 65 (ChMask4 bit 1).
  t.same([...(sb2 ?? [])], helium.map((b, i) => (i === 8 ? 0x02 : b)), 'sub-band 2: channels 8-15 and 65')
  t.same([...(cfListChMask(REGIONS.AU915, 1) ?? [])], [0xff, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 1], 'AU915 sub-band 1: channels 0-7 and 64')
  t.same([...(cfListChMask(REGIONS.US915, 8) ?? [])], [0, 0, 0, 0, 0, 0, 0, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1], 'sub-band 8: channels 56-63 and 71')
  t.equal(cfListChMask(REGIONS.EU868, 2), undefined, 'EU868 uses CFList type 0')
  t.equal(cfListChMask(REGIONS.US915, 0), undefined)
  t.equal(cfListChMask(REGIONS.US915, 9), undefined)
})
