// The sink plugin shape (ARCHITECTURE.md, "Data flow"; docs/upstream-protocol.md).
//
// A sink forwards sealed batches upstream (an HTTP sequencer, W3bstream, an
// MQTT bridge, an archive directory, a chain). Its runner (sink-runner.ts)
// owns everything about delivery: the durable cursor, ordering, retries with
// backoff, the circuit breaker, the "stuck" state, metrics and status. A
// sink only turns one batch into one upstream request and says how it went.
//
// Contract of `send`:
//   - resolve { ok: true } once the upstream has durably accepted the batch
//     (or already had it: sends are at least once, the batch id is the
//     idempotency key, so a duplicate must be acknowledged, not refused);
//   - resolve { ok: false, retry: false, reason } when the upstream refuses
//     THIS batch for good (HTTP 4xx other than 408/409/429): the runner parks
//     it (recorded durably in sink_rejections, counted, shown in status) and
//     moves on;
//   - resolve { ok: false, retry: true, reason } — or throw — for anything
//     transient (5xx, timeouts, refused or reset connections, broker down):
//     the runner retries the same batch later. A thrown error is always
//     treated as transient, so a sink never needs to catch its own I/O errors.
//   - honour `signal`: it aborts on the request timeout and at shutdown.
//
// Sinks import core and these pipeline interfaces only (eslint enforces it).

import type { ReadingJson } from '../core/canonical.ts'
import type { ProofBundle } from '../core/proof.ts'
import type { Hex, SignedBatch } from '../core/types.ts'

/** One reading of a batch, as stored: sequence number, canonical bytes, Merkle leaf. */
export interface SinkReading {
  readonly seq: bigint
  /** Canonical encoding (docs/canonical-encoding.md). */
  readonly canonical: Uint8Array
  /** leafHash(seq, canonical): the Merkle leaf. */
  readonly leaf: Uint8Array
}

/**
 * A sealed batch handed to a sink. The signed header is always there; the
 * readings are loaded from the store on first use and cached, so a sink
 * that forwards only the header (an anchor) costs no reading I/O.
 *
 * @example
 * const body = JSON.stringify({ batch: signedBatchToJson(b.signed), leaves: b.leaves().map(bytesToHex) })
 */
export interface SinkBatch {
  /** The batch id (1, 2, 3, ... per gateway): the idempotency key of every send. */
  readonly id: bigint
  /** The gateway that sealed and signed it (EIP-55). */
  readonly gateway: Hex
  /** The signed header, its EIP-712 hash and signature. */
  readonly signed: SignedBatch
  /** Bytes of the canonical readings in the batch. */
  readonly bytes: number
  /** The readings in seq order (lazy, cached). */
  readings(): readonly SinkReading[]
  /** Their Merkle leaves in seq order (lazy, cached). */
  leaves(): readonly Uint8Array[]
  /** Their sequence numbers (lazy, cached). */
  seqs(): readonly bigint[]
  /** Their JSON form (readingToJson of the decoded canonical bytes; lazy, cached). */
  readingJson(): readonly ReadingJson[]
  /** The previous batch's signed header, when still stored (lazy). */
  prev(): SignedBatch | undefined
  /** One proof bundle per reading, in seq order (lazy, cached): what `fieldproof verify` checks. */
  proofs(): readonly ProofBundle[]
}

/**
 * The outcome of one send. `retry: true` means "try this batch again later";
 * `retry: false` parks it (counted as handled, recorded as rejected).
 * `retryAfterMs` passes on an upstream's Retry-After hint.
 */
export type SinkAck =
  | { readonly ok: true }
  | { readonly ok: false; readonly retry: boolean; readonly reason: string; readonly retryAfterMs?: number }

/**
 * An upstream sink. `id` is stable: it names the cursor row, metrics labels,
 * logs and the config section (`[sinks.<id>]`).
 *
 * @example
 * const sink: Sink = { id: 'http', send: async (b, signal) => ((await post(b, signal)).ok ? { ok: true } : { ok: false, retry: true, reason: '503' }) }
 */
export interface Sink {
  readonly id: string
  /** Deliver one batch. Throwing counts as a transient failure (see the header comment). */
  send(batch: SinkBatch, signal: AbortSignal): Promise<SinkAck>
  /** Release connections (MQTT client, sockets) at shutdown. */
  close?(): Promise<void>
  /** Extra status for /api/v1/status (connection state, ...). */
  status?(): Record<string, unknown>
}

/** Delivery settings of one sink's runner (config: docs/configuration.md, [sinks.*]). */
export interface SinkRunnerSettings {
  /** First retry delay; doubles per consecutive failure. */
  readonly backoffBaseMs: number
  /** Cap of the retry delay (also the probe interval once stuck). */
  readonly backoffMaxMs: number
  /** Consecutive failures after which the sink is "stuck" (circuit open: one probe per backoffMaxMs). */
  readonly stuckAfterFailures: number
  /** A send that takes longer is aborted and counted as a transient failure. */
  readonly timeoutMs: number
}

/** What a sink plugin factory returns: the sink and how its runner should deliver. */
export interface SinkInstance {
  readonly sink: Sink
  readonly settings: SinkRunnerSettings
}
