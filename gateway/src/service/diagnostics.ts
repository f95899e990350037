// Diagnostics (docs/diagnostics.md): one file an owner sends to support,
// holding what support needs and no secret, signed by the gateway key so
// support can check which gateway it came from and that nothing changed.
//
// File layout: the archive document (UTF-8 JSON, pretty-printed), then one
// line with the signature document:
//
//   { "format": "fieldproof-diagnostics/1", ... }\n
//   {"fieldproofDiagnosticsSignature":1,"address":"0x…","sha256":"…","message":"…","signature":"0x…"}\n
//
// `message` is "fieldproof diagnostics sha256:<hex of the archive bytes>" and
// `signature` its EIP-191 personal_sign signature by the gateway key, so
// `cast wallet verify --address <address> "<message>" <signature>` checks it
// too. Any changed byte changes the hash (or breaks the signature line).
//
// Secrets: config keys that hold secrets are replaced by "[redacted]";
// then every value known to be secret (the gateway key, the API token, inline
// sink secrets, the contents of secret files the config names) is searched
// for in the whole document, logs included, and replaced.

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statfsSync, statSync } from 'node:fs'
import { arch, platform, release as osRelease, totalmem, uptime } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { recoverSignerAddress, signDigest } from '../core/batch.ts'
import { hexToBytes } from '../core/hex.ts'
import { hashPersonalMessage } from '../core/proof.ts'
import type { Hex } from '../core/types.ts'
import type { LoadedConfig } from '../config/load.ts'
import { parseListenAddress } from '../config/common.ts'
import { addressOf, readKey } from '../identity/key-file.ts'

export const DIAGNOSTICS_FORMAT = 'fieldproof-diagnostics/1'
export const REDACTED = '[redacted]'
const DB_FILE = 'fieldproof.db'

/** Config keys whose values are secrets. */
export const SECRET_VALUE_KEY = /(^|_)(auth_value|password|passphrase|secret|token|private_key|api_key|psk)$/
/** Config keys naming files whose contents are secrets. */
export const SECRET_FILE_KEY = /(^|_)(auth_value_file|password_file|token_file|key_file|tls_key|passphrase_file)$/

export interface DiagnosticsOptions {
  readonly loaded: LoadedConfig
  readonly version: string
  /** Recent gateway logs; default `journalctl -u fieldproof -n 2000`. */
  readonly logs?: () => { source: string; text: string }
  /** The running gateway's status; default GET /api/v1/status on the configured address. */
  readonly status?: () => Promise<unknown>
  /** Run PRAGMA integrity_check instead of quick_check. */
  readonly fullCheck?: boolean
  /** The active release, default /opt/fieldproof/current/RELEASE.json. */
  readonly releaseFile?: string
  readonly now?: () => Date
}

/** Structured content of an archive (the `sections`). */
export interface DiagnosticsArchive {
  readonly format: typeof DIAGNOSTICS_FORMAT
  readonly createdAt: string
  readonly gateway: { readonly name: string; readonly address: Hex }
  readonly sections: Record<string, unknown>
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function readSmall(path: string): string | undefined {
  try {
    if (statSync(path).size > 65_536) return undefined
    return readFileSync(path, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** The config with secret values redacted, and every secret value found (for scrubbing). */
export function redactConfig(config: unknown, stateDir: string): { redacted: unknown; secrets: string[] } {
  const secrets: string[] = []
  const walk = (v: unknown, key: string): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x, key))
    if (isTable(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]))
    if (typeof v === 'string' && v !== '') {
      if (SECRET_VALUE_KEY.test(key)) {
        secrets.push(v)
        return REDACTED
      }
      if (SECRET_FILE_KEY.test(key)) {
        const content = readSmall(v.startsWith('/') ? v : join(stateDir, v))
        if (content) secrets.push(content)
      }
    }
    return v
  }
  return { redacted: walk(config, ''), secrets }
}

/** Replace every occurrence of a secret in every string of `v`. */
export function scrub<T>(v: T, secrets: readonly string[]): T {
  const list = [...new Set(secrets.filter((s) => s.length >= 6))].sort((a, b) => b.length - a.length)
  const fix = (s: string): string => {
    let out = s
    for (const x of list) if (out.includes(x)) out = out.split(x).join(REDACTED)
    return out.replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/g, `$1${REDACTED}`)
  }
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return fix(x)
    if (Array.isArray(x)) return x.map(walk)
    if (isTable(x)) return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, walk(y)]))
    return x
  }
  return walk(v) as T
}

function defaultLogs(): { source: string; text: string } {
  const r = spawnSync('journalctl', ['-u', 'fieldproof', '-n', '2000', '--no-pager', '-o', 'short-iso'], { encoding: 'utf8', timeout: 20_000, maxBuffer: 32 * 1024 * 1024 })
  if (r.error) return { source: 'journalctl', text: `(journalctl not available: ${r.error.message})` }
  return { source: 'journalctl -u fieldproof -n 2000', text: r.status === 0 ? r.stdout : `(journalctl exited ${String(r.status)}: ${r.stderr.trim()})` }
}

async function defaultStatus(loaded: LoadedConfig): Promise<unknown> {
  const p = parseListenAddress(loaded.config.api.listen)
  if (!p.ok) return { error: p.reason }
  let host = p.value.host
  if (host === '0.0.0.0') host = '127.0.0.1'
  if (host === '::') host = '::1'
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${p.value.port}/api/v1/status`
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(3000) })
    return { url, httpStatus: r.status, body: (await r.json()) as unknown }
  } catch (e) {
    return { url, error: `the gateway does not answer: ${(e as Error).message}` }
  }
}

function storage(stateDir: string, full: boolean): Record<string, unknown> {
  const files: Record<string, number> = {}
  try {
    for (const n of readdirSync(stateDir)) {
      try {
        const st = statSync(join(stateDir, n))
        if (st.isFile()) files[n] = st.size
      } catch {
        // vanished
      }
    }
  } catch (e) {
    return { error: `cannot list ${stateDir}: ${(e as Error).message}` }
  }
  let free: Record<string, number> | { error: string }
  try {
    const s = statfsSync(stateDir)
    free = { totalBytes: s.blocks * s.bsize, freeBytes: s.bfree * s.bsize, availableBytes: s.bavail * s.bsize }
  } catch (e) {
    free = { error: (e as Error).message }
  }
  let check: Record<string, unknown>
  const db = join(stateDir, DB_FILE)
  if (!existsSync(db)) check = { error: 'no database yet' }
  else {
    const pragma = full ? 'integrity_check' : 'quick_check'
    try {
      const conn = new Database(db, { readonly: true, fileMustExist: true })
      try {
        const rows = conn.pragma(pragma) as Record<string, string>[]
        const lines = rows.map((r) => Object.values(r)[0] ?? '')
        check = { pragma, ok: lines.length === 1 && lines[0] === 'ok', result: lines.slice(0, 100), journalMode: conn.pragma('journal_mode', { simple: true }), pageSize: conn.pragma('page_size', { simple: true }), pageCount: conn.pragma('page_count', { simple: true }), schemaVersion: conn.pragma('user_version', { simple: true }) }
      } finally {
        conn.close()
      }
    } catch (e) {
      check = { pragma, ok: false, error: (e as Error).message }
    }
  }
  return { stateDir, files, fileSystem: free, sqlite: check }
}

function osName(): string {
  const t = readSmall('/etc/os-release') ?? ''
  return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(t)?.[1] ?? platform()
}

/** Collect the archive's content (not yet signed). */
export async function collectDiagnostics(o: DiagnosticsOptions): Promise<{ archive: DiagnosticsArchive; privateKey: Hex }> {
  const c = o.loaded.config
  const { privateKey, address } = readKey(c.identity.key_file)
  const secrets: string[] = [privateKey, privateKey.slice(2)]
  const token = readSmall(c.api.token_file)
  if (token) secrets.push(token)
  const { redacted, secrets: fromConfig } = redactConfig(c, c.gateway.state_dir)
  secrets.push(...fromConfig)
  const logs = (o.logs ?? defaultLogs)()
  const releaseFile = o.releaseFile ?? '/opt/fieldproof/current/RELEASE.json'
  let releaseInfo: unknown = null
  const rel = readSmall(releaseFile)
  if (rel) {
    try {
      releaseInfo = JSON.parse(rel) as unknown
    } catch {
      releaseInfo = rel
    }
  }
  const archive: DiagnosticsArchive = {
    format: DIAGNOSTICS_FORMAT,
    createdAt: (o.now ?? (() => new Date()))().toISOString(),
    gateway: { name: c.gateway.name, address },
    sections: {
      versions: { gateway: o.version, release: releaseInfo, node: process.version, v8: process.versions.v8, sqlite: process.versions.sqlite ?? null, os: osName(), kernel: osRelease(), arch: arch(), totalMemoryBytes: totalmem(), uptimeS: Math.round(uptime()) },
      config: { file: o.loaded.path, simulation: o.loaded.simulation, values: redacted },
      status: await (o.status ?? (() => defaultStatus(o.loaded)))(),
      storage: storage(c.gateway.state_dir, o.fullCheck === true),
      logs,
    },
  }
  return { archive: scrub(archive, secrets), privateKey }
}

/** The message signed for archive bytes. */
export function diagnosticsMessage(archiveBytes: Uint8Array): string {
  return `fieldproof diagnostics sha256:${createHash('sha256').update(archiveBytes).digest('hex')}`
}

/** Serialize and sign: the file's bytes. */
export async function signDiagnostics(archive: DiagnosticsArchive, privateKey: Hex): Promise<Buffer> {
  const body = Buffer.from(JSON.stringify(archive, null, 2) + '\n', 'utf8')
  const message = diagnosticsMessage(body)
  const signature = signDigest(hashPersonalMessage(new TextEncoder().encode(message)), hexToBytes(privateKey, 32))
  const sig = { fieldproofDiagnosticsSignature: 1, address: addressOf(privateKey), sha256: createHash('sha256').update(body).digest('hex'), message, signature }
  return Buffer.concat([body, Buffer.from(JSON.stringify(sig) + '\n', 'utf8')])
}

export type VerifyDiagnosticsResult =
  | { readonly ok: true; readonly address: Hex; readonly createdAt: string; readonly name: string }
  | { readonly ok: false; readonly reason: string }

/** Check a diagnostics file: structure, hash, signature, and that the signer is the gateway it names. */
export async function verifyDiagnostics(bytes: Uint8Array, expectedAddress?: string): Promise<VerifyDiagnosticsResult> {
  const buf = Buffer.from(bytes)
  if (buf.length < 2 || buf[buf.length - 1] !== 0x0a) return { ok: false, reason: 'not a diagnostics file (no final newline)' }
  const cut = buf.lastIndexOf(0x0a, buf.length - 2)
  if (cut < 0) return { ok: false, reason: 'not a diagnostics file (no signature line)' }
  const body = buf.subarray(0, cut + 1)
  let sig: { fieldproofDiagnosticsSignature?: unknown; address?: unknown; sha256?: unknown; message?: unknown; signature?: unknown }
  let archive: Partial<DiagnosticsArchive>
  try {
    sig = JSON.parse(buf.subarray(cut + 1).toString('utf8')) as typeof sig
    archive = JSON.parse(body.toString('utf8')) as Partial<DiagnosticsArchive>
  } catch (e) {
    return { ok: false, reason: `not a diagnostics file: ${(e as Error).message}` }
  }
  if (sig.fieldproofDiagnosticsSignature !== 1 || typeof sig.signature !== 'string' || typeof sig.address !== 'string') return { ok: false, reason: 'no signature document' }
  if (archive.format !== DIAGNOSTICS_FORMAT) return { ok: false, reason: `unknown format ${String(archive.format)}` }
  const message = diagnosticsMessage(body)
  if (sig.message !== message) return { ok: false, reason: 'the content does not match the signed hash (changed after signing)' }
  const signer = recoverSignerAddress(hashPersonalMessage(new TextEncoder().encode(message)), sig.signature as Hex)
  if (signer === undefined) return { ok: false, reason: 'bad signature: malformed or recovers no key' }
  const lower = (s: string) => s.toLowerCase()
  if (lower(signer) !== lower(sig.address)) return { ok: false, reason: `signed by ${signer}, not by ${sig.address}` }
  if (lower(signer) !== lower(archive.gateway?.address ?? '')) return { ok: false, reason: `signed by ${signer}, but the archive names gateway ${String(archive.gateway?.address)}` }
  if (expectedAddress !== undefined && lower(signer) !== lower(expectedAddress)) return { ok: false, reason: `signed by ${signer}, not by the expected ${expectedAddress}` }
  return { ok: true, address: signer, createdAt: String(archive.createdAt), name: String(archive.gateway?.name) }
}
