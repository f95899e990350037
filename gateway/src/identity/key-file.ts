// The gateway key file (ARCHITECTURE.md, "identity"; reliability plan §1.9
// and T06/T30): the secp256k1 key that signs every batch.
//
// Format: the 32-byte private key as 64 lowercase hexadecimal characters
// followed by one newline (65 bytes), no 0x prefix. Mode 0600.
//
// Rules:
// - created with node:crypto randomness, written atomically: a temporary file
//   in the same directory opened O_CREAT|O_EXCL with mode 0600, written,
//   fsynced, then linked (or renamed) into place and the directory fsynced;
// - a key file readable by group or others is refused, with the chmod
//   command that fixes it;
// - an empty or damaged key file is never replaced by a fresh key: that
//   would silently change the gateway's identity;
// - the key never appears in an error message or a log line.

import { randomBytes } from 'node:crypto'
import {
  closeSync,
  constants,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { secp256k1 } from '@noble/curves/secp256k1'
import { FieldproofError } from '../core/errors.ts'
import { fsyncDir } from '../fs/atomic.ts'
import { publicKeyToAddress } from '../core/hex.ts'
import type { Hex } from '../core/types.ts'

/** A gateway key as loaded or created by {@link loadOrCreateKey}. */
export interface GatewayKey {
  /** 0x-prefixed, 64 lowercase hex characters. Never log it. */
  readonly privateKey: Hex
  /** EIP-55 checksummed address of the key. */
  readonly address: Hex
  /** True when this call generated the key (first start). */
  readonly created: boolean
}

export interface WriteKeyOptions {
  /** Replace an existing, different key (the previous one is kept as `<path>.bak`). */
  readonly overwrite?: boolean
}

export interface WriteKeyResult {
  readonly address: Hex
  /** False when the file already held this very key. */
  readonly written: boolean
  /** Where the replaced key was kept, when one was replaced. */
  readonly backupPath?: string
}

const KEY_TEXT = /^(?:0x)?([0-9a-fA-F]{64})$/

/** Whether 32 bytes form a valid secp256k1 private key (1 <= k < n). */
function isValidScalar(hex64: string): boolean {
  const k = BigInt(`0x${hex64}`)
  return k > 0n && k < secp256k1.CURVE.n
}

/**
 * Parse a private key written as 64 hex characters, with or without `0x` and
 * surrounding whitespace. Anything else is a rejection whose reason never
 * contains the input.
 */
export function parsePrivateKey(text: string): { ok: true; privateKey: Hex } | { ok: false; reason: string } {
  const m = KEY_TEXT.exec(text.trim())
  if (m === null) {
    return { ok: false, reason: `expected 64 hexadecimal characters (found ${text.trim().length} characters)` }
  }
  const hex = (m[1] as string).toLowerCase()
  if (!isValidScalar(hex)) return { ok: false, reason: 'not a valid secp256k1 private key (zero or not below the curve order)' }
  return { ok: true, privateKey: `0x${hex}` }
}

/** The EIP-55 checksummed address of a private key. */
export function addressOf(privateKey: Hex): Hex {
  const parsed = parsePrivateKey(privateKey)
  if (!parsed.ok) throw new FieldproofError('KEY_INVALID', `invalid private key: ${parsed.reason}`)
  // @noble/curves directly: viem's account module costs ~30 MB of resident memory on a 512 MB Pi.
  return publicKeyToAddress(secp256k1.getPublicKey(parsed.privateKey.slice(2), false))
}

/** A new private key from node:crypto's CSPRNG. */
export function generatePrivateKey(): Hex {
  for (;;) {
    const hex = randomBytes(32).toString('hex')
    if (isValidScalar(hex)) return `0x${hex}`
  }
}


/**
 * Write `data` to `path` atomically with mode 0600. With `exclusive`, fail
 * with EEXIST when `path` exists (the check and the creation are one step).
 */
function atomicWrite(path: string, data: string, exclusive: boolean): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    try {
      const buf = Buffer.from(data, 'utf8')
      let off = 0
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    if (exclusive) {
      try {
        linkSync(tmp, path)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        // Filesystems without hard links: check, then rename.
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e
        if (exists(path)) throw Object.assign(new Error(`EEXIST: ${path}`), { code: 'EEXIST' })
        renameSync(tmp, path)
      }
    } else {
      renameSync(tmp, path)
    }
    fsyncDir(dir)
  } finally {
    try {
      unlinkSync(tmp)
    } catch {
      // already renamed away
    }
  }
}

function exists(path: string): boolean {
  try {
    statSync(path)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  }
}

function fileError(path: string, e: unknown): FieldproofError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error'
  return new FieldproofError('KEY_INVALID', `cannot access key file ${path}: ${code}`, { details: { path }, cause: e })
}

/** Read and check a key file: mode, format, curve. Never puts the key in an error. */
export function readKey(path: string): { privateKey: Hex; address: Hex } {
  let st
  try {
    st = statSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FieldproofError('KEY_INVALID', `key file not found: ${path}`, { details: { path } })
    }
    throw fileError(path, e)
  }
  if (!st.isFile()) throw new FieldproofError('KEY_INVALID', `key file ${path} is not a regular file`, { details: { path } })
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
    throw new FieldproofError(
      'KEY_INVALID',
      `key file ${path} is readable by other users (mode ${mode}); fix it with: chmod 600 '${path}'`,
      { details: { path, mode } },
    )
  }
  let text: string
  try {
    text = readFileSync(path, 'latin1')
  } catch (e) {
    throw fileError(path, e)
  }
  if (text.length === 0) {
    throw new FieldproofError(
      'KEY_INVALID',
      `key file ${path} is empty (a write interrupted by power loss?). The gateway will not replace it with a new key, which would change its identity: restore it with "fieldproof keys import".`,
      { details: { path } },
    )
  }
  const parsed = parsePrivateKey(text)
  if (!parsed.ok) {
    throw new FieldproofError(
      'KEY_INVALID',
      `key file ${path} is damaged: ${parsed.reason}. Restore it with "fieldproof keys import".`,
      { details: { path } },
    )
  }
  return { privateKey: parsed.privateKey, address: addressOf(parsed.privateKey) }
}

/**
 * Load the gateway key, creating it on first start.
 *
 * @example
 * const key = loadOrCreateKey(config.identity.key_file)
 * if (key.created) log.info({ address: key.address }, 'new gateway key')
 * @throws FieldproofError `KEY_INVALID` when the file is readable by others, empty or damaged.
 */
export function loadOrCreateKey(path: string): GatewayKey {
  if (!exists(path)) {
    const privateKey = generatePrivateKey()
    try {
      atomicWrite(path, `${privateKey.slice(2)}\n`, true)
      return { privateKey, address: addressOf(privateKey), created: true }
    } catch (e) {
      // Another process created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(path, e)
    }
  }
  return { ...readKey(path), created: false }
}

/**
 * Write a key file (`fieldproof keys import`). Writing the key the file
 * already holds is a no-op; replacing a different key needs `overwrite`, and
 * the replaced key is kept as `<path>.bak`. An empty file (a torn write) may
 * be replaced without `overwrite`.
 *
 * @throws FieldproofError `KEY_EXISTS` when a different key is there and `overwrite` is not set.
 */
export function writeKey(path: string, privateKey: Hex, opts: WriteKeyOptions = {}): WriteKeyResult {
  const parsed = parsePrivateKey(privateKey)
  if (!parsed.ok) throw new FieldproofError('KEY_INVALID', `invalid private key: ${parsed.reason}`)
  const key = parsed.privateKey
  const address = addressOf(key)
  const data = `${key.slice(2)}\n`

  if (!exists(path)) {
    try {
      atomicWrite(path, data, true)
      return { address, written: true }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fileError(path, e)
    }
  }

  let current: string
  try {
    current = readFileSync(path, 'latin1')
  } catch (e) {
    throw fileError(path, e)
  }
  const existing = parsePrivateKey(current)
  if (existing.ok && existing.privateKey === key) return { address, written: false }
  if (current.length > 0 && opts.overwrite !== true) {
    const what = existing.ok ? `the key of ${addressOf(existing.privateKey)}` : 'an unreadable key'
    throw new FieldproofError(
      'KEY_EXISTS',
      `${path} already holds ${what}; replacing it changes the gateway's identity. Use --force to replace it (the old file is kept as ${path}.bak).`,
      { details: { path, ...(existing.ok ? { existingAddress: addressOf(existing.privateKey) } : {}) } },
    )
  }
  let backupPath: string | undefined
  try {
    if (current.length > 0) {
      backupPath = `${path}.bak`
      atomicWrite(backupPath, current, false)
    }
    atomicWrite(path, data, false)
  } catch (e) {
    throw fileError(path, e)
  }
  return { address, written: true, ...(backupPath !== undefined ? { backupPath } : {}) }
}
