// The W3bstream sink (docs/upstream-protocol.md, "W3bstream"): each sealed
// batch becomes one device message POSTed to a W3bstream sequencer's
// /message endpoint, signed by the gateway key, so the sequencer recovers
// the gateway's address as the device id (message.ts cites the API).
// `data` is the fieldproof.batch JSON document, so the project's prover can
// check the batch signature and Merkle root itself. W3bstream assigns a new
// message id per POST and does not dedupe: the batch id inside `data` is
// the idempotency key on that side.

import type { Hex } from '../../core/types.ts'
import type { Sink, SinkAck, SinkBatch } from '../../pipeline/sink.ts'
import { classifyHttpStatus, HttpPoster } from '../../pipeline/sink-http.ts'
import { wireDocument, type WirePayload } from '../../pipeline/upstream-wire.ts'
import { buildMessage, messageBody } from './message.ts'

export interface W3bstreamSinkOptions {
  readonly id?: string
  /** The sequencer's POST /message URL. */
  readonly url: string
  readonly projectId: number
  readonly projectVersion: string
  readonly payload: WirePayload
  /** Signs a 32-byte digest with the gateway key (65 bytes r || s || v). */
  readonly signDigest: (digest: Uint8Array) => Hex
  /** Bearer token, when the sequencer wants one. */
  readonly token?: string
}

export class W3bstreamSink implements Sink {
  readonly id: string
  readonly #o: W3bstreamSinkOptions
  readonly #poster: HttpPoster
  #lastMessageId: string | null = null
  #lastStatus: number | null = null

  constructor(o: W3bstreamSinkOptions) {
    this.id = o.id ?? 'w3bstream'
    this.#o = o
    this.#poster = new HttpPoster(o.url)
  }

  /** The message for one batch (exported for tests and the docs vector). */
  message(batch: SinkBatch) {
    const data = JSON.stringify(wireDocument(batch, this.#o.payload, 'json'))
    return buildMessage({ projectID: this.#o.projectId, projectVersion: this.#o.projectVersion, data }, this.#o.signDigest)
  }

  async send(batch: SinkBatch, signal: AbortSignal): Promise<SinkAck> {
    const body = new TextEncoder().encode(messageBody(this.message(batch)))
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
    if (this.#o.token !== undefined && this.#o.token !== '') headers['authorization'] = `Bearer ${this.#o.token}`
    const res = await this.#poster.post(body, headers, signal)
    this.#lastStatus = res.status
    const ack = classifyHttpStatus(res.status, res.body, res.retryAfter)
    if (ack.ok) {
      try {
        const j = JSON.parse(res.body) as { messageID?: unknown }
        if (typeof j.messageID === 'string') this.#lastMessageId = j.messageID.slice(0, 100)
      } catch {
        // a 2xx without the documented body still means accepted
      }
    }
    return ack
  }

  status(): Record<string, unknown> {
    return { url: this.#poster.display, projectId: this.#o.projectId, projectVersion: this.#o.projectVersion, lastStatus: this.#lastStatus, lastMessageId: this.#lastMessageId }
  }

  async close(): Promise<void> {
    this.#poster.close()
  }
}
