import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parse } from 'smol-toml'
import { isFieldproofError } from '../core/errors.ts'
import { addressOf, generatePrivateKey } from '../identity/key-file.ts'
import { encryptKeystore } from '../identity/keystore.ts'
import { checkNodeRedAuth, FirstbootSystemSection, readReport, removeSecrets, runFirstboot, wpaPsk, type FirstbootReport } from './firstboot.ts'

const REPO = resolve(import.meta.dirname, '../../..')
const UID = { fieldproof: 990, nodered: 991, admin: 1000 }
const asRoot = process.getuid?.() === 0

/** A minimal system tree: users, groups, hosts, a time zone. */
function makeRoot(dir: string): string {
  const root = join(dir, 'root')
  mkdirSync(join(root, 'etc'), { recursive: true })
  writeFileSync(join(root, 'etc/passwd'), `root:x:0:0:root:/root:/bin/sh\nfieldproof:x:${UID.fieldproof}:${UID.fieldproof}::/var/lib/fieldproof:/usr/sbin/nologin\nnodered:x:${UID.nodered}:${UID.nodered}::/var/lib/node-red:/usr/sbin/nologin\nadmin:x:${UID.admin}:${UID.admin}::/home/admin:/bin/bash\n`)
  writeFileSync(join(root, 'etc/group'), `root:x:0:\nfieldproof:x:${UID.fieldproof}:\nnodered:x:${UID.nodered}:\nadmin:x:${UID.admin}:\n`)
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n')
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n')
  mkdirSync(join(root, 'usr/share/zoneinfo/Europe'), { recursive: true })
  writeFileSync(join(root, 'usr/share/zoneinfo/Europe/Berlin'), 'TZif')
  writeFileSync(join(root, 'usr/share/zoneinfo/UTC'), 'TZif')
  mkdirSync(join(root, 'home/admin'), { recursive: true })
  return root
}

/** Every file and link under `dir` with its content hash and mode: "nothing changed" is an equal snapshot. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      const st = lstatSync(p)
      const rel = p.slice(dir.length)
      if (st.isDirectory()) {
        out[rel + '/'] = (st.mode & 0o7777).toString(8)
        walk(p)
      } else if (st.isSymbolicLink()) out[rel] = '-> ' + readlinkSync(p)
      else out[rel] = (st.mode & 0o7777).toString(8) + ' ' + createHash('sha256').update(readFileSync(p)).digest('hex')
    }
  }
  walk(dir)
  return out
}

const mode = (p: string): number => statSync(p).mode & 0o777

const SECRETS = { wifi: 'correct horse battery staple', nodered: 'n0de-red-secret-pw', keystore: 'keystore-pass-123', sinkAuth: 'Bearer sink-token-abcdef' }

function fullFile(): string {
  return `# my gateway
[system]
hostname = "hive-7"
wifi_country = "DE"
wifi_ssid = "Field \\"Net\\""
wifi_passphrase = "${SECRETS.wifi}"
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC2YVrFLtbmH4dLqvNr1sqvJm8xCR7ZIYvTWgMZTk9bU me@laptop"]
nodered_password = "${SECRETS.nodered}"
timezone = "Europe/Berlin"
lora_region = "US915"

[keystore]
file = "gw.json"
passphrase = "${SECRETS.keystore}"

[gateway]
name = "hive-7"   # keep this comment

[sinks.http]
enabled = true
url = "https://seq.example.net/batches"
auth_value = "${SECRETS.sinkAuth}"
`
}

t.test('WPA PSK: IEEE 802.11 test vectors', async (t) => {
  // IEEE Std 802.11-2020, Annex J.4.2 (PSK-to-PMK mapping test vectors).
  t.equal(wpaPsk('password', 'IEEE'), 'f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e')
  t.equal(wpaPsk('ThisIsAPassword', 'ThisIsASSID'), '0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af')
})

t.test('a full file lands where the contract says, with the right modes, and loses its secrets', async (t) => {
  const dir = t.testdir()
  const root = makeRoot(dir)
  const boot = join(dir, 'boot')
  mkdirSync(boot)
  const key = generatePrivateKey()
  writeFileSync(join(boot, 'gw.json'), JSON.stringify(encryptKeystore(key, SECRETS.keystore, { scryptN: 1024 })))
  writeFileSync(join(boot, 'fieldproof.toml'), fullFile())

  const r = runFirstboot({ bootDir: boot, root, now: () => new Date('2026-11-24T18:00:00Z') })
  t.equal(r.status, 'applied')
  if (r.status !== 'applied') return
  const at = (p: string) => join(root, p)

  t.equal(readFileSync(at('etc/hostname'), 'utf8'), 'hive-7\n')
  const hosts = readFileSync(at('etc/hosts'), 'utf8')
  t.match(hosts, /^127\.0\.1\.1\thive-7$/m)
  t.notMatch(hosts, /raspberrypi/, 'the old 127.0.1.1 line is replaced')
  t.match(hosts, /^127\.0\.0\.1\tlocalhost$/m)

  const wpa = readFileSync(at('etc/wpa_supplicant/wpa_supplicant-wlan0.conf'), 'utf8')
  t.equal(mode(at('etc/wpa_supplicant/wpa_supplicant-wlan0.conf')), 0o600)
  t.match(wpa, /^country=DE$/m)
  t.match(wpa, new RegExp(`^\\tssid=${Buffer.from('Field "Net"').toString('hex')}$`, 'm'))
  t.match(wpa, new RegExp(`^\\tpsk=${wpaPsk(SECRETS.wifi, 'Field "Net"')}$`, 'm'))
  t.notOk(wpa.includes(SECRETS.wifi), 'only the derived PSK is stored')
  t.equal(readlinkSync(at('etc/systemd/system/multi-user.target.wants/wpa_supplicant@wlan0.service')), '/usr/lib/systemd/system/wpa_supplicant@.service')
  t.match(readFileSync(at('etc/modprobe.d/cfg80211-regdom.conf'), 'utf8'), /ieee80211_regdom=DE/)

  t.equal(readlinkSync(at('etc/localtime')), '/usr/share/zoneinfo/Europe/Berlin')
  t.equal(readFileSync(at('etc/timezone'), 'utf8'), 'Europe/Berlin\n')

  const ak = at('home/admin/.ssh/authorized_keys')
  t.match(readFileSync(ak, 'utf8'), /^ssh-ed25519 AAAAC3Nz\S+ me@laptop\n$/)
  t.equal(mode(ak), 0o600)
  t.equal(mode(at('home/admin/.ssh')), 0o700)

  const auth = at('etc/node-red/admin-auth.json')
  t.equal(mode(auth), 0o640)
  const authJson = JSON.parse(readFileSync(auth, 'utf8')) as { username: string; scrypt: { N: number; r: number; p: number; salt: string; hash: string } }
  t.equal(authJson.username, 'admin')
  t.same({ N: authJson.scrypt.N, r: authJson.scrypt.r, p: authJson.scrypt.p }, { N: 16384, r: 8, p: 1 })
  t.equal(authJson.scrypt.hash.length, 128, '64-byte hash')
  t.ok(checkNodeRedAuth(readFileSync(auth, 'utf8'), SECRETS.nodered))
  t.notOk(checkNodeRedAuth(readFileSync(auth, 'utf8'), SECRETS.nodered + 'x'))

  const cfgFile = at('etc/fieldproof/fieldproof.toml')
  t.equal(mode(cfgFile), 0o640)
  const cfg = parse(readFileSync(cfgFile, 'utf8')) as { gateway: { name: string }; sources: { lorawan: { region: string } }; sinks: { http: Record<string, unknown> } }
  t.equal(cfg.gateway.name, 'hive-7')
  t.equal(cfg.sources.lorawan.region, 'US915', 'lora_region sets [sources.lorawan] region')
  t.equal(cfg.sinks.http['auth_value'], undefined, 'the inline sink secret is not in the config')
  t.equal(cfg.sinks.http['auth_value_file'], 'secrets/sinks.http.auth_value')
  const sinkSecret = at('var/lib/fieldproof/secrets/sinks.http.auth_value')
  t.equal(readFileSync(sinkSecret, 'utf8').trim(), SECRETS.sinkAuth)
  t.equal(mode(sinkSecret), 0o600)

  const keyFile = at('var/lib/fieldproof/gateway.key')
  t.equal(readFileSync(keyFile, 'utf8').trim(), key.slice(2), 'the key is restored from the keystore')
  t.equal(mode(keyFile), 0o600)
  t.equal(mode(at('var/lib/fieldproof')), 0o700)

  const report = readReport(at('var/lib/fieldproof/firstboot-report.json')) as FirstbootReport
  t.equal(mode(at('var/lib/fieldproof/firstboot-report.json')), 0o600)
  t.equal(report.gatewayAddress, addressOf(key))
  t.equal(report.keyRestored, true)
  t.equal(report.urls.statusPage, 'http://hive-7.local:8080/')
  t.equal(report.urls.nodeRed, 'http://hive-7.local:1880/')
  t.same(report.generatedPasswords, {}, 'no password generated when one was given')
  const txt = at('home/admin/firstboot-report.txt')
  t.equal(mode(txt), 0o600)
  t.match(readFileSync(txt, 'utf8'), addressOf(key))

  if (asRoot) {
    t.equal(statSync(keyFile).uid, UID.fieldproof, 'key owned by fieldproof')
    t.equal(statSync(at('var/lib/fieldproof')).uid, UID.fieldproof)
    t.equal(statSync(cfgFile).uid, 0)
    t.equal(statSync(cfgFile).gid, UID.fieldproof, 'config root:fieldproof')
    t.equal(statSync(auth).uid, 0)
    t.equal(statSync(auth).gid, UID.nodered, 'admin-auth.json root:nodered')
    t.equal(statSync(ak).uid, UID.admin)
    t.equal(statSync(at('home/admin/.ssh')).uid, UID.admin)
    t.equal(statSync(txt).uid, UID.admin)
    t.equal(statSync(sinkSecret).uid, UID.fieldproof)
  }

  // The boot partition: renamed, secrets gone, the rest (comments too) kept.
  t.notOk(existsSync(join(boot, 'fieldproof.toml')))
  const applied = readFileSync(join(boot, 'fieldproof.toml.applied'), 'utf8')
  for (const s of Object.values(SECRETS)) t.notOk(applied.includes(s), `secret ${s.slice(0, 4)}… removed`)
  t.match(applied, /# keep this comment/)
  t.match(applied, /^# wifi_passphrase = \(applied at first boot/m)
  const again = parse(applied) as { system: Record<string, unknown>; keystore: Record<string, unknown> }
  t.equal(again.system['hostname'], 'hive-7')
  t.equal(again.system['wifi_passphrase'], undefined)
  t.equal(again.keystore['passphrase'], undefined)
})

t.test('running it twice is harmless', async (t) => {
  const dir = t.testdir()
  const root = makeRoot(dir)
  const boot = join(dir, 'boot')
  mkdirSync(boot)
  const text = '[system]\nhostname = "twice"\nssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC2YVrFLtbmH4dLqvNr1sqvJm8xCR7ZIYvTWgMZTk9bU a@b"]\n'
  writeFileSync(join(boot, 'fieldproof.toml'), text)
  const first = runFirstboot({ bootDir: boot, root })
  t.equal(first.status, 'applied')
  const pw = first.status === 'applied' ? first.report.generatedPasswords.nodeRed : undefined
  t.type(pw, 'string', 'a Node-RED password is generated when none is given')
  t.ok(checkNodeRedAuth(readFileSync(join(root, 'etc/node-red/admin-auth.json'), 'utf8'), pw ?? ''))
  t.match(readFileSync(join(root, 'home/admin/firstboot-report.txt'), 'utf8'), pw ?? '(none)')
  const after1 = snapshot(root)

  const second = runFirstboot({ bootDir: boot, root })
  t.equal(second.status, 'already-applied', 'the applied file is not applied again')
  t.same(snapshot(root), after1, 'nothing changed')

  // A crash before the rename: the same file again gives the same system.
  writeFileSync(join(boot, 'fieldproof.toml'), text)
  const third = runFirstboot({ bootDir: boot, root })
  t.equal(third.status, 'applied')
  if (third.status === 'applied') {
    t.equal(third.report.generatedPasswords.nodeRed, pw, 'the generated password is kept, not generated anew')
    t.equal(third.report.gatewayAddress, first.status === 'applied' ? first.report.gatewayAddress : '', 'same key')
  }
  const after3 = snapshot(root)
  const changed = Object.keys(after3).filter((k) => after3[k] !== after1[k])
  const reports = ['/home/admin/firstboot-report.txt', '/var/lib/fieldproof/firstboot-report.json']
  t.same(changed.filter((k) => !reports.includes(k)), [], 'only the reports (their time stamp) are rewritten')
  t.same(Object.keys(after3).sort(), Object.keys(after1).sort(), 'no file added or removed')
  t.equal(readFileSync(join(root, 'home/admin/.ssh/authorized_keys'), 'utf8').split('\n').filter(Boolean).length, 1, 'the key is not added twice')
  t.equal((readFileSync(join(root, 'etc/hosts'), 'utf8').match(/127\.0\.1\.1/g) ?? []).length, 1)
})

t.test('a bad file gives a clear error naming the key and changes nothing', async (t) => {
  const cases: { name: string; text: string; keys: RegExp[] }[] = [
    { name: 'bad values', text: '[system]\nwifi_country = "de"\nwifi_ssid = "x"\nhostname = "-bad-"\n[api]\nlistn = "0.0.0.0:80"\n', keys: [/fieldproof\.toml: system\.wifi_country: "de" is not allowed/, /system\.hostname/, /api\.listn: unknown key \(did you mean "listen"\?\)/] },
    { name: 'wifi without country', text: '[system]\nwifi_ssid = "x"\nwifi_passphrase = "short"\n', keys: [/system\.wifi_country: required with wifi_ssid/, /system\.wifi_passphrase: must be 8 to 63/] },
    { name: 'unknown system key', text: '[system]\nhostnme = "x"\n', keys: [/system\.hostnme: unknown key \(did you mean "hostname"\?\)/] },
    { name: 'gateway schema', text: '[sources.lorawan]\nregion = "EU999"\n', keys: [/sources\.lorawan\.region: expected "EU868" \| "US915"/] },
    { name: 'bad lora_region', text: '[system]\nlora_region = "XX"\n', keys: [/system\.lora_region/] },
    { name: 'unknown time zone', text: '[system]\ntimezone = "Mars/Olympus"\n', keys: [/system\.timezone: unknown time zone "Mars\/Olympus"/] },
    { name: 'TOML syntax', text: '[system]\nhostname = "x\n', keys: [/fieldproof\.toml: line 2, column \d+: invalid TOML/] },
    { name: 'wrong keystore passphrase', text: '[keystore]\nfile = "gw.json"\npassphrase = "wrong one"\n', keys: [/keystore\.passphrase: /] },
    { name: 'missing keystore', text: '[keystore]\nfile = "nope.json"\npassphrase = "x"\n', keys: [/keystore\.file: cannot read/] },
  ]
  for (const c of cases) {
    const dir = t.testdir()
    const root = makeRoot(dir)
    const boot = join(dir, 'boot')
    mkdirSync(boot)
    writeFileSync(join(boot, 'gw.json'), JSON.stringify(encryptKeystore(generatePrivateKey(), 'right one', { scryptN: 1024 })))
    writeFileSync(join(boot, 'fieldproof.toml'), c.text)
    const before = { root: snapshot(root), boot: snapshot(boot) }
    let err: unknown
    try {
      runFirstboot({ bootDir: boot, root })
    } catch (e) {
      err = e
    }
    t.ok(isFieldproofError(err, 'CONFIG_INVALID'), `${c.name}: CONFIG_INVALID`)
    for (const k of c.keys) t.match((err as Error).message, k, `${c.name}: names ${String(k)}`)
    t.same(snapshot(root), before.root, `${c.name}: the system is untouched`)
    t.same(snapshot(boot), before.boot, `${c.name}: the boot file is untouched`)
  }
})

t.test('the command: exit codes and messages', async (t) => {
  const { runCli } = await import('../../../test/helpers/gateway-process.ts')
  const dir = t.testdir()
  const root = makeRoot(dir)
  const boot = join(dir, 'boot')
  mkdirSync(boot)
  writeFileSync(join(boot, 'fieldproof.toml'), '[system]\nwifi_country = "de"\n')
  const bad = await runCli(['firstboot', '--boot-dir', boot, '--root', root])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /system\.wifi_country/)
  writeFileSync(join(boot, 'fieldproof.toml'), '[system]\nhostname = "cli-test"\n')
  const ok = await runCli(['firstboot', '--boot-dir', boot, '--root', root, '--json'])
  t.equal(ok.code, 0, ok.stderr)
  t.equal((JSON.parse(ok.stdout) as { status: string }).status, 'applied')
  const again = await runCli(['firstboot', '--boot-dir', boot, '--root', root])
  t.equal(again.code, 0)
  t.match(again.stdout, /nothing to do/)
  const usage = await runCli(['firstboot'])
  t.equal(usage.code, 2)
})

t.test('the template: every key documented, and valid once uncommented', async (t) => {
  const template = readFileSync(join(REPO, 'image/firstboot/fieldproof.toml'), 'utf8')
  t.same(parse(template), { system: {} }, 'as shipped it sets nothing')
  for (const k of Object.keys(FirstbootSystemSection.properties)) t.match(template, new RegExp(`^# ${k} = `, 'm'), `[system] ${k} is in the template`)
  t.match(template, /^# \[keystore\]\n# file = .*\n# passphrase = /m)
  // Uncomment every setting line (not the prose): "# key = value", "# [table]" and array items.
  const uncommented = template
    .split('\n')
    .map((l) => (/^# (\[[a-z.]+\]|[a-z_]+ = |  "ssh-|\]$)/.test(l) ? l.slice(2) : l))
    .join('\n')
  const dir = t.testdir()
  const root = makeRoot(dir)
  const boot = join(dir, 'boot')
  mkdirSync(boot)
  writeFileSync(join(boot, 'gateway-keystore.json'), JSON.stringify(encryptKeystore(generatePrivateKey(), 'the keystore passphrase', { scryptN: 1024 })))
  writeFileSync(join(boot, 'fieldproof.toml'), uncommented)
  const r = runFirstboot({ bootDir: boot, root })
  t.equal(r.status, 'applied')
  if (r.status === 'applied') t.same(r.report.applied.slice(0, 1), ['gateway config'])
  const applied = readFileSync(join(boot, 'fieldproof.toml.applied'), 'utf8')
  for (const s of ['correct horse battery staple', 'choose-a-long-password', 'the keystore passphrase', 'Bearer <token>']) t.notOk(applied.includes(s), `${s} removed`)
})

t.test('removeSecrets falls back to regenerating an unusual layout', async (t) => {
  const text = 'system.wifi_passphrase = "dotted-secret"\nsystem.hostname = "x"\nsinks = { http = { auth_value = "inline-secret" } }\n'
  const out = removeSecrets(text, ['system.wifi_passphrase', 'sinks.http.auth_value'], new Date(0))
  t.notOk(out.includes('dotted-secret'))
  t.notOk(out.includes('inline-secret'))
  t.same((parse(out) as { system: unknown }).system, { hostname: 'x' })
})

t.test('without gateway tables an existing config keeps its text (comments included)', async (t) => {
  const dir = t.testdir()
  const root = makeRoot(dir)
  const boot = join(dir, 'boot')
  mkdirSync(boot)
  mkdirSync(join(root, 'etc/fieldproof'), { recursive: true })
  const shipped = '# shipped by the image\n[api]\nlisten = "0.0.0.0:8080"\n'
  writeFileSync(join(root, 'etc/fieldproof/fieldproof.toml'), shipped)
  writeFileSync(join(boot, 'fieldproof.toml'), '[system]\nhostname = "keep"\n')
  const r = runFirstboot({ bootDir: boot, root })
  t.equal(readFileSync(join(root, 'etc/fieldproof/fieldproof.toml'), 'utf8'), shipped)
  t.notOk(r.status === 'applied' && r.report.applied.includes('gateway config'))
  // With a gateway table it is merged: the shipped listen stays, the new name is added.
  writeFileSync(join(boot, 'fieldproof.toml'), '[gateway]\nname = "merged"\n')
  runFirstboot({ bootDir: boot, root })
  t.same(parse(readFileSync(join(root, 'etc/fieldproof/fieldproof.toml'), 'utf8')), { api: { listen: '0.0.0.0:8080' }, gateway: { name: 'merged' } })
})
