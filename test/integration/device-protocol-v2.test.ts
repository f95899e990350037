// Device protocol version 2 (docs/device-protocol.md) in a real gateway
// process (`fieldproof start` with [sources.mqtt] on a free 127.0.0.1 port):
// - a version-2 reading (ECDSA over SHA-256 of the body) is stored over MQTT
//   (binary and JSON forms) and over HTTP, beside version 1 from the same device;
// - a bad signature, a high-s twin and a replayed counter are refused with
//   the same reason codes as version 1 (MQTT 5 PUBACK 0x87 / 0x83, HTTP
//   401 / 409) and counted in /metrics;
// - a device registered by address only has its key learned from its first
//   version-2 message;
// - the proof bundles of version-2 readings (including one whose v is the
//   other recovery id, which version 2 treats as a hint) pass
//   verifyProofBundle and `fieldproof verify` (device and batch).

import t from 'tap'
import mqtt from 'mqtt'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { secp256k1 } from '@noble/curves/secp256k1'
import { encodeSignedBinary, encodeSignedJson, signBody, SIGNED_JSON_MEDIA_TYPE, type SignedMessage } from '../../gateway/src/core/device-protocol.ts'
import { bytesToHex, hexToBytes, publicKeyToAddress } from '../../gateway/src/core/hex.ts'
import { verifyProofBundle } from '../../gateway/src/core/proof.ts'
import { runCli, startGateway, type GatewayProcess } from '../helpers/gateway-process.ts'
import { freePort } from '../helpers/ports.ts'
import { mqttGatewayConfig } from '../helpers/mqtt.ts'

const config = mqttGatewayConfig

interface Row {
  seq: string
  reading: { metrics: { name: string; value: number }[]; raw?: string; auth: { kind: string; signature?: string; counter?: string; address?: string } }
}

async function readings(g: GatewayProcess, device: string): Promise<Row[]> {
  const r = await fetch(`${g.url}/api/v1/readings?device=${encodeURIComponent(device)}&limit=100`)
  return ((await r.json()) as { readings: Row[] }).readings
}

async function metric(g: GatewayProcess, re: RegExp): Promise<number> {
  const text = await (await fetch(`${g.url}/metrics`)).text()
  const m = re.exec(text)
  return m ? Number(m[1]) : 0
}

async function proof(g: GatewayProcess, seq: string): Promise<unknown> {
  for (let i = 0; i < 50; i++) {
    const p = await fetch(`${g.url}/api/v1/proofs/${seq}`)
    if (p.status === 200) return p.json()
    await sleep(200)
  }
  throw new Error(`no proof bundle for seq ${seq}`)
}

const flipV = (m: SignedMessage): SignedMessage => {
  const signature = m.signature.slice()
  signature[64] = signature[64] === 27 ? 28 : 27
  return { body: m.body, signature }
}

t.test('device protocol version 2 over MQTT and HTTP in a real gateway', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  const port = await freePort()
  const cli = (args: string[]) => runCli([...args, '--state-dir', stateDir, '--json'])
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const address = publicKeyToAddress(pub)
  const added = await cli(['devices', 'add', 'signed', '--id', 'node-v2', '--public-key', bytesToHex(pub)])
  t.equal(added.code, 0, added.stderr)
  const key2 = secp256k1.utils.randomPrivateKey()
  const address2 = publicKeyToAddress(secp256k1.getPublicKey(key2, false))
  const byAddress = await cli(['devices', 'add', 'signed', '--id', 'node-addr', '--address', address2])
  t.equal(byAddress.code, 0, byAddress.stderr)

  const g = await startGateway({ stateDir, config: config(port) })
  t.teardown(() => g.kill())
  const url = `mqtt://127.0.0.1:${port}`

  await t.test('MQTT: stored, refused with version 1 reason codes', async (t) => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, username: 'node-v2', protocolVersion: 5 })
    let reason = ''
    c.on('packetreceive', (p) => {
      if (p.cmd === 'puback') reason = (p as { properties?: { reasonString?: string } }).properties?.reasonString ?? ''
    })
    const pub1 = (payload: string | Buffer) => c.publishAsync('fieldproof/node-v2/up', payload, { qos: 1 }).then(() => 0, (x: { code?: number }) => x.code ?? -1)
    const m1 = signBody({ version: 2, deviceId: 'node-v2', counter: 10n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 19.5 }] }, key)
    t.equal(await pub1(Buffer.from(encodeSignedBinary(m1))), 0, 'v2 binary form: PUBACK 0x00')
    t.equal(await pub1(Buffer.from(encodeSignedBinary(m1))), 0, 'the same message again: PUBACK 0x00 (not stored twice)')
    const m2 = signBody({ version: 2, deviceId: 'node-v2', counter: 11n, timeMs: 1_700_000_000_000, metrics: [{ name: 'humidity_pct', unit: '%', value: 41 }] }, key)
    t.equal(await pub1(encodeSignedJson(flipV(m2))), 0, 'v2 JSON form with the other v (a recovery hint): PUBACK 0x00')
    const m3 = signBody({ deviceId: 'node-v2', counter: 12n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] }, key)
    t.equal(await pub1(Buffer.from(encodeSignedBinary(m3))), 0, 'version 1 from the same device still accepted')
    const replay = signBody({ version: 2, deviceId: 'node-v2', counter: 11n, metrics: [] }, key)
    t.equal(await pub1(encodeSignedJson(replay)), 0x83, 'replayed counter: PUBACK 0x83')
    t.match(reason, /^replay: counter 11 is not above 12/)
    const forged = signBody({ version: 2, deviceId: 'node-v2', counter: 13n, metrics: [] }, secp256k1.utils.randomPrivateKey())
    t.equal(await pub1(encodeSignedJson(forged)), 0x87, 'signed by another key: PUBACK 0x87')
    t.match(reason, /^bad-signature: /)
    const good = signBody({ version: 2, deviceId: 'node-v2', counter: 13n, metrics: [] }, key)
    const high = good.signature.slice()
    high.set(hexToBytes('0x' + (secp256k1.CURVE.n - BigInt(bytesToHex(good.signature.subarray(32, 64)))).toString(16).padStart(64, '0')), 32)
    high[64] = high[64] === 27 ? 28 : 27
    t.equal(await pub1(Buffer.from(encodeSignedBinary({ body: good.body, signature: high }))), 0x87, 'high-s twin of a valid signature: PUBACK 0x87')
    t.match(reason, /^bad-signature: signature: s must be at most n\/2/)
    await c.endAsync()
    const rows = await readings(g, 'node-v2')
    t.equal(rows.length, 3, 'three readings stored (v2 binary, v2 JSON, v1)')
    t.equal(await metric(g, /fieldproof_signed_rejects_total\{cause="replay",source="mqtt"\} (\d+)/), 1)
    t.equal(await metric(g, /fieldproof_signed_rejects_total\{cause="bad-signature",source="mqtt"\} (\d+)/), 2)
  })

  await t.test('HTTP: stored, duplicate, replay, bad signature', async (t) => {
    const post = (body: string, path = '/api/v1/devices/node-v2/readings') => fetch(`${g.url}${path}`, { method: 'POST', headers: { 'content-type': SIGNED_JSON_MEDIA_TYPE }, body })
    const m = signBody({ version: 2, deviceId: 'node-v2', counter: 20n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 21 }] }, key)
    const r1 = await post(encodeSignedJson(m))
    t.equal(r1.status, 201)
    t.equal(((await r1.json()) as { counter: string }).counter, '20')
    const dup = await post(encodeSignedJson(m))
    t.equal(dup.status, 200, 'the exact same message again')
    t.equal(((await dup.json()) as { duplicate: boolean }).duplicate, true)
    const bin = await fetch(`${g.url}/api/v1/devices/node-v2/readings`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.fieldproof.signed' },
      body: Buffer.from(encodeSignedBinary(signBody({ version: 2, deviceId: 'node-v2', counter: 21n, metrics: [] }, key))),
    })
    t.equal(bin.status, 201, 'binary form')
    const r3 = await post(encodeSignedJson(signBody({ version: 2, deviceId: 'node-v2', counter: 19n, metrics: [] }, key)), '/api/v1/readings')
    t.equal(r3.status, 409)
    t.equal(((await r3.json()) as { error: { code: string } }).error.code, 'replay')
    const r4 = await post(encodeSignedJson(signBody({ version: 2, deviceId: 'node-v2', counter: 22n, metrics: [] }, secp256k1.utils.randomPrivateKey())))
    t.equal(r4.status, 401)
    t.equal(((await r4.json()) as { error: { code: string } }).error.code, 'bad-signature')
    const tampered = encodeSignedBinary(signBody({ version: 2, deviceId: 'node-v2', counter: 22n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 1 }] }, key))
    tampered[tampered.length - 66] = (tampered[tampered.length - 66] as number) ^ 0x01 // a bit of the value, under the signature
    const r5 = await fetch(`${g.url}/api/v1/devices/node-v2/readings`, { method: 'POST', headers: { 'content-type': 'application/vnd.fieldproof.signed' }, body: Buffer.from(tampered) })
    t.equal(r5.status, 401, 'an edited body no longer verifies')
    t.equal(await metric(g, /fieldproof_signed_rejects_total\{cause="bad-signature",source="http"\} (\d+)/), 2)
    t.equal(await metric(g, /fieldproof_signed_rejects_total\{cause="replay",source="http"\} (\d+)/), 1)
  })

  await t.test('registered by address: the key is learned from the first version-2 message', async (t) => {
    const post = (m: SignedMessage) => fetch(`${g.url}/api/v1/devices/node-addr/readings`, { method: 'POST', headers: { 'content-type': SIGNED_JSON_MEDIA_TYPE }, body: encodeSignedJson(m) })
    t.equal((await post(signBody({ version: 2, deviceId: 'node-addr', counter: 1n, metrics: [] }, secp256k1.utils.randomPrivateKey()))).status, 401, 'another key is refused')
    // The first message carries the other recovery id: (r, s) still verifies under the registered address.
    const first = signBody({ version: 2, deviceId: 'node-addr', counter: 1n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 5 }] }, key2)
    const flipped = first.signature.slice()
    flipped[64] = flipped[64] === 27 ? 28 : 27
    t.equal((await post({ ...first, signature: flipped })).status, 201, 'learned from a first message with the other v')
    t.equal((await post(signBody({ version: 2, deviceId: 'node-addr', counter: 2n, metrics: [] }, key2))).status, 201, 'then checked with the learned key')
    const rows = await readings(g, 'node-addr')
    t.equal(rows.length, 2)
    t.equal(rows[0]?.reading.auth.address?.toLowerCase(), address2.toLowerCase())
  })

  await t.test('proof bundles of version-2 readings verify (device and batch)', async (t) => {
    const rows = await readings(g, 'node-v2')
    const v2rows = rows.filter((r) => r.reading.raw?.startsWith('0x46504402'))
    t.ok(v2rows.length >= 3, 'version-2 readings stored with their raw body')
    const flipped = v2rows.find((r) => r.reading.auth.counter === '11')
    t.ok(flipped, 'the reading sent with the other v is there')
    for (const row of v2rows) {
      const bundle = await proof(g, row.seq)
      const report = verifyProofBundle(bundle, { expectedGateway: g.address as `0x${string}` })
      t.ok(report.ok, `seq ${row.seq}: ${JSON.stringify(report.checks.find((x) => !x.ok))}`)
      t.match(report.checks.find((x) => x.name === 'device-signature')?.detail, new RegExp(`protocol v2\\) by device ${address}`))
      const file = join(dir, `bundle-${row.seq}.json`)
      writeFileSync(file, JSON.stringify(bundle))
      const v = await runCli(['verify', file, '--json'])
      t.equal(v.code, 0, v.stdout + v.stderr)
      const out = JSON.parse(v.stdout) as { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }
      t.equal(out.ok, true)
      t.ok(out.checks.find((c) => c.name === 'device-signature')?.ok, '`fieldproof verify`: device-signature passes')
      t.ok(out.checks.find((c) => c.name === 'batch-signature')?.ok, '`fieldproof verify`: batch-signature passes')
      // Another signature in place of the device's fails the device check.
      const tampered = JSON.parse(JSON.stringify(bundle)) as { reading: { auth: { signature: string } } }
      const sig = tampered.reading.auth.signature
      tampered.reading.auth.signature = sig.slice(0, 10) + (sig[10] === '0' ? '1' : '0') + sig.slice(11)
      t.notOk(verifyProofBundle(tampered).ok, 'a tampered device signature fails')
    }
  })
})
