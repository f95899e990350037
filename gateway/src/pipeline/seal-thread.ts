// Worker thread that builds and signs full batches (seal-worker.ts is the
// event loop's side). One job per batch: the canonical readings in seq order
// and the header without its root; the answer is the readings' leaves, the
// root, the header's EIP-712 hash and the gateway's signature. Nothing here
// writes: the pipeline stores the batch on the event loop, in its next
// transaction.
//
// Wire format:
//   job    { id, header: BatchHeader with merkleRoot "0x", readings: Uint8Array (the canonical readings one after
//            another), ends: Uint32Array (where each ends); both transferred }
//   answer { id, ok: true, leaves: Uint8Array (32 bytes per reading, transferred), root: Uint8Array, hash, signature }
//          or { id, ok: false, message }

import { workerData, type MessagePort } from 'node:worker_threads'
import { signBatchHeader } from '../core/batch.ts'
import { leafHashes, splitLeaves } from '../core/canonical.ts'
import { bytesToHex } from '../core/hex.ts'
import { buildMerkleTree } from '../core/merkle.ts'
import type { BatchHeader, Hex } from '../core/types.ts'

/** One batch to seal. */
export interface SealJob {
  readonly id: number
  /** Every field but merkleRoot, which the thread fills in. */
  readonly header: BatchHeader
  /** The canonical readings header.firstSeq … header.lastSeq, one after another. */
  readonly readings: Uint8Array
  /** The end offset of each reading in `readings`. */
  readonly ends: Uint32Array
}

/** The thread's answer to one job. */
export type SealAnswer =
  | { readonly id: number; readonly ok: true; readonly leaves: Uint8Array; readonly root: Uint8Array; readonly hash: Hex; readonly signature: Hex }
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
    const canonicals = new Array<Uint8Array>(job.ends.length)
    for (let i = 0, start = 0; i < job.ends.length; i++) {
      const end = job.ends[i] as number
      canonicals[i] = job.readings.subarray(start, end)
      start = end
    }
    const leaves = leafHashes(job.header.firstSeq, canonicals)
    const tree = buildMerkleTree(splitLeaves(leaves))
    const signed = signBatchHeader({ ...job.header, merkleRoot: bytesToHex(tree.root) }, data.privateKey)
    return { id: job.id, ok: true, leaves, root: tree.root, hash: signed.hash, signature: signed.signature }
  } catch (e) {
    return { id: job.id, ok: false, message: String((e as Error).message) }
  }
}

data.port.on('message', (m: SealJob | { close: true }) => {
  if ('close' in m) {
    data.port.close()
    return
  }
  const a = seal(m)
  data.port.postMessage(a, a.ok ? [a.leaves.buffer as ArrayBuffer] : [])
})
