// The reference receiver (`fieldproof receive`; docs/upstream-protocol.md,
// "Reference receiver"): an HTTP server that accepts the HTTP sink's POSTs,
// verifies every batch (verify.ts), checks the chain link to the previous
// batch of the same gateway, and stores accepted batches in its own SQLite
// file (WAL, synchronous=FULL: a 2xx means durable).
//
// Answers (chosen so the HTTP sink behaves right, sinks/http/http.ts):
//   200 accepted, or an exact duplicate of a stored batch (idempotent);
//   409 not yet: a gap (an earlier batch is missing), a broken link
//       (prevBatchHash or firstSeq does not follow the stored previous
//       batch) or a different batch under a stored id: the sink retries and
//       turns "stuck" with this reason until an operator looks;
//   400 malformed document, 413 too large, 415 wrong content type;
//   422 tampered or forged: bad hash or signature, a reading that is not
//       canonical, leaves that do not give the signed Merkle root (parked);
//   401 bad or missing token, 403 gateway not on the allowlist (retried:
//       configuration, not the batch).

import Database from 'better-sqlite3'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { timingSafeEqual } from 'node:crypto'
import { bytesToHex, equalBytes, parseAddress, toChecksumAddress, tryHexToBytes } from '../core/hex.ts'
import type { Hex } from '../core/types.ts'
import { decodeWire, type WireBatch } from '../pipeline/upstream-wire.ts'
import { verifyWireBatch } from './verify.ts'

export interface ReceiverOptions {
  /** SQLite file of accepted batches. */
  readonly dbPath: string
  /** Accept batches only from these gateway addresses (empty or absent: any). */
  readonly allow?: readonly string[]
  /** Require "Authorization: Bearer <token>". */
  readonly token?: string
  /** Largest body accepted (bytes). Default 64 MiB. */
  readonly maxBodyBytes?: number
  /**
   * "genesis" (default): a gateway's first batch here must be batch 1.
   * "any": the first batch received from a gateway starts its chain here
   * (for gateways that pruned their early batches before this receiver existed).
   */
  readonly firstContact?: 'genesis' | 'any'
  readonly now?: () => number
}

/** The receiver's answer to one POST. */
export interface ReceiveResult {
  readonly status: number
  readonly body: {
    readonly ok: boolean
    readonly code: string
    readonly message: string
    readonly gateway?: Hex
    readonly batchId?: string
    readonly duplicate?: boolean
    readonly expectedBatchId?: string
  }
}

/** Per-gateway state, as GET /v1/gateways shows it. */
export interface GatewayState {
  readonly address: Hex
  readonly firstBatchId: string
  readonly lastBatchId: string
  readonly lastHash: Hex
  readonly lastSeq: string
  readonly batches: number
  readonly readings: number
  readonly updatedMs: number
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS gateways (
    address        TEXT PRIMARY KEY,
    first_batch_id INTEGER NOT NULL,
    last_batch_id  INTEGER NOT NULL,
    last_hash      BLOB    NOT NULL,
    last_seq       INTEGER NOT NULL,
    batches        INTEGER NOT NULL,
    readings       INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS batches (
    gateway      TEXT    NOT NULL,
    batch_id     INTEGER NOT NULL,
    hash         BLOB    NOT NULL,
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    merkle_root  BLOB    NOT NULL,
    prev_hash    BLOB    NOT NULL,
    signature    BLOB    NOT NULL,
    sealed_at_ms INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    payload      TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    PRIMARY KEY (gateway, batch_id)
  ) WITHOUT ROWID;
`

interface GatewayRow { address: string; first_batch_id: bigint; last_batch_id: bigint; last_hash: Buffer; last_seq: bigint; batches: bigint; readings: bigint; updated_ms: bigint }

const hexBytes = (h: Hex): Buffer => Buffer.from(h.slice(2), 'hex')

/** Verification and storage, without HTTP (testable on its own). */
export class Receiver {
  readonly db: Database.Database
  readonly #o: ReceiverOptions
  readonly #allow: Set<string> | undefined
  readonly #now: () => number
  readonly #s

  constructor(o: ReceiverOptions) {
    this.#o = o
    this.#now = o.now ?? Date.now
    const allow = (o.allow ?? []).map((a) => {
      const b = parseAddress(a)
      if (b === undefined) throw new Error(`--allow ${a}: not a 20-byte 0x address`)
      return toChecksumAddress(b).toLowerCase()
    })
    this.#allow = allow.length > 0 ? new Set(allow) : undefined
    mkdirSync(dirname(o.dbPath), { recursive: true })
    this.db = new Database(o.dbPath)
    this.db.defaultSafeIntegers(true)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    this.db.pragma('busy_timeout = 5000')
    this.db.exec(SCHEMA)
    this.#s = {
      gateway: this.db.prepare<[string], GatewayRow>('SELECT * FROM gateways WHERE address = ?'),
      gateways: this.db.prepare<[], GatewayRow>('SELECT * FROM gateways ORDER BY address'),
      batch: this.db.prepare<[string, bigint], { hash: Buffer }>('SELECT hash FROM batches WHERE gateway = ? AND batch_id = ?'),
      insertBatch: this.db.prepare(
        `INSERT INTO batches (gateway, batch_id, hash, first_seq, last_seq, count, merkle_root, prev_hash, signature, sealed_at_ms, received_ms, payload, content_type, body)
         VALUES (@gateway, @batchId, @hash, @firstSeq, @lastSeq, @count, @merkleRoot, @prevHash, @signature, @sealedAtMs, @receivedMs, @payload, @contentType, @body)`,
      ),
      upsertGateway: this.db.prepare(
        `INSERT INTO gateways (address, first_batch_id, last_batch_id, last_hash, last_seq, batches, readings, updated_ms)
         VALUES (@address, @batchId, @batchId, @hash, @lastSeq, 1, @count, @now)
         ON CONFLICT (address) DO UPDATE SET last_batch_id = excluded.last_batch_id, last_hash = excluded.last_hash,
           last_seq = excluded.last_seq, batches = batches + 1, readings = readings + excluded.readings, updated_ms = excluded.updated_ms`,
      ),
    }
  }

  /** Check the bearer token (timing-safe). True when no token is configured. */
  authorized(header: string | undefined): boolean {
    const token = this.#o.token
    if (token === undefined || token === '') return true
    const m = /^Bearer (.+)$/i.exec(header ?? '')
    if (!m) return false
    const a = Buffer.from(m[1] as string)
    const b = Buffer.from(token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  /** Verify and store one POSTed body. Never throws for bad input. */
  receive(body: Uint8Array, contentType: string | undefined): ReceiveResult {
    const decoded = decodeWire(body, contentType)
    if (!decoded.ok) {
      const unsupported = decoded.reason.startsWith('unsupported content type')
      return { status: unsupported ? 415 : 400, body: { ok: false, code: unsupported ? 'unsupported-media-type' : 'malformed', message: decoded.reason } }
    }
    return this.accept(decoded.doc, body, contentType ?? 'application/json')
  }

  /** Verify a decoded document, check its chain link, store it. */
  accept(doc: WireBatch, body: Uint8Array, contentType: string): ReceiveResult {
    const h = doc.signed.header
    const batchId = h.batchId.toString()
    const v = verifyWireBatch(doc)
    if (!v.ok) return { status: 422, body: { ok: false, code: `invalid-${v.check}`, message: v.reason, batchId } }
    const gateway = v.gateway
    const key = gateway.toLowerCase()
    if (this.#allow !== undefined && !this.#allow.has(key)) {
      return { status: 403, body: { ok: false, code: 'not-allowed', message: `gateway ${gateway} is not on this receiver's allowlist`, gateway, batchId } }
    }
    const base = { gateway, batchId }
    return this.db.transaction((): ReceiveResult => {
      const g = this.#s.gateway.get(key)
      const hash = hexBytes(doc.signed.hash)
      if (g !== undefined && h.batchId <= g.last_batch_id) {
        const stored = this.#s.batch.get(key, h.batchId)
        if (stored && equalBytes(stored.hash, hash)) return { status: 200, body: { ok: true, code: 'duplicate', message: `batch ${batchId} is already stored`, duplicate: true, ...base } }
        if (stored) return { status: 409, body: { ok: false, code: 'conflict', message: `a different batch ${batchId} of ${gateway} is already stored (${bytesToHex(stored.hash)}); the gateway signed two batches with one id`, ...base } }
        return { status: 422, body: { ok: false, code: 'before-first', message: `batch ${batchId} precedes batch ${g.first_batch_id}, the first this receiver accepted from ${gateway}`, ...base } }
      }
      if (g === undefined) {
        if (h.batchId !== 1n && this.#o.firstContact !== 'any') {
          return { status: 409, body: { ok: false, code: 'gap', message: `first batch from ${gateway} must be batch 1, got ${batchId}`, expectedBatchId: '1', ...base } }
        }
      } else {
        const expected = g.last_batch_id + 1n
        if (h.batchId !== expected) {
          return { status: 409, body: { ok: false, code: 'gap', message: `expected batch ${expected} of ${gateway}, got ${batchId}; send the missing batches first`, expectedBatchId: expected.toString(), ...base } }
        }
        const link = tryHexToBytes(h.prevBatchHash, 32) as Uint8Array
        if (!equalBytes(link, g.last_hash)) {
          return { status: 409, body: { ok: false, code: 'broken-link', message: `batch ${batchId} links to ${h.prevBatchHash}, but batch ${g.last_batch_id} here has hash ${bytesToHex(g.last_hash)}`, expectedBatchId: expected.toString(), ...base } }
        }
        if (h.firstSeq !== g.last_seq + 1n) {
          return { status: 409, body: { ok: false, code: 'broken-link', message: `batch ${batchId} starts at seq ${h.firstSeq}, batch ${g.last_batch_id} ended at ${g.last_seq}`, expectedBatchId: expected.toString(), ...base } }
        }
      }
      const now = this.#now()
      this.#s.insertBatch.run({
        gateway: key,
        batchId: h.batchId,
        hash,
        firstSeq: h.firstSeq,
        lastSeq: h.lastSeq,
        count: h.count,
        merkleRoot: hexBytes(h.merkleRoot),
        prevHash: hexBytes(h.prevBatchHash),
        signature: hexBytes(doc.signed.signature),
        sealedAtMs: h.sealedAtMs,
        receivedMs: now,
        payload: doc.readings !== undefined ? 'canonical' : 'leaves',
        contentType,
        body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      })
      this.#s.upsertGateway.run({ address: key, batchId: h.batchId, hash, lastSeq: h.lastSeq, count: h.count, now })
      return { status: 200, body: { ok: true, code: 'accepted', message: `batch ${batchId} verified and stored`, ...base } }
    }).immediate()
  }

  gateways(): GatewayState[] {
    return this.#s.gateways.all().map((g) => ({
      address: toChecksumAddress(parseAddress(g.address) as Uint8Array),
      firstBatchId: g.first_batch_id.toString(),
      lastBatchId: g.last_batch_id.toString(),
      lastHash: bytesToHex(g.last_hash),
      lastSeq: g.last_seq.toString(),
      batches: Number(g.batches),
      readings: Number(g.readings),
      updatedMs: Number(g.updated_ms),
    }))
  }

  /** Stored batch ids of one gateway, ascending. */
  batchIds(gateway: string): bigint[] {
    return (this.db.prepare('SELECT batch_id FROM batches WHERE gateway = ? ORDER BY batch_id').all(gateway.toLowerCase()) as { batch_id: bigint }[]).map((r) => r.batch_id)
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}

/** Counters of what the server answered (by code), for logs and tests. */
export type ReceiverCounts = Record<string, number>

/** The HTTP server around a Receiver: POST /v1/batches, GET /v1/gateways, GET /healthz. */
export class ReceiverServer {
  readonly receiver: Receiver
  readonly counts: ReceiverCounts = {}
  readonly #server: Server
  readonly #maxBody: number
  readonly #onResult: ((r: ReceiveResult) => void) | undefined

  constructor(receiver: Receiver, o: { maxBodyBytes?: number; onResult?: (r: ReceiveResult) => void } = {}) {
    this.receiver = receiver
    this.#maxBody = o.maxBodyBytes ?? 64 * 1024 * 1024
    this.#onResult = o.onResult
    this.#server = createServer((req, res) => this.#handle(req, res))
    this.#server.keepAliveTimeout = 30_000
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        const a = this.#server.address()
        resolve({ host, port: typeof a === 'object' && a ? a.port : port })
      })
    })
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  #send(res: ServerResponse, r: ReceiveResult): void {
    this.counts[r.body.code] = (this.counts[r.body.code] ?? 0) + 1
    this.#onResult?.(r)
    const text = JSON.stringify(r.body)
    res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
      return
    }
    if (!this.receiver.authorized(req.headers.authorization)) {
      req.resume()
      this.#send(res, { status: 401, body: { ok: false, code: 'unauthorized', message: 'a valid "Authorization: Bearer <token>" is required' } })
      return
    }
    if (req.method === 'GET' && path === '/v1/gateways') {
      const text = JSON.stringify({ gateways: this.receiver.gateways() })
      res.writeHead(200, { 'content-type': 'application/json' }).end(text)
      return
    }
    if (req.method !== 'POST' || path !== '/v1/batches') {
      req.resume()
      this.#send(res, { status: 404, body: { ok: false, code: 'not-found', message: 'POST /v1/batches accepts batches; GET /v1/gateways lists what is stored' } })
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > this.#maxBody) {
        tooLarge = true
        return
      }
      chunks.push(c)
    })
    req.on('error', () => res.destroy())
    req.on('end', () => {
      if (tooLarge) {
        this.#send(res, { status: 413, body: { ok: false, code: 'too-large', message: `body exceeds ${this.#maxBody} bytes` } })
        return
      }
      let r: ReceiveResult
      try {
        r = this.receiver.receive(Buffer.concat(chunks), req.headers['content-type'])
      } catch (e) {
        // Storage trouble: the sender keeps the batch and retries.
        r = { status: 503, body: { ok: false, code: 'unavailable', message: `cannot store: ${(e as Error).message}` } }
      }
      this.#send(res, r)
    })
  }
}
