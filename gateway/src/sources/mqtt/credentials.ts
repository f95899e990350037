// MQTT device credentials: generated passwords, stored as salted scrypt
// hashes in devices.secret (RFC 7914; N = 2^14, r = 8, p = 1, 32-byte key).
// The password is shown once, at creation; the gateway keeps only the hash.

import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto'

export interface ScryptSecret {
  readonly scrypt: { readonly salt: string; readonly hash: string; readonly N: number; readonly r: number; readonly p: number }
}

const PARAMS = { N: 16384, r: 8, p: 1 } as const
const KEY_LEN = 32

/** A new random password: 24 bytes, base64url (32 characters). */
export function generatePassword(): string {
  return randomBytes(24).toString('base64url')
}

/** The secret to store for a password. */
export function hashPassword(password: string): ScryptSecret {
  const salt = randomBytes(16)
  const hash = scryptSync(password, salt, KEY_LEN, { ...PARAMS, maxmem: 64 * 1024 * 1024 })
  return { scrypt: { salt: salt.toString('base64'), hash: hash.toString('base64'), ...PARAMS } }
}

/** Parse a stored secret; undefined when it is not a scrypt secret. */
export function parseSecret(text: string | null): ScryptSecret | undefined {
  if (text === null) return undefined
  try {
    const j = JSON.parse(text) as Partial<ScryptSecret>
    const s = j.scrypt
    if (!s || typeof s.salt !== 'string' || typeof s.hash !== 'string') return undefined
    if (![s.N, s.r, s.p].every((x) => Number.isInteger(x) && (x as number) > 0) || (s.N as number) > 1 << 20) return undefined
    return j as ScryptSecret
  } catch {
    return undefined
  }
}

/** Check a password against a stored secret, off the event loop (libuv thread pool). Never rejects. */
export function verifyPassword(password: Buffer | string, secret: ScryptSecret): Promise<boolean> {
  const s = secret.scrypt
  const want = Buffer.from(s.hash, 'base64')
  return new Promise((resolve) => {
    scrypt(password, Buffer.from(s.salt, 'base64'), want.length, { N: s.N, r: s.r, p: s.p, maxmem: 64 * 1024 * 1024 }, (err, got) => {
      resolve(!err && got.length === want.length && timingSafeEqual(got, want))
    })
  })
}
