// The built form (scripts/build-dist.ts: types stripped ahead of time) runs:
// the CLI answers, the decoder registry loads, and a gateway starts and serves.

import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import { once } from 'node:events'
import { ROOT } from '../helpers/gateway-process.ts'

t.test('the stripped JavaScript build runs', async (t) => {
  const dir = t.testdir({ run: {} })
  const out = join(dir, 'dist')
  const built = execFileSync(process.execPath, [join(ROOT, 'scripts/build-dist.ts'), '--out', out, '--link-modules'], { encoding: 'utf8' })
  t.match(built, /built \d+ modules/)
  const cli = join(out, 'gateway/src/cli/main.js')
  t.equal(execFileSync(process.execPath, [cli, '--version'], { encoding: 'utf8' }).trim(), JSON.parse(execFileSync('cat', [join(ROOT, 'gateway/package.json')], { encoding: 'utf8' })).version)
  const list = JSON.parse(execFileSync(process.execPath, [cli, 'decode', '--list'], { encoding: 'utf8' })) as { id: string }[]
  t.ok(list.some((d) => d.id === 'bthome'), 'decoders load in the built form')

  const cwd = join(dir, 'run')
  const proc = spawn(process.execPath, [cli, 'start', '--http-listen', '127.0.0.1:0', '--mqtt-listen', '127.0.0.1:0'], { cwd, env: { ...process.env, FIELDPROOF_CONFIG: '' }, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  for (let i = 0; i < 100 && !/API +http:\/\/127\.0\.0\.1:\d+/.test(err); i++) await new Promise((r) => setTimeout(r, 100))
  const url = /API +(http:\/\/127\.0\.0\.1:\d+)/.exec(err)?.[1]
  t.ok(url, 'the built gateway started')
  const status = (await (await fetch(`${url}/api/v1/status`)).json()) as { simulation: boolean }
  t.equal(status.simulation, true)
  proc.kill('SIGTERM')
  const [code] = (await once(proc, 'exit')) as [number | null]
  t.equal(code, 0)
})
