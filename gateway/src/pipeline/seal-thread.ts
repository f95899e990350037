// Worker thread that builds and signs full batches (seal-worker.ts is the
// event loop's side). One job per batch: the leaves in seq order and the
// header without its root; the answer is the root, the header's EIP-712 hash
// and the gateway's signature. Nothing here writes: the pipeline stores the
// batch on the event loop, in its next transaction.
//
// Wire format:
//   job    { id, header: BatchHeader with merkleRoot "0x", leaves: Uint8Array (32 bytes per leaf, transferred) }
//   answer { id, ok: true, root: Uint8Array, hash, signature } or { id, ok: false, message }

import { workerData, type MessagePort } from 'node:worker_threads'
import { signBatchHeader } from '../core/batch.ts'
import { bytesToHex } from '../core/hex.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import type { BatchHeader, Hex } from '../core/types.ts'

/** One batch to seal. */
export interface SealJob {
  readonly id: number
  /** Every field but merkleRoot, which the thread fills in. */
  readonly header: BatchHeader
  readonly leaves: Uint8Array
}

/** The thread's answer to one job. */
export type SealAnswer =
  | { readonly id: number; readonly ok: true; readonly root: Uint8Array; readonly hash: Hex; readonly signature: Hex }
  | { readonly id: number; readonly ok: false; readonly message: string }

/** What the thread is started with. */
export interface SealThreadData {
  readonly port: MessagePort
  /** The gateway key (0x hex), which signs every batch. */
  readonly privateKey: Hex
}

const data = workerData as SealThreadData

function seal(job: SealJob): SealAnswer {
  try {
    const n = job.leaves.length / 32
    const leaves = new Array<Uint8Array>(n)
    for (let i = 0; i < n; i++) leaves[i] = job.leaves.subarray(32 * i, 32 * i + 32)
    const tree = buildMerkleTree(leaves)
    const signed = signBatchHeader({ ...job.header, merkleRoot: bytesToHex(tree.root) }, data.privateKey)
    return { id: job.id, ok: true, root: tree.root, hash: signed.hash, signature: signed.signature }
  } catch (e) {
    return { id: job.id, ok: false, message: String((e as Error).message) }
  }
}

data.port.on('message', (m: SealJob | { close: true }) => {
  if ('close' in m) {
    data.port.close()
    return
  }
  data.port.postMessage(seal(m))
})
