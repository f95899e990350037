// Vectors: the JSON examples of Lora-net/packet_forwarder PROTOCOL.TXT @ 36ab4b40542c7ad59b6b4d083577aa9f13a2ed46
// (§4 rxpk and stat, §6 txpk, txpk_ack) and Lora-net/sx1302_hal packet_forwarder/PROTOCOL.md
// @ 1d8e7f1256e9f09587d119e5f6aebcc53c2f3c2b (txpk_ack warn); the PUSH_DATA datagram of
// chirpstack/chirpstack-mqtt-forwarder src/backend/semtech_udp/structs.rs test_push_data.
import t from 'tap'
import {
  MAX_RXPK,
  PROTOCOL_VERSION,
  buildDatagram,
  buildPullAck,
  buildPullResp,
  buildPushAck,
  decodeBase64,
  parseDatagram,
  type ParseErrorCode,
  type SemtechPacket,
} from './semtech-udp.ts'

const RXPK_EXAMPLE = `{"rxpk":[
	{
		"time":"2013-03-31T16:21:17.528002Z",
		"tmst":3512348611,
		"chan":2,
		"rfch":0,
		"freq":866.349812,
		"stat":1,
		"modu":"LORA",
		"datr":"SF7BW125",
		"codr":"4/6",
		"rssi":-35,
		"lsnr":5.1,
		"size":32,
		"data":"-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84"
	},{
		"time":"2013-03-31T16:21:17.530974Z",
		"tmst":3512348514,
		"chan":9,
		"rfch":1,
		"freq":869.1,
		"stat":1,
		"modu":"FSK",
		"datr":50000,
		"rssi":-75,
		"size":16,
		"data":"VEVTVF9QQUNLRVRfMTIzNA=="
	},{
		"time":"2013-03-31T16:21:17.532038Z",
		"tmst":3316387610,
		"chan":0,
		"rfch":0,
		"freq":863.00981,
		"stat":1,
		"modu":"LORA",
		"datr":"SF10BW125",
		"codr":"4/7",
		"rssi":-38,
		"lsnr":5.5,
		"size":32,
		"data":"ysgRl452xNLep9S1NTIg2lomKDxUgn3DJ7DE+b00Ass"
	}
]}`

const STAT_EXAMPLE = `{"stat":{
	"time":"2014-01-12 08:59:28 GMT",
	"lati":46.24000,
	"long":3.25230,
	"alti":145,
	"rxnb":2,
	"rxok":2,
	"rxfw":2,
	"ackr":100.0,
	"dwnb":2,
	"txnb":2
}}`

const TXPK_LORA = `{"txpk":{
	"imme":true,
	"freq":864.123456,
	"rfch":0,
	"powe":14,
	"modu":"LORA",
	"datr":"SF11BW125",
	"codr":"4/6",
	"ipol":false,
	"size":32,
	"data":"H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8v"
}}`

const TXPK_FSK = `{"txpk":{
	"imme":true,
	"freq":861.3,
	"rfch":0,
	"powe":12,
	"modu":"FSK",
	"datr":50000,
	"fdev":3000,
	"size":32,
	"data":"H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8v"
}}`

const EUI = 'aa555a0000000000'
const hdr = (version: number, token: number, id: number, eui?: string): Buffer =>
  Buffer.concat([Buffer.from([version, token & 0xff, token >> 8, id]), eui ? Buffer.from(eui, 'hex') : Buffer.alloc(0)])
const dgram = (version: number, token: number, id: number, eui: string | undefined, json?: string): Uint8Array =>
  new Uint8Array(Buffer.concat([hdr(version, token, id, eui), Buffer.from(json ?? '', 'utf8')]))
const nodeB64 = (s: string): Buffer => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64')

t.test('PROTOCOL.TXT §4 rxpk example decodes exactly', async (t) => {
  const r = parseDatagram(dgram(2, 0xbeef, 0x00, EUI, RXPK_EXAMPLE))
  t.ok(r.ok)
  if (!r.ok || r.packet.type !== 'PUSH_DATA') return
  const p = r.packet
  t.equal(p.version, 2)
  t.equal(p.token, 0xbeef)
  t.equal(p.gatewayEui, EUI)
  t.equal(p.stat, undefined)
  t.equal(p.rxpk.length, 3)
  const [a, b, c] = p.rxpk
  t.same(
    { ...a, data: undefined },
    { time: '2013-03-31T16:21:17.528002Z', timeMs: Date.UTC(2013, 2, 31, 16, 21, 17, 528), tmst: 3512348611, chan: 2, rfch: 0, freqHz: 866_349_812, stat: 1, modu: 'LORA', datr: 'SF7BW125', codr: '4/6', rssi: -35, lsnr: 5.1, size: 32, data: undefined },
  )
  t.same(Buffer.from(a?.data ?? []), nodeB64('-DS4CGaDCdG+48eJNM3Vai-zDpsR71Pn9CPA9uCON84'))
  t.equal(b?.modu, 'FSK')
  t.equal(b?.datr, 50000)
  t.equal(b?.freqHz, 869_100_000)
  t.equal(b?.lsnr, undefined)
  t.equal(b?.codr, undefined)
  t.equal(Buffer.from(b?.data ?? []).toString(), 'TEST_PACKET_1234')
  t.equal(c?.tmst, 3316387610)
  t.equal(c?.freqHz, 863_009_810)
  t.equal(c?.datr, 'SF10BW125')
  t.equal(c?.codr, '4/7')
  t.same(Buffer.from(c?.data ?? []), Buffer.from('ysgRl452xNLep9S1NTIg2lomKDxUgn3DJ7DE+b00Ass', 'base64'))
})

t.test('PROTOCOL.TXT §4 stat example decodes exactly', async (t) => {
  const r = parseDatagram(dgram(2, 1, 0x00, EUI, STAT_EXAMPLE))
  t.ok(r.ok && r.packet.type === 'PUSH_DATA')
  if (!r.ok || r.packet.type !== 'PUSH_DATA') return
  t.same(r.packet.rxpk, [])
  t.same(r.packet.stat, { time: '2014-01-12 08:59:28 GMT', lati: 46.24, long: 3.2523, alti: 145, rxnb: 2, rxok: 2, rxfw: 2, ackr: 100, dwnb: 2, txnb: 2 })
})

t.test('PROTOCOL.TXT §6 txpk examples decode exactly', async (t) => {
  const lora = parseDatagram(dgram(2, 7, 0x03, undefined, TXPK_LORA))
  t.ok(lora.ok && lora.packet.type === 'PULL_RESP')
  if (lora.ok && lora.packet.type === 'PULL_RESP') {
    const x = lora.packet.txpk
    t.same({ ...x, data: undefined }, { freqHz: 864_123_456, rfch: 0, modu: 'LORA', datr: 'SF11BW125', size: 32, data: undefined, imme: true, powe: 14, codr: '4/6', ipol: false })
    t.same(Buffer.from(x.data), Buffer.from('H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8v', 'base64'))
  }
  const fsk = parseDatagram(dgram(2, 7, 0x03, undefined, TXPK_FSK))
  t.ok(fsk.ok && fsk.packet.type === 'PULL_RESP')
  if (fsk.ok && fsk.packet.type === 'PULL_RESP') {
    t.same({ ...fsk.packet.txpk, data: undefined }, { freqHz: 861_300_000, rfch: 0, modu: 'FSK', datr: 50000, size: 32, data: undefined, imme: true, powe: 12, fdev: 3000 })
  }
})

t.test('TX_ACK bodies', async (t) => {
  const ack = (json?: string, version = 2) => {
    const r = parseDatagram(dgram(version, 0x4242, 0x05, EUI, json))
    return r.ok && r.packet.type === 'TX_ACK' ? r.packet.ack : r.ok ? r.packet.type : r.code
  }
  t.same(ack(), { error: 'NONE' }, 'no JSON means no error')
  t.same(ack('{"txpk_ack":{\n\t"error":"COLLISION_PACKET"\n}}'), { error: 'COLLISION_PACKET' }, 'PROTOCOL.TXT example')
  t.same(ack('{"txpk_ack":{\n\t"warn":"TX_POWER",\n    "value":20\n}}'), { error: 'NONE', warn: 'TX_POWER', value: 20 }, 'sx1302_hal PROTOCOL.md example')
  for (const e of ['TOO_LATE', 'TOO_EARLY', 'FULL', 'EMPTY', 'COLLISION_BEACON', 'TX_FREQ', 'TX_POWER', 'GPS_UNLOCKED', 'NONE']) {
    t.same(ack(`{"txpk_ack":{"error":"${e}"}}`), { error: e }, e)
  }
  t.same(ack('{"txpk_ack":{"error":"SEND_LBT"}}'), { error: 'UNKNOWN', errorText: 'SEND_LBT' })
  t.same(ack('{"txpk_ack":{"error":""}}\u0000'), { error: 'NONE' }, 'trailing NUL tolerated')
  t.equal(ack(undefined, 1), 'bad-version', 'TX_ACK does not exist in version 1')
  t.equal(ack('{"txpk_ack":[]}'), 'bad-field')
  t.equal(ack('{"txpk_ack":'), 'bad-json')
})

t.test('built packets are byte-exact', async (t) => {
  t.same(Array.from(buildPushAck(0x1234)), [2, 0x34, 0x12, 0x01])
  t.same(Array.from(buildPullAck(0xabcd)), [2, 0xcd, 0xab, 0x04])
  t.same(Array.from(buildPushAck(0x0001, 1)), [1, 0x01, 0x00, 0x01], 'version 1 echoed')
  t.equal(PROTOCOL_VERSION, 2)
  // chirpstack-mqtt-forwarder structs.rs test_push_data: [2, 123, 0, 0, 1..8, '{', '}'].
  const cs = parseDatagram(Uint8Array.from([2, 123, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 123, 125]))
  t.same(cs, { ok: true, packet: { type: 'PUSH_DATA', version: 2, token: 123, gatewayEui: '0102030405060708', rxpk: [] } })
  const built = buildDatagram({ type: 'PUSH_DATA', version: 2, token: 123, gatewayEui: '0102030405060708', rxpk: [] })
  t.same(built.ok ? Array.from(built.bytes) : built.reason, [2, 123, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 123, 125])
  const pd = buildDatagram({ type: 'PULL_DATA', version: 2, token: 0x0102, gatewayEui: EUI })
  t.same(pd.ok ? Array.from(pd.bytes) : pd.reason, [2, 2, 1, 2, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 0])
  // PULL_RESP of the PROTOCOL.TXT LoRa example: header then compact JSON in §6 field order.
  const ex = parseDatagram(dgram(2, 0, 0x03, undefined, TXPK_LORA))
  if (!ex.ok || ex.packet.type !== 'PULL_RESP') throw new Error('example must parse')
  const data = Buffer.from(ex.packet.txpk.data).toString('base64')
  const pr = buildPullResp(0x0a0b, ex.packet.txpk)
  const want = Buffer.concat([
    Buffer.from([2, 0x0b, 0x0a, 3]),
    Buffer.from(`{"txpk":{"imme":true,"freq":864.123456,"rfch":0,"powe":14,"modu":"LORA","datr":"SF11BW125","codr":"4/6","ipol":false,"size":32,"data":"${data}"}}`),
  ])
  t.same(pr.ok ? Buffer.from(pr.bytes) : pr.reason, want)
  const txa = buildDatagram({ type: 'TX_ACK', version: 2, token: 9, gatewayEui: EUI, ack: { error: 'TOO_LATE' } })
  t.same(txa.ok ? Buffer.from(txa.bytes) : txa.reason, Buffer.concat([hdr(2, 9, 5, EUI), Buffer.from('{"txpk_ack":{"error":"TOO_LATE"}}')]))
  const txNone = buildDatagram({ type: 'TX_ACK', version: 2, token: 9, gatewayEui: EUI, ack: { error: 'NONE' } })
  t.equal(txNone.ok ? txNone.bytes.length : 0, 12, 'TX_ACK without error has no JSON')
})

t.test('parse(build(p)) is p', async (t) => {
  const packets: SemtechPacket[] = [
    {
      type: 'PUSH_DATA',
      version: 2,
      token: 65535,
      gatewayEui: '0016c001ff10a235',
      rxpk: [
        { tmst: 4294967295, freqHz: 868_100_000, stat: 1, modu: 'LORA', datr: 'SF12BW125', codr: '4/5', rssi: -120, lsnr: -17.5, size: 3, data: Uint8Array.of(1, 2, 3), chan: 0, rfch: 1, tmms: 1_300_000_000_123, rssis: -121 },
        { tmst: 0, freqHz: 868_300_000, stat: -1, modu: 'LORA', datr: 'SF7BW250', size: 0, data: new Uint8Array(0), rsig: [{ ant: 0, chan: 3, rssic: -50, lsnr: 9.5 }, { ant: 1, chan: 3, rssic: -57 }] },
      ],
      stat: { time: '2024-05-01 10:00:00 UTC', rxnb: 10, rxok: 9, rxfw: 9, ackr: 99.5, dwnb: 1, txnb: 1, temp: 41.5 },
    },
    { type: 'PUSH_ACK', version: 1, token: 0 },
    { type: 'PULL_DATA', version: 1, token: 77, gatewayEui: EUI },
    { type: 'PULL_ACK', version: 2, token: 77 },
    { type: 'PULL_RESP', version: 2, token: 5, txpk: { imme: false, tmst: 123456, freqHz: 923_300_000, rfch: 0, powe: 20, modu: 'LORA', datr: 'SF12BW500', codr: '4/5', ipol: true, size: 2, data: Uint8Array.of(0xa0, 0x01) } },
    { type: 'TX_ACK', version: 2, token: 5, gatewayEui: EUI, ack: { error: 'NONE', warn: 'TX_POWER', value: 27 } },
  ]
  for (const p of packets) {
    const b = buildDatagram(p)
    t.ok(b.ok, `${p.type} builds`)
    if (!b.ok) continue
    const r = parseDatagram(b.bytes)
    t.same(r, { ok: true, packet: p }, `${p.type} round trip`)
  }
  t.notOk(buildDatagram({ type: 'PUSH_ACK', version: 3, token: 0 }).ok, 'bad version refused')
  t.notOk(buildDatagram({ type: 'PUSH_ACK', version: 2, token: 70000 }).ok, 'bad token refused')
  t.notOk(buildDatagram({ type: 'PULL_DATA', version: 2, token: 1, gatewayEui: 'zz' }).ok, 'bad EUI refused')
  t.notOk(buildPullResp(1, { freqHz: 868_100_000, rfch: 0, modu: 'LORA', datr: 'SF7BW125', size: 3, data: Uint8Array.of(1) }).ok, 'size mismatch refused')
})

t.test('rejections carry codes', async (t) => {
  const code = (b: Uint8Array): ParseErrorCode | 'ok' => {
    const r = parseDatagram(b)
    return r.ok ? 'ok' : r.code
  }
  const rx = (fields: Record<string, unknown>): Uint8Array =>
    dgram(2, 1, 0, EUI, JSON.stringify({ rxpk: [{ tmst: 1, freq: 868.1, stat: 1, modu: 'LORA', datr: 'SF7BW125', codr: '4/5', rssi: -50, lsnr: 7, size: 1, data: 'AA==', ...fields }] }))
  t.equal(code(rx({})), 'ok', 'the base rxpk is valid')
  t.equal(code(new Uint8Array(0)), 'too-short')
  t.equal(code(Uint8Array.of(2, 1, 2)), 'too-short')
  t.equal(code(dgram(2, 1, 0, EUI)), 'too-short', 'PUSH_DATA without JSON')
  t.equal(code(dgram(2, 1, 2, 'aa555a00000000')), 'too-short', 'PULL_DATA with a short EUI')
  t.equal(code(dgram(2, 1, 2, EUI, 'x')), 'trailing-bytes')
  t.equal(code(Uint8Array.of(2, 1, 2, 1, 0)), 'trailing-bytes', 'PUSH_ACK of 5 bytes')
  t.equal(code(dgram(3, 1, 0, EUI, '{}')), 'bad-version')
  t.equal(code(dgram(0, 1, 0, EUI, '{}')), 'bad-version')
  t.equal(code(dgram(2, 1, 6, EUI, '{}')), 'unknown-type')
  t.equal(code(new Uint8Array(65536)), 'too-large')
  t.equal(code(dgram(2, 1, 0, EUI, '{"rxpk":[')), 'bad-json')
  t.equal(code(dgram(2, 1, 0, EUI, '[]')), 'bad-json', 'JSON root must be an object')
  t.equal(code(new Uint8Array([...dgram(2, 1, 0, EUI), 0x7b, 0xff, 0x7d])), 'bad-json', 'not UTF-8')
  t.equal(code(dgram(2, 1, 0, EUI, JSON.stringify({ rxpk: new Array(MAX_RXPK + 1).fill({}) }))), 'too-large')
  t.equal(code(dgram(2, 1, 0, EUI, '{"rxpk":{}}')), 'bad-field')
  t.equal(code(rx({ size: 2 })), 'bad-field', 'size disagrees with data')
  t.equal(code(rx({ data: 'A' })), 'bad-field', 'base64 of impossible length')
  t.equal(code(rx({ data: 'AA=A' })), 'bad-field', 'padding in the middle')
  t.equal(code(rx({ data: 'A A=' })), 'bad-field', 'space')
  t.equal(code(rx({ tmst: 2 ** 32 })), 'bad-field', 'tmst over 32 bits')
  t.equal(code(rx({ tmst: -1 })), 'bad-field')
  t.equal(code(rx({ tmst: 1.5 })), 'bad-field')
  t.equal(code(rx({ tmst: '1' })), 'bad-field', 'string where a number belongs')
  t.equal(code(rx({ tmst: undefined })), 'bad-field', 'tmst required')
  t.equal(code(rx({ freq: 0 })), 'bad-field')
  t.equal(code(rx({ freq: 1e308 })), 'bad-field')
  t.equal(code(dgram(2, 1, 0, EUI, '{"rxpk":[{"tmst":1,"freq":868.1,"stat":1,"modu":"LORA","datr":"SF7BW125","size":1,"data":"AA==","rssi":NaN}]}')), 'bad-json', 'NaN is not JSON')
  t.equal(code(rx({ stat: 2 })), 'bad-field')
  t.equal(code(rx({ modu: 'GFSK' })), 'bad-field')
  t.equal(code(rx({ datr: 'SF13BW125' })), 'bad-field')
  t.equal(code(rx({ datr: 50000 })), 'bad-field', 'a number datr for LORA')
  t.equal(code(rx({ modu: 'FSK', datr: 'SF7BW125' })), 'bad-field')
  t.equal(code(rx({ codr: '9/9' })), 'bad-field')
  t.equal(code(rx({ rssi: -500 })), 'bad-field')
  t.equal(code(rx({ lsnr: 'x' })), 'bad-field')
  t.equal(code(rx({ time: 'yesterday' })), 'bad-field')
  t.equal(code(rx({ time: '2013-02-30T99:99:99Z' })), 'bad-field')
  t.equal(code(rx({ rsig: [{ ant: 0 }] })), 'bad-field', 'rsig entry without chan')
  t.equal(code(rx({ data: 'A'.repeat(344) + '==', size: 256 })), 'bad-field', 'over 255 bytes')
  t.equal(code(rx({ unknownField: { deep: [1, 2, 3] } })), 'ok', 'unknown fields are ignored')
  t.equal(code(rx({ data: 'AQ', size: 1 })), 'ok', 'unpadded base64')
  t.equal(code(dgram(2, 1, 0, EUI, '{"stat":{"lati":91}}')), 'bad-field')
  t.equal(code(dgram(2, 1, 0, EUI, '{"stat":{"rxnb":-1}}')), 'bad-field')
  t.equal(code(dgram(2, 1, 3, undefined, '{"txpk":{"freq":868.1,"rfch":0,"modu":"LORA","datr":"SF7BW125","codr":"4/5","size":1,"data":"AA=="}}')), 'bad-field', 'txpk without timing')
  t.equal(code(dgram(2, 1, 3, undefined, '{"txpk":{"imme":true,"freq":868.1,"rfch":0,"modu":"LORA","datr":"SF7BW125","size":1,"data":"AA=="}}')), 'bad-field', 'LORA txpk without codr')
  t.equal(code(dgram(2, 1, 3, undefined, '{"txpk":{"imme":true,"freq":868.1,"rfch":0,"modu":"FSK","datr":50000,"size":1,"data":"AA=="}}')), 'bad-field', 'FSK txpk without fdev')
  t.equal(code(dgram(2, 1, 3, undefined, '{}')), 'bad-field', 'PULL_RESP without txpk')
  t.equal(code(dgram(1, 1, 0, EUI, '{}')), 'ok', 'version 1 PUSH_DATA accepted')
  const deep = '['.repeat(100_000) + ']'.repeat(100_000)
  const r = parseDatagram(dgram(2, 1, 0, EUI, `{"rxpk":${deep}}`))
  t.equal(r.ok, false, 'deeply nested JSON is refused')
})

t.test('base64 decoding', async (t) => {
  t.same(decodeBase64(''), new Uint8Array(0))
  t.same(decodeBase64('AQID'), Uint8Array.of(1, 2, 3))
  t.same(decodeBase64('AQI='), Uint8Array.of(1, 2))
  t.same(decodeBase64('AQI'), Uint8Array.of(1, 2))
  t.same(decodeBase64('-_8='), Uint8Array.of(0xfb, 0xff), 'URL-safe alphabet')
  t.equal(decodeBase64('AQI=='), undefined)
  t.equal(decodeBase64('A==='), undefined)
  t.equal(decodeBase64('é'), undefined)
})

t.test('10,000 fuzzed datagrams never throw', async (t) => {
  let seed = 0x5eed
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed % n
  }
  const valid = [
    dgram(2, 1, 0, EUI, RXPK_EXAMPLE),
    dgram(2, 1, 0, EUI, STAT_EXAMPLE),
    dgram(2, 1, 3, undefined, TXPK_LORA),
    dgram(2, 1, 3, undefined, TXPK_FSK),
    dgram(2, 1, 5, EUI, '{"txpk_ack":{"error":"TOO_LATE"}}'),
    dgram(2, 1, 2, EUI),
  ]
  const codes = new Set<string>()
  let threw = 0
  let oks = 0
  for (let i = 0; i < 10_000; i++) {
    let b: Uint8Array
    const kind = i % 6
    const base = valid[rnd(valid.length)] ?? new Uint8Array(0)
    if (kind === 0) {
      b = new Uint8Array(rnd(200))
      for (let j = 0; j < b.length; j++) b[j] = rnd(256)
    } else if (kind === 1) {
      b = base.subarray(0, rnd(base.length + 1)) // truncated headers and bodies
    } else if (kind === 2) {
      b = Uint8Array.from(base)
      if (rnd(2)) b[0] = rnd(256) // wrong versions
      else b[3] = rnd(256) // unknown identifiers
    } else if (kind === 3) {
      b = Uint8Array.from(base) // bad JSON: flipped bytes in the body
      for (let k = 0; k < 1 + rnd(4); k++) {
        const at = 4 + rnd(Math.max(1, b.length - 4))
        if (at < b.length) b[at] = rnd(256)
      }
    } else if (kind === 4) {
      b = new Uint8Array(60_000 + rnd(10_000)) // giant payloads
      b.set(base.subarray(0, 12))
      b.fill(0x5b, 12) // '[[[[...'
    } else {
      const n = rnd(300)
      b = dgram(2, rnd(65536), 0, EUI, JSON.stringify({ rxpk: Array.from({ length: n }, () => ({ tmst: rnd(10), freq: rnd(2) ? 868.1 : 'x', stat: 1, modu: 'LORA', datr: 'SF7BW125', size: 1, data: 'AA==' })) }))
    }
    try {
      const r = parseDatagram(b)
      if (r.ok) oks++
      else codes.add(r.code)
    } catch {
      threw++
    }
  }
  t.equal(threw, 0, 'no throw')
  t.ok(oks > 0, 'some mutated datagrams still parse')
  for (const c of ['too-short', 'bad-version', 'unknown-type', 'bad-json', 'bad-field', 'too-large']) t.ok(codes.has(c), `saw ${c}`)
})
