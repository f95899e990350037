// The HTTP API (docs/http-api.md), on node:http: no framework, because the
// gateway needs exact control over what it costs a Pi Zero 2 W (one small
// router, streaming body limits, no plugin graph) and over when a response
// is sent (only after the commit, invariant 1).
//
//   GET  /api/v1/status            gateway, clock, counts, store, sinks
//   GET  /api/v1/readings          ?device=&source=&since=&after=&limit=&order=
//   GET  /api/v1/readings/:seq     one reading
//   POST /api/v1/readings          ingest (bearer token) — 201 once durable
//   GET  /api/v1/batches           ?after=&limit=
//   GET  /api/v1/batches/:id       one signed batch header
//   GET  /api/v1/proofs/:seq       the proof bundle of a reading
//   GET  /api/v1/ble/nearby        BLE sensors heard recently (bearer token; docs/ble.md)
//   GET  /api/v1/firstboot-report  the first-boot report, in full once (bearer token; docs/first-boot.md)
//   GET  /metrics                  Prometheus text
//   GET  /                         status page

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import { decodeReading, readingToJson } from '../core/canonical.ts'
import { isFieldproofError } from '../core/errors.ts'
import { batchHeaderToJson } from '../core/batch.ts'
import type { ProofAnchor } from '../core/proof.ts'
import type { MetricsRegistry, Counter } from '../pipeline/metrics.ts'
import type { Pipeline } from '../pipeline/pipeline.ts'
import { proofForSeq, signedBatchFromRow } from '../pipeline/proofs.ts'
import type { Clock } from '../pipeline/clock.ts'
import { parseIngestBody, type IngestCause } from '../sources/http/ingest.ts'
import type { RateLimitedLog } from '../log/logger.ts'
import type { ReadingRow } from '../store/store.ts'
import type { BleNearbyView } from '../sources/ble/nearby.ts'
import { STATUS_PAGE } from './status-page.ts'
import { handleSignedIngest, isSignedMediaType } from './device-ingest.ts'
import type { DeviceRegistry } from '../pipeline/devices.ts'
import type { FirstbootReportFile } from '../service/firstboot-report.ts'

export interface ApiOptions {
  readonly pipeline: Pipeline
  readonly clock: Clock
  readonly metrics: MetricsRegistry
  readonly log: Logger
  readonly rejects: RateLimitedLog
  /** Bearer token for mutating endpoints. */
  readonly token: string
  readonly maxBodyBytes: number
  readonly maxReadingsPerRequest: number
  readonly httpSourceEnabled: boolean
  /** Builds the /api/v1/status document. */
  readonly status: () => Record<string, unknown>
  /** The BLE source's discovery view; undefined when the BLE source is off. */
  readonly bleNearby?: () => BleNearbyView | undefined
  /** Signed devices and per-device tokens (pipeline/devices.ts); without it those routes answer 404 / 401. */
  readonly devices?: DeviceRegistry
  /** The first-boot report, shown once to the first authenticated request (docs/first-boot.md). */
  readonly firstbootReport?: FirstbootReportFile
  /** Where a batch was anchored on chain, when the anchor sink is on: added to proof bundles (docs/proof-bundle.md). */
  readonly proofAnchor?: (batchId: bigint) => ProofAnchor | undefined
}

class HttpError extends Error {
  readonly status: number
  readonly code: string
  readonly headers: Record<string, string>
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.code = code
    this.headers = headers
  }
}

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : json(body)
  res.writeHead(status, {
    'content-type': typeof body === 'string' && !headers['content-type'] ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  })
  res.end(text)
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      reject(new HttpError(413, 'too-large', `body of ${declared} bytes exceeds the limit of ${limit} bytes`))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    req.on('data', (c: Buffer) => {
      if (done) return
      size += c.length
      if (size > limit) {
        done = true
        reject(new HttpError(413, 'too-large', `body exceeds the limit of ${limit} bytes`))
        return
      }
      chunks.push(c)
    })
    req.on('end', () => {
      if (!done) {
        done = true
        resolve(Buffer.concat(chunks, size))
      }
    })
    req.on('error', (e) => {
      if (!done) {
        done = true
        reject(e)
      }
    })
  })
}

function parseUint(v: string | null, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === null || v === '') return undefined
  if (!/^\d{1,16}$/.test(v) || Number(v) > max) throw new HttpError(400, 'bad-query', `${name} must be a non-negative integer${max < Number.MAX_SAFE_INTEGER ? ` ≤ ${max}` : ''}`)
  return Number(v)
}

function parseBig(v: string | null, name: string): bigint | undefined {
  if (v === null || v === '') return undefined
  if (!/^\d{1,19}$/.test(v)) throw new HttpError(400, 'bad-query', `${name} must be a non-negative integer`)
  return BigInt(v)
}

function parseSince(v: string | null): number | undefined {
  if (v === null || v === '') return undefined
  if (/^\d{1,16}$/.test(v)) return Number(v)
  const ms = Date.parse(v)
  if (Number.isNaN(ms)) throw new HttpError(400, 'bad-query', 'since must be epoch milliseconds or an RFC 3339 timestamp')
  return ms
}

function readingOut(r: ReadingRow) {
  return { seq: r.seq.toString(), reading: readingToJson(decodeReading(r.canonical)), leaf: '0x' + Buffer.from(r.leaf).toString('hex') }
}

export class ApiServer {
  readonly server: Server
  readonly #o: ApiOptions
  readonly #tokenDigest: Buffer
  readonly #requests: Counter
  readonly #ingestRejects: Counter
  readonly #started = Date.now()

  constructor(o: ApiOptions) {
    this.#o = o
    this.#tokenDigest = createHash('sha256').update(o.token).digest()
    this.#requests = o.metrics.counter('fieldproof_http_requests_total', 'HTTP API requests by route and status')
    this.#ingestRejects = o.metrics.counter('fieldproof_ingest_rejects_total', 'Input rejected at the edge, by source and cause')
    this.server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
      this.#handle(req, res).catch((e: unknown) => {
        o.log.error({ err: e }, 'unhandled API error')
        if (!res.headersSent) send(res, 500, { error: { code: 'internal', message: 'internal error' } })
        else res.destroy()
      })
    })
    this.server.on('clientError', (err, socket) => {
      this.#reject('http', 'bad-request', { message: err.message })
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      else socket.destroy()
    })
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e)
      this.server.once('error', onError)
      this.server.listen(port, host, () => {
        this.server.off('error', onError)
        const a = this.server.address()
        resolve(typeof a === 'object' && a ? { host: a.address, port: a.port } : { host, port })
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeIdleConnections()
      setTimeout(() => this.server.closeAllConnections(), 2000).unref()
    })
  }

  #reject(source: string, cause: string, details: Record<string, unknown>): void {
    this.#ingestRejects.inc({ source, cause })
    this.#o.rejects.reject(`${source}:${cause}`, details)
  }

  #authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false
    const digest = createHash('sha256').update(h.slice(7).trim()).digest()
    return timingSafeEqual(digest, this.#tokenDigest)
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway')
    const path = url.pathname.replace(/\/+$/, '') || '/'
    let route = 'other'
    let status = 200
    try {
      const m = req.method ?? 'GET'
      let r: RegExpExecArray | null
      if (m === 'POST' && this.#o.devices && ((r = /^\/api\/v1\/devices\/([^/]{1,400})\/readings$/.exec(path)) || (path === '/api/v1/readings' && isSignedMediaType(req)))) {
        route = 'signed-ingest'
        let id: string | undefined
        try {
          id = r ? decodeURIComponent(r[1] as string) : undefined
        } catch {
          throw new HttpError(400, 'bad-request', 'the device id in the path is not valid percent-encoding')
        }
        const pipeline = this.#o.pipeline
        status = await handleSignedIngest(req, res, id, {
          devices: this.#o.devices,
          maxBodyBytes: this.#o.maxBodyBytes,
          received: () => this.#o.clock.now(),
          ingest: (rs) => pipeline.ingest(rs),
          reject: (cause, details) => this.#reject('http', cause, details),
        })
        return
      }
      if (path === '/api/v1/readings' && m === 'POST') {
        route = 'ingest'
        status = await this.#ingest(req, res)
        return
      }
      if (m !== 'GET' && m !== 'HEAD') throw new HttpError(405, 'method-not-allowed', `${m} is not allowed on ${path}`, { allow: 'GET' })
      if (path === '/api/v1/status') {
        route = 'status'
        send(res, 200, { ...this.#o.status(), uptimeS: Math.round((Date.now() - this.#started) / 1000), firstboot: this.#o.firstbootReport?.state() ?? 'none' })
      } else if (path === '/api/v1/firstboot-report') {
        route = 'firstboot-report'
        // Holds generated passwords until shown: token only, never cached.
        if (!this.#authorized(req)) throw new HttpError(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer realm="fieldproof"' })
        const taken = this.#o.firstbootReport?.take()
        if (!taken) throw new HttpError(404, 'not-found', 'no first-boot report on this gateway')
        send(res, 200, taken, { 'cache-control': 'no-store' })
      } else if (path === '/api/v1/readings') {
        route = 'readings'
        const q = url.searchParams
        const limit = parseUint(q.get('limit'), 'limit', 1000) ?? 100
        const order = q.get('order') === 'desc' ? 'desc' : 'asc'
        const page = this.#o.pipeline.store.readingsPage({
          ...(q.get('device') ? { deviceId: q.get('device') as string } : {}),
          ...(q.get('source') ? { source: q.get('source') as string } : {}),
          ...(parseSince(q.get('since')) !== undefined ? { sinceMs: parseSince(q.get('since')) as number } : {}),
          ...(parseBig(q.get('after'), 'after') !== undefined ? { afterSeq: parseBig(q.get('after'), 'after') as bigint } : {}),
          limit,
          order,
        })
        send(res, 200, { readings: page.rows.map(readingOut), next: page.next === undefined ? null : page.next.toString() })
      } else if ((r = /^\/api\/v1\/readings\/(\d{1,19})$/.exec(path))) {
        route = 'reading'
        const row = this.#o.pipeline.store.reading(BigInt(r[1] as string))
        if (!row) throw new HttpError(404, 'not-found', `no reading with seq ${r[1]}`)
        send(res, 200, readingOut(row))
      } else if (path === '/api/v1/batches') {
        route = 'batches'
        const q = url.searchParams
        const limit = parseUint(q.get('limit'), 'limit', 1000) ?? 100
        const after = parseBig(q.get('after'), 'after')
        const store = this.#o.pipeline.store
        const rows = after === undefined ? store.batchesBefore(store.lastBatchId() + 1n, limit).reverse() : store.batchesAfter(after, limit)
        send(res, 200, { batches: rows.map((b) => batchOut(b)), next: after !== undefined && rows.length === limit ? rows[rows.length - 1]?.id.toString() : null })
      } else if ((r = /^\/api\/v1\/batches\/(\d{1,19})$/.exec(path))) {
        route = 'batch'
        const b = this.#o.pipeline.store.batch(BigInt(r[1] as string))
        if (!b) throw new HttpError(404, 'not-found', `no batch ${r[1]}`)
        send(res, 200, batchOut(b))
      } else if ((r = /^\/api\/v1\/proofs\/(\d{1,19})$/.exec(path))) {
        route = 'proof'
        const p = proofForSeq(this.#o.pipeline.store, BigInt(r[1] as string))
        if (!p.ok) throw new HttpError(p.status, p.status === 409 ? 'not-sealed' : 'not-found', p.reason, p.status === 409 ? { 'retry-after': '5' } : {})
        const anchor = this.#o.proofAnchor?.(BigInt(p.bundle.batch.header.batchId))
        send(res, 200, anchor ? { ...p.bundle, anchor } : p.bundle)
      } else if (path === '/api/v1/ble/nearby') {
        route = 'ble-nearby'
        // MAC addresses of sensors around the gateway, the neighbours' included: token only.
        if (!this.#authorized(req)) throw new HttpError(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer realm="fieldproof"' })
        const view = this.#o.bleNearby?.()
        if (!view) throw new HttpError(404, 'not-enabled', 'the BLE source is not enabled ([sources.ble] enabled = true)')
        send(res, 200, view)
      } else if (path === '/metrics') {
        route = 'metrics'
        send(res, 200, this.#o.metrics.render(), { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
      } else if (path === '/') {
        route = 'page'
        send(res, 200, STATUS_PAGE, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'" })
      } else {
        throw new HttpError(404, 'not-found', `no route ${path}`)
      }
    } catch (e) {
      if (e instanceof HttpError) {
        status = e.status
        send(res, e.status, { error: { code: e.code, message: e.message } }, e.headers)
      } else throw e
    } finally {
      this.#requests.inc({ route, status: String(res.statusCode || status) })
    }
  }

  /** POST /api/v1/readings: 201 with sequence numbers, only once durable. */
  async #ingest(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const fail = (status: number, cause: string, message: string, headers: Record<string, string> = {}) => {
      this.#reject('http', cause, { message: message.slice(0, 200), remote: req.socket.remoteAddress })
      // A body we did not read must not be parsed as the next request.
      send(res, status, { error: { code: cause, message } }, status === 413 ? { connection: 'close', ...headers } : headers)
      if (status === 413) req.resume()
      return status
    }
    if (!this.#o.httpSourceEnabled) return fail(403, 'disabled', 'the HTTP source is disabled in the configuration ([sources.http] enabled = false)')
    // The gateway token, or a device's own token (fieldproof devices add http) for that device's readings only.
    let tokenId = 'api'
    if (!this.#authorized(req)) {
      const h = req.headers.authorization
      const device = typeof h === 'string' && h.startsWith('Bearer ') ? this.#o.devices?.deviceForToken(h.slice(7).trim()) : undefined
      if (device !== undefined) tokenId = device
    }
    if (tokenId === 'api' && !this.#authorized(req)) {
      return fail(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>; see docs/http-api.md)', { 'www-authenticate': 'Bearer realm="fieldproof"' })
    }
    const ct = String(req.headers['content-type'] ?? 'application/json')
    if (!/^application\/(json|[a-z.+-]*\+json)\b/i.test(ct)) return fail(415, 'unsupported-media-type', `content-type must be application/json, got ${ct.slice(0, 60)}`)
    let body: Buffer
    try {
      body = await readBody(req, this.#o.maxBodyBytes)
    } catch (e) {
      if (e instanceof HttpError) return fail(e.status, e.code, e.message)
      return fail(400, 'bad-request', `could not read the body: ${(e as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch (e) {
      return fail(400, 'invalid-json' satisfies IngestCause, `body is not valid JSON: ${(e as Error).message.slice(0, 120)}`)
    }
    const result = parseIngestBody(parsed, { received: this.#o.clock.now(), tokenId, maxReadings: this.#o.maxReadingsPerRequest })
    if (!result.ok) {
      if (tokenId !== 'api') this.#o.devices?.touch(tokenId, { rejected: 1 })
      return fail(result.cause === 'too-many' ? 413 : 400, result.cause, result.reason)
    }
    if (tokenId !== 'api' && result.readings.some((x) => x.deviceId !== tokenId)) {
      this.#o.devices?.touch(tokenId, { rejected: 1 })
      return fail(403, 'device-mismatch', `a device token may only submit readings of its own device "${tokenId}"`)
    }
    try {
      const seqs = await this.#o.pipeline.ingest(result.readings)
      if (tokenId !== 'api') this.#o.devices?.touch(tokenId, { accepted: seqs.length })
      send(res, 201, { accepted: seqs.length, seqs: seqs.map(String) })
      return 201
    } catch (e) {
      if (isFieldproofError(e, 'READING_INVALID')) return fail(400, 'invalid-reading', e.message)
      if (isFieldproofError(e, 'BACKPRESSURE')) return fail(503, 'backpressure', e.message, { 'retry-after': '1' })
      if (isFieldproofError(e, 'STORE_FULL')) return fail(507, 'store-full', e.message)
      if (isFieldproofError(e, 'STORE_CLOSED')) return fail(503, 'shutting-down', e.message, { 'retry-after': '5' })
      this.#o.log.error({ err: e }, 'ingest failed')
      return fail(500, 'commit-failed', 'the readings could not be stored; nothing was acknowledged, retry')
    }
  }
}

function batchOut(b: Parameters<typeof signedBatchFromRow>[0]) {
  const s = signedBatchFromRow(b)
  return { header: batchHeaderToJson(s.header), hash: s.hash, signature: s.signature }
}
