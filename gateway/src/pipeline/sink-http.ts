// HTTP helpers shared by sinks that POST (http, w3bstream): a keep-alive
// poster that honours the runner's AbortSignal, and the mapping from an
// HTTP status to a SinkAck (RFC 9110 §15; docs/upstream-protocol.md).
//
//   2xx                         acknowledged;
//   5xx, 3xx, RETRYABLE_4XX     retried later (Retry-After honoured, RFC 9110 §10.2.3);
//   any other 4xx               parked: this batch is refused for good.

import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http'
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https'
import type { SinkAck } from './sink.ts'

/**
 * 4xx statuses that say something about the endpoint, the credentials or the
 * order of delivery, not about this batch: retried, never parked, so a typo
 * in the URL or an expired token cannot park (and later let retention prune)
 * every batch. 409 is the receiver asking for an earlier batch first.
 */
export const RETRYABLE_4XX: ReadonlySet<number> = new Set([401, 403, 404, 405, 407, 408, 409, 415, 421, 425, 429])

const MAX_REASON_BODY = 300

/** Parse Retry-After: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); ms from now. */
export function parseRetryAfter(v: string | undefined, now = Date.now()): number | undefined {
  if (v === undefined || v.trim() === '') return undefined
  if (/^\d{1,9}$/.test(v.trim())) return Number(v.trim()) * 1000
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.max(0, t - now)
}

/** Classify an upstream's answer. */
export function classifyHttpStatus(status: number, body: string, retryAfter?: string): SinkAck {
  if (status >= 200 && status < 300) return { ok: true }
  const snippet = body.replace(/\s+/g, ' ').trim().slice(0, MAX_REASON_BODY)
  const reason = `HTTP ${status}${snippet ? `: ${snippet}` : ''}`
  const after = parseRetryAfter(retryAfter)
  if (status >= 400 && status < 500 && !RETRYABLE_4XX.has(status)) return { ok: false, retry: false, reason }
  return { ok: false, retry: true, reason, ...(after !== undefined ? { retryAfterMs: after } : {}) }
}

/** One upstream URL with a small keep-alive pool. */
export class HttpPoster {
  readonly url: URL
  readonly #agent: HttpAgent | HttpsAgent

  constructor(url: string, ca?: string) {
    this.url = new URL(url)
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error(`${url}: only http:// and https:// URLs are supported`)
    this.#agent =
      this.url.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, maxSockets: 2, ...(ca !== undefined ? { ca } : {}) })
        : new HttpAgent({ keepAlive: true, maxSockets: 2 })
  }

  /** The URL without credentials or query, for status and logs. */
  get display(): string {
    return `${this.url.protocol}//${this.url.host}${this.url.pathname}`
  }

  /**
   * POST `body`; resolves with the status, the first 4 KiB of the answer and
   * Retry-After. Rejects on connection errors and when `signal` aborts.
   */
  post(body: Uint8Array, headers: Record<string, string>, signal: AbortSignal): Promise<{ status: number; body: string; retryAfter?: string }> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Error('aborted'))
      const req = (this.url.protocol === 'https:' ? httpsRequest : httpRequest)(this.url, {
        method: 'POST',
        headers: { ...headers, 'content-length': String(body.length) },
        agent: this.#agent,
      })
      const onAbort = () => req.destroy(new Error(signal.reason instanceof Error ? signal.reason.message : 'aborted'))
      signal.addEventListener('abort', onAbort, { once: true })
      const done = () => signal.removeEventListener('abort', onAbort)
      req.on('error', (e) => {
        done()
        reject(e)
      })
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (c: Buffer) => {
          // Keep the start of the answer for the reason; drain the rest.
          if (size < 4096) chunks.push(c)
          size += c.length
        })
        res.on('error', (e) => {
          done()
          reject(e)
        })
        res.on('end', () => {
          done()
          const ra = res.headers['retry-after']
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 4096), ...(typeof ra === 'string' ? { retryAfter: ra } : {}) })
        })
      })
      req.end(body)
    })
  }

  close(): void {
    this.#agent.destroy()
  }
}
