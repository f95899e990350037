// Proof bundles (docs/proof-bundle.md; ARCHITECTURE.md "Interfaces that
// others rely on", invariant 4): one JSON document that proves, offline,
// that a reading was sequenced by a gateway and sealed in a signed batch:
// the reading and its canonical bytes, its Merkle leaf and path, the signed
// batch header, optionally the previous signed header (so the hash link can
// be checked) and, once anchored, where the batch landed on chain.
//
// verifyProofBundle runs the offline checks in a fixed order and stops at
// the first failure. The anchor is carried, not checked here: checking it
// needs the chain (an RPC), which this pure module does not have.
//
// The device-signature step checks a device-signed reading's raw bytes by
// the device protocol version they carry (docs/device-protocol.md):
// version 2 bodies (magic 46 50 44 02) are signed over SHA-256, anything
// else over the EIP-191 digest (version 1, and raw bytes signed with
// personal_sign by other tools).

import { sha256 } from '@noble/hashes/sha2'
import {
  hashBatchHeaderBytes,
  recoverSignerAddress,
  signedBatchFromJson,
  signedBatchToJson,
  type SignedBatchJson,
} from './batch.ts'
import { encodeReading, leafHash, readingFromJson, readingToJson, type ReadingJson } from './canonical.ts'
import { FieldproofError } from './errors.ts'
import { bytesToHex, equalBytes, keccak_256, parseAddress, parseU64Decimal, toChecksumAddress, tryHexToBytes } from './hex.ts'
import { processMerkleProof } from './merkle.ts'
import type { Hex, Reading, SignedBatch } from './types.ts'

/** Where a batch was anchored on chain (carried in the bundle; checked against the chain elsewhere). */
export interface ProofAnchor {
  /** EIP-155 chain id. */
  readonly chainId: number
  /** Anchor contract address. */
  readonly contract: Hex
  /** Transaction that anchored the batch (32 bytes). */
  readonly txHash: Hex
  /** Block of that transaction, decimal. */
  readonly blockNumber: string
  /** The contract's id for the anchor, decimal. */
  readonly anchorId: string
  /** Root stored on chain (32 bytes): the batch hash itself, or a root over several batch hashes. */
  readonly anchorRoot: Hex
  /** Path from the batch hash to anchorRoot (empty when the batch hash is the root). */
  readonly batchProof: readonly Hex[]
}

/**
 * A proof bundle: everything needed to check one reading offline.
 *
 * @example
 * { "type": "fieldproof.proof", "version": 1, "seq": "42",
 *   "reading": { ... ReadingJson ... }, "canonical": "0xf1…", "leaf": "0x…",
 *   "merkleProof": ["0x…", "0x…"],
 *   "batch": { "header": { ... BatchHeaderJson ... }, "hash": "0x…", "signature": "0x…" } }
 */
export interface ProofBundle {
  readonly type: 'fieldproof.proof'
  readonly version: 1
  /** Sequence number of the reading, decimal. */
  readonly seq: string
  readonly reading: ReadingJson
  /** Canonical encoding of the reading (docs/canonical-encoding.md). */
  readonly canonical: Hex
  /** Merkle leaf: leafHash(seq, canonical). */
  readonly leaf: Hex
  /** Sibling hashes from the leaf to the batch's merkleRoot. */
  readonly merkleProof: readonly Hex[]
  /** The batch the reading was sealed in. */
  readonly batch: SignedBatchJson
  /** The batch before it, so the prevBatchHash link verifies offline. */
  readonly prevBatch?: SignedBatchJson
  readonly anchor?: ProofAnchor
}

/** What buildProofBundle assembles. Byte fields take 0x-hex or bytes. */
export interface ProofBundleParts {
  readonly seq: bigint
  /** The reading, as a Reading or already in JSON form. */
  readonly reading: Reading | ReadingJson
  /** The stored canonical bytes; encoded from `reading` when omitted. */
  readonly canonical?: Hex | Uint8Array
  /** The stored leaf; computed from seq and canonical when omitted. */
  readonly leaf?: Hex | Uint8Array
  readonly merkleProof: readonly (Hex | Uint8Array)[]
  readonly batch: SignedBatch
  readonly prevBatch?: SignedBatch
  readonly anchor?: ProofAnchor
}

/** Names of the checks, in the order they run. */
export const PROOF_CHECKS = [
  'shape',
  'canonical',
  'leaf',
  'range',
  'merkle',
  'batch-hash',
  'batch-signature',
  'device-signature',
  'prev-link',
] as const
export type ProofCheckName = (typeof PROOF_CHECKS)[number]

/** One check's outcome. A check that does not apply passes with a detail saying so. */
export interface ProofCheck {
  readonly name: ProofCheckName
  readonly ok: boolean
  readonly detail: string
  /** True when the check did not run because an earlier one failed (then ok is false). */
  readonly skipped?: boolean
}

/** The verdict on a bundle: ok when every check passed. */
export interface ProofReport {
  readonly ok: boolean
  /** The gateway whose signature was verified (EIP-55), once batch-signature passed. */
  readonly gateway?: Hex
  readonly checks: readonly ProofCheck[]
}

export interface VerifyProofOptions {
  /** Require the batch to be signed by this gateway address. */
  readonly expectedGateway?: Hex
}

const toHex = (v: Hex | Uint8Array): Hex => (typeof v === 'string' ? (v.toLowerCase() as Hex) : bytesToHex(v))

function isReading(r: Reading | ReadingJson): r is Reading {
  return typeof r.received.monoNs === 'bigint'
}

/**
 * Assemble a proof bundle. Pure assembly: it does not verify (run
 * verifyProofBundle on the result for that).
 * @throws FieldproofError('READING_INVALID') when `canonical` is omitted and the reading does not encode.
 */
export function buildProofBundle(parts: ProofBundleParts): ProofBundle {
  const reading = isReading(parts.reading) ? parts.reading : readingFromJson(parts.reading)
  const canonical = parts.canonical === undefined ? encodeReading(reading) : parts.canonical
  const canonicalBytes = typeof canonical === 'string' ? tryHexToBytes(canonical) : canonical
  if (canonicalBytes === undefined) throw new FieldproofError('PROOF_INVALID', 'canonical must be 0x-hex')
  const leaf = parts.leaf === undefined ? leafHash(parts.seq, canonicalBytes) : parts.leaf
  return {
    type: 'fieldproof.proof',
    version: 1,
    seq: parts.seq.toString(),
    reading: isReading(parts.reading) ? readingToJson(parts.reading) : parts.reading,
    canonical: toHex(canonical),
    leaf: toHex(leaf),
    merkleProof: parts.merkleProof.map(toHex),
    batch: signedBatchToJson(parts.batch),
    ...(parts.prevBatch !== undefined ? { prevBatch: signedBatchToJson(parts.prevBatch) } : {}),
    ...(parts.anchor !== undefined ? { anchor: parts.anchor } : {}),
  }
}

// --- Verification --------------------------------------------------------------

/** A bundle after the shape check: typed, bytes decoded. */
interface Parsed {
  readonly seq: bigint
  readonly reading: Reading
  readonly canonical: Uint8Array
  readonly leaf: Uint8Array
  readonly merkleProof: readonly Uint8Array[]
  readonly batch: SignedBatch
  readonly prevBatch: SignedBatch | undefined
}

class ShapeError extends Error {}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const BUNDLE_KEYS = ['type', 'version', 'seq', 'reading', 'canonical', 'leaf', 'merkleProof', 'batch', 'prevBatch', 'anchor']
const ANCHOR_KEYS = ['chainId', 'contract', 'txHash', 'blockNumber', 'anchorId', 'anchorRoot', 'batchProof']
const BIG_DECIMAL_RE = /^(0|[1-9][0-9]{0,77})$/
/** A tree of 2^32 leaves has depth 32; anything longer cannot be ours. */
const MAX_PROOF_NODES = 64

function hexList(v: unknown, field: string): Uint8Array[] {
  if (!Array.isArray(v) || v.length > MAX_PROOF_NODES) throw new ShapeError(`${field} must be an array of at most ${MAX_PROOF_NODES} 32-byte hex strings`)
  return v.map((x: unknown, i: number) => {
    const b = tryHexToBytes(x, 32)
    if (b === undefined) throw new ShapeError(`${field}[${i}] must be 32 bytes of 0x hex`)
    return b
  })
}

function checkAnchor(v: unknown): void {
  if (!isRecord(v)) throw new ShapeError('anchor must be an object')
  for (const k of Object.keys(v)) if (!ANCHOR_KEYS.includes(k)) throw new ShapeError(`anchor.${k.slice(0, 40)}: unknown key`)
  if (typeof v.chainId !== 'number' || !Number.isSafeInteger(v.chainId) || v.chainId < 1) throw new ShapeError('anchor.chainId must be a positive integer')
  if (parseAddress(v.contract) === undefined) throw new ShapeError('anchor.contract must be a 20-byte 0x address')
  if (tryHexToBytes(v.txHash, 32) === undefined) throw new ShapeError('anchor.txHash must be 32 bytes of 0x hex')
  if (typeof v.blockNumber !== 'string' || !BIG_DECIMAL_RE.test(v.blockNumber)) throw new ShapeError('anchor.blockNumber must be a decimal string')
  if (typeof v.anchorId !== 'string' || !BIG_DECIMAL_RE.test(v.anchorId)) throw new ShapeError('anchor.anchorId must be a decimal string')
  if (tryHexToBytes(v.anchorRoot, 32) === undefined) throw new ShapeError('anchor.anchorRoot must be 32 bytes of 0x hex')
  hexList(v.batchProof, 'anchor.batchProof')
}

function parseBundle(input: unknown): Parsed {
  let b = input
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b) as unknown
    } catch (e) {
      throw new ShapeError(`not JSON: ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  if (!isRecord(b)) throw new ShapeError('a proof bundle is a JSON object')
  if (b.type !== 'fieldproof.proof') throw new ShapeError(`type must be "fieldproof.proof", got ${JSON.stringify(b.type)?.slice(0, 60)}`)
  if (b.version !== 1) throw new ShapeError(`version must be 1, got ${JSON.stringify(b.version)?.slice(0, 20)}`)
  for (const k of Object.keys(b)) if (!BUNDLE_KEYS.includes(k)) throw new ShapeError(`${k.slice(0, 40)}: unknown key`)
  const seq = parseU64Decimal(b.seq)
  if (seq === undefined) throw new ShapeError('seq must be a decimal string in 0 … 2^64-1')
  const canonical = tryHexToBytes(b.canonical)
  if (canonical === undefined || canonical.length === 0) throw new ShapeError('canonical must be non-empty 0x hex')
  const leaf = tryHexToBytes(b.leaf, 32)
  if (leaf === undefined) throw new ShapeError('leaf must be 32 bytes of 0x hex')
  const merkleProof = hexList(b.merkleProof, 'merkleProof')
  let reading: Reading
  let batch: SignedBatch
  let prevBatch: SignedBatch | undefined
  try {
    reading = readingFromJson(b.reading)
  } catch (e) {
    throw new ShapeError(`reading: ${e instanceof Error ? e.message : String(e)}`)
  }
  try {
    batch = signedBatchFromJson(b.batch)
  } catch (e) {
    throw new ShapeError(`batch: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (b.prevBatch !== undefined) {
    try {
      prevBatch = signedBatchFromJson(b.prevBatch)
    } catch (e) {
      throw new ShapeError(`prevBatch: ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  if (batch.header.batchId < 1n) throw new ShapeError('batch.header.batchId must be ≥ 1')
  if (b.anchor !== undefined) checkAnchor(b.anchor)
  return { seq, reading, canonical, leaf, merkleProof, batch, prevBatch }
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}

const ZERO32 = new Uint8Array(32)

/** True when raw bytes are a device protocol version 2 body (magic 46 50 44 02, docs/device-protocol.md). */
function isSignedBodyV2(raw: Uint8Array): boolean {
  return raw.length >= 4 && raw[0] === 0x46 && raw[1] === 0x50 && raw[2] === 0x44 && raw[3] === 0x02
}

/** EIP-191 version 0x45 digest of a message: keccak256("\x19Ethereum Signed Message:\n" + len + message). */
export function hashPersonalMessage(message: Uint8Array): Uint8Array {
  const prefix = new TextEncoder().encode(`\x19Ethereum Signed Message:\n${message.length}`)
  const buf = new Uint8Array(prefix.length + message.length)
  buf.set(prefix, 0)
  buf.set(message, prefix.length)
  return keccak_256(buf)
}

type Outcome = { ok: true; detail: string } | { ok: false; detail: string }
const pass = (detail: string): Outcome => ({ ok: true, detail })
const fail = (detail: string): Outcome => ({ ok: false, detail })

/**
 * Verify a proof bundle offline. Never throws: every problem is a failed
 * check. Checks run in PROOF_CHECKS order and stop at the first failure;
 * the rest are reported with `skipped: true`.
 *
 * @param bundle the parsed JSON document (or its text)
 * @example
 * const report = verifyProofBundle(JSON.parse(text), { expectedGateway: '0x…' })
 * if (!report.ok) console.log(report.checks.find((c) => !c.ok)?.detail)
 */
export function verifyProofBundle(bundle: unknown, opts: VerifyProofOptions = {}): ProofReport {
  const checks: ProofCheck[] = []
  let gateway: Hex | undefined
  let p: Parsed | undefined
  let digest: Uint8Array | undefined

  const steps: Record<ProofCheckName, () => Outcome> = {
    shape: () => {
      try {
        p = parseBundle(bundle)
        return pass(`fieldproof.proof v1 for seq ${p.seq}, batch ${p.batch.header.batchId}`)
      } catch (e) {
        return fail(e instanceof Error ? e.message : String(e))
      }
    },
    canonical: () => {
      const q = p as Parsed
      const again = encodeReading(q.reading)
      if (equalBytes(again, q.canonical)) return pass(`reading re-encodes to the ${q.canonical.length} canonical bytes`)
      return fail(`reading re-encodes to ${again.length} bytes that differ from canonical (${q.canonical.length} bytes) at byte ${firstDifference(again, q.canonical)}`)
    },
    leaf: () => {
      const q = p as Parsed
      const l = leafHash(q.seq, q.canonical)
      return equalBytes(l, q.leaf) ? pass('leafHash(seq, canonical) equals leaf') : fail(`leafHash(seq, canonical) is ${bytesToHex(l)}, the bundle says ${bytesToHex(q.leaf)}`)
    },
    range: () => {
      const { seq, batch } = p as Parsed
      const h = batch.header
      if (h.firstSeq > h.lastSeq) return fail(`batch firstSeq ${h.firstSeq} is after lastSeq ${h.lastSeq}`)
      if (seq < h.firstSeq || seq > h.lastSeq) return fail(`seq ${seq} is outside the batch's range ${h.firstSeq} … ${h.lastSeq}`)
      if (h.count < 1 || BigInt(h.count) > h.lastSeq - h.firstSeq + 1n) return fail(`batch count ${h.count} does not fit its range ${h.firstSeq} … ${h.lastSeq}`)
      return pass(`seq ${seq} is in ${h.firstSeq} … ${h.lastSeq}`)
    },
    merkle: () => {
      const q = p as Parsed
      const root = processMerkleProof(q.leaf, q.merkleProof)
      const want = tryHexToBytes(q.batch.header.merkleRoot, 32) as Uint8Array
      return equalBytes(root, want)
        ? pass(`${q.merkleProof.length}-node path leads to merkleRoot`)
        : fail(`the path leads to ${bytesToHex(root)}, not to merkleRoot ${bytesToHex(want)}`)
    },
    'batch-hash': () => {
      const q = p as Parsed
      digest = hashBatchHeaderBytes(q.batch.header)
      const claimed = tryHexToBytes(q.batch.hash, 32) as Uint8Array
      return equalBytes(digest, claimed) ? pass('EIP-712 hash of the header equals batch.hash') : fail(`EIP-712 hash of the header is ${bytesToHex(digest)}, batch.hash says ${q.batch.hash}`)
    },
    'batch-signature': () => {
      const q = p as Parsed
      const signer = recoverSignerAddress(digest as Uint8Array, q.batch.signature)
      if (signer === undefined) return fail('batch signature is malformed (65 bytes r||s||v, v 27/28, low s) or recovers no key')
      if (signer.toLowerCase() !== q.batch.header.gateway.toLowerCase()) return fail(`batch signed by ${signer}, header names gateway ${q.batch.header.gateway}`)
      if (opts.expectedGateway !== undefined) {
        const want = parseAddress(opts.expectedGateway)
        if (want === undefined) return fail(`expected gateway ${String(opts.expectedGateway).slice(0, 60)} is not an address`)
        if (toChecksumAddress(want) !== signer) return fail(`batch signed by ${signer}, expected gateway ${toChecksumAddress(want)}`)
      }
      gateway = signer
      return pass(`signed by gateway ${signer}${opts.expectedGateway !== undefined ? ' (as expected)' : ''}`)
    },
    'device-signature': () => {
      const { reading } = p as Parsed
      const auth = reading.auth
      if (auth.kind !== 'device-signature') return pass(`not applicable: auth kind is ${auth.kind}`)
      if (reading.raw === undefined) return fail('auth is device-signature but the reading carries no raw bytes to check it against')
      if (isSignedBodyV2(reading.raw)) {
        // Device protocol version 2 (docs/device-protocol.md): ECDSA over
        // SHA-256(raw), low s, v 27/28 as a recovery hint — the other
        // recovery id is tried when the given one does not lead to
        // auth.address, which makes this check "(r, s) verifies under a key
        // whose address is auth.address", the gateway's check with the key.
        const digest = sha256(reading.raw)
        const signer = recoverSignerAddress(digest, auth.signature)
        if (signer === undefined) return fail('device signature (protocol v2) is malformed (65 bytes r||s||v, v 27/28, low s) or recovers no key')
        if (signer.toLowerCase() === auth.address.toLowerCase()) return pass(`raw bytes signed (ECDSA/SHA-256, protocol v2) by device ${signer}`)
        const flipped = tryHexToBytes(auth.signature, 65) as Uint8Array
        flipped[64] = flipped[64] === 27 ? 28 : 27
        const other = recoverSignerAddress(digest, flipped)
        if (other !== undefined && other.toLowerCase() === auth.address.toLowerCase()) return pass(`raw bytes signed (ECDSA/SHA-256, protocol v2) by device ${other} (other recovery id than v)`)
        return fail(`device signature (protocol v2) recovers ${signer}, auth names ${auth.address}`)
      }
      const signer = recoverSignerAddress(hashPersonalMessage(reading.raw), auth.signature, { allowV01: true, allowHighS: true })
      if (signer === undefined) return fail('device signature is malformed or recovers no key')
      if (signer.toLowerCase() !== auth.address.toLowerCase()) return fail(`device signature recovers ${signer}, auth names ${auth.address}`)
      return pass(`raw bytes signed (EIP-191) by device ${signer}`)
    },
    'prev-link': () => {
      const { batch, prevBatch } = p as Parsed
      const h = batch.header
      const link = tryHexToBytes(h.prevBatchHash, 32) as Uint8Array
      if (prevBatch === undefined) {
        if (h.batchId === 1n) return equalBytes(link, ZERO32) ? pass('batch 1: prevBatchHash is zero') : fail('batch 1 must have a zero prevBatchHash')
        return pass('not checked: previous batch not included')
      }
      const ph = prevBatch.header
      if (h.batchId === 1n) return fail('batch 1 has no previous batch, yet one is included')
      const prevDigest = hashBatchHeaderBytes(ph)
      if (!equalBytes(prevDigest, tryHexToBytes(prevBatch.hash, 32) as Uint8Array)) return fail(`previous header hashes to ${bytesToHex(prevDigest)}, prevBatch.hash says ${prevBatch.hash}`)
      const signer = recoverSignerAddress(prevDigest, prevBatch.signature)
      if (signer === undefined || signer.toLowerCase() !== h.gateway.toLowerCase()) return fail(`previous batch is not signed by gateway ${h.gateway}`)
      if (ph.gateway.toLowerCase() !== h.gateway.toLowerCase()) return fail(`previous batch names gateway ${ph.gateway}, this one ${h.gateway}`)
      if (ph.batchId !== h.batchId - 1n) return fail(`previous batch id is ${ph.batchId}, expected ${h.batchId - 1n}`)
      if (ph.lastSeq !== h.firstSeq - 1n) return fail(`previous batch ends at seq ${ph.lastSeq}, this one starts at ${h.firstSeq}`)
      if (!equalBytes(link, prevDigest)) return fail(`prevBatchHash ${h.prevBatchHash} is not the previous batch's hash ${bytesToHex(prevDigest)}`)
      return pass(`links to batch ${ph.batchId} (${bytesToHex(prevDigest)}), signed by the same gateway`)
    },
  }

  let failed = false
  for (const name of PROOF_CHECKS) {
    if (failed) {
      checks.push({ name, ok: false, detail: 'skipped: an earlier check failed', skipped: true })
      continue
    }
    let r: Outcome
    try {
      r = steps[name]()
    } catch (e) {
      r = fail(e instanceof Error ? e.message : String(e))
    }
    checks.push({ name, ok: r.ok, detail: r.detail })
    if (!r.ok) failed = true
  }
  return { ok: !failed, ...(gateway !== undefined ? { gateway } : {}), checks }
}
