// The HTTP sink (docs/upstream-protocol.md, "HTTP"): POST each sealed batch
// as a fieldproof.batch document (JSON or CBOR) to a configured URL.
//
// Outcome by status (RFC 9110 §15):
//   2xx                          acknowledged (a duplicate must be answered 2xx too);
//   5xx, 3xx and the 4xx of RETRYABLE_4XX (401, 403, 404, 405, 407, 408, 409,
//   415, 421, 425, 429: endpoint, credentials or order, not the batch)
//                                retried later (Retry-After honoured, RFC 9110 §10.2.3);
//                                409 means "not yet": the receiver needs an earlier batch first;
//   any other 4xx (400, 410, 413, 422, ...)
//                                parked: this batch is refused for good (reason recorded);
//   timeout, refused, reset      retried (thrown: transient).
// Headers: Idempotency-Key "<gateway>:<batch id>" (draft-ietf-httpapi-idempotency-key-header),
// X-Fieldproof-Gateway, X-Fieldproof-Batch-Id, and the configured auth header.

import type { Sink, SinkAck, SinkBatch } from '../../pipeline/sink.ts'
import { classifyHttpStatus, HttpPoster } from '../../pipeline/sink-http.ts'
import { encodeWire, type WireFormat, type WirePayload } from '../../pipeline/upstream-wire.ts'

export interface HttpSinkOptions {
  /** Sink id (cursor, metrics, status). Default "http". */
  readonly id?: string
  readonly url: string
  readonly format: WireFormat
  readonly payload: WirePayload
  /** Header name and value of the credential; omitted when value is empty. */
  readonly auth?: { readonly header: string; readonly value: string }
  /** PEM of the CA for https. */
  readonly ca?: string
}

export class HttpSink implements Sink {
  readonly id: string
  readonly #o: HttpSinkOptions
  readonly #poster: HttpPoster
  #lastStatus: number | null = null

  constructor(o: HttpSinkOptions) {
    this.id = o.id ?? 'http'
    this.#o = o
    this.#poster = new HttpPoster(o.url, o.ca)
  }

  async send(batch: SinkBatch, signal: AbortSignal): Promise<SinkAck> {
    const { body, contentType } = encodeWire(batch, this.#o.payload, this.#o.format)
    const headers: Record<string, string> = {
      'content-type': contentType,
      'idempotency-key': `${batch.gateway}:${batch.id}`,
      'x-fieldproof-gateway': batch.gateway,
      'x-fieldproof-batch-id': batch.id.toString(),
      accept: 'application/json',
    }
    if (this.#o.auth !== undefined && this.#o.auth.value !== '') headers[this.#o.auth.header.toLowerCase()] = this.#o.auth.value
    const res = await this.#poster.post(body, headers, signal)
    this.#lastStatus = res.status
    return classifyHttpStatus(res.status, res.body, res.retryAfter)
  }

  status(): Record<string, unknown> {
    return { url: this.#poster.display, format: this.#o.format, payload: this.#o.payload, lastStatus: this.#lastStatus }
  }

  async close(): Promise<void> {
    this.#poster.close()
  }
}
