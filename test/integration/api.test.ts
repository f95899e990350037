// The HTTP API end to end on real sockets: ingest acknowledged only once
// durable, queries, proofs that verify offline, and bad input that is
// refused with a reason, counted, and survived.

import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../gateway/src/config/load.ts'
import { verifyProofBundle } from '../../gateway/src/core/proof.ts'
import { Gateway } from '../../gateway/src/gateway.ts'
import { createLogger } from '../../gateway/src/log/logger.ts'
import { postReadings, runCli } from '../helpers/gateway-process.ts'
import { Writable } from 'node:stream'

const quiet = createLogger({ level: 'error', name: 'test', destination: new Writable({ write: (_c, _e, cb) => cb() }) })

async function startInProcess(t: Test, extra = '') {
  const dir = t.testdir()
  const file = join(dir, 'fieldproof.toml')
  writeFileSync(
    file,
    `[gateway]\nstate_dir = "state"\n[api]\nlisten = "127.0.0.1:0"\nmax_body_bytes = 65536\nmax_readings_per_request = 100\n[batch]\nmax_readings = 10\nmax_age_seconds = 3600\n[clock]\nsync_check = "none"\n[discovery]\nmdns = false\n${extra}`,
  )
  const loaded = loadConfig({ path: file, env: {} })
  const gw = new Gateway({ loaded, log: quiet })
  const s = await gw.start()
  const url = `http://127.0.0.1:${s.api.port}`
  const token = (await import('node:fs')).readFileSync(s.tokenFile, 'utf8').trim()
  t.teardown(() => gw.stop())
  return { gw, url, token, dir, address: s.address }
}

const sample = (i: number) => ({ device: `node-${i % 3}`, metrics: { temperature_c: 20 + i / 10, humidity_pct: 40 }, time: 1_764_000_000_000 + i })

t.test('ingest, query, batches and proofs', async (t) => {
  const g = await startInProcess(t)
  const status = (await (await fetch(`${g.url}/api/v1/status`)).json()) as Record<string, any>
  t.equal(status['gateway'].address, g.address, 'status shows the gateway address')
  t.equal(status['simulation'], false)

  t.equal((await postReadings({ url: g.url, token: 'wrong' }, sample(0))).status, 401, 'a wrong token is refused')
  t.equal((await fetch(`${g.url}/api/v1/readings`, { method: 'POST', body: '{}' })).status, 401, 'no token is refused')

  const one = await postReadings(g, sample(0))
  t.equal(one.status, 201)
  t.same(await one.json(), { accepted: 1, seqs: ['1'] })
  const many = await postReadings(g, Array.from({ length: 24 }, (_, i) => sample(i + 1)))
  t.equal(many.status, 201)
  t.same(((await many.json()) as { seqs: string[] }).seqs, Array.from({ length: 24 }, (_, i) => String(i + 2)))

  const page1 = (await (await fetch(`${g.url}/api/v1/readings?device=node-1&limit=3`)).json()) as { readings: any[]; next: string }
  t.equal(page1.readings.length, 3)
  t.ok(page1.readings.every((r) => r.reading.deviceId === 'node-1' && r.reading.source === 'http'))
  t.same(page1.readings[0].reading.auth, { kind: 'http-token', tokenId: 'api' }, 'the reading records how it was authenticated')
  const page2 = (await (await fetch(`${g.url}/api/v1/readings?device=node-1&limit=3&after=${page1.next}`)).json()) as { readings: any[] }
  t.ok(BigInt(page2.readings[0].seq) > BigInt(page1.next), 'pagination continues after the cursor')

  const batches = (await (await fetch(`${g.url}/api/v1/batches`)).json()) as { batches: any[] }
  t.same(batches.batches.map((b) => b.header.batchId), ['1', '2'], 'two batches of 10 sealed')

  const proofRes = await fetch(`${g.url}/api/v1/proofs/15`)
  t.equal(proofRes.status, 200)
  const bundle = (await proofRes.json()) as Record<string, any>
  const report = verifyProofBundle(bundle, { expectedGateway: g.address })
  t.ok(report.ok, 'the proof bundle verifies offline')
  t.equal((await fetch(`${g.url}/api/v1/proofs/25`)).status, 409, 'an unsealed reading has no proof yet')
  t.equal((await fetch(`${g.url}/api/v1/proofs/999`)).status, 404)

  // The CLI verifies the same bundle, and names the check that fails on a tampered one.
  const file = join(g.dir, 'bundle.json')
  writeFileSync(file, JSON.stringify(bundle))
  const ok = await runCli(['verify', file])
  t.equal(ok.code, 0, ok.stdout + ok.stderr)
  t.match(ok.stdout, /valid/)
  bundle['reading'].metrics[0].value += 1
  writeFileSync(file, JSON.stringify(bundle))
  const bad = await runCli(['verify', file])
  t.equal(bad.code, 1)
  t.match(bad.stdout, /INVALID: canonical/)

  const metrics = await (await fetch(`${g.url}/metrics`)).text()
  t.match(metrics, /fieldproof_readings_ingested_total\{source="http"\} 25/)
  t.match(metrics, /fieldproof_batches_sealed_total 2/)
  t.match(metrics, /# TYPE fieldproof_ingest_to_durable_seconds histogram/)
})

t.test('bad input gets 4xx with a reason, is counted, and the gateway stays up', async (t) => {
  const g = await startInProcess(t)
  const cases: [string, string | unknown, number, string, Record<string, string>?][] = [
    ['wrong type', { device: 'a', metrics: { temperature_c: 'hot' } }, 400, 'invalid-reading'],
    ['unknown unit', { device: 'a', metrics: [{ name: 'glow', value: 1, unit: 'furlongs' }] }, 400, 'unknown-unit'],
    ['wrong unit for a known metric', { device: 'a', metrics: [{ name: 'temperature_c', value: 1, unit: 'K' }] }, 400, 'invalid-reading'],
    ['unknown key', { device: 'a', metrics: {}, extra: 1 }, 400, 'invalid-reading'],
    ['bad device id', { device: 'a b', metrics: {} }, 400, 'invalid-reading'],
    ['invalid JSON', '{"device": ', 400, 'invalid-json'],
    ['not an object', '42', 400, 'invalid-reading'],
    ['empty array', '[]', 400, 'empty'],
    ['too many readings', Array.from({ length: 101 }, (_, i) => sample(i)), 413, 'too-many'],
    ['huge body', JSON.stringify({ device: 'a', metrics: {}, raw: '0x' + 'ab'.repeat(40_000) }), 413, 'too-large'],
    ['wrong content type', '{}', 415, 'unsupported-media-type', { 'content-type': 'text/plain' }],
  ]
  for (const [name, body, status, cause, headers] of cases) {
    const res = await postReadings(g, body, headers ?? {})
    const j = (await res.json()) as { error: { code: string; message: string } }
    t.equal(res.status, status, `${name}: ${status}`)
    t.equal(j.error.code, cause, `${name}: cause ${cause}`)
    t.ok(j.error.message.length > 10, `${name}: a reason (${j.error.message})`)
  }

  // 10,000 random byte strings, on few keep-alive connections.
  const statuses = new Map<number, number>()
  const queue = Array.from({ length: 10_000 }, () => randomBytes(1 + Math.floor(Math.random() * 200)))
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let b = queue.pop(); b; b = queue.pop()) {
        const res = await fetch(`${g.url}/api/v1/readings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${g.token}` }, body: b })
        await res.arrayBuffer()
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      }
    }),
  )
  const non4xx = [...statuses].filter(([s]) => s < 400 || s >= 500)
  t.same(non4xx, [], `every random body got a 4xx (${JSON.stringify([...statuses])})`)

  const status = await fetch(`${g.url}/api/v1/status`)
  t.equal(status.status, 200, 'the gateway is still up')
  const metrics = await (await fetch(`${g.url}/metrics`)).text()
  const invalidJson = Number(/fieldproof_ingest_rejects_total\{cause="invalid-json",source="http"\} (\d+)/.exec(metrics)?.[1])
  t.ok(invalidJson >= 9000, `random bytes counted as invalid-json (${invalidJson})`)
  t.match(metrics, /fieldproof_ingest_rejects_total\{cause="unknown-unit",source="http"\} 1/)
  t.match(metrics, /fieldproof_ingest_rejects_total\{cause="too-large",source="http"\} 1/)
  t.equal((await postReadings(g, sample(1))).status, 201, 'good input still accepted')
})
