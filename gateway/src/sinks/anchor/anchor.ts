// The EVM anchor sink (ARCHITECTURE.md "Data flow"; docs/anchor-sink.md;
// contract: docs/anchor-contract.md). It commits, in ONE transaction per
// interval, the anchorRoot over every batch sealed since the previous anchor:
// FieldproofAnchor.anchor(firstBatchId, lastBatchId, anchorRoot).
//
// Shape. The sink runner hands over one batch per send(); an anchor covers a
// range. So send() only queues the batch's root durably (anchor_batches) and
// acknowledges it: the runner's cursor means "queued for anchoring", and
// retention may prune the batch afterwards because the anchor needs only its
// root, which stays in anchor_batches. The anchoring itself is this sink's own
// loop, so a slow chain never holds the runner or ingest:
//
//   tick ─▶ chain id == chain_id? ─no─▶ error wrong-chain
//        ─▶ gatewayInfo(gateway): owner, lastAnchoredBatchId (L)
//        ─▶ an attempt in flight (anchor_ranges state 'sent')?
//             receipt ok, depth ≥ confirmations ─▶ confirmed
//             receipt ok, shallower              ─▶ waiting-confirmations
//             pending in the node's pool          ─▶ anchoring (wait)
//             unknown to the node (reorg, node restarted, crash before broadcast):
//                 L covers the range ─▶ an earlier broadcast landed: confirmed by the contract
//                 nonce still free   ─▶ re-broadcast the same signed bytes
//                 otherwise          ─▶ drop the attempt; the range is sent again
//        ─▶ L below the last confirmed range (a deep reorg) ─▶ forget those ranges
//        ─▶ not registered ─▶ error not-registered
//        ─▶ due (interval_s since the last anchor, or max_batches waiting)?
//             fees ≤ max_fee_gwei? balance ≥ gas · maxFee? ─▶ sign, record, broadcast
//
// The range always starts at L + 1, read from the contract, so no range is ever
// anchored twice (the contract also refuses overlaps: AlreadyAnchored).

import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  decodeEventLog,
  encodeFunctionData,
  HttpRequestError,
  InsufficientFundsError,
  http,
  keccak256,
  parseTransaction,
  TimeoutError,
  TransactionNotFoundError,
  TransactionReceiptNotFoundError,
  type PublicClient,
  type TransactionReceipt,
  type TransactionSerializable,
  type LocalAccount,
} from 'viem'
import type { Logger } from 'pino'
import { fieldproofAnchorAbi } from '../../../../contracts/artifacts/FieldproofAnchor.abi.ts'
import { bytesToHex, hexToBytes } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'
import type { MetricsRegistry } from '../../pipeline/metrics.ts'
import type { Sink, SinkAck, SinkBatch } from '../../pipeline/sink.ts'
import type { Store } from '../../store/store.ts'
import { digestAccount, type DigestSigner } from './account.ts'
import { AnchorState, type AnchorRange } from './state.ts'
import { anchorRoot } from './tree.ts'
import type { AnchorError, AnchorErrorKind, AnchorSinkState } from './types.ts'

const GWEI = 1_000_000_000n

/** Settings of an {@link AnchorSink} (config: [sinks.anchor], docs/configuration.md). */
export interface AnchorSinkOptions {
  readonly rpcUrl: string
  readonly chainId: number
  readonly contract: Hex
  /** The gateway address: sender of every anchor transaction. */
  readonly gateway: Hex
  /** Signs with the gateway key (SinkPluginContext.signDigest). */
  readonly signDigest: DigestSigner
  readonly store: Store
  readonly log: Logger
  readonly metrics?: MetricsRegistry
  /** Milliseconds between anchors. */
  readonly intervalMs: number
  /** Anchor early once this many batches wait; at most this many per anchor. */
  readonly maxBatches: number
  /** Depth (the anchor's block included) at which a range counts as anchored. */
  readonly confirmations: number
  /** Cap of maxFeePerGas (or gasPrice), wei. */
  readonly maxFeeWei: bigint
  /** maxPriorityFeePerGas, wei; undefined: the node's suggestion. */
  readonly priorityFeeWei?: bigint
  /** Receipt/confirmation polling and error retry interval, ms. */
  readonly pollMs: number
  /** Timeout of one JSON-RPC request, ms. */
  readonly rpcTimeoutMs: number
  /** A transaction pending this long is replaced with higher fees (same nonce), ms. */
  readonly replaceAfterMs: number
  /** Wall clock, ms (tests pin it). */
  readonly now?: () => number
}

/** What the sink shows under its entry in /api/v1/status (`extra`). */
export interface AnchorStatus {
  readonly state: AnchorSinkState
  readonly error: AnchorError | null
  readonly chainId: number
  readonly contract: Hex
  readonly account: Hex
  /** Last batch id covered by a confirmed anchor, decimal ("0" before the first). */
  readonly lastAnchoredBatchId: string
  readonly lastAnchorId: string | null
  readonly lastTxHash: Hex | null
  /** Queued batches not yet covered by a confirmed anchor. */
  readonly backlogBatches: number
  /** The range whose transaction is in flight. */
  readonly inflight: { readonly firstBatchId: string; readonly lastBatchId: string; readonly txHash: Hex; readonly nonce: number; readonly confirmations: number } | null
  /** When the next anchor is due, ms since the epoch (null while one is in flight or nothing waits). */
  readonly nextAnchorMs: number | null
}

/** An error the tick classifies and shows in status; never escapes the loop. */
class AnchorFailure extends Error {
  readonly kind: AnchorErrorKind
  readonly details: Record<string, string | number | boolean>
  constructor(kind: AnchorErrorKind, message: string, details: Record<string, string | number | boolean> = {}) {
    super(message)
    this.kind = kind
    this.details = details
  }
}

const STATES: readonly AnchorSinkState[] = ['idle', 'anchoring', 'waiting-confirmations', 'error', 'stopped']
const KINDS: readonly AnchorErrorKind[] = ['insufficient-funds', 'not-registered', 'rpc-unreachable', 'fee-above-cap', 'wrong-chain', 'batch-gap', 'rpc-error']

/** Turns a viem or network error into a status kind. */
export function classifyError(err: unknown, rpcUrl: string): AnchorFailure {
  if (err instanceof AnchorFailure) return err
  if (err instanceof BaseError) {
    const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError)
    if (reverted instanceof ContractFunctionRevertedError && reverted.data?.errorName === 'NotRegistered') {
      return new AnchorFailure('not-registered', 'the gateway is not registered with the anchor contract: run `fieldproof chain register`')
    }
    if (err.walk((e) => e instanceof InsufficientFundsError) instanceof InsufficientFundsError) {
      return new AnchorFailure('insufficient-funds', 'the gateway account cannot pay for the anchor transaction: send it native currency')
    }
    if (err.walk((e) => e instanceof HttpRequestError || e instanceof TimeoutError) != null) {
      return new AnchorFailure('rpc-unreachable', `the RPC at ${rpcUrl} does not answer: ${err.shortMessage}`)
    }
    return new AnchorFailure('rpc-error', err.shortMessage)
  }
  const msg = (err as Error)?.message ?? String(err)
  if (/fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|socket/i.test(msg)) return new AnchorFailure('rpc-unreachable', `the RPC at ${rpcUrl} does not answer: ${msg}`)
  return new AnchorFailure('rpc-error', msg)
}

const isNotFound = (err: unknown): boolean =>
  err instanceof BaseError && err.walk((e) => e instanceof TransactionReceiptNotFoundError || e instanceof TransactionNotFoundError) != null

/** Anchors sealed batches on an EVM chain; see the header comment. */
export class AnchorSink implements Sink {
  readonly id = 'anchor'
  readonly #o: AnchorSinkOptions
  readonly #state: AnchorState
  readonly #client: PublicClient
  readonly #account: LocalAccount
  readonly #now: () => number
  readonly #abort = new AbortController()
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #sinkState: AnchorSinkState = 'idle'
  #error: AnchorError | null = null
  #inflightConfirmations = 0
  #nextAnchorMs: number | null = null
  readonly #txCount
  readonly #reanchors

  constructor(o: AnchorSinkOptions) {
    this.#o = o
    this.#now = o.now ?? Date.now
    this.#state = new AnchorState(o.store, o.chainId, o.contract)
    this.#client = createPublicClient({ transport: http(o.rpcUrl, { timeout: o.rpcTimeoutMs, retryCount: 0 }) }) as PublicClient
    this.#account = digestAccount(o.gateway, o.signDigest)
    const m = o.metrics
    this.#txCount = m?.counter('fieldproof_anchor_transactions_total', 'Anchor transactions broadcast (first sends and re-broadcasts).')
    this.#reanchors = m?.counter('fieldproof_anchor_reanchors_total', 'Anchor attempts dropped by the chain (reorg, node restart) and sent again.')
    if (m) {
      m.gauge('fieldproof_anchor_last_batch_id', 'Last batch id covered by a confirmed anchor.', () => [[{}, Number(this.#state.lastConfirmed()?.lastBatchId ?? 0n)]])
      m.gauge('fieldproof_anchor_backlog_batches', 'Queued batches not yet covered by a confirmed anchor.', () => [[{}, this.#backlog()]])
      m.gauge('fieldproof_anchor_state', 'The anchor sink state (1 for the current one).', () => STATES.map((s) => [{ state: s }, s === this.#sinkState ? 1 : 0]))
      m.gauge('fieldproof_anchor_error', 'The anchor sink error kind (1 for the current one, all 0 without an error).', () => KINDS.map((k) => [{ kind: k }, this.#error?.kind === k ? 1 : 0]))
    }
    // The Sink shape has no start hook: the loop runs from creation until close().
    this.#loop = this.#run()
  }

  /** Queue the batch's root for the next anchor; acknowledged once it is durable. */
  async send(batch: SinkBatch): Promise<SinkAck> {
    this.#state.queue(batch.id, hexToBytes(batch.signed.header.merkleRoot, 32), this.#now())
    if (this.#state.countAfter(this.#state.lastConfirmed()?.lastBatchId ?? 0n) >= this.#o.maxBatches) this.#wake?.()
    return { ok: true }
  }

  /** Stop the loop (an in-flight transaction is followed up after the next start). */
  async close(): Promise<void> {
    this.#abort.abort()
    this.#wake?.()
    await this.#loop
    this.#sinkState = 'stopped'
  }

  /** Wake the loop now (tests, and `send` when max_batches are waiting). */
  poke(): void {
    this.#wake?.()
  }

  status(): Record<string, unknown> {
    return { ...this.anchorStatus() }
  }

  anchorStatus(): AnchorStatus {
    const last = this.#o.store.closed ? undefined : this.#state.lastConfirmed()
    const inflight = this.#o.store.closed ? undefined : this.#state.inflight()
    return {
      state: this.#sinkState,
      error: this.#error,
      chainId: this.#o.chainId,
      contract: this.#o.contract,
      account: this.#o.gateway,
      lastAnchoredBatchId: (last?.lastBatchId ?? 0n).toString(),
      lastAnchorId: last?.anchorId?.toString() ?? null,
      lastTxHash: last?.txHash ?? null,
      backlogBatches: this.#o.store.closed ? 0 : this.#backlog(),
      inflight: inflight
        ? { firstBatchId: inflight.firstBatchId.toString(), lastBatchId: inflight.lastBatchId.toString(), txHash: inflight.txHash, nonce: inflight.nonce, confirmations: this.#inflightConfirmations }
        : null,
      nextAnchorMs: this.#nextAnchorMs,
    }
  }

  /** The anchor fields of a proof bundle for `batchId`, once confirmed (see AnchorState.proofAnchor). */
  proofAnchor(batchId: bigint) {
    return this.#state.proofAnchor(batchId)
  }

  #backlog(): number {
    return this.#state.countAfter(this.#state.lastConfirmed()?.lastBatchId ?? 0n)
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    while (!signal.aborted) {
      let delay: number
      try {
        delay = await this.#tick()
        if (this.#sinkState !== 'error' && this.#error !== null) {
          this.#o.log.info({ kind: this.#error.kind }, 'anchor sink recovered')
          this.#error = null
        }
      } catch (err) {
        if (signal.aborted || this.#o.store.closed) break
        const f = classifyError(err, this.#o.rpcUrl)
        if (this.#error?.kind !== f.kind) this.#o.log.warn({ kind: f.kind, details: f.details, err: f.kind === 'rpc-error' ? err : undefined }, `anchor: ${f.message}`)
        this.#error = { kind: f.kind, message: f.message, ...(Object.keys(f.details).length > 0 ? { details: f.details } : {}), sinceMs: this.#error?.kind === f.kind ? this.#error.sinceMs : this.#now() }
        this.#sinkState = 'error'
        delay = this.#o.pollMs
      }
      await this.#sleep(delay)
    }
    this.#sinkState = 'stopped'
  }

  /** One pass; resolves with the delay before the next one. */
  async #tick(): Promise<number> {
    const o = this.#o
    const chainId = await this.#client.getChainId()
    if (chainId !== o.chainId) {
      throw new AnchorFailure('wrong-chain', `the RPC serves chain ${chainId}, the config says chain_id = ${o.chainId}`, { rpcChainId: chainId, configChainId: o.chainId })
    }
    const [owner, lastOnChain] = await this.#client.readContract({ address: o.contract, abi: fieldproofAnchorAbi, functionName: 'gatewayInfo', args: [o.gateway] })

    const inflight = this.#state.inflight()
    if (inflight) return this.#follow(inflight, lastOnChain)

    const confirmed = this.#state.lastConfirmed()
    if (confirmed && lastOnChain < confirmed.lastBatchId) {
      // Anchors we had confirmed are gone: a reorg deeper than `confirmations`, or another chain behind the same URL.
      o.log.warn({ lastOnChain: lastOnChain.toString(), lastConfirmed: confirmed.lastBatchId.toString() }, 'anchor: the chain no longer holds anchors that were confirmed; anchoring those batches again')
      this.#state.dropAfter(lastOnChain)
      this.#reanchors?.inc()
    }
    if (owner === '0x0000000000000000000000000000000000000000') {
      throw new AnchorFailure('not-registered', `gateway ${o.gateway} is not registered with the anchor contract ${o.contract}: run \`fieldproof chain register\``, { gateway: o.gateway })
    }
    const pending = this.#state.queuedAfter(lastOnChain, o.maxBatches)
    if (pending.length === 0) {
      this.#sinkState = 'idle'
      this.#nextAnchorMs = null
      return o.intervalMs
    }
    const first = pending[0] as (typeof pending)[number]
    if (first.batchId !== lastOnChain + 1n) {
      // Fill the gap from the store (batches sealed before the sink was enabled); refuse if they are gone.
      const missing = this.#fillFromStore(lastOnChain + 1n, first.batchId - 1n)
      if (!missing) {
        throw new AnchorFailure('batch-gap', `batches ${lastOnChain + 1n} … ${first.batchId - 1n} are not anchored and no longer stored, so no later batch can be anchored by this gateway key`, {
          firstMissing: (lastOnChain + 1n).toString(),
          lastMissing: (first.batchId - 1n).toString(),
        })
      }
      return 0
    }
    const lastSent = this.#state.lastSentMs()
    const dueMs = (lastSent ?? first.queuedMs) + o.intervalMs
    if (pending.length < o.maxBatches && this.#now() < dueMs) {
      this.#sinkState = 'idle'
      this.#nextAnchorMs = dueMs
      return dueMs - this.#now()
    }
    // A range is contiguous: stop at the first hole (a batch queued out of order is picked up next time).
    const range = [first]
    for (let i = 1; i < pending.length; i++) {
      const b = pending[i] as (typeof pending)[number]
      if (b.batchId !== first.batchId + BigInt(i)) break
      range.push(b)
    }
    this.#nextAnchorMs = null
    await this.#sendRange(range)
    return o.pollMs
  }

  #fillFromStore(from: bigint, to: bigint): boolean {
    for (let id = from; id <= to; id++) {
      const row = this.#o.store.batch(id)
      if (!row) return false
      this.#state.queue(id, row.merkleRoot, this.#now())
    }
    return true
  }

  /** Fees under the cap, or AnchorFailure('fee-above-cap'). */
  async #fees(): Promise<Pick<TransactionSerializable, 'type' | 'maxFeePerGas' | 'maxPriorityFeePerGas' | 'gasPrice'> & { perGas: bigint }> {
    const o = this.#o
    const block = await this.#client.getBlock({ blockTag: 'latest' })
    const cap = o.maxFeeWei
    const gwei = (w: bigint): string => (Number(w) / 1e9).toString()
    if (block.baseFeePerGas === null || block.baseFeePerGas === undefined) {
      // A chain without EIP-1559: legacy gasPrice, under the same cap.
      const gasPrice = await this.#client.getGasPrice()
      if (gasPrice > cap) throw new AnchorFailure('fee-above-cap', `gas price ${gwei(gasPrice)} gwei is above max_fee_gwei ${gwei(cap)}; retrying later`, { gasPriceGwei: gwei(gasPrice), capGwei: gwei(cap) })
      return { type: 'legacy', gasPrice, perGas: gasPrice }
    }
    const priority = o.priorityFeeWei ?? (await this.#client.estimateMaxPriorityFeePerGas().catch(() => GWEI))
    const base = block.baseFeePerGas
    const floor = base + priority
    if (floor > cap) {
      throw new AnchorFailure('fee-above-cap', `base fee ${gwei(base)} + priority fee ${gwei(priority)} gwei is above max_fee_gwei ${gwei(cap)}; retrying later`, { baseFeeGwei: gwei(base), priorityFeeGwei: gwei(priority), capGwei: gwei(cap) })
    }
    // Room for the base fee to double before the transaction is mined, never above the cap.
    const maxFee = base * 2n + priority < cap ? base * 2n + priority : cap
    return { type: 'eip1559', maxFeePerGas: maxFee, maxPriorityFeePerGas: priority < maxFee ? priority : maxFee, perGas: maxFee }
  }

  async #sendRange(range: readonly { batchId: bigint; merkleRoot: Uint8Array }[]): Promise<void> {
    const o = this.#o
    const firstBatchId = (range[0] as { batchId: bigint }).batchId
    const lastBatchId = (range[range.length - 1] as { batchId: bigint }).batchId
    const root = anchorRoot(range)
    const rootHex = bytesToHex(root)
    const data = encodeFunctionData({ abi: fieldproofAnchorAbi, functionName: 'anchor', args: [firstBatchId, lastBatchId, rootHex] })
    const fees = await this.#fees()
    // eth_estimateGas simulates the call: a revert (NotRegistered, ...) surfaces here, before anything is signed.
    const gas = await this.#client.estimateContractGas({ address: o.contract, abi: fieldproofAnchorAbi, functionName: 'anchor', args: [firstBatchId, lastBatchId, rootHex], account: o.gateway })
    const gasLimit = (gas * 12n) / 10n
    const balance = await this.#client.getBalance({ address: o.gateway })
    const needed = gasLimit * fees.perGas
    if (balance < needed) {
      throw new AnchorFailure('insufficient-funds', `the gateway account ${o.gateway} holds ${balance} wei; one anchor needs up to ${needed} wei (${gasLimit} gas at ${fees.perGas} wei): send it native currency`, {
        balanceWei: balance.toString(),
        neededWei: needed.toString(),
      })
    }
    const nonce = await this.#client.getTransactionCount({ address: o.gateway, blockTag: 'pending' })
    const { perGas: _perGas, ...feeFields } = fees
    const tx = { ...feeFields, chainId: o.chainId, nonce, to: o.contract, data, gas: gasLimit } as TransactionSerializable
    const raw = (await this.#account.signTransaction(tx)) as Hex
    const txHash = keccak256(raw) as Hex
    // Durable before the broadcast: after a crash the same bytes are followed up, never a second range.
    this.#state.recordSent({ firstBatchId, lastBatchId, anchorRoot: root, txHash, nonce, rawTx: raw, sentMs: this.#now() })
    this.#sinkState = 'anchoring'
    this.#inflightConfirmations = 0
    o.log.info({ firstBatchId: firstBatchId.toString(), lastBatchId: lastBatchId.toString(), txHash, nonce }, 'anchor: sending')
    await this.#broadcast(raw)
  }

  /** eth_sendRawTransaction; "already known" is success. */
  async #broadcast(raw: Hex): Promise<void> {
    try {
      await this.#client.sendRawTransaction({ serializedTransaction: raw })
      this.#txCount?.inc()
    } catch (err) {
      const msg = err instanceof BaseError ? err.details + ' ' + err.shortMessage : String(err)
      if (/already known|already imported|known transaction/i.test(msg)) return
      throw err
    }
  }

  /** Follow the attempt in flight; resolves with the delay before the next tick. */
  async #follow(r: AnchorRange, lastOnChain: bigint): Promise<number> {
    const o = this.#o
    let receipt: TransactionReceipt | undefined
    try {
      receipt = await this.#client.getTransactionReceipt({ hash: r.txHash })
    } catch (err) {
      if (!isNotFound(err)) throw err
    }
    if (receipt && receipt.status === 'success') {
      const head = await this.#client.getBlockNumber({ cacheTime: 0 })
      const depth = Number(head - receipt.blockNumber + 1n)
      this.#inflightConfirmations = depth
      if (depth < o.confirmations) {
        this.#sinkState = 'waiting-confirmations'
        return o.pollMs
      }
      const anchorId = this.#anchorIdOf(receipt) ?? (await this.#client.readContract({ address: o.contract, abi: fieldproofAnchorAbi, functionName: 'findAnchor', args: [o.gateway, r.firstBatchId] }))
      this.#state.confirm(r.firstBatchId, anchorId, receipt.blockNumber, this.#now())
      const firstStored = o.store.batchesAfter(0n, 1)[0]?.id ?? o.store.lastBatchId() + 1n
      this.#state.pruneBefore(firstStored)
      this.#sinkState = 'idle'
      o.log.info({ firstBatchId: r.firstBatchId.toString(), lastBatchId: r.lastBatchId.toString(), anchorId: anchorId.toString(), txHash: r.txHash, block: receipt.blockNumber.toString(), confirmations: depth }, 'anchor: confirmed')
      return 0
    }
    if (receipt && receipt.status === 'reverted') {
      // Reverted: most likely AlreadyAnchored after a race; the contract's L says what to do next.
      o.log.warn({ firstBatchId: r.firstBatchId.toString(), txHash: r.txHash, lastOnChain: lastOnChain.toString() }, 'anchor: the transaction reverted; rebuilding the range from the contract')
      return this.#adoptOrDrop(r, lastOnChain)
    }
    // No receipt: pending, or unknown to the node.
    let known = false
    try {
      await this.#client.getTransaction({ hash: r.txHash })
      known = true
    } catch (err) {
      if (!isNotFound(err)) throw err
    }
    if (known) {
      this.#sinkState = 'anchoring'
      this.#inflightConfirmations = 0
      if (r.rawTx !== null && r.rawTx.length > 2 && this.#now() - r.sentMs >= o.replaceAfterMs) await this.#replace(r)
      return o.pollMs
    }
    if (lastOnChain >= r.lastBatchId) return this.#adoptOrDrop(r, lastOnChain)
    const latestNonce = await this.#client.getTransactionCount({ address: o.gateway, blockTag: 'latest' })
    if (r.rawTx !== null && latestNonce <= r.nonce) {
      o.log.warn({ firstBatchId: r.firstBatchId.toString(), lastBatchId: r.lastBatchId.toString(), txHash: r.txHash, nonce: r.nonce }, 'anchor: the node does not know the transaction (reorg, node restart or crash before broadcast); broadcasting it again')
      try {
        await this.#broadcast(r.rawTx)
        this.#reanchors?.inc()
        this.#sinkState = 'anchoring'
        return o.pollMs
      } catch (err) {
        const f = classifyError(err, o.rpcUrl)
        if (f.kind === 'rpc-unreachable') throw err
        o.log.warn({ txHash: r.txHash, reason: f.message }, 'anchor: re-broadcast refused; sending the range again')
      }
    }
    this.#state.drop(r.firstBatchId)
    this.#reanchors?.inc()
    return 0
  }

  /**
   * Replace a transaction pending for longer than replaceAfterMs (fees rose past it): same
   * nonce, same call, fees up by at least 12.5 % (what nodes require of a replacement), under
   * the cap. Recorded only once the node took it; if the old one is mined instead, the
   * contract's lastAnchoredBatchId covers the range and the follow-up adopts that anchor.
   */
  async #replace(r: AnchorRange): Promise<void> {
    const o = this.#o
    const old = parseTransaction(r.rawTx as Hex)
    const fees = await this.#fees()
    const bump = (x: bigint | undefined): bigint => ((x ?? 0n) * 9n) / 8n + 1n
    const max = (a: bigint, b: bigint | undefined): bigint => (b !== undefined && b > a ? b : a)
    let feeFields: Pick<TransactionSerializable, 'maxFeePerGas' | 'maxPriorityFeePerGas' | 'gasPrice'>
    if (old.type === 'eip1559') {
      const maxFee = max(bump(old.maxFeePerGas), fees.maxFeePerGas)
      const priority = max(bump(old.maxPriorityFeePerGas), fees.maxPriorityFeePerGas)
      if (maxFee > o.maxFeeWei) return // no room under the cap: keep waiting for the pending one
      feeFields = { maxFeePerGas: maxFee, maxPriorityFeePerGas: priority < maxFee ? priority : maxFee }
    } else {
      const gasPrice = max(bump(old.gasPrice), fees.gasPrice)
      if (gasPrice > o.maxFeeWei) return
      feeFields = { gasPrice }
    }
    const tx = { type: old.type, chainId: o.chainId, nonce: r.nonce, to: o.contract, data: old.data, gas: old.gas, ...feeFields } as TransactionSerializable
    const raw = (await this.#account.signTransaction(tx)) as Hex
    try {
      await this.#broadcast(raw)
    } catch (err) {
      o.log.warn({ txHash: r.txHash, reason: classifyError(err, o.rpcUrl).message }, 'anchor: the node refused the replacement; still waiting for the pending transaction')
      return
    }
    const txHash = keccak256(raw) as Hex
    this.#state.recordSent({ firstBatchId: r.firstBatchId, lastBatchId: r.lastBatchId, anchorRoot: r.anchorRoot, txHash, nonce: r.nonce, rawTx: raw, sentMs: this.#now() })
    o.log.info({ firstBatchId: r.firstBatchId.toString(), lastBatchId: r.lastBatchId.toString(), replaced: r.txHash, txHash, nonce: r.nonce }, 'anchor: replaced a pending transaction with higher fees')
  }

  /** The contract covers the attempt's range: record the anchor it holds when its root is ours, else forget the attempt. */
  async #adoptOrDrop(r: AnchorRange, lastOnChain: bigint): Promise<number> {
    const o = this.#o
    if (lastOnChain >= r.lastBatchId) {
      const anchorId = await this.#client.readContract({ address: o.contract, abi: fieldproofAnchorAbi, functionName: 'findAnchor', args: [o.gateway, r.firstBatchId] })
      const rec = await this.#client.readContract({ address: o.contract, abi: fieldproofAnchorAbi, functionName: 'anchorOf', args: [o.gateway, anchorId] })
      if (rec.firstBatchId === r.firstBatchId && rec.lastBatchId === r.lastBatchId && rec.anchorRoot.toLowerCase() === bytesToHex(r.anchorRoot)) {
        const logs = await this.#client.getContractEvents({ address: o.contract, abi: fieldproofAnchorAbi, eventName: 'Anchored', args: { gateway: o.gateway, anchorId }, fromBlock: rec.blockNumber, toBlock: rec.blockNumber })
        const txHash = logs[0]?.transactionHash
        if (txHash) {
          this.#state.recordSent({ firstBatchId: r.firstBatchId, lastBatchId: r.lastBatchId, anchorRoot: r.anchorRoot, txHash: txHash as Hex, nonce: r.nonce, rawTx: r.rawTx ?? ('0x' as Hex), sentMs: r.sentMs })
          o.log.info({ firstBatchId: r.firstBatchId.toString(), anchorId: anchorId.toString(), txHash }, 'anchor: an earlier broadcast of this range landed; following it')
          return 0
        }
      }
      o.log.warn({ firstBatchId: r.firstBatchId.toString(), lastBatchId: r.lastBatchId.toString(), onChainFirst: rec.firstBatchId.toString(), onChainLast: rec.lastBatchId.toString() }, 'anchor: the contract holds another anchor for these batches; continuing after it')
    }
    this.#state.drop(r.firstBatchId)
    return 0
  }

  #anchorIdOf(receipt: TransactionReceipt): bigint | undefined {
    for (const log of receipt.logs) {
      if (log.address.toLowerCase() !== this.#o.contract.toLowerCase()) continue
      try {
        const ev = decodeEventLog({ abi: fieldproofAnchorAbi, data: log.data, topics: log.topics })
        if (ev.eventName === 'Anchored') return ev.args.anchorId
      } catch {
        // another event of the contract
      }
    }
    return undefined
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const signal = this.#abort.signal
      if (signal.aborted) return resolve()
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        if (this.#wake === done) this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 2_147_483_647)))
      timer.unref() // the loop alone never keeps a process alive
      signal.addEventListener('abort', done, { once: true })
      this.#wake = done
    })
  }
}
