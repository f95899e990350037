// `fieldproof update` with real processes: the restart command stops the
// running "gateway" and starts the one in /opt/fieldproof/current; each slot's
// gateway is a tiny real HTTP server answering /api/v1/status on 127.0.0.1
// (or, for a broken release, a process that exits), so the health check and
// the rollback are exercised end to end.

import t from 'tap'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { BUNDLE_MAGIC, openBundle, writeBundle } from '../../gateway/src/service/release-bundle.ts'
import { ROOT, runCli } from '../helpers/gateway-process.ts'
import { freePort } from '../helpers/ports.ts'

const run = promisify(execFile)

/** The "gateway" of a release: answers /api/v1/status with its RELEASE.json version, or exits at once when broken. */
function serverScript(broken: boolean): string {
  return broken
    ? `process.stderr.write('broken release\\n'); process.exit(3)\n`
    : `import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
const version = JSON.parse(readFileSync(new URL('../../../RELEASE.json', import.meta.url), 'utf8')).version
const port = Number(process.argv[2])
createServer((req, res) => {
  if (req.url === '/api/v1/status') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ version, health: 'healthy' })) }
  else { res.writeHead(404); res.end() }
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
`
}

function makeSlot(dir: string, version: string, broken = false): string {
  mkdirSync(join(dir, 'gateway/src/cli'), { recursive: true })
  mkdirSync(join(dir, 'node_modules/.bin'), { recursive: true })
  mkdirSync(join(dir, 'node_modules/tool'), { recursive: true })
  writeFileSync(join(dir, 'gateway/src/cli/main.js'), serverScript(broken))
  writeFileSync(join(dir, 'gateway/package.json'), JSON.stringify({ name: 'fieldproof', version, type: 'module' }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  writeFileSync(join(dir, 'node_modules/tool/cli.js'), '#!/usr/bin/env node\n')
  chmodSync(join(dir, 'node_modules/tool/cli.js'), 0o755)
  symlinkSync('../tool/cli.js', join(dir, 'node_modules/.bin/tool'))
  writeFileSync(join(dir, 'RELEASE.json'), JSON.stringify({ version, commit: `c0ffee${version}`, builtAt: '2026-11-24T18:00:00Z' }))
  return dir
}

/** Hash of every file and link under dir (relative paths). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string): void => {
    if (!existsSync(d)) return
    for (const n of readdirSync(d)) {
      const p = join(d, n)
      const st = lstatSync(p)
      const rel = p.slice(dir.length)
      if (st.isSymbolicLink()) out[rel] = '-> ' + readlinkSync(p)
      else if (st.isDirectory()) walk(p)
      else out[rel] = (st.mode & 0o777).toString(8) + ' ' + createHash('sha256').update(readFileSync(p)).digest('hex')
    }
  }
  walk(dir)
  return out
}

async function status(port: number): Promise<{ version: string } | null> {
  try {
    return (await (await fetch(`http://127.0.0.1:${port}/api/v1/status`)).json()) as { version: string }
  } catch {
    return null
  }
}

t.test('A/B update: install, refuse bad bundles, roll back an unhealthy release', async (t) => {
  const dir = t.testdir()
  const root = join(dir, 'root')
  const port = await freePort()
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  mkdirSync(join(root, 'etc/fieldproof/release-keys'), { recursive: true })
  writeFileSync(join(root, 'etc/fieldproof/release-keys/release.pub'), publicKey.export({ type: 'spki', format: 'pem' }))
  writeFileSync(join(root, 'etc/fieldproof/fieldproof.toml'), `[api]\nlisten = "127.0.0.1:${port}"\n[discovery]\nmdns = false\n`)
  mkdirSync(join(root, 'var/lib/fieldproof'), { recursive: true })
  writeFileSync(join(root, 'var/lib/fieldproof/gateway.key'), 'ab'.repeat(32) + '\n', { mode: 0o600 })
  writeFileSync(join(root, 'var/lib/fieldproof/fieldproof.db'), 'data')

  // Release 1.0.0 is running from slot a.
  makeSlot(join(root, 'opt/fieldproof/slots/a'), '1.0.0')
  symlinkSync('slots/a', join(root, 'opt/fieldproof/current'))
  // Outside the test directory: tap removes that before later teardowns run.
  const pidDir = mkdtempSync(join(tmpdir(), 'fp-update-'))
  const pidFile = join(pidDir, 'gateway.pid')
  const restartScript = join(dir, 'restart.mjs')
  writeFileSync(
    restartScript,
    `import { spawn } from 'node:child_process'
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs'
const pidFile = ${JSON.stringify(pidFile)}
if (existsSync(pidFile)) {
  const pid = Number(readFileSync(pidFile, 'utf8'))
  try { process.kill(pid, 'SIGTERM') } catch {}
  for (let i = 0; i < 500; i++) { try { process.kill(pid, 0) } catch { break } await new Promise((r) => setTimeout(r, 20)) }
}
const log = openSync(${JSON.stringify(join(dir, 'gateway.log'))}, 'a')
const child = spawn(process.execPath, [${JSON.stringify(join(root, 'opt/fieldproof/current/gateway/src/cli/main.js'))}, '${port}'], { detached: true, stdio: ['ignore', log, log] })
writeFileSync(pidFile, String(child.pid))
child.unref()
`,
  )
  const restartCommand = `${process.execPath} ${restartScript}`
  t.teardown(() => {
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL')
    } catch {
      // already gone
    }
    rmSync(pidDir, { recursive: true, force: true })
  })
  await run(process.execPath, [restartScript])
  for (let i = 0; i < 200 && (await status(port)) === null; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal((await status(port))?.version, '1.0.0', 'release 1.0.0 answers')

  const update = (bundle: string, timeout = '20') =>
    runCli(['update', bundle, '--root', root, '--restart-command', restartCommand, '--health-timeout', timeout, '--json'])
  const untouched = () => ({ etc: snapshot(join(root, 'etc')), var: snapshot(join(root, 'var')) })
  const configAndData = untouched()

  // 2.0.0 through the build script (gen-key too): installs into b and switches.
  const slot2 = makeSlot(join(dir, 'build/2'), '2.0.0')
  await run(process.execPath, [join(ROOT, 'scripts/build-release.ts'), '--gen-key', join(dir, 'other.pem')])
  t.ok(existsSync(join(dir, 'other.pub')), '--gen-key writes the public key beside')
  t.equal(lstatSync(join(dir, 'other.pem')).mode & 0o777, 0o600)
  writeFileSync(join(dir, 'release.pem'), keyPem, { mode: 0o600 })
  await run(process.execPath, [join(ROOT, 'scripts/build-release.ts'), '--slot', slot2, '--key', join(dir, 'release.pem'), '--out', join(dir, 'r2.fpr')])
  const r2 = await update(join(dir, 'r2.fpr'))
  t.equal(r2.code, 0, r2.stderr)
  t.match(JSON.parse(r2.stdout), { status: 'installed', version: '2.0.0', slot: 'b', previousSlot: 'a' })
  t.equal(readlinkSync(join(root, 'opt/fieldproof/current')), 'slots/b', 'current switched')
  t.equal((await status(port))?.version, '2.0.0', 'the new release answers')
  t.same(snapshot(join(root, 'opt/fieldproof/slots/b')), snapshot(slot2), 'slot b holds exactly the release: modes and symlinks too')
  t.equal(readlinkSync(join(root, 'opt/fieldproof/slots/b/node_modules/.bin/tool')), '../tool/cli.js')
  t.same(untouched(), configAndData, 'config, keys and data untouched')

  // Refusals: nothing touched anywhere under the root.
  const everything = () => snapshot(root)
  const before = everything()
  writeBundle(makeSlot(join(dir, 'build/3'), '3.0.0'), join(dir, 'foreign.fpr'), { version: '3.0.0', commit: 'x', builtAt: 'now' }, readFileSync(join(dir, 'other.pem'), 'utf8'))
  const foreign = await update(join(dir, 'foreign.fpr'))
  t.equal(foreign.code, 1)
  t.match(foreign.stderr, /refused: the signature does not verify with any trusted release key \(release\.pub\)/)
  t.same(everything(), before, 'a bundle signed by an untrusted key touches nothing')

  writeBundle(join(dir, 'build/3'), join(dir, 'r3.fpr'), { version: '3.0.0', commit: 'x', builtAt: 'now' }, keyPem)
  const bytes = readFileSync(join(dir, 'r3.fpr'))
  const opened = openBundle(join(dir, 'r3.fpr'))
  const tamperedFile = Buffer.from(bytes)
  tamperedFile[opened.payloadOffset + 10] = (tamperedFile[opened.payloadOffset + 10] ?? 0) ^ 0x01
  writeFileSync(join(dir, 'tampered-file.fpr'), tamperedFile)
  const tf = await update(join(dir, 'tampered-file.fpr'))
  t.equal(tf.code, 1)
  t.match(tf.stderr, /refused: \S+: content does not match its SHA-256 in the signed manifest/)
  t.same(everything(), before, 'a tampered file touches nothing')

  const tamperedManifest = Buffer.from(bytes)
  const at = tamperedManifest.indexOf('"version":"3.0.0"', BUNDLE_MAGIC.length) + '"version":"'.length
  tamperedManifest[at] = '4'.charCodeAt(0)
  writeFileSync(join(dir, 'tampered-manifest.fpr'), tamperedManifest)
  const tm = await update(join(dir, 'tampered-manifest.fpr'))
  t.equal(tm.code, 1)
  t.match(tm.stderr, /signature does not verify/)
  writeFileSync(join(dir, 'junk.fpr'), 'not a bundle at all')
  const junk = await update(join(dir, 'junk.fpr'))
  t.equal(junk.code, 1)
  t.match(junk.stderr, /not a release bundle/)
  t.same(everything(), before, 'nothing touched by any refusal')

  // 4.0.0 exits at once: the health check fails, current goes back to b, 2.0.0 runs again.
  writeBundle(makeSlot(join(dir, 'build/4'), '4.0.0', true), join(dir, 'r4.fpr'), { version: '4.0.0', commit: 'bad', builtAt: 'now' }, keyPem)
  const r4 = await update(join(dir, 'r4.fpr'), '3')
  t.equal(r4.code, 1, 'a rolled-back update exits 1')
  const res4 = JSON.parse(r4.stdout) as { status: string; slot: string; failedSlot: string; reason: string; previousHealthy: boolean }
  t.match(res4, { status: 'rolled-back', slot: 'b', failedSlot: 'a', previousHealthy: true })
  t.match(res4.reason, /4\.0\.0 did not answer healthy within 3 s/)
  t.equal(readlinkSync(join(root, 'opt/fieldproof/current')), 'slots/b', 'current is back on the previous slot')
  t.equal((await status(port))?.version, '2.0.0', 'the previous release answers again')
  t.same(untouched(), configAndData, 'config, keys and data still untouched')
  t.notOk(existsSync(join(root, 'opt/fieldproof/.update.lock')), 'the lock is released')
  t.same(readdirSync(join(root, 'opt/fieldproof/slots')).sort(), ['a', 'b'], 'no staging leftovers')
})

t.test('build-release refuses a slot whose versions disagree', async (t) => {
  const dir = t.testdir()
  const slot = makeSlot(join(dir, 'slot'), '5.0.0')
  writeFileSync(join(slot, 'gateway/package.json'), JSON.stringify({ version: '5.0.1' }))
  const { privateKey } = generateKeyPairSync('ed25519')
  writeFileSync(join(dir, 'k.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }))
  const err = await run(process.execPath, [join(ROOT, 'scripts/build-release.ts'), '--slot', slot, '--key', join(dir, 'k.pem'), '--out', join(dir, 'x.fpr')]).then(
    () => null,
    (e: { code: number; stderr: string }) => e,
  )
  t.equal(err?.code, 2)
  t.match(err?.stderr, /gateway\/package\.json says version 5\.0\.1, RELEASE\.json 5\.0\.0/)
})
