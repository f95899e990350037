// Atomic file writes: temp file + fsync + rename + fsync of the directory, so
// after a crash or power loss a file is either absent or complete (POSIX
// rename(2) is atomic within a file system). Plain file-system helpers with
// no domain knowledge: identity, sinks and the CLI share them.

import { closeSync, constants, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'

/** fsync a directory (makes a rename or a new file in it durable). */
export function fsyncDir(dir: string): void {
  const dfd = openSync(dir, constants.O_RDONLY)
  try {
    fsyncSync(dfd)
  } finally {
    closeSync(dfd)
  }
}

/** Write `content` to `path` atomically with `mode`; missing directories are created with `dirMode`. */
export function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o644, dirMode = 0o755): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true, mode: dirMode })
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
  fsyncDir(dir)
}
