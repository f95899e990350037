// `fieldproof start` with no config file at all: simulation mode end to end.
// Within 30 s there are readings, sealed batches and a proof that
// `fieldproof verify` accepts; `status`, `keys show` and `export` agree.

import t from 'tap'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { runCli, startGateway } from '../helpers/gateway-process.ts'

t.test('simulation mode from nothing to a verified proof', async (t) => {
  const cwd = t.testdir()
  const t0 = Date.now()
  const g = await startGateway({ stateDir: '', cwd })
  t.teardown(() => g.kill())
  for (let i = 0; i < 40 && !/simulation mode/.test(g.stderr()); i++) await sleep(50)
  t.match(g.stderr(), /simulation mode/, 'the banner says simulation mode')
  t.match(g.stderr(), /"simulation":true/, 'and so does the log')
  t.match(g.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'listens on 127.0.0.1 only')
  t.equal(g.stateDir, join(cwd, '.fieldproof'))
  t.equal(statSync(join(cwd, '.fieldproof', 'gateway.key')).mode & 0o777, 0o600, 'the key file is 0600')
  t.notMatch(g.stderr(), new RegExp(readFileSync(join(cwd, '.fieldproof', 'gateway.key'), 'utf8').trim().replace(/^0x/, '')), 'the key is never printed')

  let bundle: Record<string, any> | undefined
  while (!bundle && Date.now() - t0 < 30_000) {
    await sleep(500)
    const res = await fetch(`${g.url}/api/v1/proofs/1`)
    if (res.status === 200) bundle = (await res.json()) as Record<string, any>
    else await res.arrayBuffer()
  }
  t.ok(bundle, `a proof within 30 s (${Date.now() - t0} ms)`)
  const readings = (await (await fetch(`${g.url}/api/v1/readings?limit=1000`)).json()) as { readings: any[] }
  const kinds = new Set(readings.readings.map((r) => r.reading.deviceId.split('-')[1]))
  t.same([...kinds].sort(), ['aq', 'power', 'th'], 'three kinds of simulated sensor')
  t.ok(readings.readings.every((r) => r.reading.metrics.length > 0 && r.reading.source === 'sim'))

  const file = join(cwd, 'proof.json')
  writeFileSync(file, JSON.stringify(bundle))
  const v = await runCli(['verify', file, '--gateway', g.address])
  t.equal(v.code, 0, v.stdout + v.stderr)

  const status = await runCli(['status', '--url', g.url, '--json'])
  t.equal(status.code, 0, status.stderr)
  t.equal(JSON.parse(status.stdout).gateway.address, g.address)
  t.equal(JSON.parse(status.stdout).simulation, true)

  const keys = await runCli(['keys', 'show'], { cwd })
  t.equal(keys.stdout.trim(), g.address, 'keys show prints the same address')

  const exp = await runCli(['export', '--to', '5'], { cwd })
  t.equal(exp.code, 0, exp.stderr)
  const lines = exp.stdout.trim().split('\n')
  t.ok(lines.length >= 1 && lines.length <= 5, `export wrote ${lines.length} proofs`)
  writeFileSync(file, lines[0] as string)
  t.equal((await runCli(['verify', file])).code, 0, 'an exported line verifies')

  const stopAt = Date.now()
  t.equal(await g.stop(), 0, 'SIGTERM: exit 0')
  t.ok(Date.now() - stopAt < 5000, `stopped in ${Date.now() - stopAt} ms`)
  t.match(g.stderr(), /gateway stopped/)
})
