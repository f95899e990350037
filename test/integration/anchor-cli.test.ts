// `fieldproof chain` and `fieldproof verify --rpc` argument handling, without a chain:
// help texts, usage errors, key files readable by others, an RPC that does not answer.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCommand, type Io } from '../../gateway/src/cli/cli.ts'
import { chainCommand } from '../../gateway/src/cli/commands/chain.ts'
import { verifyCommand } from '../../gateway/src/cli/commands/verify.ts'
import { TEST_KEY } from '../helpers/readings.ts'

async function run(cmd: typeof chainCommand, cwd: string, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const io: Io = { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n'), env: { FIELDPROOF_CONFIG: '' }, cwd }
  const code = await runCommand(cmd, argv, io)
  return { code, out, err }
}

t.test('every chain subcommand has --help', async (t) => {
  const dir = t.testdir()
  const top = await run(chainCommand, dir, ['--help'])
  t.equal(top.code, 0)
  for (const sub of ['deploy', 'claim', 'register', 'status', 'proof']) {
    t.match(top.out, new RegExp(`\\n  ${sub} `), `${sub} listed`)
    const h = await run(chainCommand, dir, [sub, '--help'])
    t.equal(h.code, 0)
    t.match(h.out, new RegExp(`^Usage: fieldproof chain ${sub}`))
  }
  const unknown = await run(chainCommand, dir, ['launch'])
  t.equal(unknown.code, 2)
  t.match(unknown.err, /unknown subcommand "launch"/)
})

t.test('usage errors and key files', async (t) => {
  const dir = t.testdir({ 'open.key': TEST_KEY.slice(2) + '\n' })
  const rpc = ['--rpc', 'http://127.0.0.1:9', '--chain-id', '31337']
  let r = await run(chainCommand, dir, ['deploy', '--chain-id', '1', '--key-file', 'x'])
  t.equal(r.code, 2)
  t.match(r.err, /an RPC URL is required/)
  r = await run(chainCommand, dir, ['deploy', '--rpc', 'ftp://x', '--chain-id', '1', '--key-file', 'x'])
  t.equal(r.code, 2)
  t.match(r.err, /not an http/)
  r = await run(chainCommand, dir, ['deploy', ...rpc])
  t.equal(r.code, 2)
  t.match(r.err, /--key-file FILE is required/)
  r = await run(chainCommand, dir, ['deploy', ...rpc, '--key-file', 'open.key'])
  t.equal(r.code, 1)
  t.match(r.err, /readable by other users.*chmod 600/)
  t.notMatch(r.err + r.out, TEST_KEY.slice(4, 40), 'the key never shows')
  writeFileSync(join(dir, 'ok.key'), TEST_KEY.slice(2) + '\n', { mode: 0o600 })
  r = await run(chainCommand, dir, ['deploy', ...rpc, '--key-file', 'ok.key'])
  t.equal(r.code, 1)
  t.match(r.err, /the RPC at http:\/\/127\.0\.0\.1:9 does not answer/)
  r = await run(chainCommand, dir, ['register', '--state-dir', dir, ...rpc, '--contract', '0x5FbDB2315678afecb367f032d93F642f64180aa3'])
  t.equal(r.code, 2)
  t.match(r.err, /exactly one of --claim FILE and --owner-key-file FILE/)
  r = await run(chainCommand, dir, ['status', '--state-dir', dir, ...rpc])
  t.equal(r.code, 2)
  t.match(r.err, /--contract \(or \[sinks.anchor\] contract\) ADDRESS is required/)
  r = await run(chainCommand, dir, ['claim', ...rpc, '--contract', '0x5FbDB2315678afecb367f032d93F642f64180aa3', '--gateway', 'nope', '--owner-key-file', 'ok.key'])
  t.equal(r.code, 2)
  t.match(r.err, /--gateway nope is not an Ethereum address/)
  r = await run(chainCommand, dir, ['proof', 'abc', '--state-dir', dir])
  t.equal(r.code, 2)
})

t.test('verify: --contract and --confirmations need --rpc; bad values are usage errors', async (t) => {
  const dir = t.testdir({ 'b.json': '{}' })
  let r = await run(verifyCommand, dir, ['b.json', '--contract', '0x5FbDB2315678afecb367f032d93F642f64180aa3'])
  t.equal(r.code, 2)
  t.match(r.err, /need --rpc URL/)
  r = await run(verifyCommand, dir, ['b.json', '--rpc', 'http://127.0.0.1:9', '--confirmations', '0'])
  t.equal(r.code, 2)
  r = await run(verifyCommand, dir, ['b.json', '--rpc', 'http://127.0.0.1:9', '--json'])
  t.equal(r.code, 1)
  const report = JSON.parse(r.out)
  t.equal(report.checks.find((c: { ok: boolean }) => !c.ok).name, 'shape', 'the offline checks run first')
  t.same(
    report.checks.filter((c: { skipped?: boolean }) => c.skipped).map((c: { name: string }) => c.name).slice(-4),
    ['chain-id', 'anchor', 'inclusion', 'confirmations'],
    'the chain checks are listed as skipped',
  )
})
