// The MQTT broker and device-signed readings in a real gateway process
// (`fieldproof start` with [sources.mqtt] on a free 127.0.0.1 port):
// - Debian's mosquitto_pub and mqtt.js log in with `devices add mqtt`
//   credentials; a wrong password is refused;
// - a QoS 1 publish whose PUBACK arrived survives a SIGKILL right after;
// - signed readings over MQTT and HTTP: bad signature and replayed counter
//   refused with the reason visible to the device and counted in /metrics;
// - a signed reading's proof bundle verifies the gateway's batch signature
//   AND the device's own signature (verifyProofBundle and `fieldproof verify`);
// - a per-device HTTP token ingests only its own device's readings.

import t from 'tap'
import mqtt from 'mqtt'
import { execFile } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { secp256k1 } from '@noble/curves/secp256k1'
import { encodeSignedBinary, encodeSignedJson, signBody, SIGNED_JSON_MEDIA_TYPE } from '../../gateway/src/core/device-protocol.ts'
import { bytesToHex, publicKeyToAddress } from '../../gateway/src/core/hex.ts'
import { verifyProofBundle } from '../../gateway/src/core/proof.ts'
import { runCli, startGateway, type GatewayProcess } from '../helpers/gateway-process.ts'
import { freePort } from '../helpers/ports.ts'
import { mqttGatewayConfig } from '../helpers/mqtt.ts'

const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub'

const config = mqttGatewayConfig

function mosquittoPub(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(MOSQUITTO_PUB, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr })
    })
  })
}

async function readings(g: GatewayProcess, device: string): Promise<{ seq: string; reading: { metrics: { name: string; value: number }[]; auth: Record<string, unknown> } }[]> {
  const r = await fetch(`${g.url}/api/v1/readings?device=${encodeURIComponent(device)}&limit=100`)
  return ((await r.json()) as { readings: never[] }).readings
}

async function metric(g: GatewayProcess, re: RegExp): Promise<number> {
  const text = await (await fetch(`${g.url}/metrics`)).text()
  const m = re.exec(text)
  return m ? Number(m[1]) : 0
}

t.test('MQTT broker and signed readings in a real gateway', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  const port = await freePort()
  const cli = (args: string[]) => runCli([...args, '--state-dir', stateDir, '--json'])

  // Devices are registered before the start (and one while it runs, below).
  const plug = await cli(['devices', 'add', 'mqtt', '--id', 'plug-1', '--prefix', 'tele/plug1', '--format', 'tasmota'])
  t.equal(plug.code, 0, plug.stderr)
  const creds = JSON.parse(plug.stdout) as { username: string; password: string }
  t.equal(creds.username, 'plug-1')
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const signed = await cli(['devices', 'add', 'signed', '--id', 'node-7', '--public-key', bytesToHex(pub)])
  t.equal(signed.code, 0, signed.stderr)
  t.equal((JSON.parse(signed.stdout) as { address: string }).address, publicKeyToAddress(pub))
  const listed = await cli(['devices', 'list'])
  t.notMatch(listed.stdout, creds.password, 'the password is never listed')

  let g = await startGateway({ stateDir, config: config(port) })
  t.teardown(() => g.kill())
  const url = `mqtt://127.0.0.1:${port}`

  await t.test('mosquitto_pub: right and wrong password', async (t) => {
    if (!existsSync(MOSQUITTO_PUB)) {
      t.fail(`${MOSQUITTO_PUB} is missing (Debian package mosquitto-clients, installed by .ci/run)`)
      return
    }
    const payload = '{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},"TempUnit":"C"}'
    const ok = await mosquittoPub(['-h', '127.0.0.1', '-p', String(port), '-u', 'plug-1', '-P', creds.password, '-q', '1', '-t', 'tele/plug1/SENSOR', '-m', payload])
    t.equal(ok.code, 0, ok.stderr)
    const rows = await readings(g, 'plug-1')
    t.equal(rows.length, 1)
    t.same(rows[0]?.reading.metrics.map((m) => [m.name, m.value]), [['humidity_pct', 58.2], ['temperature_c', 24.6]])
    t.same(rows[0]?.reading.auth, { kind: 'mqtt-credentials', username: 'plug-1' })
    const bad = await mosquittoPub(['-h', '127.0.0.1', '-p', String(port), '-u', 'plug-1', '-P', 'nope', '-q', '1', '-t', 'tele/plug1/SENSOR', '-m', payload])
    t.not(bad.code, 0, 'wrong password: mosquitto_pub fails')
    t.match(bad.stderr, /not authori[sz]ed|bad user name or password/i)
    const anon = await mosquittoPub(['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', 'sim/x', '-m', '{"metrics":{"temperature_c":1}}'])
    t.not(anon.code, 0, 'anonymous refused outside simulation mode')
    t.ok((await metric(g, /fieldproof_mqtt_rejects_total\{cause="bad-credentials"\} (\d+)/)) >= 1)
  })

  await t.test('ACL violation refused and counted', async (t) => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, username: 'plug-1', password: creds.password, protocolVersion: 5 })
    const e = await c.publishAsync('tele/plug2/SENSOR', '{}', { qos: 1 }).then(() => undefined, (x: { code?: number }) => x)
    t.equal(e?.code, 0x87)
    await c.endAsync()
    t.equal(await metric(g, /fieldproof_mqtt_rejects_total\{cause="acl-publish"\} (\d+)/), 1)
  })

  await t.test('signed readings: MQTT 5 reason codes and HTTP bodies', async (t) => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, username: 'node-7', protocolVersion: 5 })
    const m1 = signBody({ deviceId: 'node-7', counter: 10n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 19.5 }] }, key)
    await c.publishAsync('fieldproof/node-7/up', Buffer.from(encodeSignedBinary(m1)), { qos: 1 })
    let reason = ''
    c.on('packetreceive', (p) => {
      if (p.cmd === 'puback') reason = (p as { properties?: { reasonString?: string } }).properties?.reasonString ?? ''
    })
    const replay = signBody({ deviceId: 'node-7', counter: 10n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 99 }] }, key)
    const e1 = await c.publishAsync('fieldproof/node-7/up', encodeSignedJson(replay), { qos: 1 }).then(() => undefined, (x: { code?: number }) => x)
    t.equal(e1?.code, 0x83, 'replayed counter: PUBACK 0x83')
    t.match(reason, /^replay: counter 10 is not above 10/)
    const forged = signBody({ deviceId: 'node-7', counter: 11n, metrics: [] }, secp256k1.utils.randomPrivateKey())
    const e2 = await c.publishAsync('fieldproof/node-7/up', encodeSignedJson(forged), { qos: 1 }).then(() => undefined, (x: { code?: number }) => x)
    t.equal(e2?.code, 0x87, 'bad signature: PUBACK 0x87')
    t.match(reason, /^bad-signature: /)
    await c.endAsync()

    const post = (body: string, path = '/api/v1/devices/node-7/readings') =>
      fetch(`${g.url}${path}`, { method: 'POST', headers: { 'content-type': SIGNED_JSON_MEDIA_TYPE }, body })
    const m2 = signBody({ deviceId: 'node-7', counter: 12n, timeMs: 1_700_000_000_000, metrics: [{ name: 'humidity_pct', unit: '%', value: 40 }] }, key)
    const r2 = await post(encodeSignedJson(m2))
    t.equal(r2.status, 201, 'HTTP: stored, no bearer token needed')
    t.equal(((await r2.json()) as { counter: string }).counter, '12')
    const dup = await post(encodeSignedJson(m2))
    t.equal(dup.status, 200, 'HTTP: the exact same message again is acknowledged, not stored twice')
    const r3 = await post(encodeSignedJson(signBody({ deviceId: 'node-7', counter: 11n, metrics: [] }, key)), '/api/v1/readings')
    t.equal(r3.status, 409, 'HTTP: counter regression → 409')
    t.equal(((await r3.json()) as { error: { code: string } }).error.code, 'replay')
    const r4 = await post(encodeSignedJson(signBody({ deviceId: 'node-7', counter: 13n, metrics: [] }, secp256k1.utils.randomPrivateKey())))
    t.equal(r4.status, 401)
    t.equal(((await r4.json()) as { error: { code: string } }).error.code, 'bad-signature')
    t.equal(await metric(g, /fieldproof_signed_rejects_total\{cause="replay",source="mqtt"\} (\d+)/), 1)
    t.equal(await metric(g, /fieldproof_signed_rejects_total\{cause="bad-signature",source="http"\} (\d+)/), 1)
    t.equal(await metric(g, /fieldproof_ingest_rejects_total\{cause="replay",source="http"\} (\d+)/), 1)

    // The proof bundle of the signed reading checks the gateway and the device.
    const rows = await readings(g, 'node-7')
    t.equal(rows.length, 2, 'two signed readings stored')
    const seq = rows[0]?.seq as string
    let bundle: unknown
    for (let i = 0; i < 50; i++) {
      const p = await fetch(`${g.url}/api/v1/proofs/${seq}`)
      if (p.status === 200) {
        bundle = await p.json()
        break
      }
      await sleep(200)
    }
    const report = verifyProofBundle(bundle, { expectedGateway: g.address as `0x${string}` })
    t.ok(report.ok, JSON.stringify(report.checks.find((x) => !x.ok)))
    t.match(report.checks.find((x) => x.name === 'device-signature')?.detail, new RegExp(`by device ${publicKeyToAddress(pub)}`))
    const file = join(dir, 'bundle.json')
    writeFileSync(file, JSON.stringify(bundle))
    const v = await runCli(['verify', file, '--json'])
    t.equal(v.code, 0, v.stdout + v.stderr)
    t.match(v.stdout, /device-signature/)
    // A tampered device signature fails the device check.
    const tampered = JSON.parse(JSON.stringify(bundle)) as { reading: { auth: { signature: string } } }
    const sig = tampered.reading.auth.signature
    tampered.reading.auth.signature = sig.slice(0, 10) + (sig[10] === '0' ? '1' : '0') + sig.slice(11)
    t.notOk(verifyProofBundle(tampered).ok)
  })

  await t.test('per-device HTTP token', async (t) => {
    const added = await cli(['devices', 'add', 'http', '--id', 'poster-1'])
    t.equal(added.code, 0, added.stderr)
    const { token } = JSON.parse(added.stdout) as { token: string }
    const post = (device: string) =>
      fetch(`${g.url}/api/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ device, metrics: { temperature_c: 18 } }) })
    t.equal((await post('poster-1')).status, 201)
    t.equal((await post('someone-else')).status, 403, 'a device token posts only its own readings')
    const rows = await readings(g, 'poster-1')
    t.same(rows[0]?.reading.auth, { kind: 'http-token', tokenId: 'poster-1' })
    await sleep(1200)
    const status = JSON.parse((await cli(['devices', 'list'])).stdout) as { id: string; accepted: number; rejected: number; lastSeenMs: number | null }[]
    const p = status.find((d) => d.id === 'poster-1')
    t.equal(p?.accepted, 1)
    t.equal(p?.rejected, 1)
    t.ok(p?.lastSeenMs)
    t.ok((status.find((d) => d.id === 'node-7')?.rejected ?? 0) >= 3, 'signed device rejects counted on the device')
  })

  await t.test('a QoS 1 reading whose PUBACK arrived survives SIGKILL right after', async (t) => {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, username: 'plug-1', password: creds.password, protocolVersion: 4 })
    await c.publishAsync('tele/plug1/SENSOR', '{"AM2301":{"Temperature":30.5,"Humidity":10.5},"TempUnit":"C"}', { qos: 1 })
    g.proc.kill('SIGKILL')
    await g.kill()
    c.end(true)
    g = await startGateway({ stateDir, config: config(port) })
    const rows = await readings(g, 'plug-1')
    t.ok(rows.some((r) => r.reading.metrics.some((m) => m.name === 'temperature_c' && m.value === 30.5)), 'the acknowledged reading is there after the crash')
    // Counters survive too: the replayed counter 12 is still refused.
    const again = await fetch(`${g.url}/api/v1/devices/node-7/readings`, {
      method: 'POST',
      headers: { 'content-type': SIGNED_JSON_MEDIA_TYPE },
      body: encodeSignedJson(signBody({ deviceId: 'node-7', counter: 12n, metrics: [] }, key)),
    })
    t.equal(again.status, 409)
    await g.stop()
  })
})
