// The systemd units (systemd/*.service, docs/systemd.md): `systemd-analyze
// verify` is clean and `systemd-analyze security --offline=yes` rates each
// unit at or under its ceiling, with exactly the exposures we accepted and
// documented. Removing any hardening line fails this test (checked below by
// removing each one in turn). systemd ≥ 252 runs both without being PID 1.

import t from 'tap'
import { execFile } from 'node:child_process'
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const REPO = resolve(import.meta.dirname, '../..')
const UNITS = join(REPO, 'systemd')

interface UnitPolicy {
  /** Highest overall exposure allowed. */
  readonly ceiling: number
  /** The ✗ lines of `systemd-analyze security` we accept (each explained in docs/systemd.md). */
  readonly accepted: readonly string[]
  /** Lines that must be present although the security score does not weigh them. */
  readonly required: readonly string[]
}

/** What both long-running services (the gateway and Node-RED) accept, each explained in docs/systemd.md. */
const LONG_RUNNING_ACCEPTED = [
  'SystemCallFilter=~@resources',
  'RootDirectory=/RootImage=',
  'MemoryDenyWriteExecute=',
  'RestrictAddressFamilies=~AF_NETLINK',
  'RestrictAddressFamilies=~AF_UNIX',
  'RestrictAddressFamilies=~AF_(INET|INET6)',
  'ProcSubset=',
  'PrivateNetwork=',
  'PrivateUsers=',
  'DeviceAllow=',
  'IPAddressDeny=',
]

const POLICIES: Record<string, UnitPolicy> = {
  'fieldproof.service': {
    ceiling: 2.0,
    accepted: [...LONG_RUNNING_ACCEPTED, 'NotifyAccess='],
    required: ['Type=notify', 'WatchdogSec=30s', 'NotifyAccess=all', 'User=fieldproof', 'StateDirectory=fieldproof', 'StateDirectoryMode=0700', 'Restart=on-failure', 'AmbientCapabilities=', 'KeyringMode=private', 'SystemCallErrorNumber=EPERM', 'Environment=MALLOC_ARENA_MAX=1', 'Environment=MALLOC_TRIM_THRESHOLD_=131072'],
  },
  'fieldproof-firstboot.service': {
    // Root, writing /etc, /home/admin and the boot partition: sandboxed as far as that allows.
    ceiling: 4.5,
    accepted: [
      'User=/DynamicUser=',
      'CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)',
      'MemoryDenyWriteExecute=',
      'ProtectHostname=',
      'CapabilityBoundingSet=~CAP_(CHOWN|FSETID|SETFCAP)',
      'RestrictAddressFamilies=~AF_UNIX',
      'ProcSubset=',
      'CapabilityBoundingSet=~CAP_SYS_ADMIN',
      'PrivateUsers=',
      'DeviceAllow=',
      'SystemCallFilter=~@clock',
      'SystemCallFilter=~@cpu-emulation',
      'SystemCallFilter=~@debug',
      'SystemCallFilter=~@module',
      'SystemCallFilter=~@mount',
      'SystemCallFilter=~@obsolete',
      'SystemCallFilter=~@privileged',
      'SystemCallFilter=~@raw-io',
      'SystemCallFilter=~@reboot',
      'SystemCallFilter=~@resources',
      'SystemCallFilter=~@swap',
      'IPAddressDeny=',
      'UMask=',
    ],
    required: ['Type=oneshot', 'ConditionPathExists=/boot/firmware/fieldproof.toml', 'UMask=0022', 'PrivateTmp=yes'],
  },
  'node-red.service': {
    ceiling: 4.5,
    accepted: [...LONG_RUNNING_ACCEPTED, 'UMask='],
    required: ['User=nodered', 'StateDirectory=node-red', 'InaccessiblePaths=-/var/lib/fieldproof -/etc/fieldproof -/home', 'MemoryMax=512M', 'StateDirectoryMode=0750', 'UMask=0027', 'AmbientCapabilities=', 'SystemCallErrorNumber=EPERM'],
  },
}

/** Overall exposure and the names of the ✗ lines. */
async function security(file: string): Promise<{ score: number; exposed: string[] }> {
  // Exits non-zero when the score is above --threshold (default 100): never here.
  const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', file])
  const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(stdout)
  if (!m) throw new Error(`no overall exposure in:\n${stdout}`)
  const exposed = stdout
    .split('\n')
    .filter((l) => l.startsWith('✗'))
    .map((l) => (l.slice(1).trim().split(/\s+/)[0] ?? ''))
  return { score: Number(m[1]), exposed }
}

/** Problems of a unit against its policy (empty when it complies). */
async function check(name: string, text: string, dir: string): Promise<string[]> {
  const policy = POLICIES[name]
  if (!policy) throw new Error(`no policy for ${name}`)
  mkdirSync(dir, { recursive: true })
  const file = join(dir, name)
  writeFileSync(file, text)
  const { score, exposed } = await security(file)
  const problems: string[] = []
  if (score > policy.ceiling) problems.push(`exposure ${score} > ${policy.ceiling}`)
  for (const e of exposed) if (!policy.accepted.includes(e)) problems.push(`new exposure ${e}`)
  const lines = new Set(text.split('\n').map((l) => l.trim()))
  for (const r of policy.required) if (!lines.has(r)) problems.push(`missing ${r}`)
  return problems
}

t.test('systemd-analyze security: within the ceiling, exactly the accepted exposures', async (t) => {
  const dir = t.testdir()
  for (const name of Object.keys(POLICIES)) {
    const text = readFileSync(join(UNITS, name), 'utf8')
    const { score } = await security(join(UNITS, name))
    t.ok(score <= (POLICIES[name]?.ceiling ?? 0), `${name}: exposure ${score} ≤ ${POLICIES[name]?.ceiling}`)
    t.same(await check(name, text, join(dir, name)), [], `${name} complies`)
    // The score quoted in the unit's header comment is the real one.
    t.match(text, new RegExp(`rates (this unit|it) ${score.toFixed(1).replace('.', '\\.')} \\(OK\\)`), `${name}: header states ${score}`)
  }
})

t.test('removing any hardening line fails the check', async (t) => {
  const dir = t.testdir()
  for (const name of Object.keys(POLICIES)) {
    const text = readFileSync(join(UNITS, name), 'utf8')
    const lines = text.split('\n')
    const start = lines.findIndex((l) => l.startsWith('User=') || l.startsWith('CapabilityBoundingSet='))
    const hardening = lines.map((l, i) => ({ l, i })).filter(({ l, i }) => i > start && /^[A-Z][A-Za-z]+=/.test(l) && !l.startsWith('ReadWritePaths=') && !l.startsWith('Group=') && !l.startsWith('WantedBy='))
    t.ok(hardening.length >= 14, `${name}: ${hardening.length} hardening lines`)
    for (const { l, i } of hardening) {
      const without = lines.filter((_, j) => j !== i).join('\n')
      const problems = await check(name, without, join(dir, `${name}-${i}`))
      t.not(problems.length, 0, `${name} without "${l}" is caught: ${problems.join('; ')}`)
    }
  }
})

t.test('systemd-analyze verify is clean', async (t) => {
  // verify loads units from a root: the host's unit tree (targets the units
  // name), our units, and the binaries their ExecStart= lines run (verify
  // checks they exist and are executable).
  const root = t.testdir()
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true })
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true })
  for (const name of ['fieldproof.service', 'node-red.service', 'fieldproof-firstboot.service']) cpSync(join(UNITS, name), join(root, 'usr/lib/systemd/system', name))
  for (const bin of ['usr/bin/fieldproof', 'opt/fieldproof/node/bin/node']) {
    mkdirSync(join(root, bin, '..'), { recursive: true })
    writeFileSync(join(root, bin), '#!/bin/sh\nexit 0\n')
    chmodSync(join(root, bin), 0o755)
  }
  const verify = async (): Promise<{ code: number; out: string }> => {
    try {
      const r = await run('systemd-analyze', ['verify', `--root=${root}`, 'fieldproof.service', 'node-red.service', 'fieldproof-firstboot.service'])
      return { code: 0, out: (r.stdout + r.stderr).trim() }
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string }
      return { code: x.code, out: (x.stdout + x.stderr).trim() }
    }
  }
  const ok = await verify()
  t.equal(ok.code, 0, ok.out)
  t.equal(ok.out, '', 'no warnings')

  // The check can fail: a typo in a unit, or a missing binary, is reported.
  const unit = join(root, 'usr/lib/systemd/system/node-red.service')
  writeFileSync(unit, readFileSync(unit, 'utf8').replace('ProtectHome=yes', 'ProtectHome=yes\nProtectHomee=yes'))
  t.match((await verify()).out, /Unknown key 'ProtectHomee'/)
  cpSync(join(UNITS, 'node-red.service'), unit)
  writeFileSync(join(root, 'usr/bin/fieldproof'), '')
  chmodSync(join(root, 'usr/bin/fieldproof'), 0o644)
  const missing = await verify()
  t.not(missing.code, 0)
  t.match(missing.out, /\/usr\/bin\/fieldproof is not executable/)
})

t.test('the first-boot unit matches the image contract', async (t) => {
  const text = readFileSync(join(UNITS, 'fieldproof-firstboot.service'), 'utf8')
  t.match(text, /^Type=oneshot$/m)
  t.match(text, /^ConditionPathExists=\/boot\/firmware\/fieldproof\.toml$/m)
  t.match(text, /^ExecStart=\/usr\/bin\/fieldproof firstboot --boot-dir \/boot\/firmware$/m)
  t.match(text, /^Before=.*\bfieldproof\.service\b.*\bnode-red\.service\b/m)
  const gw = readFileSync(join(UNITS, 'fieldproof.service'), 'utf8')
  t.match(gw, /^ExecStart=\/usr\/bin\/fieldproof start --config \/etc\/fieldproof\/fieldproof\.toml$/m)
})
