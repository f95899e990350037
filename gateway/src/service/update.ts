// A/B updates (docs/updates.md): install a signed release bundle
// (release-bundle.ts) into the inactive slot, switch /opt/fieldproof/current
// atomically, restart the gateway, and switch back (and restart again) when
// the new release does not answer healthy in time.
//
//   /opt/fieldproof/slots/{a,b}/   one release each
//   /opt/fieldproof/current        relative symlink "slots/a" or "slots/b"
//   /etc/fieldproof/release-keys/*.pub   trusted Ed25519 public keys (PEM)
//
// Order: lock; verify the signature and every file's hash (nothing written
// until both pass); extract into slots/.incoming-*, fsync; replace the
// inactive slot by rename; switch `current` (symlink to a temp name +
// rename(2), atomic); restart; poll GET /api/v1/status until it answers 200
// with the new version and a running health state, or the timeout. Only
// /opt/fieldproof/slots and /opt/fieldproof/current are ever written: config
// (/etc/fieldproof), keys and data (/var/lib/fieldproof) are not touched.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { loadConfig } from '../config/load.ts'
import { DEFAULT_CONFIG_PATH, parseListenAddress } from '../config/common.ts'
import { fsyncDir } from '../fs/atomic.ts'
import { BundleError, loadPublicKey, readPayload, verifyBundle, type ReleaseManifest } from './release-bundle.ts'

export const OPT_DIR = '/opt/fieldproof'
export const RELEASE_KEYS_DIR = '/etc/fieldproof/release-keys'
export const DEFAULT_RESTART = ['systemctl', 'restart', 'fieldproof'] as const
export const DEFAULT_HEALTH_TIMEOUT_MS = 120_000
/** Health states that count as "the new release runs" (a sink that cannot reach upstream is not the release's fault). */
export const HEALTHY_STATES = ['healthy', 'upstream-down'] as const

export type Slot = 'a' | 'b'

export interface UpdateOptions {
  readonly bundle: string
  /** Prefix of every system path (tests); default "/". */
  readonly root?: string
  /** Gateway config giving the API address (default <root>/etc/fieldproof/fieldproof.toml). */
  readonly configPath?: string
  /** Shell command that restarts the gateway (default: systemctl restart fieldproof). */
  readonly restartCommand?: string
  readonly healthTimeoutMs?: number
  readonly healthIntervalMs?: number
  readonly log?: (line: string) => void
}

export type UpdateResult =
  | { readonly status: 'installed'; readonly version: string; readonly slot: Slot; readonly previousSlot: Slot | null; readonly keyName: string }
  | { readonly status: 'rolled-back'; readonly version: string; readonly slot: Slot; readonly failedSlot: Slot; readonly reason: string; readonly previousHealthy: boolean }
  | { readonly status: 'failed'; readonly version: string; readonly slot: Slot; readonly reason: string }

/** Trusted release keys from <root>/etc/fieldproof/release-keys/*.pub. */
export function trustedKeys(root: string): { name: string; key: ReturnType<typeof loadPublicKey> }[] {
  const dir = join(root, RELEASE_KEYS_DIR)
  let names: string[]
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.pub')).sort()
  } catch {
    return []
  }
  return names.map((n) => {
    try {
      return { name: n, key: loadPublicKey(readFileSync(join(dir, n), 'utf8')) }
    } catch (e) {
      throw new BundleError(`${join(RELEASE_KEYS_DIR, n)}: ${(e as Error).message}`)
    }
  })
}

/** The slot `current` points at, or null. */
export function activeSlot(root: string): Slot | null {
  try {
    const t = readlinkSync(join(root, OPT_DIR, 'current')).replace(/\/+$/, '')
    const m = /(?:^|\/)slots\/([ab])$/.exec(t)
    return m ? (m[1] as Slot) : null
  } catch {
    return null
  }
}

/** Point `current` at a slot: symlink to a temp name, rename over (atomic). */
export function switchCurrent(root: string, slot: Slot): void {
  const opt = join(root, OPT_DIR)
  const tmp = join(opt, `.current-${randomBytes(6).toString('hex')}`)
  symlinkSync(`slots/${slot}`, tmp)
  try {
    renameSync(tmp, join(opt, 'current'))
  } catch (e) {
    unlinkSync(tmp)
    throw e
  }
  fsyncDir(opt)
}

/** The status URL from the gateway config (0.0.0.0 / :: mean this machine). */
export function statusUrl(configFile: string): string {
  let listen = '127.0.0.1:8080'
  if (existsSync(configFile)) listen = loadConfig({ path: configFile, env: {} }).config.api.listen
  const p = parseListenAddress(listen)
  if (!p.ok) throw new BundleError(`cannot read the API address from ${configFile}: ${p.reason}`)
  let host = p.value.host
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1'
  if (host === '::') host = '::1'
  return `http://${host.includes(':') ? `[${host}]` : host}:${p.value.port}/api/v1/status`
}

/** One health probe: 200, the expected version, a running health state. */
async function probe(url: string, version: string, signal: AbortSignal): Promise<{ ok: boolean; why: string }> {
  try {
    const r = await fetch(url, { signal })
    if (r.status !== 200) return { ok: false, why: `HTTP ${r.status}` }
    const j = (await r.json()) as { version?: unknown; health?: unknown }
    if (j.version !== version) return { ok: false, why: `version ${String(j.version)} answers, not ${version}` }
    if (!(HEALTHY_STATES as readonly unknown[]).includes(j.health)) return { ok: false, why: `health ${String(j.health)}` }
    return { ok: true, why: 'healthy' }
  } catch (e) {
    return { ok: false, why: (e as Error).message }
  }
}

/** Poll until healthy or the deadline; resolves with the last reason. */
export async function waitHealthy(url: string, version: string, timeoutMs: number, intervalMs = 1000): Promise<{ ok: boolean; why: string }> {
  const deadline = Date.now() + timeoutMs
  let last = { ok: false, why: 'no answer' }
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0) return last
    last = await probe(url, version, AbortSignal.timeout(Math.max(100, Math.min(5000, left))))
    if (last.ok) return last
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))))
  }
}

/** Run the restart command; resolves with its exit code (or -1). */
function restart(cmd: string | undefined, log: (l: string) => void): Promise<number> {
  const [file, args] = cmd === undefined ? [DEFAULT_RESTART[0], DEFAULT_RESTART.slice(1)] : ['/bin/sh', ['-c', cmd]]
  log(`restarting: ${cmd ?? DEFAULT_RESTART.join(' ')}`)
  return new Promise((resolve) => {
    const p = spawn(file, args, { stdio: ['ignore', 'inherit', 'inherit'] })
    p.once('error', (e) => {
      log(`restart failed: ${e.message}`)
      resolve(-1)
    })
    p.once('exit', (code) => resolve(code ?? -1))
  })
}

function extract(root: string, bundlePath: string, verified: ReturnType<typeof verifyBundle>, target: Slot): void {
  const slots = join(root, OPT_DIR, 'slots')
  mkdirSync(slots, { recursive: true, mode: 0o755 })
  const staging = join(slots, `.incoming-${randomBytes(6).toString('hex')}`)
  mkdirSync(staging, { mode: 0o755 })
  const dirs = new Set<string>([staging])
  const ensureDir = (d: string): void => {
    if (dirs.has(d)) return
    ensureDir(dirname(d))
    mkdirSync(d, { mode: 0o755 })
    dirs.add(d)
  }
  try {
    for (const e of verified.manifest.entries) {
      if (e.kind !== 'symlink') continue
      const p = join(staging, ...e.path.split('/'))
      ensureDir(dirname(p))
      symlinkSync(e.target, p)
    }
    readPayload(bundlePath, verified.bundle, verified.manifest, (e, read) => {
      const p = join(staging, ...e.path.split('/'))
      ensureDir(dirname(p))
      const fd = openSync(p, 'wx', e.mode)
      try {
        read((chunk) => {
          let off = 0
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off)
        })
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
    })
    for (const d of dirs) fsyncDir(d)
    const dest = join(slots, target)
    const old = join(slots, `.old-${randomBytes(6).toString('hex')}`)
    const hadOld = existsSync(dest)
    if (hadOld) renameSync(dest, old)
    renameSync(staging, dest)
    fsyncDir(slots)
    if (hadOld) rmSync(old, { recursive: true, force: true })
  } catch (e) {
    rmSync(staging, { recursive: true, force: true })
    throw e
  }
}

function lock(root: string): () => void {
  const opt = join(root, OPT_DIR)
  mkdirSync(opt, { recursive: true, mode: 0o755 })
  const file = join(opt, '.update.lock')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644)
      writeSync(fd, String(process.pid))
      closeSync(fd)
      return () => rmSync(file, { force: true })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      const pid = Number(readFileSync(file, 'utf8').trim())
      let alive = false
      try {
        alive = Number.isInteger(pid) && pid > 0 && process.kill(pid, 0)
      } catch {
        alive = false
      }
      if (alive) throw new BundleError(`another update is running (pid ${pid}, ${file})`)
      rmSync(file, { force: true })
    }
  }
  throw new BundleError(`cannot take ${file}`)
}

/**
 * Install a bundle (see the header comment).
 *
 * @throws BundleError when the bundle is refused; nothing is touched then.
 */
export async function runUpdate(o: UpdateOptions): Promise<UpdateResult> {
  const root = o.root ?? '/'
  const log = o.log ?? (() => undefined)
  const keys = trustedKeys(root)
  // 1. Everything checked before anything is written.
  const verified = verifyBundle(o.bundle, keys)
  const version = verified.manifest.version
  log(`bundle ${version} (${verified.manifest.commit}) signed by ${verified.keyName}: ${verified.manifest.entries.length} entries verified`)
  const url = statusUrl(o.configPath ?? join(root, DEFAULT_CONFIG_PATH))

  const unlock = lock(root)
  try {
    const previous = activeSlot(root)
    const target: Slot = previous === 'a' ? 'b' : 'a'
    extract(root, o.bundle, verified, target)
    log(`installed into slots/${target}`)
    switchCurrent(root, target)
    log(`current → slots/${target}`)
    const code = await restart(o.restartCommand, log)
    const timeout = o.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS
    const health = code === 0 ? await waitHealthy(url, version, timeout, o.healthIntervalMs) : { ok: false, why: `restart command exited ${code}` }
    if (health.ok) {
      log(`${url} answers healthy with ${version}`)
      return { status: 'installed', version, slot: target, previousSlot: previous, keyName: verified.keyName }
    }
    const reason = `${version} did not answer healthy within ${Math.round(timeout / 1000)} s at ${url}: ${health.why}`
    log(reason)
    if (previous === null) return { status: 'failed', version, slot: target, reason: `${reason}; no previous release to roll back to` }
    switchCurrent(root, previous)
    log(`rolled back: current → slots/${previous}`)
    const code2 = await restart(o.restartCommand, log)
    const prevVersion = readRelease(join(root, OPT_DIR, 'slots', previous))
    const back = code2 === 0 && prevVersion !== undefined ? await waitHealthy(url, prevVersion, timeout, o.healthIntervalMs) : { ok: false, why: 'not checked' }
    return { status: 'rolled-back', version, slot: previous, failedSlot: target, reason, previousHealthy: back.ok }
  } finally {
    unlock()
  }
}

/** RELEASE.json's version of a slot, or undefined. */
export function readRelease(slotDir: string): string | undefined {
  try {
    const j = JSON.parse(readFileSync(join(slotDir, 'RELEASE.json'), 'utf8')) as { version?: unknown }
    return typeof j.version === 'string' ? j.version : undefined
  } catch {
    return undefined
  }
}

export type { ReleaseManifest }
