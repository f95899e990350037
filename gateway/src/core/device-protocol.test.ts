// The device protocol: body encoding (vectors shared with firmware), strict
// decoding, both wire forms, and the node:crypto verification path checked
// against two references (noble recovery and viem's EIP-191 recovery).

import t from 'tap'
import { createPublicKey, verify as cryptoVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { secp256k1 } from '@noble/curves/secp256k1'
import { sha256 } from '@noble/hashes/sha2'
import { hashMessage, recoverMessageAddress } from 'viem'
import {
  decodeSignedBody,
  DeviceVerifier,
  encodeSignedBinary,
  encodeSignedBody,
  encodeSignedJson,
  parseDevicePublicKey,
  parseSignedMessage,
  recoverSignedMessageKey,
  signBody,
  signedBodyDigest,
  signedBodyVersion,
  signedMessageId,
  type SignedBody,
  type SignedMessage,
} from './device-protocol.ts'
import { bytesToHex, hexToBytes, keccak_256, publicKeyToAddress } from './hex.ts'
import { verifyProofBundle } from './proof.ts'
import { rng, signatureVariants } from '../../../test/helpers/fuzz.ts'

interface ValidVector {
  name: string
  body: { version?: number; deviceId: string; counter: string; timeMs?: number; metrics: { name: string; unit: string; value: number }[] }
  encoded: string
  digest: string
  signature: string
  json: string
  binary: string
}
interface VectorFile {
  privateKey: string
  publicKey: string
  address: string
  valid: ValidVector[]
  v2: {
    magic: string
    valid: ValidVector[]
    variants: { name: string; description: string; binary: string; expect: 'ok' | 'bad-signature' | 'malformed' }[]
    rfc6979: { privateKey: string; message: string; signature: string }[]
  }
}
const V = JSON.parse(readFileSync(new URL('../../../test/vectors/device-protocol.json', import.meta.url), 'utf8')) as VectorFile

t.test('vectors: encoding, digest, deterministic signature, both wire forms', async (t) => {
  const key = hexToBytes(V.privateKey, 32)
  const pub = parseDevicePublicKey(V.publicKey)
  t.equal(pub?.address, V.address)
  const verifier = new DeviceVerifier()
  for (const v of V.valid) {
    const body: SignedBody = { deviceId: v.body.deviceId, counter: BigInt(v.body.counter), ...(v.body.timeMs !== undefined ? { timeMs: v.body.timeMs } : {}), metrics: v.body.metrics }
    const enc = encodeSignedBody(body)
    t.equal(bytesToHex(enc), v.encoded, `${v.name}: encoding`)
    t.equal(bytesToHex(signedBodyDigest(enc)), v.digest, `${v.name}: EIP-191 digest`)
    t.equal(hashMessage({ raw: enc }), v.digest, `${v.name}: viem agrees on the digest`)
    const m = signBody(body, key)
    t.equal(bytesToHex(m.signature), v.signature, `${v.name}: RFC 6979 signature`)
    t.equal(await recoverMessageAddress({ message: { raw: enc }, signature: v.signature as `0x${string}` }), V.address, `${v.name}: viem recovers the device`)
    t.ok(verifier.verify(enc, m.signature, pub!.publicKey), `${v.name}: node:crypto path verifies`)
    for (const wire of [new TextEncoder().encode(v.json), hexToBytes(v.binary)]) {
      const p = parseSignedMessage(wire)
      t.ok(p.ok, `${v.name}: wire form parses`)
      if (p.ok) {
        t.equal(bytesToHex(p.message.body), v.encoded)
        t.equal(p.body.counter, body.counter)
        t.same(p.body.metrics.map((x) => x.name), [...body.metrics].map((x) => x.name).sort())
      }
    }
    t.equal(encodeSignedJson(m), v.json)
    t.equal(bytesToHex(encodeSignedBinary(m)), v.binary)
  }
})

t.test('strict decoding: only canonical bodies', async (t) => {
  const good = encodeSignedBody({ deviceId: 'd1', counter: 3n, metrics: [{ name: 'humidity_pct', unit: '%', value: 40 }, { name: 'temperature_c', unit: 'Cel', value: 20 }] })
  t.ok(decodeSignedBody(good).ok)
  const cases: [string, (b: Uint8Array) => Uint8Array, string][] = [
    ['bad magic', (b) => Object.assign(b.slice(), { 3: 3 }), 'malformed'],
    ['bad magic (not FPD)', (b) => Object.assign(b.slice(), { 0: 0x47 }), 'malformed'],
    ['trailing byte', (b) => Uint8Array.of(...b, 0), 'malformed'],
    ['truncated', (b) => b.slice(0, b.length - 1), 'malformed'],
    ['counter 0', (b) => { const c = b.slice(); c.fill(0, 7, 15); return c }, 'malformed'],
    ['presence byte 2', (b) => Object.assign(b.slice(), { 15: 2 }), 'malformed'],
  ]
  for (const [name, f, code] of cases) {
    const r = decodeSignedBody(f(good))
    t.equal(r.ok ? 'ok' : r.code, code, name)
  }
  // Unsorted metrics: swap the two metric records by re-encoding by hand.
  const a = encodeSignedBody({ deviceId: 'd1', counter: 3n, metrics: [{ name: 'humidity_pct', unit: '%', value: 40 }] })
  const b = encodeSignedBody({ deviceId: 'd1', counter: 3n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] })
  const head = a.subarray(0, a.length - (1 + 12 + 1 + 1 + 8) - 1)
  const recA = a.subarray(a.length - (1 + 12 + 1 + 1 + 8))
  const recB = b.subarray(b.length - (1 + 13 + 1 + 3 + 8))
  const unsorted = Uint8Array.of(...head, 2, ...recB, ...recA)
  const u = decodeSignedBody(unsorted)
  t.equal(u.ok ? 'ok' : u.code, 'malformed', 'unsorted metrics refused')
  const badUnit = encodeSignedBody({ deviceId: 'd1', counter: 3n, metrics: [{ name: 'x_level', unit: 'm', value: 1 }] })
  const bu = badUnit.slice()
  bu[bu.length - 8 - 1] = 0x7a // unit "m" → "z"
  const r = decodeSignedBody(bu)
  t.equal(r.ok ? 'ok' : r.code, 'invalid-metric', 'unknown unit refused')
  t.throws(() => encodeSignedBody({ deviceId: 'd1', counter: 0n, metrics: [] }), RangeError)
  t.throws(() => encodeSignedBody({ deviceId: 'd 1', counter: 1n, metrics: [] }), RangeError)
})

t.test('the node:crypto path agrees with recovery on valid, forged and malleated signatures', async (t) => {
  const verifier = new DeviceVerifier()
  const rand = rng(7)
  let disagreements = 0
  let accepted = 0
  for (let i = 0; i < 120; i++) {
    const key = secp256k1.utils.randomPrivateKey()
    const pub = secp256k1.getPublicKey(key, false)
    const m = signBody({ deviceId: `dev-${i}`, counter: BigInt(i + 1), metrics: [{ name: 'temperature_c', unit: 'Cel', value: i / 3 }] }, key)
    const x = signatureVariants(m.signature, rand)
    // x.highS: high s with the matching v, valid for proof.ts
    const variants = [m.signature, x.flipV, x.v01, x.highS, x.bitflip]
    for (const sig of variants) {
      const ref = recoverSignedMessageKey({ body: m.body, signature: sig })?.address === parseDevicePublicKey(pub)?.address
      const fast = verifier.verify(m.body, sig, pub)
      if (ref !== fast) disagreements++
      if (fast) accepted++
    }
    const other = secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), false)
    if (verifier.verify(m.body, m.signature, other)) disagreements++
  }
  t.equal(disagreements, 0, 'fast path == recovery, every case')
  t.equal(accepted, 120 * 3, 'exactly the valid signature, its v 0/1 form and its high-s twin are accepted')
})

t.test('parseSignedMessage never throws on random and mutated input', async (t) => {
  const rand = rng(99)
  const base = new TextEncoder().encode(V.valid[1]!.json)
  const bin = hexToBytes(V.valid[1]!.binary)
  let bad = 0
  for (let i = 0; i < 10_000; i++) {
    let input: Uint8Array
    if (i % 3 === 0) input = Uint8Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))
    else {
      input = (i % 3 === 1 ? base : bin).slice()
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) input[Math.floor(rand() * input.length)] = Math.floor(rand() * 256)
    }
    try {
      const r = parseSignedMessage(input)
      if (!r.ok && (typeof r.reason !== 'string' || r.reason.length === 0)) bad++
    } catch {
      bad++
    }
  }
  t.equal(bad, 0)
})

/**
 * The proof-bundle report for a one-reading batch whose reading carries this
 * device-signed message, as the gateway stores it: raw = the signed body,
 * auth carries the signature.
 */
async function deviceProofReport(body: Uint8Array, signature: Uint8Array): Promise<ReturnType<typeof verifyProofBundle>> {
  const { buildProofBundle } = await import('./proof.ts')
  const { signBatchHeader } = await import('./batch.ts')
  const { leafHash, encodeReading } = await import('./canonical.ts')
  const { buildMerkleTree } = await import('./merkle.ts')
  const gwKey = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318' as const
  const reading = {
    deviceId: 'node-1',
    source: 'mqtt' as const,
    received: { bootId: '00'.repeat(16), monoNs: 1n, wallMs: 1_700_000_000_000, clock: 'ntp' as const },
    metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }],
    raw: body,
    auth: { kind: 'device-signature' as const, address: V.address as `0x${string}`, counter: 9n, signature: bytesToHex(signature) },
  }
  const tree = buildMerkleTree([leafHash(1n, encodeReading(reading))])
  const batch = signBatchHeader(
    { gateway: V.address as `0x${string}`, batchId: 1n, firstSeq: 1n, lastSeq: 1n, count: 1, merkleRoot: bytesToHex(tree.root), prevBatchHash: `0x${'00'.repeat(32)}`, sealedAtMs: 1n },
    gwKey,
  )
  return verifyProofBundle(buildProofBundle({ seq: 1n, reading, merkleProof: [], batch }))
}

t.test('proof.ts checks a device signature made under this protocol', async (t) => {
  const key = hexToBytes(V.privateKey, 32)
  const m = signBody({ deviceId: 'node-1', counter: 9n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] }, key)
  const report = await deviceProofReport(m.body, m.signature)
  t.ok(report.ok, JSON.stringify(report.checks.find((c) => !c.ok)))
  t.match(report.checks.find((c) => c.name === 'device-signature')?.detail, /signed \(EIP-191\) by device/)
})

// --- Version 2 ------------------------------------------------------------------

/**
 * Independent reference for version 2, written from the spec with
 * @noble/curves and @noble/hashes only: magic 46 50 44 02, low s, v 27/28, and one of the two
 * recovery ids recovers `publicKey` over SHA-256(body) — what proof.ts
 * accepts (v is a recovery hint in version 2).
 */
function nobleV2Accepts(body: Uint8Array, sig: Uint8Array, publicKey: Uint8Array): boolean {
  if (body.length < 4 || body[0] !== 0x46 || body[1] !== 0x50 || body[2] !== 0x44 || body[3] !== 0x02) return false
  if (sig.length !== 65 || (sig[64] !== 27 && sig[64] !== 28)) return false
  try {
    const s = secp256k1.Signature.fromCompact(sig.subarray(0, 64))
    if (s.hasHighS()) return false
    const want = bytesToHex(publicKey)
    const d = sha256(body)
    for (const bit of [(sig[64] as number) - 27, 28 - (sig[64] as number)]) {
      try {
        if (bytesToHex(s.addRecoveryBit(bit).recoverPublicKey(d).toRawBytes(false)) === want) return true
      } catch {
        // this recovery id has no point: try the other
      }
    }
    return false
  } catch {
    return false
  }
}

const vectorBody = (v: ValidVector): SignedBody => ({
  ...(v.body.version === 2 ? { version: 2 as const } : {}),
  deviceId: v.body.deviceId,
  counter: BigInt(v.body.counter),
  ...(v.body.timeMs !== undefined ? { timeMs: v.body.timeMs } : {}),
  metrics: v.body.metrics,
})

t.test('v2 vectors: checked independently with @noble/curves, @noble/hashes and OpenSSL', async (t) => {
  const key = hexToBytes(V.privateKey, 32)
  const pub = hexToBytes(V.publicKey, 65)
  const keyObject = createPublicKey({ key: { kty: 'EC', crv: 'secp256k1', x: Buffer.from(pub.subarray(1, 33)).toString('base64url'), y: Buffer.from(pub.subarray(33)).toString('base64url') }, format: 'jwk' })
  t.equal(V.v2.valid.length, V.valid.length, 'the same bodies in both versions')
  for (const [i, v] of V.v2.valid.entries()) {
    const enc = hexToBytes(v.encoded)
    // Independent of our code: the magic, the rest of the body equal to version 1's, SHA-256, recovery, OpenSSL.
    t.equal(bytesToHex(enc.subarray(0, 4)), V.v2.magic, `${v.name}: magic 46 50 44 02`)
    t.equal(bytesToHex(enc.subarray(4)), bytesToHex(hexToBytes(V.valid[i]!.encoded).subarray(4)), `${v.name}: the body after the magic is version 1's`)
    t.equal(bytesToHex(sha256(enc)), v.digest, `${v.name}: digest is SHA-256(body)`)
    const sig = hexToBytes(v.signature, 65)
    t.ok(sig[64] === 27 || sig[64] === 28, `${v.name}: v is 27 or 28`)
    const ns = secp256k1.Signature.fromCompact(sig.subarray(0, 64))
    t.notOk(ns.hasHighS(), `${v.name}: low s`)
    const rec = ns.addRecoveryBit((sig[64] as number) - 27).recoverPublicKey(sha256(enc)).toRawBytes(false)
    t.equal(bytesToHex(rec), V.publicKey, `${v.name}: v recovers the device key over SHA-256`)
    t.equal(publicKeyToAddress(rec), V.address)
    t.ok(secp256k1.verify(sig.subarray(0, 64), sha256(enc), pub), `${v.name}: noble verifies`)
    t.ok(cryptoVerify('sha256', enc, { key: keyObject, dsaEncoding: 'ieee-p1363' }, sig.subarray(0, 64)), `${v.name}: OpenSSL verifies`)
    const rfc = secp256k1.sign(sha256(enc), key, { lowS: true })
    t.equal(bytesToHex(rfc.toCompactRawBytes()), v.signature.slice(0, 130), `${v.name}: r || s is noble's RFC 6979 signature`)
    // Our implementation agrees.
    const body = vectorBody(v)
    t.equal(bytesToHex(encodeSignedBody(body)), v.encoded, `${v.name}: encoding`)
    t.equal(signedBodyVersion(enc), 2)
    t.equal(bytesToHex(signedBodyDigest(enc)), v.digest, `${v.name}: signedBodyDigest is SHA-256 for version 2`)
    const m = signBody(body, key)
    t.equal(bytesToHex(m.signature), v.signature, `${v.name}: signBody`)
    t.equal(encodeSignedJson(m), v.json)
    t.equal(bytesToHex(encodeSignedBinary(m)), v.binary)
    t.ok(new DeviceVerifier().verify(enc, sig, pub), `${v.name}: DeviceVerifier`)
    t.equal(recoverSignedMessageKey(m)?.address, V.address, `${v.name}: recoverSignedMessageKey`)
    for (const wire of [new TextEncoder().encode(v.json), hexToBytes(v.binary)]) {
      const p = parseSignedMessage(wire)
      t.ok(p.ok, `${v.name}: wire form parses`)
      if (p.ok) {
        t.equal(p.body.version, 2)
        t.equal(p.body.counter, body.counter)
        t.equal(bytesToHex(p.message.body), v.encoded)
      }
    }
  }
})

t.test('v2 RFC 6979 vectors (published, secp256k1/SHA-256) pin the signer', async (t) => {
  for (const v of V.v2.rfc6979) {
    const d = sha256(new TextEncoder().encode(v.message))
    const sig = secp256k1.sign(d, hexToBytes(v.privateKey, 32), { lowS: true })
    t.equal(bytesToHex(sig.toCompactRawBytes()), v.signature, v.message)
  }
})

t.test('v2 variants: every verifier reaches the decision the vector states', async (t) => {
  const pub = hexToBytes(V.publicKey, 65)
  const verifier = new DeviceVerifier()
  for (const x of V.v2.variants) {
    const p = parseSignedMessage(hexToBytes(x.binary))
    let got: string
    if (!p.ok) got = p.code
    else got = verifier.verify(p.message.body, p.message.signature, pub) ? 'ok' : 'bad-signature'
    t.equal(got, x.expect, `${x.name}: ${x.description}`)
    if (p.ok) {
      t.equal(nobleV2Accepts(p.message.body, p.message.signature, pub) || (signedBodyVersion(p.message.body) === 1 && recoverSignedMessageKey(p.message)?.address === V.address), x.expect === 'ok', `${x.name}: the noble reference agrees`)
      t.equal(recoverSignedMessageKey(p.message, V.address)?.address === V.address, x.expect === 'ok', `${x.name}: recovery with the expected address agrees`)
    }
  }
})

t.test('v2: the node:crypto path agrees with the noble reference on valid, forged and malleated signatures', async (t) => {
  const verifier = new DeviceVerifier()
  const rand = rng(21)
  let disagreements = 0
  let accepted = 0
  const ROUNDS = 60
  for (let i = 0; i < ROUNDS; i++) {
    const key = secp256k1.utils.randomPrivateKey()
    const pub = secp256k1.getPublicKey(key, false)
    const m = signBody({ version: 2, deviceId: `dev-${i}`, counter: BigInt(i + 1), metrics: [{ name: 'temperature_c', unit: 'Cel', value: i / 3 }] }, key)
    const x = signatureVariants(m.signature, rand)
    const v1sig = signBody({ deviceId: `dev-${i}`, counter: BigInt(i + 1), metrics: [{ name: 'temperature_c', unit: 'Cel', value: i / 3 }] }, key).signature
    // x.flipV is accepted (v is a hint); v1sig is the EIP-191 signature of the same fields
    const variants = [m.signature, x.flipV, x.v01, x.highS, x.bitflip, x.zeroR, v1sig]
    for (const sig of variants) {
      const ref = nobleV2Accepts(m.body, sig, pub)
      const fast = verifier.verify(m.body, sig, pub)
      const rec = recoverSignedMessageKey({ body: m.body, signature: sig }, publicKeyToAddress(pub))?.address === publicKeyToAddress(pub)
      if (ref !== fast || ref !== rec) disagreements++
      if (fast) accepted++
    }
    const body2 = m.body.slice()
    body2[body2.length - 1] = (body2[body2.length - 1] as number) ^ 1
    if (verifier.verify(body2, m.signature, pub)) disagreements++
    const other = secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), false)
    if (verifier.verify(m.body, m.signature, other)) disagreements++
    // The same SHA-256 signature over the version-1 bytes (magic 01) is not a version-1 signature.
    const asV1 = m.body.slice()
    asV1[3] = 1
    if (verifier.verify(asV1, m.signature, pub)) disagreements++
  }
  t.equal(disagreements, 0, 'node:crypto == noble reference == recovery with the address, every case')
  t.equal(accepted, ROUNDS * 2, 'exactly the valid signature and its v-flipped twin are accepted')
})

t.test('v2: strict parsing of the version-2 signature and body', async (t) => {
  const key = hexToBytes(V.privateKey, 32)
  const m = signBody({ version: 2, deviceId: 'd1', counter: 3n, metrics: [] }, key)
  const bin = encodeSignedBinary(m)
  const code = (b: Uint8Array) => {
    const r = parseSignedMessage(b)
    return r.ok ? 'ok' : r.code
  }
  t.equal(code(bin), 'ok')
  const v0 = bin.slice()
  v0[v0.length - 1] = (v0[v0.length - 1] as number) - 27
  t.equal(code(v0), 'bad-signature', 'v 0/1 refused in version 2')
  const magic3 = bin.slice()
  magic3[3] = 3
  t.equal(code(magic3), 'malformed', 'unknown version refused')
  const trailing = encodeSignedBinary({ body: Uint8Array.of(...m.body, 0), signature: m.signature })
  t.equal(code(trailing), 'malformed', 'trailing byte in a version-2 body refused')
  t.throws(() => encodeSignedBody({ version: 3 as 2, deviceId: 'd1', counter: 1n, metrics: [] }), RangeError)
  const d = decodeSignedBody(m.body)
  t.ok(d.ok && d.body.version === 2)
  const d1 = decodeSignedBody(encodeSignedBody({ deviceId: 'd1', counter: 3n, metrics: [] }))
  t.ok(d1.ok && d1.body.version === 1, 'a body without a version encodes as version 1')
  const msg: SignedMessage = { body: m.body, signature: m.signature }
  t.notOk(new DeviceVerifier().verify(msg.body, msg.signature, new Uint8Array(65)), 'a key that is not a curve point: false, no throw')
})

t.test('proof.ts checks a version-2 device signature, and its v-flipped twin', async (t) => {
  const key = hexToBytes(V.privateKey, 32)
  const m = signBody({ version: 2, deviceId: 'node-1', counter: 9n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] }, key)
  const flip = m.signature.slice()
  flip[64] = flip[64] === 27 ? 28 : 27
  for (const sig of [m.signature, flip]) {
    t.ok(new DeviceVerifier().verify(m.body, sig, hexToBytes(V.publicKey, 65)), 'the gateway accepts it')
    const report = await deviceProofReport(m.body, sig)
    t.ok(report.ok, JSON.stringify(report.checks.find((c) => !c.ok)))
    t.match(report.checks.find((c) => c.name === 'device-signature')?.detail, /ECDSA\/SHA-256, protocol v2\) by device/)
  }
})

t.test('signedMessageId is keccak256(body || signature); public keys parse in both forms', async (t) => {
  const key = hexToBytes(V.privateKey, 32)
  for (const version of [1, 2] as const) {
    const m = signBody({ version, deviceId: 'id-1', counter: 5n, metrics: [] }, key)
    t.equal(signedMessageId(m), bytesToHex(keccak_256(Uint8Array.of(...m.body, ...m.signature))).slice(2), `version ${version}`)
  }
  const full = parseDevicePublicKey(V.publicKey)
  const compressed = parseDevicePublicKey(bytesToHex(secp256k1.getPublicKey(key, true)))
  t.equal(full?.address, V.address)
  t.equal(compressed?.address, V.address)
  t.equal(bytesToHex(compressed!.publicKey), V.publicKey)
  const off = hexToBytes(V.publicKey, 65)
  off[64] = (off[64] as number) ^ 1
  t.equal(parseDevicePublicKey(off), undefined, 'a point off the curve is refused')
})
