// FastDeviceVerifier and the signature pool (docs/device-protocol.md, "The
// signature"): the pool's check must accept exactly what core/proof.ts's
// recovery accepts (EIP-191 for version 1, SHA-256 for version 2), on the
// shared firmware vectors
// (test/vectors/device-protocol.json) and on valid, forged and malleated
// signatures; its table-based c·G must equal noble's multiplication.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DeviceVerifier, parseDevicePublicKey, parseSignedMessage, recoverSignedMessageKey, signBody } from '../core/device-protocol.ts'
import { hexToBytes, publicKeyToAddress } from '../core/hex.ts'
import { FastDeviceVerifier, multiplyBase } from './signature-pool-verifier.ts'
import { SignaturePool } from './signature-pool.ts'
import { rng, signatureVariants } from '../../../test/helpers/fuzz.ts'

const V = JSON.parse(readFileSync(new URL('../../../test/vectors/device-protocol.json', import.meta.url), 'utf8')) as {
  publicKey: string
  address: string
  valid: { name: string; encoded: string; signature: string }[]
  v2: { valid: { name: string; encoded: string; signature: string }[]; variants: { name: string; binary: string; expect: string }[] }
}
const N = secp256k1.CURVE.n

t.test('multiplyBase equals noble multiplication', async (t) => {
  const rand = rng(3)
  const scalars = [0n, 1n, 2n, 255n, 256n, N - 1n, N - 2n, (1n << 255n) + 12345n, (1n << 256n) - 1n]
  for (let i = 0; i < 60; i++) scalars.push(BigInt('0x' + Array.from({ length: 32 }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('')))
  let bad = 0
  for (const k of scalars) {
    const want = k % N === 0n ? secp256k1.ProjectivePoint.ZERO : secp256k1.ProjectivePoint.BASE.multiply(k % N)
    if (!multiplyBase(k).equals(want)) bad++
  }
  t.equal(bad, 0, `${scalars.length} scalars`)
})

t.test('firmware vectors verify; their v-flipped twins do not', async (t) => {
  const v = new FastDeviceVerifier()
  const pub = parseDevicePublicKey(V.publicKey)?.publicKey as Uint8Array
  for (const x of V.valid) {
    const body = hexToBytes(x.encoded)
    const sig = hexToBytes(x.signature, 65)
    t.ok(v.verify(body, sig, pub), `${x.name}: verifies`)
    const flip = sig.slice()
    flip[64] = flip[64] === 27 ? 28 : 27
    t.notOk(v.verify(body, flip, pub), `${x.name}: v flipped refused`)
  }
})

t.test('agrees with recovery on valid, forged and malleated signatures', async (t) => {
  const v = new FastDeviceVerifier()
  const rand = rng(11)
  let disagreements = 0
  let accepted = 0
  const ROUNDS = 80
  for (let i = 0; i < ROUNDS; i++) {
    const key = secp256k1.utils.randomPrivateKey()
    const pub = secp256k1.getPublicKey(key, false)
    const m = signBody({ deviceId: `dev-${i}`, counter: BigInt(i + 1), metrics: [{ name: 'temperature_c', unit: 'Cel', value: i / 7 }] }, key)
    const x = signatureVariants(m.signature, rand)
    const variants = [m.signature, x.flipV, x.v01, x.highS, x.bitflip, x.zeroR, x.bigS, x.badV]
    for (const sig of variants) {
      const ref = recoverSignedMessageKey({ body: m.body, signature: sig })?.address === parseDevicePublicKey(pub)?.address
      const fast = v.verify(m.body, sig, pub)
      if (ref !== fast) disagreements++
      if (fast) accepted++
    }
    const body2 = m.body.slice()
    body2[body2.length - 1] = (body2[body2.length - 1] as number) ^ 1
    if (v.verify(body2, m.signature, pub)) disagreements++
    const other = secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), false)
    if (v.verify(m.body, m.signature, other)) disagreements++
  }
  t.equal(disagreements, 0, 'same decision as recovery, every case')
  t.equal(accepted, ROUNDS * 3, 'exactly the valid signature, its v 0/1 form and its high-s twin are accepted')
  t.notOk(v.verify(new Uint8Array(10), new Uint8Array(64), new Uint8Array(65)), 'wrong lengths: false, no throw')
  t.notOk(v.verify(new Uint8Array(10), new Uint8Array(65), new Uint8Array(65)), 'not a key: false, no throw')
})

t.test('the pool (one worker) decides like the inline check, many jobs at once', async (t) => {
  const pool = new SignaturePool({ workers: 1 })
  t.teardown(() => pool.close())
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const jobs = Array.from({ length: 150 }, (_, i) => {
    const m = signBody({ deviceId: 'p', counter: BigInt(i + 1), metrics: [] }, key)
    const sig = m.signature.slice()
    if (i % 3 === 0) sig[64] = sig[64] === 27 ? 28 : 27
    return { body: m.body, sig, want: i % 3 !== 0 }
  })
  t.equal(pool.workers, 0, 'no worker thread before the first check (memory)')
  const got = await Promise.all(jobs.map((j) => pool.verify(j.body, j.sig, pub)))
  t.same(got, jobs.map((j) => j.want))
  t.equal(pool.workers, 1, 'the worker started with the first check')
})

t.test('version 2: vectors and their variants decide as stated', async (t) => {
  const v = new FastDeviceVerifier()
  const pub = hexToBytes(V.publicKey, 65)
  for (const x of V.v2.valid) t.ok(v.verify(hexToBytes(x.encoded), hexToBytes(x.signature, 65), pub), `${x.name}: verifies`)
  for (const x of V.v2.variants) {
    const p = parseSignedMessage(hexToBytes(x.binary))
    const got = !p.ok ? p.code : v.verify(p.message.body, p.message.signature, pub) ? 'ok' : 'bad-signature'
    t.equal(got, x.expect, x.name)
  }
})

t.test('version 2: agrees with DeviceVerifier and with recovery by address on valid, forged and malleated signatures', async (t) => {
  const fast = new FastDeviceVerifier()
  const core = new DeviceVerifier()
  const rand = rng(29)
  let disagreements = 0
  let accepted = 0
  const ROUNDS = 60
  for (let i = 0; i < ROUNDS; i++) {
    const key = secp256k1.utils.randomPrivateKey()
    const pub = secp256k1.getPublicKey(key, false)
    const address = publicKeyToAddress(pub)
    const m = signBody({ version: 2, deviceId: `dev-${i}`, counter: BigInt(i + 1), metrics: [{ name: 'temperature_c', unit: 'Cel', value: i / 7 }] }, key)
    const x = signatureVariants(m.signature, rand)
    const variants = [m.signature, x.flipV, x.v01, x.highS, x.bitflip, x.zeroS, x.badV]
    for (const sig of variants) {
      const ref = recoverSignedMessageKey({ body: m.body, signature: sig }, address)?.address === address
      const f = fast.verify(m.body, sig, pub)
      if (ref !== f || core.verify(m.body, sig, pub) !== f) disagreements++
      if (f) accepted++
    }
    const body2 = m.body.slice()
    body2[body2.length - 1] = (body2[body2.length - 1] as number) ^ 1
    if (fast.verify(body2, m.signature, pub)) disagreements++
    const other = secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), false)
    if (fast.verify(m.body, m.signature, other)) disagreements++
  }
  t.equal(disagreements, 0, 'same decision as recovery by address and as DeviceVerifier, every case')
  t.equal(accepted, ROUNDS * 2, 'exactly the valid signature and its v-flipped twin are accepted')
  t.notOk(fast.verify(hexToBytes(V.v2.valid[0]!.encoded), hexToBytes(V.v2.valid[0]!.signature, 65), new Uint8Array(65)), 'not a key: false, no throw')
})

t.test('the pool (two workers) decides version 1 and version 2 jobs mixed', async (t) => {
  const pool = new SignaturePool({ workers: 2 })
  t.teardown(() => pool.close())
  const key = secp256k1.utils.randomPrivateKey()
  const pub = secp256k1.getPublicKey(key, false)
  const jobs = Array.from({ length: 200 }, (_, i) => {
    const version = i % 2 === 0 ? 2 : 1
    const m = signBody({ version, deviceId: 'p', counter: BigInt(i + 1), metrics: [] }, key)
    const sig = m.signature.slice()
    let want = true
    if (i % 5 === 0) {
      sig[3] = (sig[3] as number) ^ 0x10
      want = false
    }
    return { body: m.body, sig, want }
  })
  t.equal(pool.workers, 0, 'no worker thread before the first check (memory)')
  const got = await Promise.all(jobs.map((j) => pool.verify(j.body, j.sig, pub)))
  t.same(got, jobs.map((j) => j.want))
  t.equal(pool.workers, 2, 'both workers started with the first check')
})
