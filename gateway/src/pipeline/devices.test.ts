// DeviceRegistry: a counter is never accepted twice, also when the device
// row was not updated before a crash (device_counters, written with the
// reading, is the truth);
// concurrent messages of one device are decided in arrival order.

import t from 'tap'
import pino from 'pino'
import { secp256k1 } from '@noble/curves/secp256k1'
import { encodeSignedJson, signBody } from '../core/device-protocol.ts'
import { bytesToHex, publicKeyToAddress } from '../core/hex.ts'
import { openPipeline } from '../../../test/helpers/readings.ts'
import { DeviceRegistry } from './devices.ts'

const log = pino({ level: 'silent' })
const received = () => ({ bootId: '00'.repeat(16), monoNs: 1n, wallMs: Date.now(), clock: 'unsynchronized' as const })
const enc = (s: string) => new TextEncoder().encode(s)

t.test('counters survive a lost device-row update', async (t) => {
  const dir = t.testdir()
  const { store, pipeline, metrics } = openPipeline(dir)
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  store.upsertDevice({ id: 'n1', kind: 'signed', config: JSON.stringify({ address: publicKeyToAddress(pub), publicKey: bytesToHex(pub) }) })
  const a = new DeviceRegistry({ store, metrics, log, verifyWorkers: 1 })
  const ingest = (r: Parameters<typeof pipeline.ingest>[0]) => pipeline.ingest(r)
  const ok = await a.ingestSigned(enc(encodeSignedJson(signBody({ deviceId: 'n1', counter: 5n, metrics: [] }, key))), { source: 'http', received: received(), ingest })
  t.ok(ok.ok)
  // Simulate a crash before the lazy device-row write: a second registry on the same store.
  t.equal(JSON.parse(store.device('n1')!.state).counter, undefined, 'device row not yet updated')
  const b = new DeviceRegistry({ store, metrics, log, verifyWorkers: 0 })
  const again = await b.ingestSigned(enc(encodeSignedJson(signBody({ deviceId: 'n1', counter: 5n, metrics: [{ name: 'count', unit: 'count', value: 1 }] }, key))), { source: 'mqtt', received: received(), ingest })
  t.same(again.ok ? 'ok' : again.cause, 'replay', 'counter 5 refused from device_counters')
  await a.close()
  t.equal(JSON.parse(store.device('n1')!.state).counter, '5', 'device row written on close')
  await b.close()
  // Removed and registered again with the same key: the device row (and its state) is new, the mark is not.
  t.ok(store.removeDevice('n1'))
  store.upsertDevice({ id: 'n1', kind: 'signed', config: JSON.stringify({ address: publicKeyToAddress(pub), publicKey: bytesToHex(pub) }) })
  const c = new DeviceRegistry({ store, metrics, log, verifyWorkers: 0 })
  const replay = await c.ingestSigned(enc(encodeSignedJson(signBody({ deviceId: 'n1', counter: 4n, metrics: [] }, key))), { source: 'http', received: received(), ingest })
  t.same(replay.ok ? 'ok' : replay.cause, 'replay', 'counter 4 refused after the device was removed and added again')
  const next = await c.ingestSigned(enc(encodeSignedJson(signBody({ deviceId: 'n1', counter: 6n, metrics: [] }, key))), { source: 'http', received: received(), ingest })
  t.ok(next.ok, 'counter 6 accepted')
  await c.close()
  pipeline.stop()
  store.close()
})

t.test('concurrent messages: each counter once, in arrival order', async (t) => {
  const dir = t.testdir()
  const { store, pipeline, metrics } = openPipeline(dir)
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  // Registered by address: the key is learned from the first valid message.
  store.upsertDevice({ id: 'n2', kind: 'signed', config: JSON.stringify({ address: publicKeyToAddress(pub) }) })
  const reg = new DeviceRegistry({ store, metrics, log, verifyWorkers: 2 })
  const ingest = (r: Parameters<typeof pipeline.ingest>[0]) => pipeline.ingest(r)
  // Counter 3 twice (an identical resend) and a DIFFERENT message with the old counter 2.
  const msgs = [[1n, 1], [2n, 2], [3n, 3], [3n, 3], [4n, 4], [2n, 99], [5n, 5]].map(([c, v]) =>
    enc(encodeSignedJson(signBody({ deviceId: 'n2', counter: c as bigint, metrics: [{ name: 'count', unit: 'count', value: v as number }] }, key))),
  )
  const out = await Promise.all(msgs.map((m) => reg.ingestSigned(m, { source: 'mqtt', received: received(), ingest })))
  t.same(out.map((o) => (o.ok ? (o.duplicate ? 'dup' : 'ok') : o.cause)), ['ok', 'ok', 'ok', 'dup', 'ok', 'replay', 'ok'])
  t.equal(store.lastSeq(), 5n, 'five readings stored')
  t.match(JSON.parse(store.device('n2')!.config).publicKey, /^0x04/, 'public key learned and stored')
  await reg.close()
  pipeline.stop()
  store.close()
})
