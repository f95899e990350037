// The MQTT source in-process (real TCP on 127.0.0.1, mqtt.js clients):
// credentials, ACLs, MQTT 5 reason codes, the commit-before-PUBACK order,
// decoders per device format, signed messages, packet size limit.

import t, { type Test } from 'tap'
import mqtt from 'mqtt'
import { createConnection } from 'node:net'
import pino from 'pino'
import { secp256k1 } from '@noble/curves/secp256k1'
import { signBody, encodeSignedJson, encodeSignedBinary } from '../../core/device-protocol.ts'
import { bytesToHex, publicKeyToAddress } from '../../core/hex.ts'
import { decodeReading } from '../../core/canonical.ts'
import { DeviceRegistry } from '../../pipeline/devices.ts'
import type { Counter } from '../../pipeline/metrics.ts'
import type { PipelineOptions } from '../../pipeline/pipeline.ts'
import type { Store } from '../../store/store.ts'
import { openPipeline } from '../../../../test/helpers/readings.ts'
import { MqttSource, type MqttSourceConfig } from './broker.ts'
import { generatePassword, hashPassword } from './credentials.ts'

const log = pino({ level: 'silent' })

const CONFIG: MqttSourceConfig = {
  listen: '127.0.0.1:0',
  allow_anonymous: false,
  max_connections: 50,
  max_packet_bytes: 4096,
  connect_timeout_ms: 2000,
  auth_failures_per_minute: 1000,
  tls_listen: '',
  tls_cert: '',
  tls_key: '',
  ws_listen: '',
}

async function setup(t: Test, over: Partial<MqttSourceConfig> = {}, pipelineOptions: Partial<PipelineOptions> = {}) {
  const dir = t.testdir()
  const { store, pipeline, metrics } = openPipeline(dir, pipelineOptions)
  const devices = new DeviceRegistry({ store, metrics, log, verifyWorkers: 0 })
  const rejects: string[] = []
  const source = new MqttSource({ config: { ...CONFIG, ...over }, store, devices, metrics, log, rejects: { reject: (c) => rejects.push(c) } })
  const abort = new AbortController()
  let ingested = 0
  const running = source.start(
    {
      ingest: (r) => {
        ingested += r.length
        return pipeline.ingest(r)
      },
      now: () => ({ bootId: '00'.repeat(16), monoNs: process.hrtime.bigint(), wallMs: Date.now(), clock: 'unsynchronized' }),
      log,
      metrics,
      bus: pipeline.bus,
    },
    abort.signal,
  )
  for (let i = 0; i < 100 && !source.addresses['tcp']; i++) await new Promise((r) => setTimeout(r, 10))
  const url = `mqtt://${source.addresses['tcp']}`
  t.teardown(async () => {
    abort.abort()
    await running
    await devices.close()
    pipeline.stop()
    store.close()
  })
  return { store, pipeline, metrics, devices, source, url, rejects, ingested: () => ingested }
}

function addMqttDevice(store: Store, id: string, format: string, prefixes: string[]): string {
  const password = generatePassword()
  store.upsertDevice({ id, kind: 'mqtt', config: JSON.stringify({ format, prefixes }), secret: JSON.stringify(hashPassword(password)) })
  return password
}

t.test('credentials: anonymous and wrong passwords are refused, v3.1.1 and v5', async (t) => {
  const g = await setup(t)
  const pw = addMqttDevice(g.store, 'plug-1', 'tasmota', ['tele/plug1'])
  await t.rejects(mqtt.connectAsync(g.url, { reconnectPeriod: 0, protocolVersion: 4 }), /Not authorized/i, 'anonymous, 3.1.1: return code 5')
  const e5 = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, protocolVersion: 5 }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(e5?.code, 0x87, 'anonymous, MQTT 5: CONNACK 0x87')
  await t.rejects(mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: 'wrong' }), /Bad username or password/i)
  const w5 = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, protocolVersion: 5, username: 'plug-1', password: 'wrong' }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(w5?.code, 0x86, 'wrong password, MQTT 5: CONNACK 0x86')
  const ok = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw })
  t.ok(ok.connected, 'right password connects')
  await ok.endAsync()
  t.ok(g.metrics.render().includes('fieldproof_mqtt_rejects_total{cause="bad-credentials"} 2'))
  t.ok(g.metrics.render().includes('fieldproof_mqtt_rejects_total{cause="anonymous"} 2'))
})

t.test('QoS 1: the PUBACK comes after the commit; Tasmota payload decoded', async (t) => {
  const g = await setup(t)
  const pw = addMqttDevice(g.store, 'plug-1', 'tasmota', ['tele/plug1'])
  for (const protocolVersion of [4, 5] as const) {
    const c = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw, protocolVersion })
    const before = g.store.lastSeq()
    await c.publishAsync('tele/plug1/SENSOR', '{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},"TempUnit":"C"}', { qos: 1 })
    // The PUBACK arrived: the reading must already be on disk.
    t.equal(g.store.lastSeq(), before + 1n, `v${protocolVersion}: stored before the PUBACK`)
    const row = g.store.reading(before + 1n)
    const r = decodeReading(row!.canonical)
    t.same(r.metrics.map((m) => [m.name, m.value]), [['humidity_pct', 58.2], ['temperature_c', 24.6]])
    t.same(r.auth, { kind: 'mqtt-credentials', username: 'plug-1' })
    // A topic of the device that carries no reading is accepted, not stored.
    await c.publishAsync('tele/plug1/LWT', 'Online', { qos: 1 })
    t.equal(g.store.lastSeq(), before + 1n, 'LWT not stored')
    await c.endAsync()
  }
})

t.test('ACL: publish outside the own prefixes; subscribe to #', async (t) => {
  const g = await setup(t)
  const pw = addMqttDevice(g.store, 'plug-1', 'tasmota', ['tele/plug1'])
  const c5 = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw, protocolVersion: 5 })
  const err = await c5.publishAsync('tele/plug2/SENSOR', '{}', { qos: 1 }).then(() => undefined, (e: { code?: number; message: string }) => e)
  t.equal(err?.code, 0x87, 'MQTT 5: PUBACK 0x87 not authorized')
  t.ok(c5.connected, 'MQTT 5: the connection stays')
  const sub = await c5.subscribeAsync('#', { qos: 1 }).then(() => undefined, (e: { packet?: { granted?: number[] } }) => e)
  t.same(sub?.packet?.granted, [0x87], 'MQTT 5: SUBACK 0x87 for #')
  const own = await c5.subscribeAsync('cmnd/plug1/#', { qos: 1 })
  t.equal(own[0]?.qos, 1, 'own command topic granted (Tasmota cmnd/)')
  await c5.endAsync()
  const c4 = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw, protocolVersion: 4 })
  const closed = new Promise<void>((resolve) => c4.once('close', () => resolve()))
  c4.publish('fieldproof/other/up', 'x', { qos: 1 })
  await closed
  t.pass('MQTT 3.1.1: an ACL violation closes the connection')
  c4.end(true)
  const text = g.metrics.render()
  t.match(text, /fieldproof_mqtt_rejects_total\{cause="acl-publish"\} 2/)
  t.match(text, /fieldproof_mqtt_rejects_total\{cause="acl-subscribe"\} 1/)
})

t.test('invalid payload: MQTT 5 PUBACK 0x99 with a reason string; 3.1.1 acknowledged and dropped', async (t) => {
  const g = await setup(t)
  const pw = addMqttDevice(g.store, 'esp-1', 'esphome', ['livingroom'])
  const c5 = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'esp-1', password: pw, protocolVersion: 5 })
  let puback: { reasonCode?: number; properties?: { reasonString?: string } } | undefined
  c5.on('packetreceive', (p) => {
    if (p.cmd === 'puback') puback = p as typeof puback
  })
  const err = await c5.publishAsync('livingroom/sensor/living_room_temperature/state', 'warm', { qos: 1 }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(err?.code, 0x99)
  t.match(puback?.properties?.reasonString ?? '', /^undecodable: esphome: malformed/)
  await c5.publishAsync('livingroom/sensor/living_room_temperature/state', '21.5', { qos: 1 })
  await c5.endAsync()
  const c4 = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'esp-1', password: pw, protocolVersion: 4 })
  const before = g.store.lastSeq()
  await c4.publishAsync('livingroom/sensor/living_room_temperature/state', 'warm', { qos: 1 })
  t.equal(g.store.lastSeq(), before, '3.1.1: acknowledged, nothing stored')
  t.ok(c4.connected)
  await c4.endAsync()
})

t.test('signed messages over MQTT: valid, replay, bad signature, duplicate', async (t) => {
  const g = await setup(t)
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  g.store.upsertDevice({ id: 'node-7', kind: 'signed', config: JSON.stringify({ address: publicKeyToAddress(pub), publicKey: bytesToHex(pub) }) })
  const c = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'node-7', protocolVersion: 5 })
  const m1 = signBody({ deviceId: 'node-7', counter: 5n, timeMs: 1_700_000_000_000, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 21.25 }] }, key)
  await c.publishAsync('fieldproof/node-7/up', encodeSignedJson(m1), { qos: 1 })
  const row = g.store.reading(g.store.lastSeq())
  const r = decodeReading(row!.canonical)
  t.equal(r.auth.kind, 'device-signature')
  t.same(r.raw, m1.body, 'raw holds exactly the signed body')
  // The same message again (a lost PUBACK): acknowledged, not stored twice.
  const seq = g.store.lastSeq()
  await c.publishAsync('fieldproof/node-7/up', Buffer.from(encodeSignedBinary(m1)), { qos: 1 })
  t.equal(g.store.lastSeq(), seq, 'exact duplicate not stored again')
  const old = signBody({ deviceId: 'node-7', counter: 4n, metrics: [] }, key)
  const e1 = await c.publishAsync('fieldproof/node-7/up', encodeSignedJson(old), { qos: 1 }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(e1?.code, 0x83, 'counter regression: 0x83')
  const other = signBody({ deviceId: 'node-7', counter: 6n, metrics: [] }, secp256k1.utils.randomPrivateKey())
  const e2 = await c.publishAsync('fieldproof/node-7/up', encodeSignedJson(other), { qos: 1 }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(e2?.code, 0x87, 'signature by another key: 0x87')
  const e3 = await c.publishAsync('tele/x/SENSOR', '{}', { qos: 1 }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(e3?.code, 0x87, 'a password-less signed login may publish only to fieldproof/<id>/up')
  await c.endAsync()
  const text = g.metrics.render()
  t.match(text, /fieldproof_signed_rejects_total\{cause="replay",source="mqtt"\} 1/)
  t.match(text, /fieldproof_signed_rejects_total\{cause="bad-signature",source="mqtt"\} 1/)
})

t.test('a packet larger than max_packet_bytes closes the connection before it is buffered', async (t) => {
  const g = await setup(t, { max_packet_bytes: 1024 })
  const port = Number(g.source.addresses['tcp']?.split(':').pop())
  const sock = createConnection(port, '127.0.0.1')
  await new Promise((r) => sock.once('connect', r))
  // CONNECT header declaring 2 MB of remaining length.
  sock.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x01]))
  await new Promise((r) => sock.once('close', r))
  t.match(g.metrics.render(), /fieldproof_mqtt_rejects_total\{cause="packet-too-large"\} 1/)
})

t.test('anonymous simulation clients publish only under sim/', async (t) => {
  const g = await setup(t, { allow_anonymous: true })
  const c = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, protocolVersion: 5 })
  await c.publishAsync('sim/th1', JSON.stringify({ metrics: { temperature_c: 20.5 } }), { qos: 1 })
  const r = decodeReading(g.store.reading(g.store.lastSeq())!.canonical)
  t.equal(r.deviceId, 'mqtt:th1')
  t.same(r.auth, { kind: 'none' })
  const e = await c.publishAsync('tele/x/SENSOR', '{}', { qos: 1 }).then(() => undefined, (x: { code?: number }) => x)
  t.equal(e?.code, 0x87)
  await c.endAsync()
})

t.test('commit thread: PUBACK after its commit; a failed commit gets no PUBACK and the message is resent', async (t) => {
  const g = await setup(t, {}, { commitWorker: true })
  const pw = addMqttDevice(g.store, 'plug-1', 'tasmota', ['tele/plug1'])
  const payload = '{"AM2301":{"Temperature":21.5,"Humidity":40.5},"TempUnit":"C"}'
  const c = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw })
  await Promise.all(Array.from({ length: 40 }, () => c.publishAsync('tele/plug1/SENSOR', payload, { qos: 1 })))
  t.equal(g.store.lastSeq(), 40n, 'every PUBACK came after its reading was committed')
  await c.endAsync()

  // The commit fails inside SQLite on the commit thread's connection.
  g.store.db.exec(`CREATE TRIGGER refuse_all BEFORE INSERT ON readings BEGIN SELECT RAISE(ABORT, 'disk trouble'); END`)
  const d = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw })
  let acked = false
  const closed = new Promise<void>((resolve) => d.once('close', () => resolve()))
  void d.publishAsync('tele/plug1/SENSOR', payload, { qos: 1 }).then(() => (acked = true), () => undefined)
  await closed
  t.notOk(acked, 'no PUBACK: the connection is closed and the client keeps the message')
  t.equal(g.store.lastSeq(), 40n, 'nothing stored')
  t.equal((g.metrics.get('fieldproof_mqtt_rejects_total') as Counter).get({ cause: 'commit-failed' }), 1, 'counted by cause')
  t.ok(g.rejects.includes('mqtt:commit-failed'), 'logged once per cause')
  d.end(true)

  // Once the store works again the resent message is stored and acknowledged.
  g.store.db.exec('DROP TRIGGER refuse_all')
  const e = await mqtt.connectAsync(g.url, { reconnectPeriod: 0, username: 'plug-1', password: pw })
  await e.publishAsync('tele/plug1/SENSOR', payload, { qos: 1 })
  t.equal(g.store.lastSeq(), 41n, 'stored with the next seq')
  await e.endAsync()
})
