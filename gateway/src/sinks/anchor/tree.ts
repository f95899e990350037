// The anchor tree (docs/anchor-contract.md, "The two trees"): an OpenZeppelin
// StandardMerkleTree with leaf types ['uint64','bytes32'] over the batches
// firstBatchId..lastBatchId of one anchor, leaf = keccak256(keccak256(
// abi.encode(uint64 batchId, bytes32 merkleRoot))), sorted leaves, sorted-pair
// hashing: exactly what FieldproofAnchor.verifyBatch checks with MerkleProof.
// The leaf has the shape of a reading leaf (core/canonical.ts leafHashOf), so
// the same core code builds both trees.

import { leafHashOf } from '../../core/canonical.ts'
import { buildMerkleTree } from '../../core/merkle.ts'

/** One batch as the anchor tree sees it. */
export interface AnchorLeafInput {
  readonly batchId: bigint
  /** The batch's merkleRoot (32 bytes). */
  readonly merkleRoot: Uint8Array
}

/** FieldproofAnchor.merkleLeaf(batchId, merkleRoot). */
export function anchorLeaf(b: AnchorLeafInput): Uint8Array {
  return leafHashOf(b.batchId, b.merkleRoot)
}

/** The anchorRoot of a contiguous range of batches (at least one). */
export function anchorRoot(batches: readonly AnchorLeafInput[]): Uint8Array {
  return buildMerkleTree(batches.map(anchorLeaf)).root
}

/** The root and the proof of batch `batchId` within the range `batches`; undefined when it is not in the range. */
export function anchorProof(batches: readonly AnchorLeafInput[], batchId: bigint): { root: Uint8Array; proof: Uint8Array[] } | undefined {
  const i = batches.findIndex((b) => b.batchId === batchId)
  if (i < 0) return undefined
  const tree = buildMerkleTree(batches.map(anchorLeaf))
  return { root: tree.root, proof: tree.getProof(i) }
}
