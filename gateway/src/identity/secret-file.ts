// Small secrets kept in files (the API bearer token): created once with mode
// 0600, written atomically, never logged.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync, unlinkSync, constants } from 'node:fs'
import { dirname, basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { FieldproofError } from '../core/errors.ts'

/** Write `content` to `path` atomically (temp file + fsync + rename + fsync of the directory) with `mode`. */
export function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode)
  try {
    const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content
    let off = 0
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off)
    fsyncSync(fd)
  } catch (e) {
    closeSync(fd)
    try {
      unlinkSync(tmp)
    } catch {
      /* already gone */
    }
    throw e
  }
  closeSync(fd)
  renameSync(tmp, path)
  const dfd = openSync(dir, constants.O_RDONLY)
  try {
    fsyncSync(dfd)
  } finally {
    closeSync(dfd)
  }
}

/** Read a secret file, creating it with `generate()` (mode 0600) when missing. Refuses one readable by others. */
export function loadOrCreateSecret(path: string, generate: () => string): { value: string; created: boolean } {
  let st
  try {
    st = statSync(path)
  } catch {
    const value = generate()
    writeFileAtomic(path, value + '\n', 0o600)
    return { value, created: true }
  }
  if ((st.mode & 0o077) !== 0) {
    throw new FieldproofError('KEY_INVALID', `${path} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); fix it with: chmod 600 ${path}`)
  }
  const value = readFileSync(path, 'utf8').trim()
  if (!value) throw new FieldproofError('KEY_INVALID', `${path} is empty; delete it to have a new one generated`)
  return { value, created: false }
}
