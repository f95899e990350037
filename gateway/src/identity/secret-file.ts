// Small secrets kept in files (the API bearer token): created once with mode
// 0600, written atomically, never logged.

import { readFileSync, statSync } from 'node:fs'
import { writeFileAtomic as writeAtomic } from '../fs/atomic.ts'
import { FieldproofError } from '../core/errors.ts'

/** Write a secret atomically: mode 0600, directories created 0700. */
export function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o600): void {
  writeAtomic(path, content, mode, 0o700)
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
