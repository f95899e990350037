// The LNS side of LoRa Basics Station over real WebSockets on 127.0.0.1, with a
// client in the test speaking the station's side of the protocol (field names
// and encodings of lorabasics/basicstation src/lora.c and src/s2e.c): router-info
// discovery, router_config for EU868 checked against the region table, updf of an
// ABP device and of a joined OTAA device becoming readings, a jreq answered with
// a dnmsg whose pdu opens with the AppKey, dntxed, timesync, token auth, TLS,
// and 2,000 fuzzed messages counted as rejects while the server stays up.

import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import WebSocket from 'ws'
import { deriveSessionKeys10 } from '../../gateway/src/core/lorawan/crypto.ts'
import { buildDataFrame, buildJoinRequest, decodeCfListFrequencies, openJoinAccept, type DataFrameSpec } from '../../gateway/src/core/lorawan/phy.ts'
import { decodeReading } from '../../gateway/src/core/canonical.ts'
import type { Reading } from '../../gateway/src/core/types.ts'
import { Clock } from '../../gateway/src/pipeline/clock.ts'
import type { MetricsRegistry } from '../../gateway/src/pipeline/metrics.ts'
import type { Pipeline } from '../../gateway/src/pipeline/pipeline.ts'
import type { Store } from '../../gateway/src/store/store.ts'
import { cfListChMask, EU868_CFLIST_FREQS_HZ, REGIONS } from '../../gateway/src/sources/lorawan/region.ts'
import { LorawanSource, type LorawanSectionConfig } from '../../gateway/src/sources/lorawan/server.ts'
import { gpsTimeUs, maxIfHz, parseJsonExact, type Sx1301Conf } from '../../gateway/src/sources/lorawan/station/protocol.ts'
import type { StationSectionConfig } from '../../gateway/src/sources/lorawan/station/server.ts'
import { openPipeline } from '../helpers/readings.ts'
import { APP_KEY, APP_SKEY, DEV_EUI, JOIN_EUI, k, lorawanConfig, NWK_SKEY, until } from '../helpers/lorawan.ts'

const ROUTER = 'b827ebfffe61a4c2'
const TOKEN = 'NNSXS.station-token-for-tests'
const XTIME = 12666373963464220n // 54 bits: beyond a double, as real stations send
const silent = pino({ level: 'silent' })

function stationConfig(over: Partial<StationSectionConfig> = {}): StationSectionConfig {
  return { enabled: true, listen: '127.0.0.1:0', tls_cert_file: '', tls_key_file: '', tls_client_ca_file: '', auth_token_file: '', max_stations: 8, ping_interval_s: 30, ...over }
}

function config(station: StationSectionConfig, over: Partial<LorawanSectionConfig> = {}): LorawanSectionConfig {
  return lorawanConfig({ dedup_window_ms: 50, station, ...over })
}

interface Harness {
  store: Store
  pipeline: Pipeline
  metrics: MetricsRegistry
  source: LorawanSource
  port: number
  clock: Clock
  readings(deviceId?: string): Reading[]
}

async function start(t: Test, cfg: LorawanSectionConfig, dir: string): Promise<Harness> {
  const { store, pipeline, metrics } = openPipeline(dir)
  const clock = new Clock({ syncCheck: 'none' })
  const source = new LorawanSource({ config: cfg, store, metrics, log: silent, clock, recentMs: 150, registryRefreshMs: 100 })
  const ac = new AbortController()
  const running = source.start({ ingest: (r) => pipeline.ingest(r), now: () => clock.now(), log: silent, metrics, bus: pipeline.bus }, ac.signal)
  await source.ready
  const addr = source.stationAddress
  if (!addr) throw new Error('station LNS not listening')
  t.teardown(async () => {
    ac.abort()
    await running
    pipeline.stop()
    store.close()
  })
  return {
    store,
    pipeline,
    metrics,
    source,
    port: addr.port,
    clock,
    readings(deviceId) {
      return store.queryReadings({ ...(deviceId !== undefined ? { deviceId } : {}), limit: 10_000 }).map((row) => decodeReading(row.canonical))
    },
  }
}

const counter = (h: Harness, name: string, labels: Record<string, string>): number =>
  (h.metrics as unknown as { counter(n: string, h: string): { get(l: Record<string, string>): number } }).counter(name, '').get(labels)

/** The station's side of a WebSocket: JSON messages in, queued JSON messages out. */
class StationClient {
  readonly ws: WebSocket
  readonly inbox: Record<string, unknown>[] = []
  #waiters: (() => void)[] = []
  closed = false

  private constructor(ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data) => {
      const p = parseJsonExact(String(data))
      if (p.ok) this.inbox.push(p.value as Record<string, unknown>)
      for (const w of this.#waiters.splice(0)) w()
    })
    ws.on('close', () => {
      this.closed = true
      for (const w of this.#waiters.splice(0)) w()
    })
  }

  static open(url: string, opts: WebSocket.ClientOptions = {}): Promise<StationClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts)
      const c = new StationClient(ws)
      ws.once('open', () => resolve(c))
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    })
  }

  send(o: unknown): void {
    this.ws.send(typeof o === 'string' ? o : JSON.stringify(o))
  }

  async next(msgtype?: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const i = this.inbox.findIndex((m) => msgtype === undefined || m['msgtype'] === msgtype)
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Record<string, unknown>
      if (this.closed) throw new Error(`closed while waiting for ${msgtype ?? 'a message'}`)
      const left = end - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${msgtype ?? 'a message'}`)
      await new Promise<void>((r) => {
        this.#waiters.push(r)
        setTimeout(r, left).unref()
      })
    }
  }

  close(): void {
    this.ws.close()
  }
}

/** Fields of a data frame as the station sends them (lora.c s2e_parse_lora_frame). */
function updfFields(frame: Uint8Array): Record<string, unknown> {
  const b = Buffer.from(frame)
  const foptsLen = (frame[5] ?? 0) & 0x0f
  const portOff = 8 + foptsLen
  return {
    msgtype: 'updf',
    MHdr: frame[0],
    DevAddr: b.readInt32LE(1),
    FCtrl: frame[5],
    FCnt: b.readUInt16LE(6),
    FOpts: b.subarray(8, 8 + foptsLen).toString('hex').toUpperCase(),
    FPort: portOff === frame.length - 4 ? -1 : frame[portOff],
    FRMPayload: b.subarray(portOff + 1, Math.max(portOff + 1, frame.length - 4)).toString('hex').toUpperCase(),
    MIC: b.readInt32LE(frame.length - 4),
  }
}

/** Radio fields of an uplink message (s2e.c s2e_flushRxjobs), xtime written digit for digit. */
function withRadio(fields: Record<string, unknown>, xtime: bigint, dr = 5, freq = 868_100_000, gpstime = 0): string {
  const body = JSON.stringify({ ...fields, RefTime: 0, DR: dr, Freq: freq }).slice(0, -1)
  return `${body},"upinfo":{"rctx":0,"xtime":${xtime},"gpstime":${gpstime},"fts":-1,"rssi":-53,"snr":8.5,"rxtime":${Date.now() / 1000}}}`
}

function frame(spec: Partial<DataFrameSpec> & { devAddr: number; fcnt32: number }, keys = { nwkSKey: k(NWK_SKEY), appSKey: k(APP_SKEY) }): Uint8Array {
  const b = buildDataFrame({ mtype: 'unconfirmed-data-up', fport: 2, payload: new Uint8Array([0x03, 0x67, 0x01, 0x10]), ...spec }, keys)
  if (!b.ok) throw new Error(b.reason)
  return b.bytes
}

async function routerInfo(port: number, router: unknown, headers: Record<string, string>, scheme = 'ws', opts: WebSocket.ClientOptions = {}): Promise<Record<string, unknown>> {
  const c = await StationClient.open(`${scheme}://127.0.0.1:${port}/router-info`, { headers, ...opts })
  c.send(typeof router === 'string' && router.startsWith('RAW:') ? `{"router":${router.slice(4)}}` : { router })
  const reply = await c.next()
  c.close()
  return reply
}

async function connectStation(h: Harness, headers: Record<string, string>): Promise<{ c: StationClient; routerConfig: Record<string, unknown> }> {
  const info = await routerInfo(h.port, formatId6Local(ROUTER), headers)
  const c = await StationClient.open(String(info['uri']), { headers })
  c.send({ msgtype: 'version', station: '2.0.6(rpi/std)', firmware: null, package: null, model: 'rpi', protocol: 2, features: 'rmtsh' })
  return { c, routerConfig: await c.next('router_config') }
}

function formatId6Local(eui: string): string {
  return [0, 4, 8, 12].map((i) => parseInt(eui.slice(i, i + 4), 16).toString(16)).join(':')
}

t.test('Basics Station: discovery, router_config, updf → reading, jreq → dnmsg join-accept, dntxed, timesync, auth, fuzz', async (t) => {
  const dir = t.testdir()
  const tokenFile = join(dir, 'tc.key')
  writeFileSync(tokenFile, `Authorization: Bearer ${TOKEN}\r\n`)
  const h = await start(t, config(stationConfig({ auth_token_file: tokenFile }), { gateway_euis: [ROUTER, 'aa555a0000000001'] }), dir)
  const auth = { Authorization: `Bearer ${TOKEN}` }
  h.store.upsertDevice({
    id: 'abp-1',
    kind: 'lorawan',
    config: JSON.stringify({ activation: 'abp', lorawanVersion: '1.0.4', devAddr: '26011bda', codec: 'cayenne-lpp' }),
    secret: JSON.stringify({ nwkSKey: NWK_SKEY, appSKey: APP_SKEY }),
  })
  h.store.upsertDevice({
    id: 'otaa-1',
    kind: 'lorawan',
    config: JSON.stringify({ activation: 'otaa', lorawanVersion: '1.0.3', devEui: DEV_EUI, joinEui: JOIN_EUI, codec: 'cayenne-lpp' }),
    secret: JSON.stringify({ appKey: APP_KEY }),
  })
  await new Promise((r) => setTimeout(r, 300)) // the registry refresh picks the devices up

  await t.test('router-info discovery', async (t) => {
    const byId6 = await routerInfo(h.port, 'b827:ebff:fe61:a4c2', auth)
    t.same(byId6, { router: 'b827:ebff:fe61:a4c2', muxs: '::0', uri: `ws://127.0.0.1:${h.port}/router-${ROUTER}` }, 'ID6 router id → muxs and uri')
    const byInt = await routerInfo(h.port, `RAW:${BigInt('0x' + ROUTER).toString()}`, auth)
    t.equal(byInt['uri'], `ws://127.0.0.1:${h.port}/router-${ROUTER}`, 'a 64-bit integer router id, exact')
    const byDash = await routerInfo(h.port, 'B8-27-EB-FF-FE-61-A4-C2', auth)
    t.equal(byDash['router'], 'b827:ebff:fe61:a4c2')
    const bad = await routerInfo(h.port, 'not-an-eui', auth)
    t.equal(bad['router'], 'not-an-eui')
    t.match(bad['error'], /EUI-64/, 'an invalid router id gets an error')
    t.notOk('uri' in bad)
    const denied = await routerInfo(h.port, '1:2:3:4', auth)
    t.match(denied['error'], /not accepted/, 'a router outside gateway_euis gets an error')
  })

  await t.test('bad token refused', async (t) => {
    const before = counter(h, 'fieldproof_lorawan_rejected_total', { reason: 'station-auth-failed' })
    await t.rejects(StationClient.open(`ws://127.0.0.1:${h.port}/router-info`), /HTTP 401/, 'no Authorization header')
    await t.rejects(StationClient.open(`ws://127.0.0.1:${h.port}/router-info`, { headers: { Authorization: 'Bearer wrong' } }), /HTTP 401/, 'wrong token')
    await t.rejects(StationClient.open(`ws://127.0.0.1:${h.port}/router-${ROUTER}`, { headers: { Authorization: `Bearer ${TOKEN}x` } }), /HTTP 401/, 'router socket: wrong token')
    t.equal(counter(h, 'fieldproof_lorawan_rejected_total', { reason: 'station-auth-failed' }) - before, 3, 'each refusal counted')
    await t.rejects(StationClient.open(`ws://127.0.0.1:${h.port}/router-0102030405060708`, { headers: auth }), /HTTP 403/, 'router outside gateway_euis')
  })

  const { c, routerConfig: rc } = await connectStation(h, auth)
  t.teardown(() => c.close())

  await t.test('router_config for EU868, field by field against the region table', async (t) => {
    const eu = REGIONS.EU868
    t.equal(rc['region'], 'EU863')
    t.equal(rc['hwspec'], 'sx1301/1')
    t.same(rc['freq_range'], [863_000_000, 870_000_000])
    t.equal(rc['NetID'], null)
    t.equal(rc['JoinEui'], null)
    t.same([rc['nocca'], rc['nodc'], rc['nodwell']], [false, false, false])
    t.ok(typeof rc['MuxTime'] === 'number' && Math.abs((rc['MuxTime'] as number) - Date.now() / 1000) < 60, 'MuxTime is now')
    const drs = rc['DRs'] as number[][]
    t.equal(drs.length, 16)
    for (let i = 0; i < 16; i++) {
      const d = eu.dataRates[i]
      const want = !d ? [-1, 0, 0] : d.modulation === 'FSK' ? [0, 0, 0] : [d.sf, d.bwKhz, 0]
      t.same(drs[i], want, `DR${i}`)
    }
    const confs = rc['sx1301_conf'] as Sx1301Conf[]
    t.equal(confs.length, 1)
    const sx = confs[0] as Sx1301Conf
    t.ok(sx.radio_0.enable && sx.radio_1.enable)
    const radios = [sx.radio_0.freq, sx.radio_1.freq]
    const multi: number[] = []
    for (let i = 0; i < 8; i++) {
      const ch = sx[`chan_multiSF_${i}`] as { enable: boolean; radio: number; if: number }
      t.ok(ch.enable, `chan_multiSF_${i} enabled`)
      t.ok(Math.abs(ch.if) <= maxIfHz(125_000), `chan_multiSF_${i} IF within the radio band`)
      multi.push((radios[ch.radio] as number) + ch.if)
    }
    t.same(multi.sort(), [...eu.defaultChannelsHz, ...EU868_CFLIST_FREQS_HZ].sort(), 'the default channels and the CFList channels of join-accepts')
    const std = sx.chan_Lora_std as { enable: boolean; radio: number; if: number; bandwidth: number; spread_factor: number }
    const d6 = eu.dataRates[6]
    t.same([std.enable, std.bandwidth, std.spread_factor], [true, d6?.modulation === 'LORA' ? d6.bwKhz * 1000 : -1, d6?.modulation === 'LORA' ? d6.sf : -1], 'single-SF channel is DR6')
    t.equal((radios[std.radio] as number) + std.if, 868_300_000)
    const fsk = sx.chan_FSK as { enable: boolean; radio: number; if: number; datarate: number }
    t.same([fsk.enable, fsk.datarate], [true, eu.dataRates[7]?.modulation === 'FSK' ? eu.dataRates[7].bitrate : -1], 'FSK channel is DR7')
    t.equal((radios[fsk.radio] as number) + fsk.if, 868_800_000)
  })

  await t.test('updf of an ABP device becomes a reading with radio metadata', async (t) => {
    const bytes = frame({ devAddr: 0x26011bda, fcnt32: 7 })
    const gps = gpsTimeUs(Date.now())
    c.send(withRadio(updfFields(bytes), XTIME, 5, 868_100_000, gps))
    await until(() => h.readings('abp-1').length === 1, 5000, 'ABP reading')
    const r = h.readings('abp-1')[0] as Reading
    t.same(r.metrics, [{ name: 'temperature_c_ch3', unit: 'Cel', value: 27.2 }], 'decrypted and decoded (Cayenne LPP)')
    t.same(r.auth, { kind: 'lorawan-mic', devAddr: 0x26011bda, fcnt: 7 })
    t.equal(r.radio?.['trust'], 'session')
    t.equal(r.radio?.['gateway_eui'], ROUTER)
    t.equal(r.radio?.['freq'], 868.1)
    t.equal(r.radio?.['datr'], 'SF7BW125', 'DR5 mapped through the region table')
    t.equal(r.radio?.['modu'], 'LORA')
    t.equal(r.radio?.['rssi'], -53)
    t.equal(r.radio?.['lsnr'], 8.5)
    t.equal(r.radio?.['tmst'], Number(XTIME & 0xffffffffn), 'tmst = the low 32 bits of xtime')
    t.equal(r.radio?.['tmms'], Math.floor(gps / 1000), 'gpstime kept as tmms (ms since the GPS epoch)')
    // The station's GPS second comes from this server's timesync: it must not vouch for the clock.
    t.equal(h.clock.state, 'unsynchronized', 'station GPS time does not mark the clock "gps"')
  })

  let devAddr = 0
  let keys = { nwkSKey: k(NWK_SKEY), appSKey: k(APP_SKEY) }
  await t.test('jreq of an OTAA device → dnmsg with a valid join-accept, timed from xtime; dntxed counted', async (t) => {
    const jr = buildJoinRequest({ joinEui: JOIN_EUI, devEui: DEV_EUI, devNonce: 0x2345 }, k(APP_KEY))
    if (!jr.ok) throw new Error(jr.reason)
    const b = Buffer.from(jr.bytes)
    const xtime = XTIME + 5_000_000n
    c.send(withRadio({ msgtype: 'jreq', MHdr: 0, JoinEui: '70-b3-d5-7e-d0-00-00-00', DevEui: '00-04-a3-0b-00-1c-05-30', DevNonce: 0x2345, MIC: b.readInt32LE(19) }, xtime, 3, 868_300_000))
    const dn = await c.next('dnmsg')
    t.equal(dn['dC'], 0, 'class A')
    t.equal(dn['DevEui'], '00-04-a3-0b-00-1c-05-30')
    t.equal(dn['RxDelay'], 5, 'JOIN_ACCEPT_DELAY1')
    t.equal(dn['xtime'], xtime, 'xtime of the jreq, digit for digit: the station adds RxDelay')
    t.equal(dn['rctx'], 0)
    t.equal(dn['RX1DR'], 3, 'RX1 DR = uplink DR3 with RX1DROffset 0')
    t.equal(dn['RX1Freq'], 868_300_000, 'EU868 RX1 on the uplink frequency')
    t.equal(dn['RX2DR'], REGIONS.EU868.rx2.dr)
    t.equal(dn['RX2Freq'], REGIONS.EU868.rx2.freqHz)
    t.type(dn['diid'], 'number')
    t.type(dn['MuxTime'], 'number')
    const opened = openJoinAccept(Uint8Array.from(Buffer.from(String(dn['pdu']), 'hex')), k(APP_KEY))
    if (!opened.ok) throw new Error(opened.reason)
    t.ok(opened.micValid, 'join-accept MIC verifies with the AppKey')
    t.equal(opened.fields.joinNonce, 0)
    t.equal(opened.fields.rxDelayS, 1)
    t.same(decodeCfListFrequencies(opened.fields.cfList ?? new Uint8Array(0)), EU868_CFLIST_FREQS_HZ, 'EU868 CFList')
    devAddr = opened.fields.devAddr
    keys = deriveSessionKeys10(k(APP_KEY), opened.fields.joinNonce, opened.fields.netId, 0x2345)

    const acksBefore = counter(h, 'fieldproof_lorawan_tx_ack_total', { error: 'NONE' })
    c.send(`{"msgtype":"dntxed","seqno":${String(dn['diid'])},"diid":${String(dn['diid'])},"DR":3,"Freq":868300000,"DevEui":"00-04-a3-0b-00-1c-05-30","rctx":0,"xtime":${xtime + 5_000_000n},"txtime":${Date.now() / 1000},"gpstime":0}`)
    await until(() => counter(h, 'fieldproof_lorawan_tx_ack_total', { error: 'NONE' }) === acksBefore + 1, 3000, 'dntxed counted as TX ack')
    const st = (h.source.status() as { basicsStation: { stations: Record<string, unknown>[] } }).basicsStation.stations.find((s) => s['gatewayEui'] === ROUTER)
    t.equal(st?.['connected'], true)
    t.equal(st?.['tx'], 1, 'one dnmsg')
    t.equal(st?.['txConfirmed'], 1, 'one dntxed')
    t.equal(st?.['rx'], 2)
    t.match(st?.['version'], { station: '2.0.6(rpi/std)', model: 'rpi', protocol: 2 })
  })

  await t.test('an uplink of the joined device through the station becomes a reading', async (t) => {
    c.send(withRadio(updfFields(frame({ devAddr, fcnt32: 0 }, keys)), XTIME + 20_000_000n))
    await until(() => h.readings('otaa-1').length === 1, 5000, 'OTAA reading')
    const r = h.readings('otaa-1')[0] as Reading
    t.same(r.auth, { kind: 'lorawan-mic', devAddr, fcnt: 0 })
    t.same(r.metrics, [{ name: 'temperature_c_ch3', unit: 'Cel', value: 27.2 }])
  })

  await t.test('timesync answered with GPS time', async (t) => {
    const before = gpsTimeUs(Date.now())
    c.send('{"msgtype":"timesync","txtime":1234567890123}')
    const ts = await c.next('timesync')
    const after = gpsTimeUs(Date.now())
    t.equal(ts['txtime'], 1234567890123, 'txtime echoed')
    const g = Number(ts['gpstime'])
    t.ok(g >= before && g <= after, 'gpstime: µs since 1980-01-06 with 18 leap seconds')
  })

  await t.test('2,000 fuzzed messages are counted as rejects; the server stays up', async (t) => {
    const stationRejects = (): number => Number((h.source.status() as { basicsStation: { stations: Record<string, unknown>[] } }).basicsStation.stations.find((s) => s['gatewayEui'] === ROUTER)?.['rejected'])
    const before = stationRejects()
    let seed = 0x2545f491
    const rnd = (n: number): number => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    const valid = updfFields(frame({ devAddr: 0x26011bda, fcnt32: 100 }))
    const required = ['MHdr', 'DevAddr', 'FCtrl', 'FCnt', 'FPort', 'MIC']
    const junk = [null, true, 'x', -1e30, 1.5, [], {}, '0x', 2 ** 40]
    const messages: (string | Buffer)[] = []
    for (let i = 0; i < 2000; i++) {
      switch (i % 8) {
        case 0: // bad JSON
          messages.push(JSON.stringify(valid).slice(0, rnd(60) + 1) + '\u0000'.repeat(rnd(3)))
          break
        case 1: // wrong or unknown msgtype
          messages.push(JSON.stringify({ ...valid, msgtype: ['dnmsg', 'router_config', 'UPDF', '', 'x'.repeat(rnd(100))][rnd(5)] }))
          break
        case 2: {
          // a missing required field
          const m: Record<string, unknown> = { ...valid }
          delete m[required[rnd(required.length)] as string]
          messages.push(withRadio(m, XTIME))
          break
        }
        case 3: // a field of the wrong type or range
          messages.push(withRadio({ ...valid, [required[rnd(required.length)] as string]: junk[rnd(junk.length)] }, XTIME))
          break
        case 4: // no radio metadata, or a DR the region does not have
          messages.push(rnd(2) === 0 ? JSON.stringify(valid) : withRadio(valid, XTIME, 8 + rnd(8)))
          break
        case 5: // huge frames (within the 1 MiB WebSocket limit)
          messages.push(JSON.stringify({ msgtype: 'updf', pad: 'A'.repeat(20_000 + rnd(200_000)) }))
          break
        case 6: // binary frames
          messages.push(Buffer.from([rnd(256), rnd(256), rnd(256)]))
          break
        default: // not an object, or a jreq with a broken EUI
          messages.push(rnd(2) === 0 ? ['1', '"updf"', 'null', '[{"msgtype":"updf"}]'][rnd(4)] as string : withRadio({ msgtype: 'jreq', MHdr: 0, JoinEui: 'zz', DevEui: '1::', DevNonce: 1, MIC: 1 }, XTIME))
      }
    }
    for (const m of messages) c.ws.send(m)
    await until(() => stationRejects() - before === 2000, 20_000, '2000 rejects')
    t.equal(stationRejects() - before, 2000, 'every fuzzed message counted as a reject')
    t.notOk(c.closed, 'the connection stays open')
    c.send('{"msgtype":"timesync","txtime":42}')
    t.equal((await c.next('timesync'))['txtime'], 42, 'the connection still answers')
    c.send(withRadio(updfFields(frame({ devAddr: 0x26011bda, fcnt32: 8 })), XTIME + 30_000_000n))
    await until(() => h.readings('abp-1').length === 2, 5000, 'reading after the fuzz')
    const again = await routerInfo(h.port, ROUTER, auth)
    t.equal(again['uri'], `ws://127.0.0.1:${h.port}/router-${ROUTER}`, 'the server still serves discovery')
  })
})

t.test('Basics Station over TLS (wss://) and a replaced connection', async (t) => {
  const dir = t.testdir()
  const cert = join(dir, 'lns.crt')
  const key = join(dir, 'lns.key')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const h = await start(t, config(stationConfig({ tls_cert_file: cert, tls_key_file: key })), dir)
  const ca = readFileSync(cert)
  const info = await routerInfo(h.port, ROUTER, {}, 'wss', { ca })
  t.equal(info['uri'], `wss://127.0.0.1:${h.port}/router-${ROUTER}`, 'discovery points to wss://')
  await t.rejects(StationClient.open(`wss://127.0.0.1:${h.port}/router-info`), 'an untrusted certificate is refused by the client')
  const c1 = await StationClient.open(String(info['uri']), { ca })
  c1.send({ msgtype: 'version', station: '2.0.6', protocol: 2 })
  t.equal((await c1.next('router_config'))['region'], 'EU863', 'router_config over TLS')
  const c2 = await StationClient.open(String(info['uri']), { ca })
  await until(() => c1.closed, 3000, 'the first connection replaced')
  c2.send({ msgtype: 'version', station: '2.0.6', protocol: 2 })
  t.equal((await c2.next('router_config'))['msgtype'], 'router_config')
  t.equal(counter(h, 'fieldproof_lorawan_station_connections_total', { event: 'replaced' }), 1)
  c2.close()
  await until(() => {
    const st = (h.source.status() as { basicsStation: { stations: Record<string, unknown>[] } }).basicsStation.stations[0]
    return st?.['connected'] === false
  }, 3000, 'disconnected in status')
})

t.test('Basics Station in US915: router_config of the sub-band, join-accept with RX1 by the mod-8 rule and a ChMask CFList', async (t) => {
  const dir = t.testdir()
  const h = await start(t, config(stationConfig(), { region: 'US915', sub_band: 2 }), dir)
  h.store.upsertDevice({
    id: 'us-1',
    kind: 'lorawan',
    config: JSON.stringify({ activation: 'otaa', lorawanVersion: '1.0.4', devEui: DEV_EUI, joinEui: JOIN_EUI, codec: 'raw' }),
    secret: JSON.stringify({ appKey: APP_KEY }),
  })
  await new Promise((r) => setTimeout(r, 300))
  const { c, routerConfig: rc } = await connectStation(h, {})
  t.teardown(() => c.close())
  t.equal(rc['region'], 'US902')
  t.same(rc['freq_range'], [902_000_000, 928_000_000])
  const sx = (rc['sx1301_conf'] as Sx1301Conf[])[0] as Sx1301Conf
  const radios = [sx.radio_0.freq, sx.radio_1.freq]
  const multi = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => {
    const ch = sx[`chan_multiSF_${i}`] as { radio: number; if: number }
    return (radios[ch.radio] as number) + ch.if
  })
  t.same(multi, [903_900_000, 904_100_000, 904_300_000, 904_500_000, 904_700_000, 904_900_000, 905_100_000, 905_300_000], 'sub-band 2: channels 8-15')
  const std = sx.chan_Lora_std as { radio: number; if: number; spread_factor: number; bandwidth: number }
  t.same([(radios[std.radio] as number) + std.if, std.spread_factor, std.bandwidth], [904_600_000, 8, 500_000], 'channel 65, DR4')
  t.equal(sx.chan_FSK.enable, false)

  const jr = buildJoinRequest({ joinEui: JOIN_EUI, devEui: DEV_EUI, devNonce: 1 }, k(APP_KEY))
  if (!jr.ok) throw new Error(jr.reason)
  // Channel 9 (904.1 MHz) at DR0 (SF10BW125).
  c.send(withRadio({ msgtype: 'jreq', MHdr: 0, JoinEui: JOIN_EUI, DevEui: DEV_EUI, DevNonce: 1, MIC: Buffer.from(jr.bytes).readInt32LE(19) }, XTIME, 0, 904_100_000))
  const dn = await c.next('dnmsg')
  t.equal(dn['RX1Freq'], 923_300_000 + (9 % 8) * 600_000, 'RX1 channel = uplink channel mod 8')
  t.equal(dn['RX1DR'], 10, 'DR0 → DR10 with RX1DROffset 0')
  t.same([dn['RX2DR'], dn['RX2Freq']], [8, 923_300_000])
  t.equal(dn['xtime'], XTIME)
  const opened = openJoinAccept(Uint8Array.from(Buffer.from(String(dn['pdu']), 'hex')), k(APP_KEY))
  if (!opened.ok) throw new Error(opened.reason)
  t.ok(opened.micValid)
  t.equal(opened.fields.rx2DataRate, 8)
  t.same([...(opened.fields.cfList ?? [])], [...(cfListChMask(REGIONS.US915, 2) ?? [1])], 'CFList type 1: channels 8-15 and 65')
  t.equal(opened.fields.cfList?.[15], 1, 'CFListType 1')
})

t.test('Basics Station client certificates (tls_client_ca_file) and the station limit', async (t) => {
  const dir = t.testdir()
  const f = (n: string): string => join(dir, n)
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore' })
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  ossl('req', '-x509', ...ec, '-keyout', f('lns.key'), '-out', f('lns.crt'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1')
  ossl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=station-ca')
  ossl('req', ...ec, '-keyout', f('station.key'), '-out', f('station.csr'), '-subj', '/CN=station')
  ossl('x509', '-req', '-in', f('station.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('station.crt'), '-days', '2')
  const h = await start(t, config(stationConfig({ tls_cert_file: f('lns.crt'), tls_key_file: f('lns.key'), tls_client_ca_file: f('ca.crt'), max_stations: 1 })), dir)
  const ca = readFileSync(f('lns.crt'))
  const clientTls = { ca, cert: readFileSync(f('station.crt')), key: readFileSync(f('station.key')) }
  await t.rejects(StationClient.open(`wss://127.0.0.1:${h.port}/router-info`, { ca }), 'no client certificate: refused')
  const info = await routerInfo(h.port, ROUTER, {}, 'wss', clientTls)
  t.equal(info['uri'], `wss://127.0.0.1:${h.port}/router-${ROUTER}`, 'discovery with a client certificate')
  const a = await StationClient.open(String(info['uri']), clientTls)
  a.send({ msgtype: 'version', station: '2.0.6', protocol: 2 })
  await a.next('router_config')
  await t.rejects(StationClient.open(`wss://127.0.0.1:${h.port}/router-0102030405060708`, clientTls), /HTTP 503/, 'max_stations reached: refused')
  t.equal(counter(h, 'fieldproof_lorawan_rejected_total', { reason: 'too-many-stations' }), 1)
  a.close()
  await until(() => (h.source.status() as { basicsStation: { stations: Record<string, unknown>[] } }).basicsStation.stations[0]?.['connected'] === false, 3000, 'first station gone')
  const b = await StationClient.open(`wss://127.0.0.1:${h.port}/router-0102030405060708`, clientTls)
  b.send({ msgtype: 'version', station: '2.0.6', protocol: 2 })
  t.equal((await b.next('router_config'))['msgtype'], 'router_config', 'a disconnected station makes room')
  b.close()
})
