// First boot (docs/first-boot.md): apply the owner's `fieldproof.toml` from
// the boot partition to the system, once.
//
// The file has two system tables, `[system]` and `[keystore]`; every other
// table is gateway configuration (docs/configuration.md), validated with the
// gateway's own schema and merged into /etc/fieldproof/fieldproof.toml.
//
// Order, so that a bad file changes nothing and a crash changes nothing twice:
//   1. read and validate everything (TOML, [system], [keystore] including
//      decrypting the keystore, the merged gateway config) and build the
//      complete list of writes; any problem → CONFIG_INVALID naming the key,
//      nothing written;
//   2. apply the writes, each atomic (fs/atomic.ts: temp + fsync + rename);
//   3. write the first-boot report;
//   4. write `fieldproof.toml.applied` (the file without its secrets, each
//      replaced by a comment) and remove `fieldproof.toml`, so the unit's
//      ConditionPathExists= stops it from running again.
// Every step is idempotent: a crash before 4 means the next boot applies the
// same values again (a generated password is kept, not generated anew).
//
// Targets (image contract, "First boot"):
//   /etc/hostname, /etc/hosts (127.0.1.1 line)
//   /etc/wpa_supplicant/wpa_supplicant-wlan0.conf (0600) + enabling
//     wpa_supplicant@wlan0.service, /etc/modprobe.d/cfg80211-regdom.conf
//   /etc/localtime, /etc/timezone
//   /home/admin/.ssh/authorized_keys (0600 admin)
//   /etc/node-red/admin-auth.json (root:nodered 0640; scrypt N=16384 r=8 p=1, 64-byte hash)
//   /etc/fieldproof/fieldproof.toml (root:fieldproof 0640)
//   <state_dir>/gateway.key (restored from [keystore], else generated; 0600 fieldproof)
//   <state_dir>/firstboot-report.json (0600 fieldproof), /home/admin/firstboot-report.txt (0600 admin)
// WPA: the PSK is stored as PBKDF2-HMAC-SHA1(passphrase, SSID, 4096, 32)
// (IEEE 802.11-2020 J.4.1, as wpa_passphrase(8) writes it), never the passphrase.

import { spawnSync } from 'node:child_process'
import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto'
import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, unlinkSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parse, stringify, TomlError } from 'smol-toml'
import { FieldproofError } from '../core/errors.ts'
import type { Hex } from '../core/types.ts'
import { collectIssues, type ConfigIssue } from '../config/load.ts'
import { ConfigSchema, DEFAULT_CONFIG_PATH, DEFAULT_KEY_FILE_NAME, parseListenAddress, type Config } from '../config/schema.ts'
import { LORAWAN_REGIONS } from '../config/sections/lorawan.ts'
import { fsyncDir, writeFileAtomic } from '../fs/atomic.ts'
import { addressOf, generatePrivateKey, parsePrivateKey } from '../identity/key-file.ts'
import { decryptKeystore } from '../identity/keystore.ts'
import { readReport, REPORT_FILE_NAME, type FirstbootReport } from './firstboot-report.ts'

export { readReport, REPORT_FILE_NAME, type FirstbootReport }

/** Name of the owner's file on the boot partition. */
export const FIRSTBOOT_FILE = 'fieldproof.toml'
/** What it is renamed to once applied. */
export const FIRSTBOOT_APPLIED_FILE = 'fieldproof.toml.applied'
export const ADMIN_USER = 'admin'
export const ADMIN_HOME = '/home/admin'
export const NODERED_AUTH_FILE = '/etc/node-red/admin-auth.json'
export const WPA_CONF_FILE = '/etc/wpa_supplicant/wpa_supplicant-wlan0.conf'
export const WPA_WANTS_LINK = '/etc/systemd/system/multi-user.target.wants/wpa_supplicant@wlan0.service'
export const WPA_UNIT_TARGET = '/usr/lib/systemd/system/wpa_supplicant@.service'
export const REGDOM_FILE = '/etc/modprobe.d/cfg80211-regdom.conf'
/** Node-RED editor port (image contract: Node-RED listens on 0.0.0.0:1880). */
export const NODERED_PORT = 1880
/** scrypt parameters of admin-auth.json, fixed by the image contract (settings.js verifies with them). */
export const NODERED_SCRYPT = { N: 16384, r: 8, p: 1 } as const

const HOSTNAME_PATTERN = '^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$'
const COUNTRY_PATTERN = '^[A-Z]{2}$'
const TIMEZONE_PATTERN = '^(UTC|[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,2})$'
const SSH_KEY_PATTERN = '^(sk-)?(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|ssh-dss)(@openssh\\.com)? [A-Za-z0-9+/]+={0,3}( [^\\r\\n]*)?$'

/** `[system]`: settings of the operating system, not of the gateway. */
export const FirstbootSystemSection = Type.Object(
  {
    hostname: Type.Optional(
      Type.String({
        description: 'Host name of the device (also <hostname>.local over mDNS): 1 to 63 letters, digits or "-", not starting or ending with "-".',
        pattern: HOSTNAME_PATTERN,
        patternHint: 'use 1 to 63 letters, digits or "-", not starting or ending with "-"',
      }),
    ),
    wifi_country: Type.Optional(
      Type.String({
        description: 'Two-letter ISO 3166-1 country code (e.g. "DE", "US") that sets the Wi-Fi regulatory domain. Required with wifi_ssid.',
        pattern: COUNTRY_PATTERN,
        patternHint: 'use two capital letters, e.g. "DE" or "US"',
      }),
    ),
    wifi_ssid: Type.Optional(Type.String({ description: 'Name of the Wi-Fi network to join on wlan0 (1 to 32 bytes).', minLength: 1 })),
    wifi_passphrase: Type.Optional(
      Type.String({ description: 'WPA2/WPA3-personal passphrase (8 to 63 characters) or the 64-hex-digit PSK. Leave out for an open network. Removed from this file once applied.' }),
    ),
    ssh_authorized_keys: Type.Optional(
      Type.Array(
        Type.String({
          description: 'One OpenSSH public key line.',
          pattern: SSH_KEY_PATTERN,
          patternHint: 'use one OpenSSH public key line, e.g. "ssh-ed25519 AAAAC3Nz... you@laptop"',
        }),
        { description: 'OpenSSH public keys allowed to log in as "admin" (the image has no password login).' },
      ),
    ),
    nodered_password: Type.Optional(
      Type.String({ description: 'Password of the Node-RED editor user "admin" (at least 8 characters). Generated and shown in the first-boot report when left out. Removed from this file once applied.', minLength: 8 }),
    ),
    timezone: Type.Optional(
      Type.String({ description: 'IANA time zone, e.g. "Europe/Berlin" or "UTC" (/usr/share/zoneinfo/<timezone>).', pattern: TIMEZONE_PATTERN, patternHint: 'use an IANA name such as "Europe/Berlin"' }),
    ),
    lora_region: Type.Optional(
      Type.Union(
        LORAWAN_REGIONS.map((r) => Type.Literal(r)),
        { description: 'LoRaWAN region; sets [sources.lorawan] region.' },
      ),
    ),
  },
  { description: 'Operating-system settings applied at first boot.', additionalProperties: false },
)

/** `[keystore]`: restore the gateway key from an encrypted keystore on the boot partition. */
export const FirstbootKeystoreSection = Type.Object(
  {
    file: Type.String({ description: 'Keystore file (Web3 Secret Storage v3, as `fieldproof keys export` writes it), relative to the boot partition.', minLength: 1 }),
    passphrase: Type.String({ description: 'Its passphrase. Removed from this file once applied.' }),
  },
  { description: 'Restore the gateway key (its identity) from a backup.', additionalProperties: false },
)

export type FirstbootSystem = Static<typeof FirstbootSystemSection>

/** Options of {@link runFirstboot}. */
export interface FirstbootOptions {
  /** Directory holding fieldproof.toml (the boot partition, /boot/firmware). */
  readonly bootDir: string
  /** Prefix of every system path (tests run on a temp tree); default "/". */
  readonly root?: string
  /** Clock for the report (default: now). */
  readonly now?: () => Date
  /**
   * Run commands that act on the live system (set the host name, start
   * wpa_supplicant@wlan0). Default: only when root is "/".
   */
  readonly live?: boolean
  /** Progress lines for the journal. */
  readonly log?: (line: string) => void
}

export type FirstbootResult =
  | { readonly status: 'applied'; readonly report: FirstbootReport; readonly reportFile: string; readonly textReportFile: string }
  | { readonly status: 'already-applied'; readonly appliedFile: string }

interface Owner {
  readonly user: string
  readonly group: string
}

interface PlannedWrite {
  readonly path: string
  readonly content: string
  readonly mode: number
  readonly dirMode?: number
  readonly owner?: Owner
  readonly dirOwner?: Owner
  readonly what: string
}

interface PlannedLink {
  readonly path: string
  readonly target: string
  readonly what: string
}

/** Keys of `[sinks.*]` tables whose values are secrets (removed from the FAT file, kept off the world). */
export const SECRET_KEY_PATTERN = /(^|_)(auth_value|password|passphrase|secret|token|private_key|api_key)$/

const problem = (path: string, message: string): ConfigIssue => ({ file: FIRSTBOOT_FILE, path, message })

function invalid(issues: readonly ConfigIssue[], file: string): FieldproofError {
  const sorted = [...issues].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return new FieldproofError('CONFIG_INVALID', sorted.map((i) => `${file}: ${i.path}: ${i.message}`).join('\n'), { details: { issues: sorted } })
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)
}

/** Deep merge of TOML tables: `over` wins; arrays and values are replaced. */
export function mergeTables(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = isTable(b) && isTable(v) ? mergeTables(b, v) : v
  }
  return out
}

/** WPA-PSK from a passphrase: PBKDF2-HMAC-SHA1(passphrase, ssid, 4096, 32) (IEEE 802.11 J.4.1). */
export function wpaPsk(passphrase: string, ssid: string): string {
  return pbkdf2Sync(Buffer.from(passphrase, 'utf8'), Buffer.from(ssid, 'utf8'), 4096, 32, 'sha1').toString('hex')
}

/** admin-auth.json for Node-RED's settings.js (image contract). */
export function nodeRedAuth(password: string, salt: Buffer = randomBytes(16)): string {
  const { N, r, p } = NODERED_SCRYPT
  const hash = scryptSync(Buffer.from(password, 'utf8'), salt, 64, { N, r, p, maxmem: 128 * N * r * 2 })
  return JSON.stringify({ username: ADMIN_USER, scrypt: { N, r, p, salt: salt.toString('hex'), hash: hash.toString('hex') } }, null, 2) + '\n'
}

/** Check a password against admin-auth.json text (as settings.js does). */
export function checkNodeRedAuth(json: string, password: string): boolean {
  const a = JSON.parse(json) as { scrypt: { N: number; r: number; p: number; salt: string; hash: string } }
  const { N, r, p, salt, hash } = a.scrypt
  return scryptSync(Buffer.from(password, 'utf8'), Buffer.from(salt, 'hex'), 64, { N, r, p, maxmem: 128 * N * r * 2 }).toString('hex') === hash
}

function generatePassword(): string {
  // 16 characters from an unambiguous alphabet (no 0/O, 1/l/I): ~90 bits.
  const alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789'
  const bytes = randomBytes(32)
  let out = ''
  for (const b of bytes) {
    if (b >= alphabet.length * Math.floor(256 / alphabet.length)) continue
    out += alphabet[b % alphabet.length]
    if (out.length === 16) break
  }
  return out.length === 16 ? out : generatePassword()
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/** Parse TOML text; a syntax error becomes an issue naming line and column. */
function parseToml(text: string, file: string): Record<string, unknown> {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  try {
    return parse(text) as Record<string, unknown>
  } catch (e) {
    if (e instanceof TomlError) {
      const first = (e.message.split('\n')[0] ?? e.message).replace(/^Invalid TOML document:\s*/, '')
      throw invalid([{ file, path: `line ${e.line}, column ${e.column}`, message: `invalid TOML: ${first}` }], file)
    }
    throw invalid([{ file, path: '(file)', message: `invalid TOML: ${(e as Error).message}` }], file)
  }
}

/** uid/gid of a user and group from <root>/etc/passwd and <root>/etc/group; undefined when absent. */
function lookupIds(root: string, owner: Owner): { uid: number; gid: number } | undefined {
  const find = (file: string, name: string): number | undefined => {
    for (const line of (readText(join(root, file)) ?? '').split('\n')) {
      const f = line.split(':')
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2])
    }
    return undefined
  }
  const uid = find('etc/passwd', owner.user)
  const gid = find('etc/group', owner.group)
  return uid === undefined || gid === undefined ? undefined : { uid, gid }
}

const ROOT_OWNER = { user: 'root', group: 'root' }

/**
 * Apply `<bootDir>/fieldproof.toml` (see the header comment).
 *
 * @throws FieldproofError `CONFIG_INVALID` naming every bad key (nothing is changed then),
 *   `KEYSTORE_INVALID` / `KEYSTORE_PASSPHRASE` for a keystore that cannot be opened.
 */
export function runFirstboot(opts: FirstbootOptions): FirstbootResult {
  const root = resolve(opts.root ?? '/')
  const at = (p: string): string => join(root, p)
  const live = opts.live ?? root === '/'
  const log = opts.log ?? (() => undefined)
  const bootDir = resolve(opts.bootDir)
  const srcFile = join(bootDir, FIRSTBOOT_FILE)
  const appliedFile = join(bootDir, FIRSTBOOT_APPLIED_FILE)

  const text = readText(srcFile)
  if (text === undefined) {
    if (existsSync(appliedFile)) return { status: 'already-applied', appliedFile }
    throw new FieldproofError('CONFIG_NOT_FOUND', `${srcFile} not found: nothing to apply (write it from fieldproof.toml.example)`)
  }

  // ---- 1. validate everything, plan every write -------------------------
  const doc = parseToml(text, FIRSTBOOT_FILE)
  const issues: ConfigIssue[] = []
  const system = (doc['system'] ?? {}) as Record<string, unknown>
  const keystore = doc['keystore'] as Record<string, unknown> | undefined
  if (!isTable(system)) issues.push(problem('system', 'expected a table'))
  else issues.push(...collectIssues(FirstbootSystemSection, system, () => FIRSTBOOT_FILE).map((i) => ({ ...i, path: `system.${i.path}` })))
  if (keystore !== undefined) {
    if (!isTable(keystore)) issues.push(problem('keystore', 'expected a table'))
    else issues.push(...collectIssues(FirstbootKeystoreSection, keystore, () => FIRSTBOOT_FILE).map((i) => ({ ...i, path: `keystore.${i.path}` })))
  }
  const sys = (isTable(system) ? system : {}) as FirstbootSystem
  if (sys.wifi_ssid !== undefined && Buffer.byteLength(sys.wifi_ssid, 'utf8') > 32) issues.push(problem('system.wifi_ssid', 'must be at most 32 bytes'))
  if (sys.wifi_ssid !== undefined && sys.wifi_country === undefined) {
    issues.push(problem('system.wifi_country', 'required with wifi_ssid: the radio may only use the channels allowed in your country'))
  }
  if (sys.wifi_passphrase !== undefined) {
    if (sys.wifi_ssid === undefined) issues.push(problem('system.wifi_passphrase', 'given without wifi_ssid'))
    const p = sys.wifi_passphrase
    const ok = /^[0-9a-fA-F]{64}$/.test(p) || (p.length >= 8 && p.length <= 63 && /^[\x20-\x7e]+$/.test(p))
    if (!ok) issues.push(problem('system.wifi_passphrase', 'must be 8 to 63 printable ASCII characters (or the 64-hex-digit PSK)'))
  }
  if (sys.timezone !== undefined && existsSync(at('usr/share/zoneinfo')) && !existsSync(at(join('usr/share/zoneinfo', sys.timezone)))) {
    issues.push(problem('system.timezone', `unknown time zone "${sys.timezone}" (no /usr/share/zoneinfo/${sys.timezone})`))
  }

  // Gateway config: every other table, merged over the current file.
  const gatewayTables: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(doc)) if (k !== 'system' && k !== 'keystore') gatewayTables[k] = v
  if (sys.lora_region !== undefined) {
    gatewayTables['sources'] = mergeTables(isTable(gatewayTables['sources']) ? gatewayTables['sources'] : {}, { lorawan: { region: sys.lora_region } })
  }
  const configPath = at(DEFAULT_CONFIG_PATH)
  const currentText = readText(configPath)
  let current: Record<string, unknown> = {}
  if (currentText !== undefined) {
    try {
      current = parse(currentText) as Record<string, unknown>
    } catch {
      // A damaged config on a fresh image: the boot file replaces it.
      current = {}
    }
  }
  // Inline sink secrets move into files in the state directory (0600 fieldproof).
  const merged = mergeTables(current, gatewayTables)
  const validated = structuredClone(merged)
  const withDefaults = Value.Default(ConfigSchema, validated) as unknown
  for (const i of collectIssues(ConfigSchema, withDefaults, () => FIRSTBOOT_FILE)) {
    // Report problems of keys the boot file set, or of the merged result.
    issues.push(i)
  }
  let ks: { privateKey: Hex; file: string } | undefined
  if (keystore !== undefined && isTable(keystore) && typeof keystore['file'] === 'string' && typeof keystore['passphrase'] === 'string' && keystore['file'] !== '') {
    const ksFile = resolve(bootDir, keystore['file'])
    const ksText = readText(ksFile)
    if (ksText === undefined) issues.push(problem('keystore.file', `cannot read ${ksFile}`))
    else {
      try {
        ks = { privateKey: decryptKeystore(JSON.parse(ksText) as unknown, keystore['passphrase']), file: ksFile }
      } catch (e) {
        const msg = e instanceof SyntaxError ? `${ksFile} is not JSON: ${e.message}` : (e as Error).message
        issues.push(problem(e instanceof FieldproofError && e.code === 'KEYSTORE_PASSPHRASE' ? 'keystore.passphrase' : 'keystore.file', msg))
      }
    }
  }
  if (issues.length > 0) throw invalid(issues, srcFile)

  const config = withDefaults as Config
  const stateDir = isAbsolute(config.gateway.state_dir) ? config.gateway.state_dir : resolve(dirname(DEFAULT_CONFIG_PATH), config.gateway.state_dir)
  const keyFileCfg = config.identity.key_file
  const keyFile = keyFileCfg === '' ? join(stateDir, DEFAULT_KEY_FILE_NAME) : isAbsolute(keyFileCfg) ? keyFileCfg : join(stateDir, keyFileCfg)
  const tokenFile = config.api.token_file === '' ? join(stateDir, 'api-token') : isAbsolute(config.api.token_file) ? config.api.token_file : join(stateDir, config.api.token_file)
  const gwOwner: Owner = { user: 'fieldproof', group: 'fieldproof' }
  const adminOwner: Owner = { user: ADMIN_USER, group: ADMIN_USER }

  const writes: PlannedWrite[] = []
  const links: PlannedLink[] = []
  const applied: string[] = []
  const secretPaths: string[] = []

  // Inline secrets (`[sinks.http] auth_value = "..."`, and any key named like
  // a secret in any table) never stay on the FAT partition; when the table
  // takes `<key>_file`, the value moves into a file in the state directory.
  const fileConfig = structuredClone(merged)
  const moveSecrets = (tbl: Record<string, unknown>, schema: TSchema | undefined, fromBoot: unknown, path: string[]): void => {
    const props = (schema?.['properties'] ?? {}) as Record<string, TSchema>
    for (const [k, v] of Object.entries(tbl)) {
      const boot = isTable(fromBoot) ? fromBoot[k] : undefined
      if (isTable(v)) {
        moveSecrets(v, props[k], boot, [...path, k])
        continue
      }
      if (!SECRET_KEY_PATTERN.test(k) || typeof v !== 'string') continue
      const dotted = [...path, k].join('.')
      if (boot !== undefined) secretPaths.push(dotted)
      if (v === '' || !(`${k}_file` in props)) continue
      const rel = `secrets/${dotted}`
      writes.push({ path: join(stateDir, rel), content: v + '\n', mode: 0o600, dirMode: 0o700, owner: gwOwner, dirOwner: gwOwner, what: dotted })
      delete tbl[k]
      tbl[`${k}_file`] = rel
    }
  }
  moveSecrets(fileConfig, ConfigSchema, gatewayTables, [])
  // The config is rewritten when the file has gateway tables, or when there is
  // none yet (the unit starts the gateway with --config, which must exist);
  // otherwise the image's file stays as it is, comments included.
  if (Object.keys(gatewayTables).length > 0 || currentText === undefined) {
    const header = `# Fieldproof gateway configuration (docs/configuration.md).\n# Merged from ${FIRSTBOOT_FILE} on the boot partition at first boot; edit freely.\n\n`
    writes.push({ path: DEFAULT_CONFIG_PATH, content: header + stringify(fileConfig) + '\n', mode: 0o640, dirMode: 0o750, owner: { user: 'root', group: 'fieldproof' }, dirOwner: { user: 'root', group: 'fieldproof' }, what: 'gateway config' })
    applied.push('gateway config')
  }

  const hostname = sys.hostname ?? (readText(at('etc/hostname'))?.trim() || config.gateway.name)
  if (sys.hostname !== undefined) {
    writes.push({ path: '/etc/hostname', content: `${sys.hostname}\n`, mode: 0o644, what: 'hostname' })
    const hosts = (readText(at('etc/hosts')) ?? '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n').split('\n').filter((l) => !/^127\.0\.1\.1\s/.test(l))
    while (hosts.length > 0 && hosts[hosts.length - 1] === '') hosts.pop()
    writes.push({ path: '/etc/hosts', content: [...hosts, `127.0.1.1\t${sys.hostname}`, ''].join('\n'), mode: 0o644, what: 'hosts' })
    applied.push('hostname')
  }

  if (sys.wifi_country !== undefined) {
    writes.push({ path: REGDOM_FILE, content: `# Wi-Fi regulatory domain, set at first boot.\noptions cfg80211 ieee80211_regdom=${sys.wifi_country}\n`, mode: 0o644, what: 'wifi country' })
    applied.push('wifi country')
  }
  if (sys.wifi_ssid !== undefined) {
    const ssidHex = Buffer.from(sys.wifi_ssid, 'utf8').toString('hex')
    const pass = sys.wifi_passphrase
    const net =
      pass === undefined
        ? ['\tkey_mgmt=NONE']
        : [`\tpsk=${/^[0-9a-fA-F]{64}$/.test(pass) ? pass.toLowerCase() : wpaPsk(pass, sys.wifi_ssid)}`, '\tkey_mgmt=WPA-PSK WPA-PSK-SHA256 SAE', '\tieee80211w=1']
    const conf = [
      '# Written at first boot from fieldproof.toml. The PSK is derived from the passphrase (wpa_passphrase).',
      'ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev',
      'update_config=1',
      `country=${sys.wifi_country ?? ''}`,
      '',
      'network={',
      `\tssid=${ssidHex}`,
      '\tscan_ssid=1',
      ...net,
      '}',
      '',
    ].join('\n')
    writes.push({ path: WPA_CONF_FILE, content: conf, mode: 0o600, what: 'wifi' })
    links.push({ path: WPA_WANTS_LINK, target: WPA_UNIT_TARGET, what: 'wpa_supplicant@wlan0' })
    applied.push('wifi')
  }

  if (sys.timezone !== undefined) {
    writes.push({ path: '/etc/timezone', content: `${sys.timezone}\n`, mode: 0o644, what: 'timezone' })
    links.push({ path: '/etc/localtime', target: `/usr/share/zoneinfo/${sys.timezone}`, what: 'timezone' })
    applied.push('timezone')
  }

  if (sys.ssh_authorized_keys !== undefined && sys.ssh_authorized_keys.length > 0) {
    const file = join(ADMIN_HOME, '.ssh/authorized_keys')
    const existing = (readText(at(file)) ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '')
    const lines = [...existing]
    for (const k of sys.ssh_authorized_keys) if (!lines.includes(k.trim())) lines.push(k.trim())
    writes.push({ path: file, content: lines.join('\n') + '\n', mode: 0o600, dirMode: 0o700, owner: adminOwner, dirOwner: adminOwner, what: 'ssh keys' })
    applied.push('ssh keys')
  }

  // Node-RED: the given password, else keep an existing one, else generate.
  const previous = readReport(at(join(stateDir, REPORT_FILE_NAME)))
  const generatedPasswords: { nodeRed?: string } = {}
  if (sys.nodered_password !== undefined) {
    const cur = readText(at(NODERED_AUTH_FILE))
    let same = false
    try {
      same = cur !== undefined && checkNodeRedAuth(cur, sys.nodered_password)
    } catch {
      same = false
    }
    if (!same) writes.push({ path: NODERED_AUTH_FILE, content: nodeRedAuth(sys.nodered_password), mode: 0o640, owner: { user: 'root', group: 'nodered' }, what: 'node-red password' })
    applied.push('node-red password')
  } else if (!existsSync(at(NODERED_AUTH_FILE))) {
    const pw = generatePassword()
    generatedPasswords.nodeRed = pw
    writes.push({ path: NODERED_AUTH_FILE, content: nodeRedAuth(pw), mode: 0o640, owner: { user: 'root', group: 'nodered' }, what: 'node-red password' })
    applied.push('node-red password (generated)')
  } else if (previous?.generatedPasswords.nodeRed !== undefined) {
    generatedPasswords.nodeRed = previous.generatedPasswords.nodeRed
  }

  // The gateway key: restored from the keystore, else the existing one, else generated now
  // (so the report can name the address before the gateway's first start).
  const currentKey = parsePrivateKey(readText(at(keyFile)) ?? '')
  let privateKey: Hex
  let keyRestored = false
  if (ks !== undefined) {
    privateKey = ks.privateKey
    keyRestored = true
    if (currentKey.ok && currentKey.privateKey !== privateKey) {
      writes.push({ path: keyFile + '.bak', content: currentKey.privateKey.slice(2) + '\n', mode: 0o600, dirMode: 0o700, owner: gwOwner, dirOwner: gwOwner, what: 'previous gateway key' })
    }
    applied.push('gateway key (restored)')
  } else if (currentKey.ok) {
    privateKey = currentKey.privateKey
  } else {
    privateKey = generatePrivateKey()
    applied.push('gateway key (generated)')
  }
  if (!currentKey.ok || currentKey.privateKey !== privateKey) {
    writes.push({ path: keyFile, content: privateKey.slice(2) + '\n', mode: 0o600, dirMode: 0o700, owner: gwOwner, dirOwner: gwOwner, what: 'gateway key' })
  }
  const address = addressOf(privateKey)

  const listen = parseListenAddress(config.api.listen)
  const port = listen.ok ? listen.value.port : 8080
  const host = `${hostname}.local`
  const now = (opts.now ?? (() => new Date()))()
  const report: FirstbootReport = {
    version: 1,
    appliedAt: now.toISOString(),
    hostname,
    gatewayAddress: address,
    keyRestored,
    urls: { statusPage: `http://${host}:${port}/`, api: `http://${host}:${port}/api/v1/status`, nodeRed: `http://${host}:${NODERED_PORT}/`, ssh: `ssh ${ADMIN_USER}@${host}` },
    wifi: sys.wifi_ssid !== undefined ? { ssid: sys.wifi_ssid, country: sys.wifi_country ?? '' } : null,
    generatedPasswords,
    applied,
    apiTokenFile: tokenFile,
  }

  // ---- 2. apply ----------------------------------------------------------
  for (const w of writes) {
    const p = at(w.path)
    const dir = dirname(p)
    const dirExisted = existsSync(dir)
    writeFileAtomic(p, w.content, w.mode, w.dirMode ?? 0o755)
    chownTo(root, p, w.owner ?? ROOT_OWNER)
    if (!dirExisted && w.dirOwner !== undefined) chownTo(root, dir, w.dirOwner)
    log(`first boot: ${w.what} → ${w.path}`)
  }
  for (const l of links) {
    const p = at(l.path)
    let cur: string | undefined
    try {
      cur = lstatSync(p).isSymbolicLink() ? readlinkSync(p) : '(file)'
    } catch {
      cur = undefined
    }
    if (cur === l.target) continue
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 })
    const tmp = `${p}.${randomBytes(6).toString('hex')}.tmp`
    symlinkSync(l.target, tmp)
    renameSync(tmp, p)
    fsyncDir(dirname(p))
    log(`first boot: ${l.what} → ${l.path}`)
  }

  // ---- 3. the report ------------------------------------------------------
  const reportFile = join(stateDir, REPORT_FILE_NAME)
  writeFileAtomic(at(reportFile), JSON.stringify(report, null, 2) + '\n', 0o600, 0o700)
  chownTo(root, at(reportFile), gwOwner)
  chownTo(root, at(stateDir), gwOwner)
  const textReportFile = join(ADMIN_HOME, 'firstboot-report.txt')
  writeFileAtomic(at(textReportFile), reportText(report), 0o600, 0o700)
  chownTo(root, at(textReportFile), adminOwner)

  // ---- 4. the boot file: secrets out, renamed ---------------------------
  const secrets = ['system.wifi_passphrase', 'system.nodered_password', 'keystore.passphrase', ...secretPaths]
  const cleaned = removeSecrets(text, secrets, now)
  writeBootFile(appliedFile, cleaned)
  unlinkSync(srcFile)
  try {
    fsyncDir(bootDir)
  } catch {
    // vfat may refuse fsync on a directory; the rename above is done either way.
  }
  log(`first boot: applied ${applied.join(', ')}; ${srcFile} renamed to ${FIRSTBOOT_APPLIED_FILE}`)

  if (live) liveActions(sys, log)
  return { status: 'applied', report, reportFile: at(reportFile), textReportFile: at(textReportFile) }
}

function writeBootFile(path: string, content: string): void {
  try {
    writeFileAtomic(path, content, 0o644)
  } catch (e) {
    // vfat: the data is written and renamed; only fsync of the directory may fail.
    if (!existsSync(path)) throw e
  }
}

function chownTo(root: string, path: string, owner: Owner): void {
  if (process.getuid?.() !== 0) return
  const ids = lookupIds(root, owner)
  if (ids !== undefined) chownSync(path, ids.uid, ids.gid)
}

/** Commands that act on the running system (not under --root). Best effort: a failure is logged. */
function liveActions(sys: FirstbootSystem, log: (line: string) => void): void {
  const run = (cmd: string, args: string[]): void => {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 30_000 })
    if (r.status !== 0) log(`first boot: ${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${String(r.status)}`})`)
  }
  if (sys.hostname !== undefined) run('hostname', [sys.hostname])
  if (sys.wifi_ssid !== undefined) {
    run('systemctl', ['daemon-reload'])
    run('systemctl', ['--no-block', 'start', 'wpa_supplicant@wlan0.service'])
  }
}

/** The owner's copy of the report (/home/admin/firstboot-report.txt). */
export function reportText(r: FirstbootReport): string {
  const lines = [
    'Fieldproof first boot',
    '=====================',
    '',
    `Applied at        ${r.appliedAt}`,
    `Host name         ${r.hostname}`,
    `Gateway address   ${r.gatewayAddress}${r.keyRestored ? ' (restored from your keystore)' : ''}`,
    `Status page       ${r.urls.statusPage}`,
    `API               ${r.urls.api}`,
    `Node-RED editor   ${r.urls.nodeRed} (user "admin")`,
    `SSH               ${r.urls.ssh}`,
    `API token         sudo cat ${r.apiTokenFile}`,
  ]
  if (r.wifi) lines.push(`Wi-Fi             ${r.wifi.ssid} (country ${r.wifi.country})`)
  if (r.generatedPasswords.nodeRed !== undefined) lines.push('', `Node-RED password ${r.generatedPasswords.nodeRed}   (generated; change it with a new first-boot file or in /etc/node-red/admin-auth.json)`)
  lines.push('', `Settings applied: ${r.applied.join(', ')}.`, 'Secrets were removed from fieldproof.toml on the boot partition, renamed fieldproof.toml.applied.', '')
  return lines.join('\n')
}

/**
 * The boot file without its secrets: each secret line is replaced by a
 * comment saying it was applied. When the file's layout defeats the line
 * rewrite (dotted keys, inline tables, multi-line strings), it is written
 * anew from its parsed content instead. Either way the result is checked to
 * parse and to hold none of the secrets.
 */
export function removeSecrets(text: string, secretPaths: readonly string[], now: Date): string {
  const wanted = new Set(secretPaths)
  const stamp = now.toISOString()
  const out: string[] = []
  let table = ''
  for (const line of text.split(/\r?\n/)) {
    const header = /^\s*\[\s*([A-Za-z0-9_.\-" ]+?)\s*\]\s*(#.*)?$/.exec(line)
    if (header) table = (header[1] ?? '').replace(/"/g, '').replace(/\s*\.\s*/g, '.')
    const kv = /^\s*([A-Za-z0-9_-]+)\s*=/.exec(line)
    if (kv && !header && wanted.has(`${table}.${kv[1] ?? ''}`)) {
      out.push(`# ${kv[1] ?? ''} = (applied at first boot ${stamp}; removed from this file)`)
      continue
    }
    out.push(line)
  }
  const rewritten = out.join('\n')
  if (secretsGone(rewritten, secretPaths)) return rewritten
  // Fallback: regenerate from the parsed document.
  const doc = parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as Record<string, unknown>
  for (const p of secretPaths) {
    const parts = p.split('.')
    let node: unknown = doc
    for (const part of parts.slice(0, -1)) node = isTable(node) ? node[part] : undefined
    if (isTable(node)) delete node[parts[parts.length - 1] as string]
  }
  const regenerated = `# Applied at first boot ${stamp}; secrets (${secretPaths.join(', ')}) removed from this file.\n\n${stringify(doc)}\n`
  if (!secretsGone(regenerated, secretPaths)) throw new FieldproofError('INTERNAL', 'could not remove the secrets from the first-boot file')
  return regenerated
}

function secretsGone(text: string, secretPaths: readonly string[]): boolean {
  let doc: Record<string, unknown>
  try {
    doc = parse(text) as Record<string, unknown>
  } catch {
    return false
  }
  for (const p of secretPaths) {
    let node: unknown = doc
    for (const part of p.split('.')) node = isTable(node) ? node[part] : undefined
    if (node !== undefined) return false
  }
  return true
}
