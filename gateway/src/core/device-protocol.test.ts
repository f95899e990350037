// The device protocol: body encoding (vectors shared with firmware), strict
// decoding, both wire forms, and the node:crypto verification path checked
// against two references (noble recovery and viem's EIP-191 recovery).

import t from 'tap'
import { readFileSync } from 'node:fs'
import { secp256k1 } from '@noble/curves/secp256k1'
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
  type SignedBody,
} from './device-protocol.ts'
import { bytesToHex, hexToBytes } from './hex.ts'
import { verifyProofBundle } from './proof.ts'

interface VectorFile {
  privateKey: string
  publicKey: string
  address: string
  valid: { name: string; body: { deviceId: string; counter: string; timeMs?: number; metrics: { name: string; unit: string; value: number }[] }; encoded: string; digest: string; signature: string; json: string; binary: string }[]
}
const V = JSON.parse(readFileSync(new URL('../../../test/vectors/device-protocol.json', import.meta.url), 'utf8')) as VectorFile

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

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
    ['bad magic', (b) => Object.assign(b.slice(), { 3: 2 }), 'malformed'],
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
  const N = secp256k1.CURVE.n
  const rand = rng(7)
  let disagreements = 0
  let accepted = 0
  for (let i = 0; i < 120; i++) {
    const key = secp256k1.utils.randomPrivateKey()
    const pub = secp256k1.getPublicKey(key, false)
    const m = signBody({ deviceId: `dev-${i}`, counter: BigInt(i + 1), metrics: [{ name: 'temperature_c', unit: 'Cel', value: i / 3 }] }, key)
    const variants: Uint8Array[] = [m.signature]
    const flipV = m.signature.slice()
    flipV[64] = flipV[64] === 27 ? 28 : 27
    variants.push(flipV)
    const v01 = m.signature.slice()
    v01[64] = (v01[64] as number) - 27
    variants.push(v01)
    const s = BigInt(bytesToHex(m.signature.subarray(32, 64)))
    const high = m.signature.slice()
    high.set(hexToBytes('0x' + (N - s).toString(16).padStart(64, '0')), 32)
    high[64] = high[64] === 27 ? 28 : 27 // high s with the matching v: valid for proof.ts
    variants.push(high)
    const bitflip = m.signature.slice()
    const at = Math.floor(rand() * 64)
    bitflip[at] = (bitflip[at] as number) ^ (1 << Math.floor(rand() * 8))
    variants.push(bitflip)
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

t.test('proof.ts checks a device signature made under this protocol', async (t) => {
  // Shape of what the gateway stores: raw = the signed body, auth carries the signature.
  const { buildProofBundle } = await import('./proof.ts')
  const { signBatchHeader } = await import('./batch.ts')
  const { leafHash, encodeReading } = await import('./canonical.ts')
  const { buildMerkleTree } = await import('./merkle.ts')
  const gwKey = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318' as const
  const key = hexToBytes(V.privateKey, 32)
  const m = signBody({ deviceId: 'node-1', counter: 9n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }] }, key)
  const reading = {
    deviceId: 'node-1',
    source: 'mqtt' as const,
    received: { bootId: '00'.repeat(16), monoNs: 1n, wallMs: 1_700_000_000_000, clock: 'ntp' as const },
    metrics: [{ name: 'temperature_c', unit: 'Cel', value: 20 }],
    raw: m.body,
    auth: { kind: 'device-signature' as const, address: V.address as `0x${string}`, counter: 9n, signature: bytesToHex(m.signature) },
  }
  const leaf = leafHash(1n, encodeReading(reading))
  const tree = buildMerkleTree([leaf])
  const batch = signBatchHeader(
    { gateway: V.address as `0x${string}`, batchId: 1n, firstSeq: 1n, lastSeq: 1n, count: 1, merkleRoot: bytesToHex(tree.root), prevBatchHash: `0x${'00'.repeat(32)}`, sealedAtMs: 1n },
    gwKey,
  )
  const bundle = buildProofBundle({ seq: 1n, reading, merkleProof: [], batch })
  const report = verifyProofBundle(bundle)
  t.ok(report.ok, JSON.stringify(report.checks.find((c) => !c.ok)))
  t.match(report.checks.find((c) => c.name === 'device-signature')?.detail, /signed \(EIP-191\) by device/)
})
