// Proof bundles for stored readings: the reading in canonical form, its
// leaf, its Merkle path, the signed batch header and the previous batch
// header (so the chain link verifies offline). docs/proof-bundle.md.

import { decodeReading, readingToJson } from '../core/canonical.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import { buildProofBundle, type ProofBundle } from '../core/proof.ts'
import { bytesToHex } from '../core/hex.ts'
import type { Hex, SignedBatch } from '../core/types.ts'
import type { BatchRow, Store } from '../store/store.ts'

export function signedBatchFromRow(b: BatchRow): SignedBatch {
  return {
    header: {
      gateway: b.gateway,
      batchId: b.id,
      firstSeq: b.firstSeq,
      lastSeq: b.lastSeq,
      count: b.count,
      merkleRoot: bytesToHex(b.merkleRoot),
      prevBatchHash: bytesToHex(b.prevHash),
      sealedAtMs: BigInt(b.sealedAtMs),
    },
    hash: bytesToHex(b.hash),
    signature: bytesToHex(b.signature),
  }
}

export type ProofLookup =
  | { readonly ok: true; readonly bundle: ProofBundle }
  | { readonly ok: false; readonly status: 404 | 409; readonly reason: string }

/** Cache of the last batch's tree: exporting a batch asks for every proof in it. */
let cache: { store: Store; batchId: bigint; tree: ReturnType<typeof buildMerkleTree> } | undefined

export function proofForSeq(store: Store, seq: bigint): ProofLookup {
  const row = store.reading(seq)
  if (!row) {
    const last = store.lastSeq()
    return { ok: false, status: 404, reason: seq > last || seq < 1n ? `no reading with seq ${seq}` : `reading ${seq} was pruned by retention` }
  }
  const batch = store.batchForSeq(seq)
  if (!batch) return { ok: false, status: 409, reason: `reading ${seq} is stored but its batch is not sealed yet; retry after the next seal` }
  if (!cache || cache.store !== store || cache.batchId !== batch.id) {
    cache = { store, batchId: batch.id, tree: buildMerkleTree(store.batchLeaves(batch)) }
  }
  // A batch covers a contiguous seq range: the reading's index in its tree.
  const index = Number(seq - batch.firstSeq)
  const prev = batch.id > 1n ? store.batch(batch.id - 1n) : undefined
  const bundle = buildProofBundle({
    seq,
    reading: readingToJson(decodeReading(row.canonical)),
    canonical: bytesToHex(row.canonical),
    leaf: bytesToHex(row.leaf),
    merkleProof: cache.tree.getProof(index).map((p) => bytesToHex(p) as Hex),
    batch: signedBatchFromRow(batch),
    ...(prev ? { prevBatch: signedBatchFromRow(prev) } : {}),
  })
  return { ok: true, bundle }
}
