// Durable state of the anchor sink (store migration 3; docs/anchor-sink.md,
// "What survives a restart"):
//   anchor_batches  every batch root handed to the sink (batch id → merkleRoot),
//                   kept so an anchor and its proofs can be rebuilt after
//                   retention pruned the batch itself;
//   anchor_ranges   one row per anchor attempt of a range on (chain, contract):
//                   'sent' while its transaction (hash, nonce, signed bytes) is
//                   in flight, 'confirmed' once it has enough confirmations.
//                   A dropped attempt is deleted; the range is sent again.
// The row of an attempt is written BEFORE its transaction is broadcast, so a
// crash in between leaves a row whose transaction the chain does not know:
// the next start re-broadcasts those same signed bytes, or rebuilds the range
// from the contract's lastAnchoredBatchId. A range is never sent twice blind.

import type { Statement } from 'better-sqlite3'
import { bytesToHex } from '../../core/hex.ts'
import type { Hex, ProofAnchorLike } from './types.ts'
import type { Store } from '../../store/store.ts'
import { anchorProof } from './tree.ts'

/** A queued batch root. */
export interface QueuedBatch {
  readonly batchId: bigint
  readonly merkleRoot: Uint8Array
  readonly queuedMs: number
}

/** One anchor attempt of a range. */
export interface AnchorRange {
  readonly firstBatchId: bigint
  readonly lastBatchId: bigint
  readonly anchorRoot: Uint8Array
  readonly state: 'sent' | 'confirmed'
  readonly txHash: Hex
  readonly nonce: number
  /** The signed transaction (re-broadcast after a restart or a reorg). */
  readonly rawTx: Hex | null
  readonly anchorId: bigint | null
  readonly blockNumber: bigint | null
  readonly sentMs: number
  readonly confirmedMs: number | null
}

interface RangeRow {
  first_batch_id: bigint
  last_batch_id: bigint
  anchor_root: Uint8Array
  state: string
  tx_hash: string | null
  nonce: bigint | null
  raw_tx: string | null
  anchor_id: bigint | null
  block_number: bigint | null
  sent_ms: bigint
  confirmed_ms: bigint | null
}

const toRange = (r: RangeRow): AnchorRange => ({
  firstBatchId: r.first_batch_id,
  lastBatchId: r.last_batch_id,
  anchorRoot: r.anchor_root,
  state: r.state === 'confirmed' ? 'confirmed' : 'sent',
  txHash: (r.tx_hash ?? '0x') as Hex,
  nonce: Number(r.nonce ?? -1n),
  rawTx: r.raw_tx as Hex | null,
  anchorId: r.anchor_id,
  blockNumber: r.block_number,
  sentMs: Number(r.sent_ms),
  confirmedMs: r.confirmed_ms === null ? null : Number(r.confirmed_ms),
})

/** The anchor sink's tables, scoped to one chain id and contract address. */
export class AnchorState {
  readonly #chainId: number
  readonly #contract: string
  readonly #s: {
    queue: Statement<[bigint, Uint8Array, number]>
    queued: Statement<[bigint, number], { batch_id: bigint; merkle_root: Uint8Array; queued_ms: bigint }>
    queuedRange: Statement<[bigint, bigint], { batch_id: bigint; merkle_root: Uint8Array; queued_ms: bigint }>
    countAfter: Statement<[bigint], { n: bigint }>
    maxQueued: Statement<[], { id: bigint | null }>
    inflight: Statement<[number, string], RangeRow>
    lastConfirmed: Statement<[number, string], RangeRow>
    lastSentMs: Statement<[number, string], { ms: bigint | null }>
    covering: Statement<[number, string, bigint, bigint], RangeRow>
    insert: Statement<[number, string, bigint, bigint, Uint8Array, string, number, string, number]>
    confirm: Statement<[bigint, bigint, number, number, string, bigint]>
    remove: Statement<[number, string, bigint]>
    removeAfter: Statement<[number, string, bigint]>
    prune: Statement<[number, string, bigint]>
  }

  constructor(store: Store, chainId: number, contract: Hex) {
    this.#chainId = chainId
    this.#contract = contract.toLowerCase()
    const db = store.db
    this.#s = {
      queue: db.prepare('INSERT INTO anchor_batches (batch_id, merkle_root, queued_ms) VALUES (?, ?, ?) ON CONFLICT (batch_id) DO UPDATE SET merkle_root = excluded.merkle_root'),
      queued: db.prepare('SELECT batch_id, merkle_root, queued_ms FROM anchor_batches WHERE batch_id > ? ORDER BY batch_id LIMIT ?'),
      queuedRange: db.prepare('SELECT batch_id, merkle_root, queued_ms FROM anchor_batches WHERE batch_id BETWEEN ? AND ? ORDER BY batch_id'),
      countAfter: db.prepare('SELECT count(*) AS n FROM anchor_batches WHERE batch_id > ?'),
      maxQueued: db.prepare('SELECT max(batch_id) AS id FROM anchor_batches'),
      inflight: db.prepare("SELECT * FROM anchor_ranges WHERE chain_id = ? AND contract = ? AND state = 'sent' ORDER BY first_batch_id LIMIT 1"),
      lastConfirmed: db.prepare("SELECT * FROM anchor_ranges WHERE chain_id = ? AND contract = ? AND state = 'confirmed' ORDER BY first_batch_id DESC LIMIT 1"),
      lastSentMs: db.prepare('SELECT max(sent_ms) AS ms FROM anchor_ranges WHERE chain_id = ? AND contract = ?'),
      covering: db.prepare("SELECT * FROM anchor_ranges WHERE chain_id = ? AND contract = ? AND state = 'confirmed' AND first_batch_id <= ? AND last_batch_id >= ? LIMIT 1"),
      insert: db.prepare(
        "INSERT OR REPLACE INTO anchor_ranges (chain_id, contract, first_batch_id, last_batch_id, anchor_root, state, tx_hash, nonce, raw_tx, anchor_id, block_number, sent_ms, confirmed_ms) VALUES (?, ?, ?, ?, ?, 'sent', ?, ?, ?, NULL, NULL, ?, NULL)",
      ),
      confirm: db.prepare("UPDATE anchor_ranges SET state = 'confirmed', anchor_id = ?, block_number = ?, confirmed_ms = ?, chain_id = ?, contract = ? WHERE first_batch_id = ? AND state = 'sent'"),
      remove: db.prepare('DELETE FROM anchor_ranges WHERE chain_id = ? AND contract = ? AND first_batch_id = ?'),
      removeAfter: db.prepare('DELETE FROM anchor_ranges WHERE chain_id = ? AND contract = ? AND last_batch_id > ?'),
      prune: db.prepare(
        "DELETE FROM anchor_batches WHERE batch_id <= (SELECT coalesce(max(last_batch_id), 0) FROM anchor_ranges WHERE chain_id = ? AND contract = ? AND state = 'confirmed' AND last_batch_id < ?)",
      ),
    }
  }

  /** Queue a batch root (idempotent: a batch handed over twice is queued once). */
  queue(batchId: bigint, merkleRoot: Uint8Array, nowMs: number): void {
    this.#s.queue.run(batchId, merkleRoot, nowMs)
  }

  /** Up to `limit` queued batches after `afterId`, in id order. */
  queuedAfter(afterId: bigint, limit: number): QueuedBatch[] {
    return this.#s.queued.all(afterId, limit).map((r) => ({ batchId: r.batch_id, merkleRoot: r.merkle_root, queuedMs: Number(r.queued_ms) }))
  }

  /** Queued batches first..last (a gap shows as a shorter array). */
  queuedRange(first: bigint, last: bigint): QueuedBatch[] {
    return this.#s.queuedRange.all(first, last).map((r) => ({ batchId: r.batch_id, merkleRoot: r.merkle_root, queuedMs: Number(r.queued_ms) }))
  }

  countAfter(afterId: bigint): number {
    return Number(this.#s.countAfter.get(afterId)?.n ?? 0n)
  }

  maxQueued(): bigint {
    return this.#s.maxQueued.get()?.id ?? 0n
  }

  /** The attempt whose transaction is in flight, if any (at most one at a time). */
  inflight(): AnchorRange | undefined {
    const r = this.#s.inflight.get(this.#chainId, this.#contract)
    return r ? toRange(r) : undefined
  }

  lastConfirmed(): AnchorRange | undefined {
    const r = this.#s.lastConfirmed.get(this.#chainId, this.#contract)
    return r ? toRange(r) : undefined
  }

  /** When the last anchor attempt was made (ms), undefined before the first. */
  lastSentMs(): number | undefined {
    const ms = this.#s.lastSentMs.get(this.#chainId, this.#contract)?.ms
    return ms === null || ms === undefined ? undefined : Number(ms)
  }

  /** Record an attempt before its transaction is broadcast. */
  recordSent(r: { firstBatchId: bigint; lastBatchId: bigint; anchorRoot: Uint8Array; txHash: Hex; nonce: number; rawTx: Hex; sentMs: number }): void {
    this.#s.insert.run(this.#chainId, this.#contract, r.firstBatchId, r.lastBatchId, r.anchorRoot, r.txHash, r.nonce, r.rawTx, r.sentMs)
  }

  confirm(firstBatchId: bigint, anchorId: bigint, blockNumber: bigint, nowMs: number): void {
    this.#s.confirm.run(anchorId, blockNumber, nowMs, this.#chainId, this.#contract, firstBatchId)
  }

  /** Forget an attempt whose transaction the chain dropped. */
  drop(firstBatchId: bigint): void {
    this.#s.remove.run(this.#chainId, this.#contract, firstBatchId)
  }

  /** Forget every attempt reaching past `lastBatchId` (a reorg removed their anchors). */
  dropAfter(lastBatchId: bigint): void {
    this.#s.removeAfter.run(this.#chainId, this.#contract, lastBatchId)
  }

  /**
   * Forget the roots of confirmed ranges that lie wholly before `firstStoredBatchId` (their
   * readings were pruned, so no proof bundle will ask for them). Returns the rows deleted.
   */
  pruneBefore(firstStoredBatchId: bigint): number {
    return this.#s.prune.run(this.#chainId, this.#contract, firstStoredBatchId).changes
  }

  /**
   * The anchor fields of a proof bundle for batch `batchId`, once a confirmed
   * anchor covers it and every root of its range is still queued.
   */
  proofAnchor(batchId: bigint): ProofAnchorLike | undefined {
    const r = this.#s.covering.get(this.#chainId, this.#contract, batchId, batchId)
    if (!r || r.tx_hash === null || r.anchor_id === null || r.block_number === null) return undefined
    const leaves = this.queuedRange(r.first_batch_id, r.last_batch_id)
    if (BigInt(leaves.length) !== r.last_batch_id - r.first_batch_id + 1n) return undefined
    const p = anchorProof(leaves.map((b) => ({ batchId: b.batchId, merkleRoot: b.merkleRoot })), batchId)
    if (!p) return undefined
    return {
      chainId: this.#chainId,
      contract: this.#contract as Hex,
      txHash: r.tx_hash as Hex,
      blockNumber: r.block_number.toString(),
      anchorId: r.anchor_id.toString(),
      anchorRoot: bytesToHex(p.root),
      batchProof: p.proof.map(bytesToHex),
    }
  }
}
