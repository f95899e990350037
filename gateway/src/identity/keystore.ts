// Web3 Secret Storage Definition, version 3: the JSON keystore that geth,
// MetaMask ("import account: JSON file"), MyCrypto/MyEtherWallet and
// Foundry's `cast wallet` read and write.
// https://ethereum.org/developers/docs/data-structures-and-encoding/web3-secret-storage/
//
// - KDF: scrypt (written; n=262144, r=8, p=1, dklen=32 by default) or
//   PBKDF2 with prf hmac-sha256 (read only), both named by the definition.
// - MAC = keccak256(DK[16..31] ++ ciphertext), checked before decryption.
// - Cipher: aes-128-ctr with key DK[0..15] and a random 128-bit iv.
// - `id` a random UUID v4; `address` the lowercase address without 0x.
// The passphrase is used as its UTF-8 bytes, unnormalized, as geth does.

import {
  createCipheriv,
  createDecipheriv,
  pbkdf2Sync,
  randomBytes,
  randomUUID,
  scryptSync,
  timingSafeEqual,
} from 'node:crypto'
import { keccak_256 } from '@noble/hashes/sha3'
import { FieldproofError } from '../core/errors.ts'
import type { Hex } from '../core/types.ts'
import { addressOf, parsePrivateKey } from './key-file.ts'

/** A version 3 keystore as {@link encryptKeystore} writes it. */
export interface Keystore {
  readonly version: 3
  /** Random UUID v4. */
  readonly id: string
  /** Lowercase address without 0x. */
  readonly address: string
  readonly crypto: {
    readonly cipher: 'aes-128-ctr'
    readonly cipherparams: { readonly iv: string }
    readonly ciphertext: string
    readonly kdf: 'scrypt'
    readonly kdfparams: { readonly dklen: number; readonly n: number; readonly r: number; readonly p: number; readonly salt: string }
    readonly mac: string
  }
}

export interface EncryptKeystoreOptions {
  /** scrypt cost N, a power of two (default 262144, as geth's "standard" setting). Lower only for tests. */
  readonly scryptN?: number
}

/** geth's StandardScryptN / StandardScryptP. */
export const DEFAULT_SCRYPT_N = 262_144
const SCRYPT_R = 8
const SCRYPT_P = 1
const DKLEN = 32
/** Refuse keystores whose scrypt would need more memory than a Pi can spare (128·N·r bytes). */
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024
/** Refuse absurd PBKDF2 iteration counts (the spec vector uses 262144). */
const MAX_PBKDF2_ROUNDS = 10_000_000

/**
 * scrypt (RFC 7914). OpenSSL, behind node:crypto, enforces RFC 7914's
 * N < 2^(128·r/8); geth (golang.org/x/crypto/scrypt) does not, and keystores
 * exist with such parameters: the Web3 Secret Storage Definition's original
 * scrypt vector (n=262144, r=1, p=8), kept in go-ethereum's
 * accounts/keystore/testdata/v3_test_vector.json. Those go through
 * {@link scryptRfc7914} below.
 */
function scrypt(passphrase: Buffer, salt: Buffer, n: number, r: number, p: number, dklen: number): Buffer {
  if (Math.log2(n) < 16 * r) {
    return scryptSync(passphrase, salt, dklen, { N: n, r, p, maxmem: 128 * n * r * 2 + 1024 * 1024 })
  }
  return scryptRfc7914(passphrase, salt, n, r, p, dklen)
}

/** Salsa20/8 core (RFC 7914 §3) on 16 words, in place in `b` at `bi`. */
function salsa20_8(b: Uint32Array, bi: number, x: Uint32Array): void {
  for (let i = 0; i < 16; i++) x[i] = b[bi + i] as number
  let x0 = x[0] as number, x1 = x[1] as number, x2 = x[2] as number, x3 = x[3] as number
  let x4 = x[4] as number, x5 = x[5] as number, x6 = x[6] as number, x7 = x[7] as number
  let x8 = x[8] as number, x9 = x[9] as number, x10 = x[10] as number, x11 = x[11] as number
  let x12 = x[12] as number, x13 = x[13] as number, x14 = x[14] as number, x15 = x[15] as number
  const R = (a: number, k: number): number => (a << k) | (a >>> (32 - k))
  for (let i = 0; i < 8; i += 2) {
    x4 ^= R((x0 + x12) | 0, 7); x8 ^= R((x4 + x0) | 0, 9); x12 ^= R((x8 + x4) | 0, 13); x0 ^= R((x12 + x8) | 0, 18)
    x9 ^= R((x5 + x1) | 0, 7); x13 ^= R((x9 + x5) | 0, 9); x1 ^= R((x13 + x9) | 0, 13); x5 ^= R((x1 + x13) | 0, 18)
    x14 ^= R((x10 + x6) | 0, 7); x2 ^= R((x14 + x10) | 0, 9); x6 ^= R((x2 + x14) | 0, 13); x10 ^= R((x6 + x2) | 0, 18)
    x3 ^= R((x15 + x11) | 0, 7); x7 ^= R((x3 + x15) | 0, 9); x11 ^= R((x7 + x3) | 0, 13); x15 ^= R((x11 + x7) | 0, 18)
    x1 ^= R((x0 + x3) | 0, 7); x2 ^= R((x1 + x0) | 0, 9); x3 ^= R((x2 + x1) | 0, 13); x0 ^= R((x3 + x2) | 0, 18)
    x6 ^= R((x5 + x4) | 0, 7); x7 ^= R((x6 + x5) | 0, 9); x4 ^= R((x7 + x6) | 0, 13); x5 ^= R((x4 + x7) | 0, 18)
    x11 ^= R((x10 + x9) | 0, 7); x8 ^= R((x11 + x10) | 0, 9); x9 ^= R((x8 + x11) | 0, 13); x10 ^= R((x9 + x8) | 0, 18)
    x12 ^= R((x15 + x14) | 0, 7); x13 ^= R((x12 + x15) | 0, 9); x14 ^= R((x13 + x12) | 0, 13); x15 ^= R((x14 + x13) | 0, 18)
  }
  const out = [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15]
  for (let i = 0; i < 16; i++) b[bi + i] = ((x[i] as number) + (out[i] as number)) | 0
}

/** scryptBlockMix (RFC 7914 §4): `b` (2r 64-byte blocks) → `y`. */
function blockMix(b: Uint32Array, y: Uint32Array, r: number, t: Uint32Array, x: Uint32Array): void {
  t.set(b.subarray((2 * r - 1) * 16, 2 * r * 16))
  for (let i = 0; i < 2 * r; i++) {
    for (let k = 0; k < 16; k++) t[k] = (t[k] as number) ^ (b[i * 16 + k] as number)
    salsa20_8(t, 0, x)
    // Even blocks to the first half, odd blocks to the second.
    y.set(t, ((i & 1) * r + (i >> 1)) * 16)
  }
}

/**
 * scrypt (RFC 7914 §6) in plain TypeScript, without the N < 2^(128·r/8)
 * restriction: the same function for every other parameter set, checked
 * against node:crypto in keystore.test.ts.
 */
export function scryptRfc7914(passphrase: Uint8Array, salt: Uint8Array, n: number, r: number, p: number, dklen: number): Buffer {
  const words = 32 * r
  const bytes = pbkdf2Sync(passphrase, salt, 1, p * 128 * r, 'sha256')
  const v = new Uint32Array(n * words)
  const xa = new Uint32Array(words)
  const xb = new Uint32Array(words)
  const t = new Uint32Array(16)
  const tmp = new Uint32Array(16)
  for (let i = 0; i < p; i++) {
    const off = i * 128 * r
    for (let k = 0; k < words; k++) xa[k] = bytes.readUInt32LE(off + k * 4)
    for (let j = 0; j < n; j++) {
      v.set(xa, j * words)
      blockMix(xa, xb, r, t, tmp)
      xa.set(xb)
    }
    for (let j = 0; j < n; j++) {
      const idx = ((xa[(2 * r - 1) * 16] as number) & (n - 1)) * words
      for (let k = 0; k < words; k++) xa[k] = (xa[k] as number) ^ (v[idx + k] as number)
      blockMix(xa, xb, r, t, tmp)
      xa.set(xb)
    }
    for (let k = 0; k < words; k++) bytes.writeUInt32LE(xa[k] as number, off + k * 4)
  }
  v.fill(0)
  return pbkdf2Sync(passphrase, bytes, 1, dklen, 'sha256')
}

function macOf(derivedKey: Buffer, ciphertext: Buffer): Buffer {
  return Buffer.from(keccak_256(Buffer.concat([derivedKey.subarray(16, 32), ciphertext])))
}

/**
 * Encrypt a private key into a version 3 keystore (scrypt + aes-128-ctr).
 *
 * @example
 * const ks = encryptKeystore(key.privateKey, await askPassphrase('Passphrase: ', { confirm: true }))
 * writeFileSync('gateway-keystore.json', JSON.stringify(ks, null, 2), { mode: 0o600 })
 */
export function encryptKeystore(privateKey: Hex, passphrase: string, opts: EncryptKeystoreOptions = {}): Keystore {
  const parsed = parsePrivateKey(privateKey)
  if (!parsed.ok) throw new FieldproofError('KEY_INVALID', `invalid private key: ${parsed.reason}`)
  const n = opts.scryptN ?? DEFAULT_SCRYPT_N
  if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) !== 0 || 128 * n * SCRYPT_R > MAX_SCRYPT_MEMORY) {
    throw new FieldproofError('USAGE', `scryptN must be a power of two from 2 to ${MAX_SCRYPT_MEMORY / (128 * SCRYPT_R)}`)
  }
  const salt = randomBytes(32)
  const iv = randomBytes(16)
  const dk = scrypt(Buffer.from(passphrase, 'utf8'), salt, n, SCRYPT_R, SCRYPT_P, DKLEN)
  const cipher = createCipheriv('aes-128-ctr', dk.subarray(0, 16), iv)
  const ciphertext = Buffer.concat([cipher.update(Buffer.from(parsed.privateKey.slice(2), 'hex')), cipher.final()])
  return {
    version: 3,
    id: randomUUID(),
    address: addressOf(parsed.privateKey).slice(2).toLowerCase(),
    crypto: {
      cipher: 'aes-128-ctr',
      cipherparams: { iv: iv.toString('hex') },
      ciphertext: ciphertext.toString('hex'),
      kdf: 'scrypt',
      kdfparams: { dklen: DKLEN, n, r: SCRYPT_R, p: SCRYPT_P, salt: salt.toString('hex') },
      mac: macOf(dk, ciphertext).toString('hex'),
    },
  }
}

function bad(field: string, message: string): FieldproofError {
  return new FieldproofError('KEYSTORE_INVALID', `keystore: ${field}: ${message}`, { details: { field } })
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'expected an object')
  return v as Record<string, unknown>
}

function hexField(o: Record<string, unknown>, key: string, field: string, bytes?: number): Buffer {
  const v = o[key]
  if (typeof v !== 'string') throw bad(field, 'missing or not a string')
  const hex = v.startsWith('0x') ? v.slice(2) : v
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) throw bad(field, 'expected hexadecimal bytes')
  if (bytes !== undefined && hex.length !== bytes * 2) throw bad(field, `expected ${bytes} bytes, found ${hex.length / 2}`)
  return Buffer.from(hex, 'hex')
}

function intField(o: Record<string, unknown>, key: string, field: string, min: number, max: number): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(field, 'missing or not an integer')
  if (v < min || v > max) throw bad(field, `${v} is out of range ${min}..${max}`)
  return v
}

interface ParsedKeystore {
  readonly root: Record<string, unknown>
  readonly iv: Buffer
  readonly ciphertext: Buffer
  readonly mac: Buffer
  readonly derive: (passphrase: Buffer) => Buffer
}

function parseKeystore(json: unknown): ParsedKeystore {
  let doc: unknown = json
  if (typeof json === 'string' || json instanceof Uint8Array) {
    try {
      doc = JSON.parse(typeof json === 'string' ? json : Buffer.from(json).toString('utf8'))
    } catch (e) {
      throw new FieldproofError('KEYSTORE_INVALID', `keystore: not JSON (${(e as Error).message})`, { cause: e })
    }
  }
  const root = obj(doc, '(root)')
  if (root['version'] !== 3) throw bad('version', `expected 3, found ${JSON.stringify(root['version']) ?? 'nothing'}`)
  // geth also accepts "Crypto", as written by early MyEtherWallet versions.
  const cryptoKey = 'crypto' in root ? 'crypto' : 'Crypto'
  const c = obj(root[cryptoKey], 'crypto')

  if (c['cipher'] !== 'aes-128-ctr') {
    throw bad('crypto.cipher', `unsupported cipher ${JSON.stringify(c['cipher']) ?? '(missing)'}; expected "aes-128-ctr"`)
  }
  const iv = hexField(obj(c['cipherparams'], 'crypto.cipherparams'), 'iv', 'crypto.cipherparams.iv', 16)
  // 32 bytes; go-ethereum before PR #3032 (2016) wrote keys with leading zero bytes dropped (30 or 31 bytes).
  const ciphertext = hexField(c, 'ciphertext', 'crypto.ciphertext')
  if (ciphertext.length < 16 || ciphertext.length > 32) {
    throw bad('crypto.ciphertext', `expected 32 bytes, found ${ciphertext.length}`)
  }
  const mac = hexField(c, 'mac', 'crypto.mac', 32)
  const kp = obj(c['kdfparams'], 'crypto.kdfparams')
  const salt = hexField(kp, 'salt', 'crypto.kdfparams.salt')
  const dklen = intField(kp, 'dklen', 'crypto.kdfparams.dklen', 32, 64)

  if (c['kdf'] === 'scrypt') {
    const n = intField(kp, 'n', 'crypto.kdfparams.n', 2, 2 ** 30)
    if ((n & (n - 1)) !== 0) throw bad('crypto.kdfparams.n', `${n} is not a power of two`)
    const r = intField(kp, 'r', 'crypto.kdfparams.r', 1, 1024)
    const p = intField(kp, 'p', 'crypto.kdfparams.p', 1, 16)
    if (128 * n * r > MAX_SCRYPT_MEMORY) {
      throw bad(
        'crypto.kdfparams',
        `scrypt n=${n}, r=${r} needs ${(128 * n * r) / 2 ** 20} MiB, more than the ${MAX_SCRYPT_MEMORY / 2 ** 20} MiB allowed`,
      )
    }
    return { root, iv, ciphertext, mac, derive: (pass) => scrypt(pass, salt, n, r, p, dklen) }
  }
  if (c['kdf'] === 'pbkdf2') {
    if (kp['prf'] !== 'hmac-sha256') {
      throw bad('crypto.kdfparams.prf', `unsupported prf ${JSON.stringify(kp['prf']) ?? '(missing)'}; expected "hmac-sha256"`)
    }
    const rounds = intField(kp, 'c', 'crypto.kdfparams.c', 1, MAX_PBKDF2_ROUNDS)
    return { root, iv, ciphertext, mac, derive: (pass) => pbkdf2Sync(pass, salt, rounds, dklen, 'sha256') }
  }
  throw bad('crypto.kdf', `unsupported kdf ${JSON.stringify(c['kdf']) ?? '(missing)'}; expected "scrypt" or "pbkdf2"`)
}

/**
 * The key-derivation output of a keystore for a passphrase (the spec's
 * "Derived key" intermediate). For diagnostics and the test vectors.
 */
export function keystoreDerivedKey(json: unknown, passphrase: string): Uint8Array {
  return parseKeystore(json).derive(Buffer.from(passphrase, 'utf8'))
}

/**
 * Decrypt a version 3 keystore (an object or its JSON text). The MAC is
 * checked before anything is decrypted.
 *
 * @example const privateKey = decryptKeystore(readFileSync(file, 'utf8'), readPassphraseFile(passFile))
 * @throws FieldproofError `KEYSTORE_PASSPHRASE` when the MAC does not match
 *   (wrong passphrase, or a damaged file); `KEYSTORE_INVALID` naming the
 *   field when the document is malformed or unsupported.
 */
export function decryptKeystore(json: unknown, passphrase: string): Hex {
  const ks = parseKeystore(json)
  const dk = ks.derive(Buffer.from(passphrase, 'utf8'))
  if (!timingSafeEqual(macOf(dk, ks.ciphertext), ks.mac)) {
    throw new FieldproofError('KEYSTORE_PASSPHRASE', 'wrong passphrase, or the keystore file is damaged (MAC mismatch)')
  }
  const decipher = createDecipheriv('aes-128-ctr', dk.subarray(0, 16), ks.iv)
  const plain = Buffer.concat([Buffer.alloc(32 - ks.ciphertext.length), decipher.update(ks.ciphertext), decipher.final()])
  dk.fill(0)
  const parsed = parsePrivateKey(plain.toString('hex'))
  plain.fill(0)
  if (!parsed.ok) throw bad('crypto.ciphertext', 'does not decrypt to a valid secp256k1 key')

  const a = ks.root['address']
  if (a !== undefined) {
    const claimed = typeof a === 'string' ? a.toLowerCase().replace(/^0x/, '') : ''
    if (claimed !== addressOf(parsed.privateKey).slice(2).toLowerCase()) {
      throw bad('address', 'does not match the decrypted key')
    }
  }
  return parsed.privateKey
}
