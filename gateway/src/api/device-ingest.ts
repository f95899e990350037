// Device-signed readings over HTTP (docs/device-protocol.md, "HTTP"):
//
//   POST /api/v1/devices/:id/readings   body: the JSON form (application/vnd.fieldproof.signed+json
//                                       or application/json) or the binary form
//                                       (application/vnd.fieldproof.signed, application/octet-stream)
//   POST /api/v1/readings               with content-type application/vnd.fieldproof.signed+json
//
// No bearer token: the device's signature, checked against its registered
// key, is its authentication. 201 {seq, counter} once durable (200 with
// "duplicate": true for an exact copy of the last stored message); refusals
// are {error: {code, message}}: 400 malformed / invalid-metric / invalid-reading,
// 401 bad-signature / unknown-device, 403 device-mismatch, 409 replay,
// 503 backpressure / shutting-down (Retry-After), 507 store-full.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { SIGNED_BINARY_MEDIA_TYPE, SIGNED_JSON_MEDIA_TYPE } from '../core/device-protocol.ts'
import type { ReceiveTime, Reading } from '../core/types.ts'
import type { DeviceRegistry, SignedCause } from '../pipeline/devices.ts'

const STATUS: Readonly<Record<SignedCause, number>> = {
  malformed: 400,
  'invalid-metric': 400,
  'invalid-reading': 400,
  'bad-signature': 401,
  'unknown-device': 401,
  'device-mismatch': 403,
  replay: 409,
  backpressure: 503,
  'shutting-down': 503,
  'commit-failed': 500,
  'store-full': 507,
}

export interface SignedIngestContext {
  readonly devices: DeviceRegistry
  readonly maxBodyBytes: number
  readonly received: () => ReceiveTime
  readonly ingest: (readings: readonly Reading[]) => Promise<bigint[]>
  /** Count and log a refusal (fieldproof_ingest_rejects_total{source="http"}). */
  readonly reject: (cause: string, details: Record<string, unknown>) => void
}

/** True when a POST /api/v1/readings body is a signed message (by its media type). */
export function isSignedMediaType(req: IncomingMessage): boolean {
  const ct = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  return ct === SIGNED_JSON_MEDIA_TYPE || ct === SIGNED_BINARY_MEDIA_TYPE
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): number {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers })
  res.end(text)
  return status
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      resolve('too-large')
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
        resolve('too-large')
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

/** Handle one signed POST. `deviceId` is the URL's device (undefined on /api/v1/readings). Returns the status sent. */
export async function handleSignedIngest(req: IncomingMessage, res: ServerResponse, deviceId: string | undefined, c: SignedIngestContext): Promise<number> {
  const fail = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
    c.reject(code, { message: message.slice(0, 200), remote: req.socket.remoteAddress, device: deviceId })
    return reply(res, status, { error: { code, message } }, headers)
  }
  const ct = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
  if (![SIGNED_JSON_MEDIA_TYPE, SIGNED_BINARY_MEDIA_TYPE, 'application/json', 'application/octet-stream'].includes(ct)) {
    return fail(415, 'unsupported-media-type', `content-type must be ${SIGNED_JSON_MEDIA_TYPE} or ${SIGNED_BINARY_MEDIA_TYPE}, got ${ct.slice(0, 60)}`)
  }
  let body: Buffer | 'too-large'
  try {
    body = await readBody(req, Math.min(c.maxBodyBytes, 65_536))
  } catch (e) {
    return fail(400, 'bad-request', `could not read the body: ${(e as Error).message}`)
  }
  if (body === 'too-large') {
    req.resume()
    return fail(413, 'too-large', 'a signed message is at most 64 KiB', { connection: 'close' })
  }
  const out = await c.devices.ingestSigned(new Uint8Array(body), {
    source: 'http',
    ...(deviceId !== undefined ? { expectDeviceId: deviceId } : {}),
    received: c.received(),
    ingest: c.ingest,
  })
  if (out.ok) {
    return reply(res, out.duplicate ? 200 : 201, {
      device: out.deviceId,
      counter: out.counter.toString(),
      ...(out.seq !== undefined ? { seq: out.seq.toString() } : {}),
      ...(out.duplicate ? { duplicate: true } : {}),
    })
  }
  const status = STATUS[out.cause]
  return fail(status, out.cause, out.reason, status === 503 ? { 'retry-after': out.cause === 'shutting-down' ? '5' : '1' } : {})
}
