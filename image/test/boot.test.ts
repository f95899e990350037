// Boot test of the SD-card image (docs/image.md, "The boot test"): a copy of
// the built image, 512 MiB larger than built (so first boot must grow the root
// partition), with a test fieldproof.toml on its FAT partition, boots under
// qemu-system-aarch64 (-M virt, Cortex-A53, TCG) with the image's own kernel,
// initrd and cmdline.txt (console moved to the virt board's PL011). The test
// waits for the gateway's status API through a port forwarded to 127.0.0.1,
// for a sealed batch, verifies a reading's proof bundle with the host's
// `fieldproof verify`, logs in to Node-RED with the password from the test
// file, powers the machine off, and then reads the disk: first boot applied
// the file (hostname, admin-auth.json, report), scrubbed its secrets and
// renamed it, SSH host keys and machine-id were generated, the root
// partition grew. Prints boot-to-ready seconds. Run by scripts/test-image.

import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { scryptSync, timingSafeEqual } from 'node:crypto'
import { REPO, fatCopyIn, fatCopyOut, fatList, fatRead, imagePath, partitionTable, rootRead, rootList, rootStat, passwdEntry } from './lib.ts'

const img = imagePath()
const tmp = mkdtempSync(join(tmpdir(), 'fp-boot-test-'))
const disk = join(tmp, 'disk.img')
const serial = join(tmp, 'serial.log')
const GROW_MIB = 512
const NODERED_PASSWORD = 'boot-test-nodered-pw-1'
const HOSTNAME = 'fp-boottest'
const NAME = 'boot-test'
const BOOT_DEADLINE_S = 20 * 60
const SEAL_DEADLINE_S = 5 * 60

const TEST_TOML = `# fieldproof.toml of the image boot test (image/test/boot.test.ts)
[system]
hostname = "${HOSTNAME}"
nodered_password = "${NODERED_PASSWORD}"
timezone = "UTC"

[gateway]
name = "${NAME}"

[api]
listen = "0.0.0.0:8080"

[sources.sim]
enabled = true
sensors = 2
interval_ms = 2000

[batch]
max_age_seconds = 10
`

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function serialTail(lines = 80): string {
  if (!existsSync(serial)) return '(no serial log)'
  return readFileSync(serial, 'utf8').split('\n').slice(-lines).join('\n')
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown } | undefined> {
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) })
    const text = await r.text()
    let body: unknown = text
    try { body = JSON.parse(text) } catch { /* not JSON */ }
    return { status: r.status, body }
  } catch {
    return undefined
  }
}

t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

t.test('the image boots, applies first boot and runs the gateway', async (t) => {
  // The disk: a sparse copy, grown, with the test file on the FAT partition.
  const cp = spawnSync('cp', ['--sparse=always', img, disk])
  t.equal(cp.status, 0, 'copied the image')
  const builtRootSectors = partitionTable(disk).partitions[1]?.size ?? 0
  spawnSync('truncate', ['-s', `+${GROW_MIB}M`, disk])
  writeFileSync(join(tmp, 'fieldproof.toml'), TEST_TOML)
  fatCopyIn(disk, join(tmp, 'fieldproof.toml'), 'fieldproof.toml')
  t.ok(fatList(disk).includes('fieldproof.toml'), 'test fieldproof.toml on the boot partition')

  // The image's own kernel, initrd and command line.
  const config = fatRead(disk, 'config.txt')?.toString('utf8') ?? ''
  const kernel = /^kernel=(\S+)$/m.exec(config)?.[1]
  const initrd = /^initramfs (\S+)/m.exec(config)?.[1]
  if (!kernel || !initrd) throw new Error(`config.txt names no kernel/initrd:\n${config}`)
  fatCopyOut(disk, kernel, join(tmp, 'vmlinuz'))
  fatCopyOut(disk, initrd, join(tmp, 'initrd'))
  const cmdline = (fatRead(disk, 'cmdline.txt')?.toString('utf8') ?? '').trim().split(/\s+/)
    .filter((a) => !a.startsWith('console=')).concat('console=ttyAMA0').join(' ')
  t.match(cmdline, /root=LABEL=RASPIROOT/, `kernel command line from cmdline.txt: ${cmdline}`)

  const apiPort = await freePort()
  const nrPort = await freePort()
  const monitor = join(tmp, 'monitor.sock')
  const args = [
    '-M', 'virt', '-cpu', 'cortex-a53', '-smp', '2', '-m', '1024',
    '-nographic', '-monitor', `unix:${monitor},server,nowait`, '-serial', `file:${serial}`, '-no-reboot',
    '-kernel', join(tmp, 'vmlinuz'), '-initrd', join(tmp, 'initrd'), '-append', cmdline,
    '-drive', `file=${disk},format=raw,if=none,id=hd0`, '-device', 'virtio-blk-pci,drive=hd0',
    '-netdev', `user,id=n0,hostfwd=tcp:127.0.0.1:${apiPort}-:8080,hostfwd=tcp:127.0.0.1:${nrPort}-:1880`,
    '-device', 'virtio-net-pci,netdev=n0',
    '-object', 'rng-random,filename=/dev/urandom,id=rng0', '-device', 'virtio-rng-pci,rng=rng0',
  ]
  const started = Date.now()
  const qemu = spawn('qemu-system-aarch64', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let qemuErr = ''
  qemu.stderr.on('data', (d: Buffer) => { qemuErr += d.toString() })
  let exited = false
  const exit = new Promise<void>((resolve) => qemu.on('exit', () => { exited = true; resolve() }))
  const elapsed = () => Math.round((Date.now() - started) / 1000)
  t.teardown(async () => {
    if (!exited) { qemu.kill('SIGKILL'); await exit }
  })
  t.teardown(() => { if (!t.passing()) console.error(`--- serial console (tail) ---\n${serialTail()}\n--- qemu stderr ---\n${qemuErr}`) })

  const api = `http://127.0.0.1:${apiPort}/api/v1`
  // 1. The status API answers: boot-to-ready.
  let status: Record<string, unknown> | undefined
  while (elapsed() < BOOT_DEADLINE_S && !exited) {
    const r = await getJson(`${api}/status`)
    if (r?.status === 200 && typeof r.body === 'object' && r.body !== null) { status = r.body as Record<string, unknown>; break }
    await sleep(2000)
  }
  const ready = elapsed()
  if (!status) throw new Error(`no status API after ${ready}s (qemu ${exited ? 'exited' : 'running'})`)
  console.log(`# boot-to-ready: ${ready}s (QEMU start to the first 200 from /api/v1/status; TCG, -M virt, cortex-a53)`)
  t.comment(`boot-to-ready ${ready}s`)
  const gw = status['gateway'] as { name?: string; address?: string } | undefined
  t.equal(gw?.name, NAME, 'gateway name from the first-boot file: first boot wrote /etc/fieldproof/fieldproof.toml')
  t.match(gw?.address ?? '', /^0x[0-9a-fA-F]{40}$/, 'gateway address')
  t.not(status['firstboot'], 'none', 'the first-boot report exists')

  // 2. A sealed batch: the proof bundle of reading 1.
  let bundle: unknown
  const sealStart = elapsed()
  while (elapsed() - sealStart < SEAL_DEADLINE_S && !exited) {
    const r = await getJson(`${api}/proofs/1`)
    if (r?.status === 200) { bundle = r.body; break }
    await sleep(2000)
  }
  if (bundle === undefined) throw new Error(`no sealed batch with reading 1 within ${SEAL_DEADLINE_S}s of ready`)
  t.comment(`first sealed batch ${elapsed() - sealStart}s after ready`)
  const bundleFile = join(tmp, 'proof-1.json')
  writeFileSync(bundleFile, JSON.stringify(bundle))
  const verify = spawnSync('bash', [join(REPO, 'scripts/run-node'), join(REPO, 'gateway/src/cli/main.ts'), 'verify', bundleFile, '--gateway', gw?.address ?? ''],
    { encoding: 'utf8', cwd: REPO })
  t.equal(verify.status, 0, `the host's fieldproof verify accepts the bundle: ${(verify.stdout + verify.stderr).trim().split('\n').slice(-3).join(' | ')}`)
  // A tampered copy must fail (the check can fail).
  const original = JSON.stringify(bundle)
  const tampered = original.replace(/"seq":"1"/, '"seq":"2"')
  t.not(tampered, original, 'tampered copy: the reading claims another sequence number')
  writeFileSync(join(tmp, 'tampered.json'), tampered)
  const bad = spawnSync('bash', [join(REPO, 'scripts/run-node'), join(REPO, 'gateway/src/cli/main.ts'), 'verify', join(tmp, 'tampered.json')], { encoding: 'utf8', cwd: REPO })
  t.not(bad.status, 0, 'a tampered bundle fails verification')

  // 3. Node-RED under its own unit, editor login with the first-boot password.
  const nr = `http://127.0.0.1:${nrPort}`
  let login: { status: number; body: unknown } | undefined
  const nrStart = elapsed()
  while (elapsed() - nrStart < 10 * 60 && !exited) {
    login = await getJson(`${nr}/auth/login`)
    if (login?.status === 200) break
    await sleep(3000)
  }
  t.equal(login?.status, 200, `Node-RED answers (${elapsed()}s after QEMU start)`)
  t.match(login?.body, { type: 'credentials' }, 'the editor needs a login')
  const token = (password: string) => getJson(`${nr}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'node-red-editor', grant_type: 'password', scope: '*', username: 'admin', password }).toString(),
  })
  const good = await token(NODERED_PASSWORD)
  t.equal(good?.status, 200, 'login with the password from fieldproof.toml')
  t.match(good?.body, { access_token: /\S+/ }, 'got an access token')
  const wrong = await token('not-the-password')
  t.not(wrong?.status, 200, 'a wrong password is refused')

  // 4. Clean power-off (power button through the QEMU monitor).
  await new Promise<void>((resolve) => {
    const c = connect(monitor, () => { c.write('system_powerdown\n'); setTimeout(() => { c.end(); resolve() }, 500) })
    c.on('error', () => resolve())
  })
  let offTimer: NodeJS.Timeout | undefined
  const off = await Promise.race([exit.then(() => true), new Promise<boolean>((resolve) => { offTimer = setTimeout(() => resolve(false), 240_000) })])
  clearTimeout(offTimer)
  t.ok(off, `powered off cleanly (${elapsed()}s after QEMU start)`)
  if (!off) { qemu.kill('SIGKILL'); await exit }

  // 5. The disk after first boot.
  const log = readFileSync(serial, 'utf8')
  t.notMatch(log, /\[FAILED\]/, 'no unit failed during boot or shutdown')
  t.notMatch(log, /Kernel panic|Timed out waiting for device/, 'no panic, no device timeout')
  t.notMatch(log, /failed with exit status|Dependency failed/, 'no generator or dependency failed')
  t.notMatch(log, /fsck not present/, 'the initrd checks the root file system (e2fsck in the initrd)')
  const fat = fatList(disk)
  t.notOk(fat.includes('fieldproof.toml'), 'fieldproof.toml is gone from the boot partition')
  t.ok(fat.includes('fieldproof.toml.applied'), 'renamed to fieldproof.toml.applied')
  const applied = fatRead(disk, 'fieldproof.toml.applied')?.toString('utf8') ?? ''
  t.notMatch(applied, NODERED_PASSWORD, 'the Node-RED password was removed from the FAT file')
  t.equal(rootRead(disk, '/etc/hostname')?.toString('utf8').trim(), HOSTNAME, '/etc/hostname from the file')
  const auth = rootStat(disk, '/etc/node-red/admin-auth.json')
  const nodered = passwdEntry(disk, 'nodered')
  t.ok(auth && auth.uid === 0 && auth.gid === nodered?.gid && (auth.mode & 0o777) === 0o640, 'admin-auth.json root:nodered 0640')
  const a = JSON.parse(rootRead(disk, '/etc/node-red/admin-auth.json')?.toString('utf8') ?? '{}') as { scrypt?: { N: number; r: number; p: number; salt: string; hash: string } }
  if (a.scrypt) {
    const { N, r, p, salt, hash } = a.scrypt
    const got = scryptSync(Buffer.from(NODERED_PASSWORD), Buffer.from(salt, 'hex'), 64, { N, r, p, maxmem: 256 * N * r })
    t.ok(timingSafeEqual(got, Buffer.from(hash, 'hex')), 'admin-auth.json holds the scrypt hash of the password')
  } else t.fail('admin-auth.json has no scrypt entry')
  t.ok(rootStat(disk, '/var/lib/fieldproof/firstboot-report.json'), 'first-boot report written')
  t.ok(rootStat(disk, '/var/lib/fieldproof/gateway.key') ?? rootList(disk, '/var/lib/fieldproof').length > 0, 'gateway state in /var/lib/fieldproof')
  t.ok(rootList(disk, '/etc/ssh').includes('ssh_host_ed25519_key'), 'SSH host keys generated at first boot')
  t.match(rootRead(disk, '/etc/machine-id')?.toString('utf8') ?? '', /^[0-9a-f]{32}\n$/, 'machine-id generated and kept')
  t.ok(rootStat(disk, '/var/lib/fieldproof-image/root-grown'), 'growroot ran')
  const grownSectors = partitionTable(disk).partitions[1]?.size ?? 0
  t.equal(grownSectors - builtRootSectors, GROW_MIB * 2048, `root partition grew by ${GROW_MIB} MiB`)
  const blocks = spawnSync('dumpe2fs', ['-h', `${disk}?offset=${(partitionTable(disk).partitions[1]?.start ?? 0) * 512}`], { encoding: 'utf8' })
  const count = Number(/Block count:\s+(\d+)/.exec(blocks.stdout)?.[1])
  const bsize = Number(/Block size:\s+(\d+)/.exec(blocks.stdout)?.[1])
  t.equal(count * bsize, grownSectors * 512, 'the ext4 filesystem fills the grown partition')
  const fd = openSync(disk, 'r')
  const head = Buffer.alloc(512)
  readSync(fd, head, 0, 512, 0)
  closeSync(fd)
  t.equal(head.readUInt16LE(510), 0xaa55, 'MBR signature intact')
  t.ok(statSync(disk).size > statSync(img).size)
  copyFileSync(serial, join(tmpdir(), 'fieldproof-boot-test-serial.log'))
  t.comment(`serial log kept at ${join(tmpdir(), 'fieldproof-boot-test-serial.log')}`)
})
