// The root command: its table of lazily loaded commands, help and dispatch.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Io } from './cli.ts'
import { COMMANDS, ROOT_HELP, main } from './main.ts'

function capture(): { io: Io; out: string[]; err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (s) => out.push(s), err: (s) => err.push(s), env: {}, cwd: process.cwd() }, out, err }
}

/**
 * Source of a child ES module that records the URL of every module it loads
 * in `loaded`, imports main.ts as `main`, then runs `body`.
 */
function recordingLoads(body: string): string {
  const mainTs = fileURLToPath(new URL('./main.ts', import.meta.url))
  return `
    const { registerHooks } = await import('node:module')
    const loaded = []
    registerHooks({ load(url, ctx, next) { loaded.push(url); return next(url, ctx) } })
    const { main } = await import(${JSON.stringify(mainTs)})
    ${body}
  `
}

t.test('every entry names and summarises the command it loads', async (t) => {
  const names = new Set<string>()
  for (const e of COMMANDS) {
    t.notOk(names.has(e.name), `${e.name} listed once`)
    names.add(e.name)
    const cmd = await e.load()
    t.equal(cmd.name, e.name, `${e.name}: name`)
    t.equal(cmd.summary, e.summary, `${e.name}: the root help shows the command's own summary`)
    t.match(ROOT_HELP, new RegExp(`^  ${e.name} +${e.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
  }
})

t.test('help, unknown commands and dispatch', async (t) => {
  let c = capture()
  t.equal(await main(['--help'], c.io), 0)
  t.equal(c.out.join(''), ROOT_HELP)
  c = capture()
  t.equal(await main([], c.io), 2, 'no command: usage, exit 2')
  c = capture()
  t.equal(await main(['frobnicate'], c.io), 2)
  t.match(c.err.join(''), /unknown subcommand "frobnicate"; one of: start, status/)
  c = capture()
  t.equal(await main(['config', 'print'], c.io), 0, 'a command runs through its lazily loaded module')
  t.match(c.out.join(''), /\[gateway\]/)
  c = capture()
  t.equal(await main(['keys', '--help'], c.io), 0)
  t.match(c.out.join(''), /export/)
})

t.test('`fieldproof --help` loads no command module', (t) => {
  // A child process records every module it loads, then runs the root help.
  const script = recordingLoads(`
    const code = await main(['--help'], { out() {}, err() {}, env: {}, cwd: process.cwd() })
    process.stdout.write(JSON.stringify({ code, main: loaded.some((u) => u.endsWith('/cli/main.ts')), commands: loaded.filter((u) => u.includes('/cli/commands/')) }))
  `)
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const got = JSON.parse(r.stdout || 'null') as { code: number; main: boolean; commands: string[] }
  t.equal(got.code, 0)
  t.ok(got.main, 'the hook saw main.ts load (so it would see a command module)')
  t.same(got.commands, [], 'no module under cli/commands/ was loaded')
  t.end()
})

t.test('a running gateway loads neither TypeBox nor any other command', async (t) => {
  // `fieldproof start` in simulation mode, in a child that records every module it loads.
  const dir = t.testdir()
  const script = recordingLoads(`
    let err = ''
    const io = { out() {}, err(s) { err += s }, env: {}, cwd: ${JSON.stringify(dir)} }
    void main(['start', '--state-dir', ${JSON.stringify(dir)}, '--http-listen', '127.0.0.1:0', '--mqtt-listen', '127.0.0.1:0'], io)
    for (let i = 0; i < 600 && !/API +http/.test(err); i++) await new Promise((r) => setTimeout(r, 50))
    process.stdout.write(JSON.stringify({ ready: /API +http/.test(err), err: err.slice(-2000), loaded }))
    process.exit(0)
  `)
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: dir, timeout: 60_000 })
  const got = JSON.parse(r.stdout || 'null') as { ready: boolean; err: string; loaded: string[] } | null
  t.ok(got?.ready, `the gateway came up: ${got?.err ?? r.stderr}`)
  const loaded = got?.loaded ?? []
  t.ok(loaded.some((u) => u.includes('/pipeline/pipeline.ts')), 'the hook saw the pipeline load')
  t.same(loaded.filter((u) => u.includes('@sinclair/typebox')), [], 'no TypeBox module (the config is checked against its JSON form)')
  t.same(loaded.filter((u) => u.includes('/cli/commands/') && !u.endsWith('/cli/commands/start.ts')), [], 'no command module but start')
  t.same(loaded.filter((u) => /\.vectors\.ts$/.test(u)), [], 'no decoder test vectors')
})
