// Crash safety with the commit thread ([store] commit_worker = true): MQTT
// clients publish QoS 1 readings to a real gateway that is killed with
// SIGKILL at random moments, three times over the same state directory.
// Every PUBACKed reading must be stored (invariant 1), seqs gap-free
// (invariant 2), every batch valid and linked (invariant 3).

import t from 'tap'
import Database from 'better-sqlite3'
import mqtt from 'mqtt'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { verifySignedBatch } from '../../gateway/src/core/batch.ts'
import { bytesToHex } from '../../gateway/src/core/hex.ts'
import { buildMerkleTree } from '../../gateway/src/core/merkle.ts'
import { startGateway } from '../helpers/gateway-process.ts'
import { storedReadings } from '../helpers/stored.ts'
import { freePort } from '../helpers/ports.ts'

const RUNS = 3

const config = (port: number) => `[batch]
max_readings = 50
max_age_seconds = 1
[clock]
sync_check = "none"
[sources.sim]
enabled = false
[sources.mqtt]
enabled = true
allow_anonymous = true
listen = "127.0.0.1:${port}"
[store]
commit_worker = true
commit_max_readings = 40
`

t.test('commit thread: SIGKILL at random moments loses no PUBACKed reading', async (t) => {
  const stateDir = join(t.testdir(), 'state')
  const acked = new Set<number>()
  let counter = 0
  for (let run = 0; run < RUNS; run++) {
    const port = await freePort()
    const g = await startGateway({ stateDir, config: config(port) })
    t.teardown(() => g.kill())
    let stop = false
    const open: mqtt.MqttClient[] = []
    const clients = Array.from({ length: 3 }, async (_, k) => {
      // The broker may still be binding its port when the gateway reports it started.
      let c: mqtt.MqttClient | undefined
      for (let i = 0; i < 100 && !c && !stop; i++) {
        c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, clientId: `crash-${run}-${k}` }).catch(async () => {
          await sleep(50)
          return undefined
        })
      }
      if (!c) return
      open.push(c)
      c.on('error', () => undefined)
      // Several publishes in flight per client, so transactions queue on the thread.
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (!stop) {
            const id = ++counter
            try {
              await c.publishAsync(`sim/crash-${k}`, JSON.stringify({ metrics: { count: id } }), { qos: 1 })
              acked.add(id)
            } catch {
              // The gateway died: this reading was never acknowledged.
              return
            }
          }
        }),
      )
      c.end(true)
    })
    await sleep(200 + Math.random() * 400)
    await g.kill()
    stop = true
    // Publishes still waiting for a PUBACK were never acknowledged.
    for (const c of open) c.end(true)
    await Promise.race([Promise.all(clients), sleep(1000)])
  }
  // A clean start and stop seals whatever the crashes left open.
  const last = await startGateway({ stateDir, config: config(await freePort()) })
  t.teardown(() => last.kill())
  t.equal(await last.stop(), 0, 'graceful stop exits 0')

  t.ok(acked.size > 50, `${acked.size} readings acknowledged across ${RUNS} crashes`)
  const db = new Database(join(stateDir, 'fieldproof.db'), { readonly: true })
  db.defaultSafeIntegers(true)
  const { rows, lastSeq, gaps, badLeaves, batchLeaves } = storedReadings(db)
  const stored = new Set<number>()
  for (const r of rows) if (r.count !== undefined) stored.add(r.count)
  t.equal(gaps, 0, 'seqs gap-free')
  t.equal(badLeaves, 0, 'every leaf stored with a batch matches its reading')
  t.ok(batchLeaves > 0, `${batchLeaves} leaves stored with the batches`)
  const lost = [...acked].filter((id) => !stored.has(id))
  t.same(lost, [], 'every PUBACKed reading is stored')

  type B = { id: bigint; first_seq: bigint; last_seq: bigint; hash: Buffer; prev_hash: Buffer; merkle_root: Buffer; signature: Buffer; gateway: string; sealed_at_ms: bigint; count: bigint }
  const batches = db.prepare('SELECT * FROM batches ORDER BY id').all() as B[]
  let prev = Buffer.alloc(32)
  let next = 1n
  let bad = 0
  for (const b of batches) {
    const leaves = rows.filter((r) => r.seq >= b.first_seq && r.seq <= b.last_seq).map((r) => r.leaf)
    const root = bytesToHex(buildMerkleTree(leaves).root)
    const signed = {
      header: { gateway: b.gateway as `0x${string}`, batchId: b.id, firstSeq: b.first_seq, lastSeq: b.last_seq, count: Number(b.count), merkleRoot: bytesToHex(new Uint8Array(b.merkle_root)), prevBatchHash: bytesToHex(new Uint8Array(b.prev_hash)), sealedAtMs: b.sealed_at_ms },
      hash: bytesToHex(new Uint8Array(b.hash)),
      signature: bytesToHex(new Uint8Array(b.signature)),
    }
    if (root !== signed.header.merkleRoot || !Buffer.from(b.prev_hash).equals(prev) || b.first_seq !== next || !verifySignedBatch(signed)) bad++
    prev = Buffer.from(b.hash)
    next = b.last_seq + 1n
  }
  t.equal(bad, 0, `${batches.length} batches: roots, signatures and links verify`)
  t.equal(next - 1n, lastSeq, 'every stored reading is in a batch')
  db.close()
})
