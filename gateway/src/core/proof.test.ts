// Proof bundles: a valid bundle passes every check; each kind of tampering
// fails at the check that owns it, and the later checks are skipped.

import t, { type Test } from 'tap'
import { privateKeyToAccount } from 'viem/accounts'
import { batchTypedData, hashBatchHeader, signBatchHeader } from './batch.ts'
import { encodeReading, leafHash } from './canonical.ts'
import { bytesToHex } from './hex.ts'
import { buildMerkleTree } from './merkle.ts'
import { buildProofBundle, PROOF_CHECKS, verifyProofBundle, type ProofBundle, type ProofCheckName, type ProofReport } from './proof.ts'
import type { Hex, Reading, SignedBatch } from './types.ts'

// Foundry anvil default accounts (public test keys): gateway, device, stranger.
const GATEWAY_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' as Hex
const DEVICE_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d' as Hex
const OTHER_KEY = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a' as Hex
const gateway = privateKeyToAccount(GATEWAY_KEY)
const device = privateKeyToAccount(DEVICE_KEY)
const other = privateKeyToAccount(OTHER_KEY)
const ZERO = `0x${'00'.repeat(32)}` as Hex

const rt = { bootId: 'a1'.repeat(16), monoNs: 1n, wallMs: 1_717_000_000_000, clock: 'ntp' as const }
const plain = (i: number): Reading => ({
  deviceId: `sim-${i}`,
  source: 'sim',
  received: { ...rt, monoNs: BigInt(i) },
  metrics: [
    { name: 'temperature_c', unit: 'Cel', value: 20 + i / 10 },
    { name: 'humidity_pct', unit: '%', value: 40 + i },
  ],
  auth: { kind: 'none' },
})

interface Sealed {
  readonly signed: SignedBatch
  readonly readings: Map<bigint, Reading>
  readonly tree: ReturnType<typeof buildMerkleTree>
  readonly firstSeq: bigint
}

function seal(batchId: bigint, firstSeq: bigint, readings: Reading[], prev: SignedBatch | undefined, key = GATEWAY_KEY): Sealed {
  const leaves = readings.map((r, i) => leafHash(firstSeq + BigInt(i), encodeReading(r)))
  const tree = buildMerkleTree(leaves)
  const header = {
    gateway: gateway.address,
    batchId,
    firstSeq,
    lastSeq: firstSeq + BigInt(readings.length) - 1n,
    count: readings.length,
    merkleRoot: bytesToHex(tree.root),
    prevBatchHash: prev?.hash ?? ZERO,
    sealedAtMs: 1_717_000_000_000n + batchId,
  }
  return { signed: signBatchHeader(header, key), readings: new Map(readings.map((r, i) => [firstSeq + BigInt(i), r])), tree, firstSeq }
}

function bundle(s: Sealed, seq: bigint, prev?: SignedBatch): ProofBundle {
  const reading = s.readings.get(seq) as Reading
  return buildProofBundle({
    seq,
    reading,
    merkleProof: s.tree.getProof(Number(seq - s.firstSeq)),
    batch: s.signed,
    ...(prev ? { prevBatch: prev } : {}),
  })
}

/** Clone through JSON, as a bundle travels. */
const clone = (b: ProofBundle): Record<string, any> => JSON.parse(JSON.stringify(b)) as Record<string, any>

function failsAt(t: Test, report: ProofReport, name: ProofCheckName, what: string): void {
  t.notOk(report.ok, `${what}: not ok`)
  const failed = report.checks.filter((c) => !c.ok && c.skipped !== true)
  t.same(failed.map((c) => c.name), [name], `${what}: fails at ${name} (${failed[0]?.detail ?? 'no failure'})`)
  const i = PROOF_CHECKS.indexOf(name)
  t.ok(report.checks.slice(0, i).every((c) => c.ok), `${what}: earlier checks pass`)
  t.ok(report.checks.slice(i + 1).every((c) => !c.ok && c.skipped === true), `${what}: later checks skipped`)
}

let signedRaw: Uint8Array
let deviceReading: Reading
let b1: Sealed
let b2: Sealed

t.before(async () => {
  signedRaw = new TextEncoder().encode('{"t":21.5,"n":9}')
  deviceReading = {
    ...plain(99),
    deviceId: 'esp32-signer',
    raw: signedRaw,
    auth: { kind: 'device-signature', address: device.address, counter: 9n, signature: await device.signMessage({ message: { raw: signedRaw } }) },
  }
  b1 = seal(1n, 1n, [plain(1), plain(2), plain(3)], undefined)
  b2 = seal(2n, 4n, [plain(4), deviceReading, plain(6), plain(7), plain(8)], b1.signed)
})

t.test('valid bundles pass every check', async (t) => {
  const r = verifyProofBundle(bundle(b2, 5n, b1.signed), { expectedGateway: gateway.address })
  t.ok(r.ok, JSON.stringify(r.checks.filter((c) => !c.ok)))
  t.equal(r.gateway, gateway.address)
  t.same(r.checks.map((c) => c.name), [...PROOF_CHECKS], 'every check, in order')
  t.match(r.checks.find((c) => c.name === 'device-signature')?.detail, /signed \(EIP-191\) by device/)
  t.match(r.checks.find((c) => c.name === 'prev-link')?.detail, /links to batch 1/)

  const noPrev = verifyProofBundle(bundle(b2, 4n))
  t.ok(noPrev.ok)
  t.equal(noPrev.checks.find((c) => c.name === 'prev-link')?.detail, 'not checked: previous batch not included')
  t.match(noPrev.checks.find((c) => c.name === 'device-signature')?.detail, /not applicable/)

  const first = verifyProofBundle(bundle(b1, 2n))
  t.ok(first.ok)
  t.equal(first.checks.find((c) => c.name === 'prev-link')?.detail, 'batch 1: prevBatchHash is zero')

  const text = verifyProofBundle(JSON.stringify(bundle(b1, 3n)))
  t.ok(text.ok, 'the JSON text form verifies too')

  const anchored = { ...bundle(b1, 1n), anchor: { chainId: 31337, contract: other.address, txHash: ZERO, blockNumber: '12', anchorId: '1', anchorRoot: b1.signed.hash, batchProof: [] } }
  t.ok(verifyProofBundle(anchored).ok, 'an anchor section is carried')
})

t.test('tampering fails at the right check', async (t) => {
  const good = bundle(b2, 5n, b1.signed)

  let b = clone(good)
  b.reading.metrics[0].value = 99.9
  failsAt(t, verifyProofBundle(b), 'canonical', 'edited metric value')

  b = clone(good)
  b.seq = '6'
  failsAt(t, verifyProofBundle(b), 'leaf', 'edited seq')

  b = clone(good)
  b.seq = '9'
  b.leaf = bytesToHex(leafHash(9n, encodeReading(deviceReading)))
  failsAt(t, verifyProofBundle(b), 'range', 'seq outside the batch, leaf recomputed')

  b = clone(good)
  b.merkleProof[1] = bytesToHex(new Uint8Array(32).fill(7))
  failsAt(t, verifyProofBundle(b), 'merkle', 'wrong proof node')

  b = clone(good)
  b.merkleProof.pop()
  failsAt(t, verifyProofBundle(b), 'merkle', 'missing proof node')

  b = clone(good)
  b.batch.header.sealedAtMs = '1'
  failsAt(t, verifyProofBundle(b), 'batch-hash', 'edited batch field')

  b = clone(good)
  b.batch.header.firstSeq = '3'
  b.batch.header.count = 5
  failsAt(t, verifyProofBundle(b), 'batch-hash', 'moved batch range')

  // Swapped field with the hash recomputed: only the signature can tell.
  b = clone(good)
  ;[b.batch.header.merkleRoot, b.batch.header.prevBatchHash] = [b.batch.header.prevBatchHash, b.batch.header.merkleRoot]
  failsAt(t, verifyProofBundle(b), 'merkle', 'swapped merkleRoot/prevBatchHash')

  b = clone(good)
  const h2 = { ...b2.signed.header, sealedAtMs: 5n }
  b.batch.header.sealedAtMs = '5'
  b.batch.hash = hashBatchHeader(h2)
  failsAt(t, verifyProofBundle(b), 'batch-signature', 'edited field, hash recomputed, old signature')

  b = clone(good)
  b.batch.signature = await other.signTypedData(batchTypedData(b2.signed.header))
  failsAt(t, verifyProofBundle(b), 'batch-signature', 'signature by another key')

  failsAt(t, verifyProofBundle(good, { expectedGateway: other.address }), 'batch-signature', 'another expected gateway')

  b = clone(good)
  b.reading.auth.signature = await other.signMessage({ message: { raw: signedRaw } })
  b.canonical = bytesToHex(encodeReading({ ...deviceReading, auth: { ...deviceReading.auth, signature: b.reading.auth.signature } as Reading['auth'] }))
  b.leaf = bytesToHex(leafHash(5n, encodeReading({ ...deviceReading, auth: { ...deviceReading.auth, signature: b.reading.auth.signature } as Reading['auth'] })))
  failsAt(t, verifyProofBundle(b), 'merkle', 'another device signature swapped into a sealed reading (canonical and leaf recomputed)')

  // A reading sealed with a bad device signature: the batch is fine, the device check is not.
  const forgedReading: Reading = { ...deviceReading, auth: { kind: 'device-signature', address: device.address, counter: 9n, signature: await other.signMessage({ message: { raw: signedRaw } }) } }
  const b3 = seal(3n, 9n, [forgedReading, plain(10)], b2.signed)
  failsAt(t, verifyProofBundle(bundle(b3, 9n, b2.signed)), 'device-signature', 'bad device signature')
  const noRaw: Reading = { ...deviceReading }
  delete (noRaw as { raw?: Uint8Array }).raw
  const b3b = seal(3n, 9n, [noRaw], b2.signed)
  failsAt(t, verifyProofBundle(bundle(b3b, 9n, b2.signed)), 'device-signature', 'device signature without raw')

  // Broken prev links.
  b = clone(good)
  b.prevBatch.header.lastSeq = '2'
  failsAt(t, verifyProofBundle(b), 'prev-link', 'previous header edited')
  const gap = seal(2n, 5n, [plain(5)], b1.signed)
  failsAt(t, verifyProofBundle(bundle(gap, 5n, b1.signed)), 'prev-link', 'seq gap between batches')
  const wrongLink = seal(2n, 4n, [plain(4)], { ...b1.signed, hash: `0x${'ee'.repeat(32)}` })
  failsAt(t, verifyProofBundle(bundle(wrongLink, 4n, b1.signed)), 'prev-link', 'prevBatchHash is not the previous hash')
  const skip = seal(3n, 4n, [plain(4)], b1.signed)
  failsAt(t, verifyProofBundle(bundle(skip, 4n, b1.signed)), 'prev-link', 'batch id skips one')
  const strangerPrev = signBatchHeader({ ...b1.signed.header, gateway: other.address }, OTHER_KEY)
  const linkedToStranger = seal(2n, 4n, [plain(4)], strangerPrev)
  failsAt(t, verifyProofBundle(bundle(linkedToStranger, 4n, strangerPrev)), 'prev-link', 'previous batch by another gateway')
  const badFirst = seal(1n, 1n, [plain(1)], { ...b1.signed, hash: `0x${'01'.repeat(32)}` })
  failsAt(t, verifyProofBundle(bundle(badFirst, 1n)), 'prev-link', 'batch 1 with a non-zero prevBatchHash')
})

t.test('shape failures never throw', async (t) => {
  const good = bundle(b1, 1n)
  const cases: [unknown, string][] = [
    [null, 'null'],
    ['{not json', 'bad JSON text'],
    [[], 'an array'],
    [{ ...good, type: 'other' }, 'wrong type'],
    [{ ...good, version: 2 }, 'wrong version'],
    [{ ...good, extra: true }, 'unknown key'],
    [{ ...good, seq: 1 }, 'seq as a number'],
    [{ ...good, leaf: '0x12' }, 'short leaf'],
    [{ ...good, merkleProof: 'x' }, 'proof not an array'],
    [{ ...good, merkleProof: Array(65).fill(ZERO) }, 'proof too long'],
    [{ ...good, reading: { ...good.reading, deviceId: 'a b' } }, 'invalid reading'],
    [{ ...good, batch: { ...good.batch, header: { ...good.batch.header, batchId: '0' } } }, 'batch id 0'],
    [{ ...good, batch: { ...good.batch, signature: '0x12' } }, 'short signature'],
    [{ ...good, anchor: { chainId: 0 } }, 'bad anchor'],
  ]
  for (const [input, what] of cases) failsAt(t, verifyProofBundle(input), 'shape', what)
  const r = verifyProofBundle({ ...good, reading: { ...good.reading, deviceId: 'a b' } })
  t.match(r.checks[0]?.detail, /deviceId/, 'the detail names the bad field')
})

t.test('device protocol version 2: digest by body version', async (t) => {
  // A version-2 body (magic 46 50 44 02) signed over SHA-256(raw); the check
  // recovers over that digest, tries the other recovery id when v does not
  // lead to the address (v is a hint in version 2), and requires low s.
  const { secp256k1 } = await import('@noble/curves/secp256k1')
  const { sha256 } = await import('@noble/hashes/sha2')
  const key = Buffer.from(DEVICE_KEY.slice(2), 'hex')
  const raw = Uint8Array.from(Buffer.from('46504402066e6f64652d31000000000000000100010d74656d70657261747572655f630343656c4035800000000000', 'hex'))
  const sign = (digest: Uint8Array): Uint8Array => {
    const s = secp256k1.sign(digest, key, { lowS: true })
    return Uint8Array.of(...s.toCompactRawBytes(), 27 + s.recovery)
  }
  const good = sign(sha256(raw))
  const flipV = good.slice()
  flipV[64] = flipV[64] === 27 ? 28 : 27
  const highS = good.slice()
  highS.set(Buffer.from((secp256k1.CURVE.n - BigInt(bytesToHex(good.subarray(32, 64)))).toString(16).padStart(64, '0'), 'hex'), 32)
  highS[64] = flipV[64] as number
  const eip191 = Buffer.from((await device.signMessage({ message: { raw } })).slice(2), 'hex')
  const otherSha = (() => {
    const s = secp256k1.sign(sha256(raw), Buffer.from(OTHER_KEY.slice(2), 'hex'), { lowS: true })
    return Uint8Array.of(...s.toCompactRawBytes(), 27 + s.recovery)
  })()
  const reading = (signature: Uint8Array): Reading => ({
    ...plain(50),
    deviceId: 'node-1',
    raw,
    auth: { kind: 'device-signature', address: device.address, counter: 1n, signature: bytesToHex(signature) },
  })
  const cases: [string, Uint8Array, boolean][] = [
    ['valid v2 signature', good, true],
    ['v flipped (a hint in v2: the other recovery id leads to the device)', flipV, true],
    ['high-s twin (v2 takes low s only)', highS, false],
    ['EIP-191 signature of a v2 body (wrong digest for the version)', eip191, false],
    ['SHA-256 signature by another key', otherSha, false],
  ]
  for (const [what, sig, ok] of cases) {
    const s = seal(1n, 1n, [plain(1), reading(sig)], undefined)
    const r = verifyProofBundle(bundle(s, 2n))
    if (ok) {
      t.ok(r.ok, `${what}: ${JSON.stringify(r.checks.filter((c) => !c.ok))}`)
      t.match(r.checks.find((c) => c.name === 'device-signature')?.detail, /ECDSA\/SHA-256, protocol v2\) by device/, what)
    } else failsAt(t, r, 'device-signature', what)
  }
  // The same SHA-256 signature on the version-1 body (magic 01): EIP-191 is checked there, so it fails.
  const v1raw = raw.slice()
  v1raw[3] = 1
  const s1 = seal(1n, 1n, [{ ...reading(sign(sha256(v1raw))), raw: v1raw }], undefined)
  failsAt(t, verifyProofBundle(bundle(s1, 1n)), 'device-signature', 'SHA-256 signature on a version-1 body')
})
