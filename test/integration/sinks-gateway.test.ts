// A real gateway (`fieldproof start`) with the HTTP, MQTT and archive sinks:
// the reference receiver accepts its batches and rejects a tampered one;
// the upstreams are down while a backlog builds (status and metrics show
// it); the gateway is SIGKILLed in the middle of draining the backlog and
// restarted: every sink resumes at its cursor, no batch is skipped, and a
// batch is seen twice only as the retry of the one in flight at the kill.

import t from 'tap'
import { userInfo } from 'node:os'
import Database from 'better-sqlite3'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import { createServer as createHttpServer } from 'node:http'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from 'mqtt'
import { decodeWire, encodeWire } from '../../gateway/src/pipeline/upstream-wire.ts'
import type { SinkBatch } from '../../gateway/src/pipeline/sink.ts'
import { Receiver } from '../../gateway/src/receiver/receiver.ts'
import { startGateway, postReadings, type GatewayProcess } from '../helpers/gateway-process.ts'
import { freePort } from '../helpers/ports.ts'

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

async function startBroker(conf: string, port: number): Promise<ChildProcess> {
  const proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' })
  for (const end = Date.now() + 5000; ; ) {
    const up = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1', () => (s.destroy(), resolve(true)))
      s.on('error', () => resolve(false))
    })
    // Connectable and still ours: another process must not have taken the port meanwhile.
    if (up && proc.exitCode === null && proc.signalCode === null) return proc
    if (Date.now() > end) throw new Error('mosquitto did not start')
    await sleep(25)
  }
}

async function stopBroker(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
  proc.kill('SIGTERM')
  await once(proc, 'exit')
}

const readings = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ device: `sink-${(from + i) % 3}`, metrics: { count: from + i, temperature_c: 20 + (i % 10) } }))

t.test('real gateway → receiver, MQTT, archive: backlog, SIGKILL mid-drain, resume', async (t) => {
  const dir = t.testdir({ broker: {} })
  const stateDir = join(dir, 'state')

  // Reference receiver behind a gate: 503 while "down", a delay per request while draining.
  const rx = new Receiver({ dbPath: join(dir, 'rx.db'), token: 'tok' })
  t.teardown(() => rx.close())
  let down = true
  let delayMs = 0
  const ledger: { batchId: string; code: string }[] = []
  const front = createHttpServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      if (down) return void res.writeHead(503, { 'retry-after': '0' }).end('maintenance')
      if (delayMs) await sleep(delayMs)
      if (!rx.authorized(req.headers.authorization)) return void res.writeHead(401).end()
      const r = rx.receive(Buffer.concat(chunks), req.headers['content-type'])
      ledger.push({ batchId: String(req.headers['x-fieldproof-batch-id']), code: r.body.code })
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body))
    })
  })
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => (front.close(() => r()), front.closeAllConnections())))
  const rxPort = (front.address() as { port: number }).port

  // MQTT broker (persistent sessions) and a subscriber; the broker starts later.
  const mqttPort = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  // `user`: run as root, mosquitto drops to user "mosquitto", which cannot write the session store into
  // this test's directory (it then loses every session on restart); as anyone else it has no effect.
  writeFileSync(conf, `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${join(dir, 'broker')}/\nuser ${userInfo().username}\n`)
  let broker: ChildProcess | undefined = await startBroker(conf, mqttPort)
  t.teardown(() => stopBroker(broker))
  const mqttSeen: bigint[] = []
  const sub = connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'sinks-gateway-sub', clean: false, reconnectPeriod: 100 })
  t.teardown(() => new Promise<void>((r) => sub.end(true, {}, () => r())))
  sub.on('message', (_t, payload) => {
    const d = decodeWire(new Uint8Array(payload), 'application/cbor')
    if (d.ok) mqttSeen.push(d.doc.signed.header.batchId)
  })
  await new Promise<void>((r) => sub.once('connect', () => r()))
  await sub.subscribeAsync('fp/+/batches', { qos: 1 })
  await stopBroker(broker)
  broker = undefined

  const config = `[batch]
max_readings = 5
max_age_seconds = 1
[clock]
sync_check = "none"
[sources.sim]
enabled = false
[sinks.http]
enabled = true
url = "http://127.0.0.1:${rxPort}/v1/batches"
auth_value = "Bearer tok"
timeout_ms = 3000
backoff_base_ms = 50
backoff_max_ms = 300
stuck_after_failures = 3
[sinks.mqtt]
enabled = true
url = "mqtt://127.0.0.1:${mqttPort}"
topic = "fp/{gateway}/batches"
format = "cbor"
timeout_ms = 3000
backoff_base_ms = 50
backoff_max_ms = 300
[sinks.archive]
enabled = true
dir = "archive"
`
  let g: GatewayProcess = await startGateway({ stateDir, config })
  t.teardown(() => g.kill())
  const res = await postReadings(g, readings(0, 40))
  t.equal(res.status, 201)
  await res.arrayBuffer()

  // Upstreams down: the backlog shows in status and metrics, the HTTP sink turns stuck.
  type SinkSt = { id: string; ackedBatchId: string; backlogBatches: number; backlogBytes: number; state: string; lastError: string | null }
  const sinks = async (): Promise<SinkSt[]> => ((await (await fetch(`${g.url}/api/v1/status`)).json()) as { sinks: SinkSt[] }).sinks
  let st: SinkSt[] = []
  for (const end = Date.now() + 20_000; Date.now() < end; await sleep(100)) {
    st = await sinks()
    if (st.find((s) => s.id === 'http')?.state === 'stuck' && st.find((s) => s.id === 'archive')?.ackedBatchId === '8' && st.find((s) => s.id === 'mqtt')?.lastError) break
  }
  t.match(st.find((s) => s.id === 'http'), { ackedBatchId: '0', backlogBatches: 8, state: 'stuck', lastError: /^batch 1: HTTP 503: maintenance/ })
  t.ok((st.find((s) => s.id === 'http')?.backlogBytes ?? 0) > 0)
  t.match(st.find((s) => s.id === 'mqtt'), { ackedBatchId: '0', backlogBatches: 8, lastError: /not connected/ })
  t.match(st.find((s) => s.id === 'archive'), { ackedBatchId: '8', backlogBatches: 0 })
  const metrics = await (await fetch(`${g.url}/metrics`)).text()
  t.match(metrics, /fieldproof_sink_backlog_batches\{sink="http"\} 8/)
  t.match(metrics, /fieldproof_sink_stuck\{sink="http"\} 1/)

  // Upstreams back, slowly; kill the gateway in the middle of the drain.
  delayMs = 250
  down = false
  broker = await startBroker(conf, mqttPort)
  await until(() => rx.batchIds(g.address).length >= 3, 15_000, 'a few batches at the receiver')
  await g.kill()
  const atKill = rx.batchIds(g.address).length
  t.ok(atKill < 8, `killed mid-backlog (${atKill} of 8 delivered)`)

  delayMs = 0
  g = await startGateway({ stateDir, config })
  const res2 = await postReadings(g, readings(40, 10))
  t.equal(res2.status, 201)
  await res2.arrayBuffer()
  await until(() => rx.batchIds(g.address).length === 10, 40_000, 'all 10 batches at the receiver')
  // Every batch acknowledged by the broker (PUBACK) moves the MQTT sink's cursor: all 10, none skipped.
  let mqttAcked = ''
  for (const end = Date.now() + 40_000; mqttAcked !== '10' && Date.now() < end; await sleep(100)) mqttAcked = (await sinks()).find((s) => s.id === 'mqtt')?.ackedBatchId ?? ''
  t.equal(mqttAcked, '10', 'the MQTT sink has all 10 acknowledged by the broker')
  // The observer's persistent session survives the broker restart (mosquitto saves it on SIGTERM), so it gets every batch.
  await until(() => new Set(mqttSeen).size === 10, 40_000, `all 10 batches over MQTT (seen ${[...new Set(mqttSeen)].join(',')})`)
  const indexFile = join(stateDir, 'archive', 'index.ndjson')
  await until(() => existsSync(indexFile) && readFileSync(indexFile, 'utf8').trim().split('\n').length === 10, 20_000, 'all 10 archived')

  const ids = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]
  t.same(rx.batchIds(g.address), ids, 'receiver: every batch, none skipped')
  const accepted = ledger.filter((l) => l.code === 'accepted').map((l) => l.batchId)
  t.same(accepted, ids.map(String), 'accepted once each, in order')
  const dupes = ledger.filter((l) => l.code === 'duplicate').map((l) => l.batchId)
  t.ok(dupes.length <= 1, 'at most the batch in flight at the kill is resent')
  // The batch in flight at the kill: stored by the receiver just before (cursor not yet saved) or just after (request already sent).
  if (dupes.length === 1) t.ok([String(atKill), String(atKill + 1)].includes(dupes[0] as string), `the duplicate (${dupes[0]}) is the batch in flight at the kill`)
  t.ok(ledger.every((l) => l.code === 'accepted' || l.code === 'duplicate'), 'nothing refused')
  const firstSeen = [...new Set(mqttSeen)]
  t.same(firstSeen, [...firstSeen].sort((a, b) => (a < b ? -1 : 1)), 'MQTT: batches arrive in order')
  const archived = readFileSync(indexFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { batchId: string }).batchId)
  t.same(archived, ids.map(String), 'archive: each batch once')
  st = await sinks()
  t.same(st.map((s) => [s.id, s.ackedBatchId, s.backlogBatches]), [['http', '10', 0], ['mqtt', '10', 0], ['archive', '10', 0]])

  // A tampered copy of a real batch is refused: one reading's byte changed.
  const db = new Database(join(dir, 'rx.db'), { readonly: true })
  const row = db.prepare('SELECT body, content_type FROM batches WHERE batch_id = 4').get() as { body: Buffer; content_type: string }
  db.close()
  const d = decodeWire(new Uint8Array(row.body), row.content_type)
  if (!d.ok || !d.doc.readings) throw new Error('stored body does not decode')
  const rs = d.doc.readings.map((r, i) => ({ seq: r.seq, leaf: new Uint8Array(32), canonical: i === 2 ? Uint8Array.from(r.canonical, (x, k) => (k === 20 ? x ^ 1 : x)) : r.canonical }))
  const tampered = { signed: d.doc.signed, readings: () => rs } as unknown as SinkBatch
  const { body, contentType } = encodeWire(tampered, 'canonical', 'json')
  const resp = await fetch(`http://127.0.0.1:${rxPort}/v1/batches`, { method: 'POST', body, headers: { 'content-type': contentType, authorization: 'Bearer tok' } })
  t.equal(resp.status, 422)
  t.match(await resp.json(), { code: /^invalid-(canonical|merkle)$/ })
  t.same(rx.batchIds(g.address), ids)
  await g.stop()
})
