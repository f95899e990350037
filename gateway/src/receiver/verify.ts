// Stateless verification of one upstream batch document
// (docs/upstream-protocol.md, "What a receiver checks"):
//   1. the EIP-712 hash of the header equals `hash`, and the signature
//      recovers the header's gateway (docs/proof-bundle.md; core/batch.ts);
//   2. the seq range, count and payload length agree;
//   3. payload "canonical": seqs run firstSeq … lastSeq, each canonical
//      encoding decodes strictly (docs/canonical-encoding.md) and its leaf is
//      leafHash(seq, canonical); payload "leaves": the leaves as given;
//   4. the Merkle root over the leaves equals the header's merkleRoot;
//   5. batch 1 links to 32 zero bytes.
// The chain link to the previous batch of the same gateway needs state: the
// receiver (receiver.ts) checks it.

import { decodeReading, leafHash } from '../core/canonical.ts'
import { hashBatchHeaderBytes, recoverSignerAddress } from '../core/batch.ts'
import { bytesToHex, equalBytes, tryHexToBytes } from '../core/hex.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import type { Hex } from '../core/types.ts'
import type { WireBatch } from '../pipeline/upstream-wire.ts'

export type VerifyResult =
  | { readonly ok: true; readonly gateway: Hex; readonly leaves: readonly Uint8Array[] }
  | { readonly ok: false; readonly reason: string; readonly check: 'signature' | 'shape' | 'canonical' | 'leaf' | 'merkle' | 'genesis' }

const ZERO32 = new Uint8Array(32)

/** Verify a decoded document without any state. Never throws. */
export function verifyWireBatch(doc: WireBatch): VerifyResult {
  try {
    const h = doc.signed.header
    const digest = hashBatchHeaderBytes(h)
    const claimed = tryHexToBytes(doc.signed.hash, 32)
    if (claimed === undefined || !equalBytes(claimed, digest)) return { ok: false, check: 'signature', reason: `batch.hash ${doc.signed.hash} is not the EIP-712 hash of the header (${bytesToHex(digest)})` }
    const signer = recoverSignerAddress(digest, doc.signed.signature)
    if (signer === undefined) return { ok: false, check: 'signature', reason: 'the signature is malformed or recovers no key' }
    if (signer.toLowerCase() !== h.gateway.toLowerCase()) return { ok: false, check: 'signature', reason: `signed by ${signer}, the header names gateway ${h.gateway}` }
    if (h.batchId < 1n) return { ok: false, check: 'shape', reason: 'batchId must be ≥ 1' }
    if (h.count < 1 || h.lastSeq < h.firstSeq || h.lastSeq - h.firstSeq + 1n !== BigInt(h.count)) {
      return { ok: false, check: 'shape', reason: `count ${h.count} does not match the seq range ${h.firstSeq} … ${h.lastSeq}` }
    }
    let leaves: readonly Uint8Array[]
    if (doc.readings !== undefined) {
      if (doc.readings.length !== h.count) return { ok: false, check: 'shape', reason: `${doc.readings.length} readings for a batch of ${h.count}` }
      const ls: Uint8Array[] = []
      for (let i = 0; i < doc.readings.length; i++) {
        const r = doc.readings[i] as { seq: bigint; canonical: Uint8Array }
        const want = h.firstSeq + BigInt(i)
        if (r.seq !== want) return { ok: false, check: 'shape', reason: `readings[${i}].seq is ${r.seq}, expected ${want} (readings run firstSeq … lastSeq in order)` }
        try {
          decodeReading(r.canonical)
        } catch (e) {
          return { ok: false, check: 'canonical', reason: `readings[${i}] (seq ${r.seq}): ${(e as Error).message}` }
        }
        ls.push(leafHash(r.seq, r.canonical))
      }
      leaves = ls
    } else {
      leaves = doc.leaves ?? []
      if (leaves.length !== h.count) return { ok: false, check: 'shape', reason: `${leaves.length} leaves for a batch of ${h.count}` }
    }
    const root = buildMerkleTree(leaves).root
    if (!equalBytes(root, tryHexToBytes(h.merkleRoot, 32) as Uint8Array)) {
      return { ok: false, check: 'merkle', reason: `the Merkle root of the ${doc.readings ? 'readings' : 'leaves'} is ${bytesToHex(root)}, the header says ${h.merkleRoot}` }
    }
    if (h.batchId === 1n && !equalBytes(tryHexToBytes(h.prevBatchHash, 32) as Uint8Array, ZERO32)) return { ok: false, check: 'genesis', reason: 'batch 1 must link to 32 zero bytes' }
    return { ok: true, gateway: signer, leaves }
  } catch (e) {
    return { ok: false, check: 'shape', reason: (e as Error).message }
  }
}
