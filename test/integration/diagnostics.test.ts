// `fieldproof diagnostics`: no secret in the file, the signature verifies,
// and any changed byte makes it fail.

import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../gateway/src/config/load.ts'
import { collectDiagnostics, signDiagnostics, verifyDiagnostics } from '../../gateway/src/service/diagnostics.ts'
import { runCli, startGateway } from '../helpers/gateway-process.ts'

const SINK_AUTH = 'Bearer sink-secret-Zq81xPk0'
const MQTT_PW = 'mqtt-password-secret-7731'
const TLS_KEY = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFakeFakeFakeFakeFakeFakeFakeFakeFake\n-----END PRIVATE KEY-----'

t.test('diagnostics: complete, secret-free, signed', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  const config = `[gateway]
name = "diag-gw"
[sinks.http]
enabled = true
url = "http://127.0.0.1:9/batches"
auth_value = "${SINK_AUTH}"
[sinks.mqtt]
password_file = "mqtt-password"
key_file = "mqtt-client.key"
[discovery]
mdns = false
`
  const gw = await startGateway({ stateDir, config })
  t.teardown(() => gw.stop())
  writeFileSync(join(stateDir, 'mqtt-password'), MQTT_PW + '\n', { mode: 0o600 })
  writeFileSync(join(stateDir, 'mqtt-client.key'), TLS_KEY + '\n', { mode: 0o600 })
  const key = readFileSync(join(stateDir, 'gateway.key'), 'utf8').trim()
  const secrets = { key, key0x: `0x${key}`, token: gw.token, sink: SINK_AUTH, sinkToken: SINK_AUTH.slice('Bearer '.length), mqtt: MQTT_PW, tls: TLS_KEY.split('\n')[1] ?? '' }

  const loaded = loadConfig({ path: `${stateDir}.toml`, overrides: { stateDir }, env: {} })
  const { archive, privateKey } = await collectDiagnostics({
    loaded,
    version: '9.9.9',
    status: async () => (await fetch(`${gw.url}/api/v1/status`)).json(),
    // Logs that leaked secrets are scrubbed too.
    logs: () => ({ source: 'test', text: `line 1\nAuthorization: Bearer ${gw.token}\nkey ${key}\nmqtt ${MQTT_PW}\n` }),
  })
  const bytes = await signDiagnostics(archive, privateKey)
  const text = bytes.toString('utf8')
  for (const [name, s] of Object.entries(secrets)) t.notOk(text.includes(s), `${name} is not in the file`)

  const doc = JSON.parse(text.slice(0, text.lastIndexOf('\n', text.length - 2) + 1)) as {
    gateway: { address: string; name: string }
    sections: { versions: { gateway: string; node: string; os: string }; config: { values: { sinks: { http: { auth_value: string; url: string }; mqtt: { password_file: string } } } }; status: { gateway: { address: string } }; storage: { sqlite: { ok: boolean; pragma: string }; files: Record<string, number>; fileSystem: { freeBytes: number } }; logs: { text: string } }
  }
  t.equal(doc.gateway.address.toLowerCase(), gw.address.toLowerCase())
  t.equal(doc.gateway.name, 'diag-gw')
  t.equal(doc.sections.versions.gateway, '9.9.9')
  t.equal(doc.sections.versions.node, process.version)
  t.type(doc.sections.versions.os, 'string')
  t.equal(doc.sections.config.values.sinks.http.auth_value, '[redacted]')
  t.equal(doc.sections.config.values.sinks.http.url, 'http://127.0.0.1:9/batches', 'the rest of the config is there')
  t.equal(doc.sections.config.values.sinks.mqtt.password_file, 'mqtt-password', 'file names stay, contents do not')
  t.equal(doc.sections.status.gateway.address.toLowerCase(), gw.address.toLowerCase(), 'the live status')
  t.match(doc.sections.storage.sqlite, { ok: true, pragma: 'quick_check' })
  t.ok((doc.sections.storage.files['fieldproof.db'] ?? 0) > 0, 'file sizes')
  t.ok(doc.sections.storage.fileSystem.freeBytes > 0, 'free space')
  t.match(doc.sections.logs.text, /Authorization: Bearer \[redacted\]/)

  const ok = await verifyDiagnostics(bytes)
  t.match(ok, { ok: true, name: 'diag-gw' })
  if (ok.ok) t.equal(ok.address.toLowerCase(), gw.address.toLowerCase())
  t.match(await verifyDiagnostics(bytes, '0x0000000000000000000000000000000000000001'), { ok: false, reason: /not by the expected/ })

  // One changed byte anywhere, content or signature line, fails the check.
  const positions = new Set<number>([0, 10, bytes.indexOf('"sections"'), bytes.indexOf('quick_check'), bytes.length - 2, bytes.length - 20, bytes.lastIndexOf('"signature"') + 20, bytes.lastIndexOf('"address"') + 14])
  for (let i = 0; i < 24; i++) positions.add(Math.floor((i + 0.5) * (bytes.length / 24)))
  for (const p of positions) {
    const changed = Buffer.from(bytes)
    changed[p] = (changed[p] ?? 0) ^ 0x01
    const r = await verifyDiagnostics(changed)
    t.equal(r.ok, false, `byte ${p} changed: ${r.ok ? 'accepted!' : r.reason}`)
  }
})

t.test('the command writes and verifies', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  const gw = await startGateway({ stateDir, config: '[gateway]\nname = "cli-diag"\n' })
  await gw.stop()
  const out = join(dir, 'diag.json')
  const w = await runCli(['diagnostics', '--config', `${stateDir}.toml`, '--state-dir', stateDir, '--out', out])
  t.equal(w.code, 0, w.stderr)
  t.equal(readFileSync(out).length > 100, true)
  t.notOk(readFileSync(out, 'utf8').includes(gw.token), 'no API token')
  const v = await runCli(['diagnostics', '--verify', out, '--json'])
  t.equal(v.code, 0, v.stdout + v.stderr)
  t.match(JSON.parse(v.stdout), { ok: true, name: 'cli-diag' })
  const bytes = readFileSync(out)
  bytes[200] = (bytes[200] ?? 0) ^ 0x20
  writeFileSync(out, bytes)
  const bad = await runCli(['diagnostics', '--verify', out])
  t.equal(bad.code, 1)
  t.match(bad.stdout, /NOT VALID/)
})
