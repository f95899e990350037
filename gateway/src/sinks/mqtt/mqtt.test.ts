// The MQTT sink against Debian's mosquitto, started on a free port, stopped
// and restarted in the middle of the backlog.

import t from 'tap'
import { userInfo } from 'node:os'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import { writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { connect } from 'mqtt'
import { verifySignedBatch } from '../../core/batch.ts'
import { MetricsRegistry } from '../../pipeline/metrics.ts'
import { SinkRunner, SinkRunners } from '../../pipeline/sink-runner.ts'
import { decodeWire } from '../../pipeline/upstream-wire.ts'
import { openPipeline, reading, TEST_ADDRESS } from '../../../../test/helpers/readings.ts'
import { expandTopic, MqttSink } from './mqtt.ts'
import { freePort } from '../../../../test/helpers/ports.ts'

const MOSQUITTO = '/usr/sbin/mosquitto'

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function startBroker(conf: string, port: number): Promise<ChildProcess> {
  const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  const end = Date.now() + 5000
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    // Connectable and still ours: another process must not have taken the port meanwhile.
    if (up && proc.exitCode === null && proc.signalCode === null) return proc
    if (Date.now() > end || proc.exitCode !== null) throw new Error('mosquitto did not start')
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function stopBroker(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  proc.kill('SIGTERM')
  await once(proc, 'exit')
}

t.test('topic template', (t) => {
  t.equal(expandTopic('net/{gateway}/b/{batch}', TEST_ADDRESS, 7n), `net/${TEST_ADDRESS.toLowerCase()}/b/7`)
  t.end()
})

t.test('publishes every batch with QoS 1 across a broker restart', async (t) => {
  const dir = t.testdir({ broker: {} })
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  // Persistence keeps the subscriber's session (and its queued QoS 1 messages) across the restart.
  // `user`: run as root, mosquitto drops to user "mosquitto", which cannot write the session store into
  // this test's directory (it then loses every session on restart); as anyone else it has no effect.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${join(dir, 'broker')}/\nuser ${userInfo().username}\n`)
  let broker = await startBroker(conf, port)
  t.teardown(() => stopBroker(broker))

  const received: bigint[] = []
  const sub = connect(`mqtt://127.0.0.1:${port}`, { clientId: 'fieldproof-test-sub', clean: false, reconnectPeriod: 100 })
  t.teardown(() => new Promise<void>((r) => sub.end(true, {}, () => r())))
  sub.on('message', (_topic, payload) => {
    const d = decodeWire(new Uint8Array(payload), 'application/json')
    if (d.ok && verifySignedBatch(d.doc.signed) && d.doc.readings?.length === 3) received.push(d.doc.signed.header.batchId)
  })
  await new Promise<void>((r) => sub.once('connect', () => r()))
  await sub.subscribeAsync(`fieldproof/${TEST_ADDRESS.toLowerCase()}/batches`, { qos: 1 })

  const { store, pipeline } = openPipeline(dir)
  const seal = async (from: number, n: number) => {
    for (let b = from; b < from + n; b++) {
      await pipeline.ingest(Array.from({ length: 3 }, (_, i) => reading(b * 3 + i)))
      pipeline.seal()
    }
  }
  await seal(0, 4)
  const sink = new MqttSink({ url: `mqtt://127.0.0.1:${port}`, topic: 'fieldproof/{gateway}/batches', clientId: 'fieldproof-test-pub', format: 'json', payload: 'canonical', reconnectMs: 100 })
  const runner = new SinkRunner({ sink, settings: { backoffBaseMs: 20, backoffMaxMs: 200, stuckAfterFailures: 1000, timeoutMs: 3000 }, store, log: pino({ level: 'silent' }), bus: pipeline.bus })
  const group = new SinkRunners([runner], new MetricsRegistry())
  group.start()
  await until(() => runner.ackedBatchId === 4n, 10_000, 'first 4 batches')

  await stopBroker(broker)
  t.ok(existsSync(join(dir, 'broker', 'mosquitto.db')), 'the broker saved its sessions (the subscriber keeps its queue)')
  await seal(4, 6)
  await until(() => runner.status().failures >= 2, 10_000, 'failures while the broker is down')
  t.equal(runner.ackedBatchId, 4n, 'nothing acknowledged without a broker')
  t.match(runner.status(), { backlogBatches: 6, lastError: /^batch 5: / })
  t.match(sink.status(), { connected: false })

  broker = await startBroker(conf, port)
  await until(() => runner.ackedBatchId === 10n, 30_000, 'all 10 batches after the restart')
  await until(() => new Set(received).size === 10, 30_000, `the subscriber to get all 10 (got ${[...new Set(received)].join(',')})`)
  const firsts = [...new Set(received)]
  t.same(firsts, [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n], 'each batch arrived, in order')
  t.equal(runner.status().lastError, null)
  await group.stop()
  pipeline.stop()
  store.close()
})
