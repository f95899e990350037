// The MQTT broker's optional listeners in a real gateway process
// (docs/mqtt.md, `[sources.mqtt] tls_listen`, `tls_cert`, `tls_key`,
// `ws_listen`):
// - MQTT over TLS (mqtts): mqtt.js trusting the test CA logs in with
//   `devices add mqtt` credentials and publishes QoS 1; after the PUBACK the
//   reading is stored; a client trusting another CA is refused at the TLS
//   handshake;
// - MQTT over WebSocket (ws:// without TLS files, wss:// with them): a
//   device publishes QoS 1 and the reading is stored; an anonymous client is
//   refused (CONNACK 5, not authorized) outside simulation mode.
// Certificates are generated here with Debian's openssl (EC P-256,
// subjectAltName IP:127.0.0.1).

import t from 'tap'
import mqtt from 'mqtt'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { runCli, startGateway, type GatewayProcess } from '../helpers/gateway-process.ts'

const OPENSSL = '/usr/bin/openssl'

/** A self-signed EC certificate for 127.0.0.1 and localhost. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  execFileSync(OPENSSL, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' })
  return { cert, key }
}

/** The bound addresses the broker logged ('mqtt broker listening'). */
async function listening(g: GatewayProcess): Promise<Record<string, string>> {
  for (let i = 0; i < 200; i++) {
    for (const line of g.stderr().split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        const j = JSON.parse(line) as { msg?: string; listen?: Record<string, string> }
        if (j.msg === 'mqtt broker listening' && j.listen) return j.listen
      } catch {
        // partial line
      }
    }
    await sleep(50)
  }
  throw new Error(`the broker did not log its addresses:\n${g.stderr()}`)
}

async function stored(g: GatewayProcess, device: string): Promise<{ metrics: { name: string; value: number }[]; auth: { kind: string } }[]> {
  const r = await fetch(`${g.url}/api/v1/readings?device=${encodeURIComponent(device)}&limit=100`)
  return ((await r.json()) as { readings: { reading: { metrics: { name: string; value: number }[]; auth: { kind: string } } }[] }).readings.map((x) => x.reading)
}

function config(extra: string): string {
  return `[clock]
sync_check = "none"
[sources.sim]
enabled = false
[sources.mqtt]
enabled = true
listen = "127.0.0.1:0"
${extra}
`
}

async function addDevice(stateDir: string, id: string, prefix: string): Promise<{ username: string; password: string }> {
  const r = await runCli(['devices', 'add', 'mqtt', '--id', id, '--prefix', prefix, '--format', 'json', '--state-dir', stateDir, '--json'])
  if (r.code !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout) as { username: string; password: string }
}

/** Connect and report the outcome (CONNACK, error or a closed socket) instead of throwing or hanging. */
function tryConnect(url: string, o: mqtt.IClientOptions): Promise<{ ok: true; client: mqtt.MqttClient } | { ok: false; error: Error & { code?: unknown } }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...o })
    const fail = (error: Error & { code?: unknown }) => {
      client.end(true)
      resolve({ ok: false, error })
    }
    client.once('connect', () => resolve({ ok: true, client }))
    client.once('error', fail)
    client.once('close', () => fail(new Error('connection closed before CONNACK')))
  })
}

t.test('MQTT over TLS and secure WebSocket', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  const server = selfSigned(dir, 'gateway')
  const stranger = selfSigned(dir, 'stranger')
  const creds = await addDevice(stateDir, 'probe-tls', 'probe')
  const g = await startGateway({
    stateDir,
    config: config(`tls_listen = "127.0.0.1:0"\ntls_cert = "${server.cert}"\ntls_key = "${server.key}"\nws_listen = "127.0.0.1:0"`),
  })
  t.teardown(() => g.kill())
  const at = await listening(g)
  t.match(at, { tcp: /^127\.0\.0\.1:\d+$/, tls: /^127\.0\.0\.1:\d+$/, ws: /^127\.0\.0\.1:\d+$/ }, 'three listeners bound')
  const ca = readFileSync(server.cert)

  t.test('mqtts with the CA: QoS 1 publish, stored once acknowledged', async (t) => {
    const c = await tryConnect(`mqtts://${at['tls']}`, { ca, username: creds.username, password: creds.password })
    t.ok(c.ok, c.ok ? 'connected' : c.error.message)
    if (!c.ok) return
    t.ok((c.client.stream as { encrypted?: boolean }).encrypted, 'the connection is TLS')
    await c.client.publishAsync('probe/room', '{"metrics":{"temperature_c":21.5}}', { qos: 1 })
    const rs = await stored(g, 'probe-tls')
    t.equal(rs.length, 1, 'stored before the PUBACK arrived')
    t.equal(rs[0]?.metrics[0]?.value, 21.5)
    t.equal(rs[0]?.auth.kind, 'mqtt-credentials')
    await c.client.endAsync()
  })

  t.test('mqtts trusting another CA is refused at the handshake', async (t) => {
    const c = await tryConnect(`mqtts://${at['tls']}`, { ca: readFileSync(stranger.cert), username: creds.username, password: creds.password })
    t.notOk(c.ok, 'not connected')
    if (!c.ok) t.match(c.error.message, /self[- ]signed|unable to verify|certificate/i, c.error.message)
    if (c.ok) await c.client.endAsync()
  })

  t.test('wrong password over TLS: CONNACK 4', async (t) => {
    const c = await tryConnect(`mqtts://${at['tls']}`, { ca, username: creds.username, password: 'nope-nope-nope' })
    t.notOk(c.ok)
    if (!c.ok) t.equal(c.error.code, 4, c.error.message)
    if (c.ok) await c.client.endAsync()
  })

  t.test('wss (TLS files set): QoS 1 publish stored', async (t) => {
    const c = await tryConnect(`wss://${at['ws']}/mqtt`, { ca, username: creds.username, password: creds.password })
    t.ok(c.ok, c.ok ? 'connected' : c.error.message)
    if (!c.ok) return
    await c.client.publishAsync('probe/hall', '{"metrics":{"humidity_pct":40}}', { qos: 1 })
    const rs = await stored(g, 'probe-tls')
    t.ok(rs.some((r) => r.metrics.some((m) => m.name === 'humidity_pct' && m.value === 40)), 'stored')
    await c.client.endAsync()
  })

  t.test('plain mqtt:// to the TLS port does not get in', async (t) => {
    const c = await tryConnect(`mqtt://${at['tls']}`, { username: creds.username, password: creds.password, connectTimeout: 3000 })
    t.notOk(c.ok)
    if (c.ok) await c.client.endAsync()
  })
})

t.test('MQTT over WebSocket without TLS', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  const creds = await addDevice(stateDir, 'probe-ws', 'probews')
  const g = await startGateway({ stateDir, config: config('ws_listen = "127.0.0.1:0"') })
  t.teardown(() => g.kill())
  const at = await listening(g)
  t.notOk(at['tls'], 'no TLS listener without tls_listen')

  t.test('ws:// device: MQTT 5 and 3.1.1 publishes stored', async (t) => {
    for (const protocolVersion of [4, 5] as const) {
      const c = await tryConnect(`ws://${at['ws']}/mqtt`, { username: creds.username, password: creds.password, protocolVersion })
      t.ok(c.ok, c.ok ? `connected (MQTT level ${protocolVersion})` : c.error.message)
      if (!c.ok) continue
      await c.client.publishAsync('probews/x', JSON.stringify({ metrics: { temperature_c: protocolVersion } }), { qos: 1 })
      await c.client.endAsync()
    }
    const values = (await stored(g, 'probe-ws')).map((r) => r.metrics[0]?.value).sort()
    t.same(values, [4, 5])
  })

  t.test('ws:// refused publish outside the ACL (MQTT 5 PUBACK 0x87)', async (t) => {
    const c = await tryConnect(`ws://${at['ws']}`, { username: creds.username, password: creds.password, protocolVersion: 5 })
    t.ok(c.ok)
    if (!c.ok) return
    const e = await c.client.publishAsync('elsewhere/x', '{"metrics":{"temperature_c":1}}', { qos: 1 }).then(
      () => undefined,
      (x: { code?: number }) => x,
    )
    t.equal(e?.code, 0x87)
    await c.client.endAsync()
  })

  t.test('anonymous over ws:// is refused outside simulation', async (t) => {
    for (const protocolVersion of [4, 5] as const) {
      const c = await tryConnect(`ws://${at['ws']}`, { protocolVersion })
      t.notOk(c.ok, `MQTT level ${protocolVersion}: refused`)
      if (!c.ok) t.equal(c.error.code, protocolVersion === 5 ? 0x87 : 5, c.error.message)
      if (c.ok) await c.client.endAsync()
    }
  })

  t.test('a plain HTTP request to the WebSocket port is answered 426, not left hanging', async (t) => {
    const r = await fetch(`http://${at['ws']}/mqtt`, { signal: AbortSignal.timeout(10_000) })
    t.equal(r.status, 426)
    t.equal(r.headers.get('upgrade'), 'websocket')
    await r.text()
  })
})
