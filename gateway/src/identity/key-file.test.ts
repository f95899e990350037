import t from 'tap'
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isFieldproofError } from '../core/errors.ts'
import type { Hex } from '../core/types.ts'
import { addressOf, generatePrivateKey, loadOrCreateKey, parsePrivateKey, readKey, writeKey } from './key-file.ts'

// Web3 Secret Storage Definition, "Test Vectors" (test/fixtures/keystore/README.md).
const SPEC_KEY: Hex = '0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d'
const SPEC_ADDRESS = '0x008AeEda4D805471dF9b2A5B0f38A0C3bCBA786b'
const OTHER_KEY: Hex = '0x0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'
const N = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'

function mode(path: string): number {
  return statSync(path).mode & 0o777
}

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (e) {
    return e
  }
  return undefined
}

t.test('addressOf gives the EIP-55 address', (t) => {
  t.equal(addressOf(SPEC_KEY), SPEC_ADDRESS)
  t.equal(addressOf(SPEC_KEY.toUpperCase().replace('0X', '0x') as Hex), SPEC_ADDRESS)
  t.ok(isFieldproofError(thrown(() => addressOf('0x1234')), 'KEY_INVALID'))
  t.end()
})

t.test('parsePrivateKey', (t) => {
  t.same(parsePrivateKey(`${SPEC_KEY.slice(2)}\n`), { ok: true, privateKey: SPEC_KEY })
  t.same(parsePrivateKey(`  ${SPEC_KEY.toUpperCase().replace('0X', '0x')} `), { ok: true, privateKey: SPEC_KEY })
  t.equal(parsePrivateKey('00'.repeat(32)).ok, false, 'zero')
  t.equal(parsePrivateKey(N).ok, false, 'the curve order')
  t.equal(parsePrivateKey(`${SPEC_KEY.slice(2)}00`).ok, false, 'too long')
  const r = parsePrivateKey(`${SPEC_KEY.slice(2, 60)}zz`)
  t.equal(r.ok, false)
  if (!r.ok) t.notMatch(r.reason, SPEC_KEY.slice(2, 20), 'the reason never echoes the input')
  t.end()
})

t.test('generatePrivateKey gives distinct valid keys', (t) => {
  const a = generatePrivateKey()
  const b = generatePrivateKey()
  t.not(a, b)
  t.ok(parsePrivateKey(a).ok)
  t.match(a, /^0x[0-9a-f]{64}$/)
  t.end()
})

t.test('first start creates the key: 0600, 64 hex + newline, in a 0700 directory', (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'state', 'gateway.key')
  const k = loadOrCreateKey(path)
  t.equal(k.created, true)
  t.equal(k.address, addressOf(k.privateKey))
  t.equal(mode(path), 0o600)
  t.equal(mode(join(dir, 'state')), 0o700)
  const text = readFileSync(path, 'latin1')
  t.match(text, /^[0-9a-f]{64}\n$/)
  t.equal(`0x${text.trim()}`, k.privateKey)
  t.same(readdirSync(join(dir, 'state')), ['gateway.key'], 'no temporary file left behind')

  const again = loadOrCreateKey(path)
  t.same(again, { ...k, created: false }, 'restart loads the same key')
  t.end()
})

t.test('a key file readable by others is refused with the fix, never the key', (t) => {
  const dir = t.testdir({ 'gateway.key': `${SPEC_KEY.slice(2)}\n` })
  const path = join(dir, 'gateway.key')
  for (const m of [0o640, 0o604, 0o644]) {
    chmodSync(path, m)
    const e = thrown(() => loadOrCreateKey(path))
    t.ok(isFieldproofError(e, 'KEY_INVALID'), m.toString(8))
    t.match((e as Error).message, `chmod 600 '${path}'`)
    t.notMatch((e as Error).message, SPEC_KEY.slice(2, 18))
  }
  chmodSync(path, 0o400)
  t.equal(loadOrCreateKey(path).address, SPEC_ADDRESS, '0400 is fine')
  t.end()
})

t.test('an empty or damaged key file is never replaced by a new key', (t) => {
  const dir = t.testdir({})
  const empty = join(dir, 'empty.key')
  writeFileSync(empty, '', { mode: 0o600 })
  const e = thrown(() => loadOrCreateKey(empty))
  t.ok(isFieldproofError(e, 'KEY_INVALID'))
  t.match((e as Error).message, /empty/)
  t.match((e as Error).message, /keys import/)
  t.equal(readFileSync(empty, 'latin1'), '', 'left as it was')

  const torn = join(dir, 'torn.key')
  writeFileSync(torn, SPEC_KEY.slice(2, 40), { mode: 0o600 })
  const e2 = thrown(() => loadOrCreateKey(torn))
  t.ok(isFieldproofError(e2, 'KEY_INVALID'))
  t.match((e2 as Error).message, /damaged/)
  t.notMatch((e2 as Error).message, SPEC_KEY.slice(2, 18), 'no key material in the message')
  t.equal(readFileSync(torn, 'latin1'), SPEC_KEY.slice(2, 40))

  const zero = join(dir, 'zero.key')
  writeFileSync(zero, `${'0'.repeat(64)}\n`, { mode: 0o600 })
  t.ok(isFieldproofError(thrown(() => loadOrCreateKey(zero)), 'KEY_INVALID'))

  t.ok(isFieldproofError(thrown(() => readKey(dir)), 'KEY_INVALID'), 'a directory')
  t.ok(isFieldproofError(thrown(() => readKey(join(dir, 'absent.key'))), 'KEY_INVALID'), 'missing for readKey')
  t.end()
})

t.test('writeKey: import onto a fresh card, same key, different key', (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'var', 'gateway.key')
  t.same(writeKey(path, SPEC_KEY), { address: SPEC_ADDRESS, written: true })
  t.equal(readFileSync(path, 'latin1'), `${SPEC_KEY.slice(2)}\n`)
  t.equal(mode(path), 0o600)
  t.same(writeKey(path, SPEC_KEY), { address: SPEC_ADDRESS, written: false }, 'the same key again is a no-op')

  const e = thrown(() => writeKey(path, OTHER_KEY))
  t.ok(isFieldproofError(e, 'KEY_EXISTS'))
  t.match((e as Error).message, SPEC_ADDRESS, 'names the identity at stake')
  t.notMatch((e as Error).message, SPEC_KEY.slice(2, 18))
  t.notMatch((e as Error).message, OTHER_KEY.slice(2, 18))
  t.equal(readFileSync(path, 'latin1'), `${SPEC_KEY.slice(2)}\n`, 'unchanged')

  const r = writeKey(path, OTHER_KEY, { overwrite: true })
  t.same(r, { address: addressOf(OTHER_KEY), written: true, backupPath: `${path}.bak` })
  t.equal(readFileSync(path, 'latin1'), `${OTHER_KEY.slice(2)}\n`)
  t.equal(readFileSync(`${path}.bak`, 'latin1'), `${SPEC_KEY.slice(2)}\n`, 'the replaced key is kept')
  t.equal(mode(`${path}.bak`), 0o600)
  t.same(readdirSync(join(dir, 'var')).sort(), ['gateway.key', 'gateway.key.bak'], 'no temporary files')
  t.equal(loadOrCreateKey(path).address, addressOf(OTHER_KEY))
  t.end()
})

t.test('writeKey replaces an empty (torn) file without --force, a damaged one only with it', (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'gateway.key')
  writeFileSync(path, '', { mode: 0o600 })
  t.same(writeKey(path, SPEC_KEY), { address: SPEC_ADDRESS, written: true })
  t.equal(loadOrCreateKey(path).address, SPEC_ADDRESS)

  writeFileSync(path, 'garbage', { mode: 0o600 })
  t.ok(isFieldproofError(thrown(() => writeKey(path, SPEC_KEY)), 'KEY_EXISTS'))
  t.equal(writeKey(path, SPEC_KEY, { overwrite: true }).written, true)
  t.equal(readFileSync(`${path}.bak`, 'latin1'), 'garbage')
  t.ok(isFieldproofError(thrown(() => writeKey(path, '0x00' as Hex)), 'KEY_INVALID'))
  t.end()
})
