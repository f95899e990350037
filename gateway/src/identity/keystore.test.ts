import t from 'tap'
import { createDecipheriv, scryptSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { keccak_256 } from '@noble/hashes/sha3'
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt'
import { isFieldproofError } from '../core/errors.ts'
import type { Hex } from '../core/types.ts'
import { DEFAULT_SCRYPT_N, decryptKeystore, encryptKeystore, keystoreDerivedKey, scryptRfc7914, type Keystore } from './keystore.ts'

// The published vectors of the Web3 Secret Storage Definition, see test/fixtures/keystore/README.md.
const fixture = (name: string): string => readFileSync(new URL(`../../../test/fixtures/keystore/${name}`, import.meta.url), 'utf8')
const spec = JSON.parse(fixture('vectors.json')) as {
  password: string
  secret: string
  address: string
  vectors: { file: string; derivedKey: string; macBody: string; mac: string; cipherKey: string }[]
}
const SECRET = `0x${spec.secret}` as Hex

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (e) {
    return e
  }
  return undefined
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex')
}

t.test('the published PBKDF2-SHA-256 vector decrypts, with the published intermediates', (t) => {
  const v = spec.vectors.find((x) => x.file === 'ethereum-org-pbkdf2-sha256.json')
  if (v === undefined) throw new Error('vector missing')
  const text = fixture(v.file)
  const dk = keystoreDerivedKey(text, spec.password)
  t.equal(hex(dk), v.derivedKey, 'derived key')
  t.equal(hex(dk.subarray(0, 16)), v.cipherKey, 'cipher key is DK[0..15]')
  t.equal(hex(keccak_256(Buffer.from(v.macBody, 'hex'))), v.mac, 'mac of the mac body')
  t.equal(v.macBody, v.derivedKey.slice(32) + (JSON.parse(text) as Keystore).crypto.ciphertext, 'mac body = DK[16..31] ++ ciphertext')
  t.equal(decryptKeystore(text, spec.password), SECRET, 'secret (from JSON text)')
  t.equal(decryptKeystore(JSON.parse(text), spec.password), SECRET, 'secret (from an object)')
  t.equal(decryptKeystore(Buffer.from(text), spec.password), SECRET, 'secret (from bytes)')
  t.end()
})

t.test("the Definition's scrypt vector (go-ethereum's copy, n=2^18 r=1 p=8) and geth's short-key vectors decrypt", (t) => {
  const geth = JSON.parse(fixture('go-ethereum-v3_test_vector.json')) as Record<string, { json: unknown; password: string; priv: string }>
  t.same(Object.keys(geth), ['wikipage_test_vector_scrypt', 'wikipage_test_vector_pbkdf2', '31_byte_key', '30_byte_key'])
  for (const [name, v] of Object.entries(geth)) {
    t.equal(decryptKeystore(v.json, v.password), `0x${v.priv.padStart(64, '0')}`, name)
  }
  t.equal(geth['wikipage_test_vector_scrypt']?.priv, spec.secret)
  t.end()
})

t.test('the scrypt vector now on ethereum.org has an erratum: it derives from the salt as text', (t) => {
  const v = spec.vectors.find((x) => x.file === 'ethereum-org-scrypt.json')
  if (v === undefined) throw new Error('vector missing')
  const text = fixture(v.file)
  const ks = JSON.parse(text) as Keystore
  const e = thrown(() => decryptKeystore(text, spec.password))
  t.ok(isFieldproofError(e, 'KEYSTORE_PASSPHRASE'), 'refused by a conforming implementation')
  // The published intermediates, reproduced with the salt's hex text as the salt:
  const p = ks.crypto.kdfparams
  const dk = scryptSync(spec.password, Buffer.from(p.salt, 'utf8'), p.dklen, { N: p.n, r: p.r, p: p.p, maxmem: 2 ** 29 })
  t.equal(hex(dk), v.derivedKey, 'published derived key = scrypt(password, utf8(salt hex))')
  const ct = Buffer.from(ks.crypto.ciphertext, 'hex')
  t.equal(hex(keccak_256(Buffer.concat([dk.subarray(16, 32), ct]))), ks.crypto.mac, 'and the file is consistent with it')
  const d = createDecipheriv('aes-128-ctr', dk.subarray(0, 16), Buffer.from(ks.crypto.cipherparams.iv, 'hex'))
  t.equal(hex(Buffer.concat([d.update(ct), d.final()])), spec.secret)
  t.not(hex(keystoreDerivedKey(text, spec.password)), v.derivedKey, 'the salt decoded from hex gives another key')
  t.end()
})

t.test('the TypeScript scrypt agrees with node:crypto and RFC 7914 §12', (t) => {
  for (const [n, r, p] of [
    [2, 8, 1],
    [16, 1, 1],
    [256, 2, 3],
    [1024, 8, 2],
    [4096, 1, 1],
  ] as const) {
    const want = scryptSync('password', 'NaCl', 64, { N: n, r, p, maxmem: 2 ** 28 })
    t.equal(hex(scryptRfc7914(Buffer.from('password'), Buffer.from('NaCl'), n, r, p, 64)), hex(want), `N=${n} r=${r} p=${p}`)
  }
  // RFC 7914 §12, first vector: P = "", S = "", N = 16, r = 1, p = 1, dkLen = 64.
  t.equal(
    hex(scryptRfc7914(new Uint8Array(0), new Uint8Array(0), 16, 1, 1, 64)),
    '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906',
  )
  t.end()
})

t.test('round trip with a small scrypt N; the output follows the definition', (t) => {
  const ks = encryptKeystore(SECRET, 'correct horse', { scryptN: 1024 })
  t.equal(ks.version, 3)
  t.match(ks.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'uuid v4')
  t.equal(ks.address, spec.address, 'lowercase address without 0x')
  t.same(
    { ...ks.crypto.kdfparams, salt: ks.crypto.kdfparams.salt.length },
    { dklen: 32, n: 1024, r: 8, p: 1, salt: 64 },
  )
  t.equal(ks.crypto.cipher, 'aes-128-ctr')
  t.match(ks.crypto.cipherparams.iv, /^[0-9a-f]{32}$/)
  t.match(ks.crypto.ciphertext, /^[0-9a-f]{64}$/)
  t.match(ks.crypto.mac, /^[0-9a-f]{64}$/)
  t.equal(decryptKeystore(JSON.stringify(ks), 'correct horse'), SECRET)

  // Checked against an independent scrypt (noble) and the definition's formulas.
  const p = ks.crypto.kdfparams
  const dk = nobleScrypt(Buffer.from('correct horse'), Buffer.from(p.salt, 'hex'), { N: p.n, r: p.r, p: p.p, dkLen: p.dklen })
  const ct = Buffer.from(ks.crypto.ciphertext, 'hex')
  t.equal(hex(keccak_256(Buffer.concat([dk.subarray(16, 32), ct]))), ks.crypto.mac, 'mac = keccak256(DK[16..31] ++ ciphertext)')
  const d = createDecipheriv('aes-128-ctr', dk.subarray(0, 16), Buffer.from(ks.crypto.cipherparams.iv, 'hex'))
  t.equal(`0x${hex(Buffer.concat([d.update(ct), d.final()]))}`, SECRET, 'aes-128-ctr with DK[0..15]')

  const again = encryptKeystore(SECRET, 'correct horse', { scryptN: 1024 })
  t.not(again.id, ks.id, 'random id')
  t.not(again.crypto.kdfparams.salt, ks.crypto.kdfparams.salt, 'random salt')
  t.not(again.crypto.cipherparams.iv, ks.crypto.cipherparams.iv, 'random iv')
  t.end()
})

t.test('the default scrypt parameters are geth\'s standard ones', (t) => {
  const ks = encryptKeystore(SECRET, 'pw')
  t.same(ks.crypto.kdfparams.n, DEFAULT_SCRYPT_N)
  t.equal(DEFAULT_SCRYPT_N, 262144)
  t.equal(decryptKeystore(ks, 'pw'), SECRET)
  t.ok(isFieldproofError(thrown(() => encryptKeystore(SECRET, 'pw', { scryptN: 1000 })), 'USAGE'), 'N must be a power of two')
  t.ok(isFieldproofError(thrown(() => encryptKeystore('0x00' as Hex, 'pw', { scryptN: 1024 })), 'KEY_INVALID'))
  t.end()
})

t.test('a wrong passphrase is KEYSTORE_PASSPHRASE', (t) => {
  const ks = encryptKeystore(SECRET, 'right', { scryptN: 1024 })
  const e = thrown(() => decryptKeystore(ks, 'wrong'))
  t.ok(isFieldproofError(e, 'KEYSTORE_PASSPHRASE'))
  t.notMatch((e as Error).message, spec.secret.slice(0, 16))
  t.ok(isFieldproofError(thrown(() => decryptKeystore(fixture('ethereum-org-pbkdf2-sha256.json'), 'testpassword ')), 'KEYSTORE_PASSPHRASE'))
  t.end()
})

t.test('a tampered ciphertext or mac fails the mac check before decryption', (t) => {
  const ks = encryptKeystore(SECRET, 'pw', { scryptN: 1024 })
  const flip = (h: string): string => (h[0] === '0' ? '1' : '0') + h.slice(1)
  const tamperedCt: Keystore = { ...ks, crypto: { ...ks.crypto, ciphertext: flip(ks.crypto.ciphertext) } }
  t.ok(isFieldproofError(thrown(() => decryptKeystore(tamperedCt, 'pw')), 'KEYSTORE_PASSPHRASE'))
  const tamperedMac: Keystore = { ...ks, crypto: { ...ks.crypto, mac: flip(ks.crypto.mac) } }
  t.ok(isFieldproofError(thrown(() => decryptKeystore(tamperedMac, 'pw')), 'KEYSTORE_PASSPHRASE'))
  const tamperedSalt: Keystore = {
    ...ks,
    crypto: { ...ks.crypto, kdfparams: { ...ks.crypto.kdfparams, salt: flip(ks.crypto.kdfparams.salt) } },
  }
  t.ok(isFieldproofError(thrown(() => decryptKeystore(tamperedSalt, 'pw')), 'KEYSTORE_PASSPHRASE'))
  t.end()
})

t.test('malformed keystores are KEYSTORE_INVALID naming the field', (t) => {
  const ks = JSON.parse(JSON.stringify(encryptKeystore(SECRET, 'pw', { scryptN: 1024 }))) as Record<string, unknown>
  const c = ks['crypto'] as Record<string, unknown>
  const kp = c['kdfparams'] as Record<string, unknown>
  const pbkdf2 = JSON.parse(fixture('ethereum-org-pbkdf2-sha256.json')) as Record<string, unknown>
  const pc = pbkdf2['crypto'] as Record<string, unknown>
  const cases: [string, unknown, RegExp][] = [
    ['not JSON', '{"version": 3,', /not JSON/],
    ['not an object', [1, 2], /\(root\): expected an object/],
    ['version 1', { ...ks, version: 1 }, /version: expected 3, found 1/],
    ['no crypto', { ...ks, crypto: undefined }, /crypto: expected an object/],
    ['cbc', { ...ks, crypto: { ...c, cipher: 'aes-128-cbc' } }, /crypto\.cipher: unsupported cipher "aes-128-cbc"/],
    ['short ciphertext', { ...ks, crypto: { ...c, ciphertext: 'abcd' } }, /crypto\.ciphertext: expected 32 bytes, found 2/],
    ['short iv', { ...ks, crypto: { ...c, cipherparams: { iv: 'abcd' } } }, /crypto\.cipherparams\.iv: expected 16 bytes, found 2/],
    ['ciphertext not hex', { ...ks, crypto: { ...c, ciphertext: 'xyz' } }, /crypto\.ciphertext: expected hexadecimal bytes/],
    ['no mac', { ...ks, crypto: { ...c, mac: undefined } }, /crypto\.mac: missing or not a string/],
    ['argon2', { ...ks, crypto: { ...c, kdf: 'argon2id' } }, /crypto\.kdf: unsupported kdf "argon2id"/],
    ['salt', { ...ks, crypto: { ...c, kdfparams: { ...kp, salt: 12 } } }, /crypto\.kdfparams\.salt: missing or not a string/],
    ['dklen 16', { ...ks, crypto: { ...c, kdfparams: { ...kp, dklen: 16 } } }, /crypto\.kdfparams\.dklen: 16 is out of range 32\.\.64/],
    ['n not 2^k', { ...ks, crypto: { ...c, kdfparams: { ...kp, n: 1000 } } }, /crypto\.kdfparams\.n: 1000 is not a power of two/],
    ['n huge', { ...ks, crypto: { ...c, kdfparams: { ...kp, n: 2 ** 24 } } }, /crypto\.kdfparams: scrypt n=16777216, r=8 needs 16384 MiB/],
    ['r string', { ...ks, crypto: { ...c, kdfparams: { ...kp, r: '8' } } }, /crypto\.kdfparams\.r: missing or not an integer/],
    ['prf', { ...pbkdf2, crypto: { ...pc, kdfparams: { ...(pc['kdfparams'] as object), prf: 'hmac-sha512' } } }, /crypto\.kdfparams\.prf: unsupported prf "hmac-sha512"/],
    ['pbkdf2 c', { ...pbkdf2, crypto: { ...pc, kdfparams: { ...(pc['kdfparams'] as object), c: 0 } } }, /crypto\.kdfparams\.c: 0 is out of range/],
  ]
  for (const [name, doc, re] of cases) {
    const e = thrown(() => decryptKeystore(doc, 'pw'))
    t.ok(isFieldproofError(e, 'KEYSTORE_INVALID'), name)
    t.match((e as Error).message, re, name)
  }
  t.end()
})

t.test('an address that does not match the key is refused; "Crypto" is accepted', (t) => {
  const ks = encryptKeystore(SECRET, 'pw', { scryptN: 1024 })
  const e = thrown(() => decryptKeystore({ ...ks, address: '0000000000000000000000000000000000000001' }, 'pw'))
  t.ok(isFieldproofError(e, 'KEYSTORE_INVALID'))
  t.match((e as Error).message, /address: does not match the decrypted key/)
  t.equal(decryptKeystore({ ...ks, address: `0x${ks.address.toUpperCase()}` }, 'pw'), SECRET, '0x and case do not matter')
  const { crypto, ...rest } = ks
  t.equal(decryptKeystore({ ...rest, Crypto: crypto }, 'pw'), SECRET)
  t.end()
})
