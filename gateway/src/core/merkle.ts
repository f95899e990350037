// OpenZeppelin-compatible Merkle tree over 32-byte leaves.
//
// Same tree as @openzeppelin/merkle-tree's StandardMerkleTree with its
// default `sortLeaves: true` (merkletree.ts prepare, core.ts makeMerkleTree):
//   - leaves sorted by their bytes (ties keep input order),
//   - an array of 2n-1 nodes, leaves at the end in reverse sorted order
//     (tree[2n-2-k] = sorted[k]), node i = hashPair(tree[2i+1], tree[2i+2]),
//   - hashPair(a, b) = keccak256(min(a, b) || max(a, b)), the commutative
//     pair hash of OpenZeppelin's MerkleProof.sol (_hashPair), so proofs need
//     no left/right flags and verify on chain with MerkleProof.verify.
// Nodes live in one Uint8Array of 32·(2n-1) bytes; the internal ones are
// hashed in one call into keccak.ts's WebAssembly module.

import { FieldproofError } from './errors.ts'
import { compareBytes, equalBytes, keccak256Into } from './hex.ts'
import { hashTreeNodes } from './keccak.ts'

/** A built tree. Proofs are sibling hashes from the leaf up, as MerkleProof.sol takes them. */
export interface MerkleTree {
  /** The root (32 bytes). */
  readonly root: Uint8Array
  /** Number of leaves. */
  readonly length: number
  /**
   * Proof for a leaf, given as its 32 bytes or as its index in the array
   * passed to buildMerkleTree. For a leaf that occurs more than once, a
   * proof for one of its positions.
   * @throws FieldproofError('NOT_FOUND') for an unknown leaf or an index out of range.
   */
  getProof(leaf: Uint8Array | number): Uint8Array[]
}

/** The commutative pair hash: keccak256 of the two 32-byte nodes in ascending byte order. */
export function hashPair(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== 32 || b.length !== 32) throw new FieldproofError('PROOF_INVALID', 'Merkle nodes must be 32 bytes')
  const buf = new Uint8Array(64)
  if (compareBytes(a, b) <= 0) {
    buf.set(a, 0)
    buf.set(b, 32)
  } else {
    buf.set(b, 0)
    buf.set(a, 32)
  }
  const out = new Uint8Array(32)
  keccak256Into(buf, 0, 64, out, 0)
  return out
}

class Tree implements MerkleTree {
  readonly root: Uint8Array
  readonly length: number
  readonly #nodes: Uint8Array
  /** Tree index of input leaf i. */
  readonly #treeIndex: Uint32Array

  constructor(nodes: Uint8Array, treeIndex: Uint32Array) {
    this.#nodes = nodes
    this.#treeIndex = treeIndex
    this.length = treeIndex.length
    this.root = nodes.slice(0, 32)
  }

  getProof(leaf: Uint8Array | number): Uint8Array[] {
    let index: number
    if (typeof leaf === 'number') {
      const t = Number.isInteger(leaf) ? this.#treeIndex[leaf] : undefined
      if (t === undefined) throw new FieldproofError('NOT_FOUND', `leaf index ${leaf} out of range 0 … ${this.length - 1}`)
      index = t
    } else {
      index = this.#find(leaf)
      if (index < 0) throw new FieldproofError('NOT_FOUND', 'leaf is not in the tree')
    }
    const proof: Uint8Array[] = []
    const nodes = this.#nodes
    while (index > 0) {
      const sibling = index % 2 === 1 ? index + 1 : index - 1
      proof.push(nodes.slice(sibling * 32, sibling * 32 + 32))
      index = (index - 1) >> 1
    }
    return proof
  }

  /** Tree index of a leaf by binary search (leaves are stored in descending byte order), or -1. */
  #find(leaf: Uint8Array): number {
    if (leaf.length !== 32) return -1
    const n = this.length
    const nodes = this.#nodes
    // Sorted position k (ascending) lives at tree index 2n-2-k.
    let lo = 0
    let hi = n - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const at = (2 * n - 2 - mid) * 32
      let c = 0
      for (let k = 0; k < 32; k++) {
        c = (nodes[at + k] as number) - (leaf[k] as number)
        if (c !== 0) break
      }
      if (c === 0) return 2 * n - 2 - mid
      if (c < 0) lo = mid + 1
      else hi = mid - 1
    }
    return -1
  }
}

/**
 * Build the tree over leaf hashes (32 bytes each; for readings,
 * canonical.ts leafHash). The input array is not modified.
 *
 * @throws FieldproofError('INTERNAL') for no leaves or a leaf that is not 32 bytes.
 * @example
 * const tree = buildMerkleTree(leaves)
 * const proof = tree.getProof(0)
 * verifyMerkleProof(leaves[0], proof, tree.root) // true
 */
export function buildMerkleTree(leaves: readonly Uint8Array[]): MerkleTree {
  const n = leaves.length
  if (n === 0) throw new FieldproofError('INTERNAL', 'cannot build a Merkle tree with no leaves')
  for (let i = 0; i < n; i++) {
    const l = leaves[i]
    if (!(l instanceof Uint8Array) || l.length !== 32) throw new FieldproofError('INTERNAL', `Merkle leaf ${i} is not 32 bytes`)
  }
  // Sort input indexes by leaf bytes; a u32 key of the first four bytes
  // settles almost every comparison, ties fall back to the bytes, then the index.
  const keys = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    const l = leaves[i] as Uint8Array
    keys[i] = (((l[0] as number) << 24) | ((l[1] as number) << 16) | ((l[2] as number) << 8) | (l[3] as number)) >>> 0
  }
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  order.sort((a, b) => {
    const ka = keys[a] as number
    const kb = keys[b] as number
    if (ka !== kb) return ka < kb ? -1 : 1
    return compareBytes(leaves[a] as Uint8Array, leaves[b] as Uint8Array) || a - b
  })

  const size = 2 * n - 1
  const nodes = new Uint8Array(size * 32)
  const treeIndex = new Uint32Array(n)
  for (let k = 0; k < n; k++) {
    const input = order[k] as number
    const t = size - 1 - k
    nodes.set(leaves[input] as Uint8Array, t * 32)
    treeIndex[input] = t
  }
  hashTreeNodes(nodes, size - 1 - n)
  return new Tree(nodes, treeIndex)
}

/**
 * Fold a proof onto a leaf: the root the proof leads to
 * (MerkleProof.processProof).
 * @throws FieldproofError('PROOF_INVALID') when the leaf or a proof node is not 32 bytes.
 */
export function processMerkleProof(leaf: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  if (!(leaf instanceof Uint8Array) || leaf.length !== 32) throw new FieldproofError('PROOF_INVALID', 'Merkle leaf must be 32 bytes')
  let node: Uint8Array = leaf.slice()
  for (let i = 0; i < proof.length; i++) {
    const p = proof[i]
    if (!(p instanceof Uint8Array) || p.length !== 32) throw new FieldproofError('PROOF_INVALID', `Merkle proof node ${i} must be 32 bytes`)
    node = hashPair(node, p)
  }
  return node
}

/** True when `proof` leads from `leaf` to `root` (MerkleProof.verify). Malformed input gives false. */
export function verifyMerkleProof(leaf: Uint8Array, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!(root instanceof Uint8Array) || root.length !== 32 || !Array.isArray(proof)) return false
  try {
    return equalBytes(processMerkleProof(leaf, proof), root)
  } catch {
    return false
  }
}
