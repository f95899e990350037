// The device side of identity (ARCHITECTURE.md, "identity": device registry,
// keys, addresses, counters), shared by every source that takes device-signed
// readings (MQTT, HTTP) and by the HTTP per-device tokens:
//
// - signed readings (core/device-protocol.ts): the signature is checked
//   against the device's REGISTERED key (node:crypto, in worker threads), the
//   counter must be above every counter already accepted from the device,
//   and the reading carries the signature into its proof bundle;
// - counters are never accepted twice, across crashes too: a counter is
//   reserved before ingest, becomes the device's high-water mark once the
//   reading is durable, and on start the mark is rebuilt from the device
//   row AND from device_counters, which the store writes in the same
//   transaction as each signed reading (the durable truth; the row is
//   updated lazily);
// - last seen time and accept/reject counts per device (devices table),
//   written in one transaction per second, never one fsync per message.

import { createHash, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import { decodeReading } from '../core/canonical.ts'
import {
  parseDevicePublicKey,
  parseSignedMessage,
  recoverSignedMessageKey,
  signedMessageId,
  type DevicePublicKey,
} from '../core/device-protocol.ts'
import { isFieldproofError } from '../core/errors.ts'
import { bytesToHex } from '../core/hex.ts'
import type { Reading, ReceiveTime } from '../core/types.ts'
import type { Store } from '../store/store.ts'
import type { Counter, MetricsRegistry } from './metrics.ts'
import { SignaturePool } from './signature-pool.ts'

/** Device kinds this registry knows (devices.kind). */
export const SIGNED_DEVICE_KIND = 'signed'
export const HTTP_DEVICE_KIND = 'http'

/** Why a signed message was refused. Transient causes: the device should retry the same message. */
export type SignedCause =
  | 'malformed'
  | 'invalid-metric'
  | 'unknown-device'
  | 'device-mismatch'
  | 'bad-signature'
  | 'replay'
  | 'invalid-reading'
  | 'backpressure'
  | 'store-full'
  | 'shutting-down'
  | 'commit-failed'

export const TRANSIENT_CAUSES: ReadonlySet<SignedCause> = new Set(['backpressure', 'store-full', 'shutting-down', 'commit-failed'])

export type SignedOutcome =
  | { readonly ok: true; readonly deviceId: string; readonly counter: bigint; readonly seq?: bigint; readonly duplicate: boolean }
  | { readonly ok: false; readonly cause: SignedCause; readonly reason: string; readonly transient: boolean; readonly deviceId?: string }

/** devices.config of a signed device. */
export interface SignedDeviceConfig {
  readonly address: string
  /** Uncompressed public key, 0x-hex (learned from the first valid message when registered by address). */
  readonly publicKey?: string
}

export interface DeviceRegistryOptions {
  readonly store: Store
  readonly metrics: MetricsRegistry
  readonly log: Logger
  /** Worker threads for signature checks (0: inline). */
  readonly verifyWorkers: number
  readonly nowMs?: () => number
  /** How long a cached device row is trusted before it is read again (removals, new keys). */
  readonly cacheMs?: number
}

interface SignedEntry {
  readonly key: DevicePublicKey | undefined
  readonly address: string
  readonly name: string | null
  readonly config: Record<string, unknown>
  loadedAt: number
}

interface CounterState {
  durable: bigint
  lastId: string | undefined
  /** Counters reserved and being stored: message id and whether it became durable. */
  readonly inflight: Map<bigint, { id: string; done: Promise<boolean> }>
  /** Serializes the check-and-reserve step per device, in arrival order. */
  chain: Promise<unknown>
}

interface Touch {
  seen: number
  accepted: number
  rejected: number
  state?: string
}

const tokenDigest = (token: string) => createHash('sha256').update(token, 'utf8').digest()

export class DeviceRegistry {
  readonly #o: DeviceRegistryOptions
  readonly #now: () => number
  readonly #pool: SignaturePool
  readonly #signed = new Map<string, SignedEntry>()
  readonly #counters = new Map<string, CounterState>()
  readonly #touches = new Map<string, Touch>()
  #tokens = new Map<string, { digest: Buffer; deviceId: string }[]>()
  #tokensLoadedAt = -Infinity
  #flushTimer: NodeJS.Timeout | undefined
  #closed = false
  readonly #m: { signed: Counter; signedRejects: Counter }

  constructor(o: DeviceRegistryOptions) {
    this.#o = o
    this.#now = o.nowMs ?? Date.now
    this.#pool = new SignaturePool({ workers: o.verifyWorkers, onError: (err) => o.log.error({ err }, 'signature worker failed; replaced') })
    this.#m = {
      signed: o.metrics.counter('fieldproof_signed_readings_total', 'Device-signed readings accepted, by source (duplicates of a stored message included)'),
      signedRejects: o.metrics.counter('fieldproof_signed_rejects_total', 'Device-signed messages refused, by source and cause'),
    }
    this.#flushTimer = setInterval(() => this.flush(), 1000)
    this.#flushTimer.unref()
  }

  // --- activity ---------------------------------------------------------------

  /** Count an accepted or rejected message of a registered device (written within a second). */
  touch(deviceId: string, u: { accepted?: number; rejected?: number; state?: string }): void {
    let t = this.#touches.get(deviceId)
    if (t === undefined) this.#touches.set(deviceId, (t = { seen: 0, accepted: 0, rejected: 0 }))
    t.seen = this.#now()
    t.accepted += u.accepted ?? 0
    t.rejected += u.rejected ?? 0
    if (u.state !== undefined) t.state = u.state
  }

  /** Write pending device activity in one transaction. */
  flush(): void {
    const store = this.#o.store
    if (this.#touches.size === 0 || store.closed) return
    const batch = [...this.#touches]
    this.#touches.clear()
    try {
      store.db.transaction(() => {
        for (const [id, t] of batch) store.touchDevice(id, { seenMs: t.seen, accepted: t.accepted, rejected: t.rejected, ...(t.state !== undefined ? { state: t.state } : {}) })
      })()
    } catch (err) {
      this.#o.log.warn({ err }, 'could not record device activity')
    }
  }

  // --- HTTP per-device tokens ----------------------------------------------------

  /**
   * The device a per-device bearer token belongs to, or undefined. Tokens are
   * stored as SHA-256 digests (they are 256-bit random, so a slow hash adds
   * nothing); the registry is re-read at most once a second on a miss.
   */
  deviceForToken(token: string): string | undefined {
    if (token.length < 16 || token.length > 256) return undefined
    const d = tokenDigest(token)
    const find = () => {
      for (const c of this.#tokens.get(d.subarray(0, 4).toString('hex')) ?? []) if (timingSafeEqual(c.digest, d)) return c.deviceId
      return undefined
    }
    const hit = find()
    if (hit !== undefined && this.#now() - this.#tokensLoadedAt < (this.#o.cacheMs ?? 5000)) return hit
    if (this.#now() - this.#tokensLoadedAt < 1000) return hit
    this.#reloadTokens()
    return find()
  }

  #reloadTokens(): void {
    this.#tokensLoadedAt = this.#now()
    const next = new Map<string, { digest: Buffer; deviceId: string }[]>()
    for (const row of this.#o.store.devices(HTTP_DEVICE_KIND)) {
      try {
        const s = JSON.parse(row.secret ?? '{}') as { tokenSha256?: string }
        if (typeof s.tokenSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(s.tokenSha256)) continue
        const digest = Buffer.from(s.tokenSha256, 'hex')
        const k = digest.subarray(0, 4).toString('hex')
        next.set(k, [...(next.get(k) ?? []), { digest, deviceId: row.id }])
      } catch {
        this.#o.log.warn({ device: row.id }, 'http device has an unreadable secret; ignored')
      }
    }
    this.#tokens = next
  }

  // --- signed readings -------------------------------------------------------------

  #signedEntry(deviceId: string): SignedEntry | undefined {
    const now = this.#now()
    const cached = this.#signed.get(deviceId)
    if (cached && now - cached.loadedAt < (this.#o.cacheMs ?? 5000)) return cached
    const row = this.#o.store.device(deviceId)
    if (!row || row.kind !== SIGNED_DEVICE_KIND) {
      this.#signed.delete(deviceId)
      return undefined
    }
    let cfg: Record<string, unknown>
    try {
      cfg = JSON.parse(row.config) as Record<string, unknown>
    } catch {
      return undefined
    }
    const address = typeof cfg['address'] === 'string' ? cfg['address'].toLowerCase() : ''
    const key = typeof cfg['publicKey'] === 'string' ? parseDevicePublicKey(cfg['publicKey']) : undefined
    if (key && key.address.toLowerCase() !== address) {
      this.#o.log.warn({ device: deviceId }, 'signed device: registered public key does not match its address; refusing its readings')
      return undefined
    }
    const e: SignedEntry = { key, address, name: row.name, config: cfg, loadedAt: now }
    this.#signed.set(deviceId, e)
    return e
  }

  #counterState(deviceId: string): CounterState {
    let c = this.#counters.get(deviceId)
    if (c) return c
    let durable = 0n
    let lastId: string | undefined
    const row = this.#o.store.device(deviceId)
    try {
      const st = JSON.parse(row?.state ?? '{}') as { counter?: string; lastMessage?: string }
      if (typeof st.counter === 'string' && /^\d{1,20}$/.test(st.counter)) durable = BigInt(st.counter)
      if (typeof st.lastMessage === 'string') lastId = st.lastMessage
    } catch {
      // a broken state column is rebuilt from the readings below
    }
    // device_counters is written in the same transaction as each signed
    // reading: a crash between the commit and the lazy device-row update
    // must not let a counter be accepted twice.
    const stored = this.#o.store.deviceCounter(deviceId)
    if (stored && stored.counter > durable) {
      durable = stored.counter
      lastId = undefined
      const row = this.#o.store.reading(stored.seq)
      try {
        const reading = row ? decodeReading(row.canonical) : undefined
        if (reading?.raw && reading.auth.kind === 'device-signature') {
          lastId = signedMessageId({ body: reading.raw, signature: Uint8Array.from(Buffer.from(reading.auth.signature.slice(2), 'hex')) })
        }
      } catch {
        // pruned or unreadable: an identical resend is then refused as a replay, never stored twice
      }
    }
    c = { durable, lastId, inflight: new Map(), chain: Promise.resolve() }
    this.#counters.set(deviceId, c)
    return c
  }

  #reject(source: string, cause: SignedCause, reason: string, deviceId?: string): SignedOutcome {
    this.#m.signedRejects.inc({ source, cause })
    if (deviceId !== undefined && this.#signed.has(deviceId)) this.touch(deviceId, { rejected: 1 })
    return { ok: false, cause, reason, transient: TRANSIENT_CAUSES.has(cause), ...(deviceId !== undefined ? { deviceId } : {}) }
  }

  /**
   * Check and ingest one signed message (either wire form). `expectDeviceId`
   * is the device the transport names (MQTT topic / URL); the body must name
   * the same. Resolves once the reading is durable (or refused); never rejects.
   */
  async ingestSigned(
    payload: Uint8Array,
    o: {
      readonly source: 'mqtt' | 'http'
      readonly expectDeviceId?: string
      readonly received: ReceiveTime
      readonly ingest: (readings: readonly Reading[]) => Promise<bigint[]>
    },
  ): Promise<SignedOutcome> {
    if (this.#closed) return this.#reject(o.source, 'shutting-down', 'the gateway is shutting down; retry shortly')
    const parsed = parseSignedMessage(payload)
    if (!parsed.ok) return this.#reject(o.source, parsed.code, parsed.reason, o.expectDeviceId)
    const { message, body } = parsed
    const deviceId = body.deviceId
    if (o.expectDeviceId !== undefined && o.expectDeviceId !== deviceId) {
      return this.#reject(o.source, 'device-mismatch', `the body is signed for device "${deviceId.slice(0, 128)}", sent as "${o.expectDeviceId.slice(0, 128)}"`, o.expectDeviceId)
    }
    const entry = this.#signedEntry(deviceId)
    if (!entry) return this.#reject(o.source, 'unknown-device', `no signed device "${deviceId.slice(0, 128)}" is registered (fieldproof devices add signed)`)
    const state = this.#counterState(deviceId)
    const id = signedMessageId(message)
    // Cheap checks first: an exact copy of the last stored message (a QoS 1
    // resend whose PUBACK was lost) is acknowledged again, not stored twice;
    // a counter at or below the mark is refused before any curve arithmetic.
    if (body.counter === state.durable && id === state.lastId) {
      this.#m.signed.inc({ source: o.source })
      this.touch(deviceId, { accepted: 1 })
      return { ok: true, deviceId, counter: body.counter, duplicate: true }
    }
    if (body.counter <= state.durable) return this.#reject(o.source, 'replay', `counter ${body.counter} is not above ${state.durable}, the highest accepted from ${deviceId}`, deviceId)

    let key = entry.key
    let valid: boolean
    if (key) valid = await this.#pool.verify(message.body, message.signature, key.publicKey)
    else {
      // Registered by address: learn the key from the first message that recovers to it
      // (version 2: with either recovery id, as the proof bundle's check does).
      const rec = recoverSignedMessageKey(message, entry.address)
      valid = rec !== undefined && rec.address.toLowerCase() === entry.address
      if (valid && rec) {
        key = rec
        this.#learnKey(deviceId, entry, rec)
      }
    }
    if (!valid || !key) return this.#reject(o.source, 'bad-signature', `the signature does not verify against the key registered for ${deviceId} (${entry.address})`, deviceId)

    // Check-and-reserve in arrival order per device.
    const reserve = state.chain.then(() => {
      let high = state.durable
      for (const c of state.inflight.keys()) if (c > high) high = c
      if (body.counter <= high) return undefined
      let settle: (ok: boolean) => void = () => undefined
      state.inflight.set(body.counter, { id, done: new Promise<boolean>((r) => (settle = r)) })
      return settle
    })
    state.chain = reserve
    const settle = await reserve
    if (!settle) {
      // The same message while its first copy is still being stored: its outcome decides.
      const first = state.inflight.get(body.counter)
      if (first && first.id === id) {
        if (await first.done) {
          this.#m.signed.inc({ source: o.source })
          this.touch(deviceId, { accepted: 1 })
          return { ok: true, deviceId, counter: body.counter, duplicate: true }
        }
        return this.#reject(o.source, 'backpressure', 'the first copy of this message could not be stored; retry', deviceId)
      }
      if (body.counter === state.durable && id === state.lastId) {
        this.#m.signed.inc({ source: o.source })
        this.touch(deviceId, { accepted: 1 })
        return { ok: true, deviceId, counter: body.counter, duplicate: true }
      }
      return this.#reject(o.source, 'replay', `counter ${body.counter} is not above the highest accepted or in flight for ${deviceId}`, deviceId)
    }
    const reading: Reading = {
      deviceId,
      source: o.source,
      received: o.received,
      ...(body.timeMs !== undefined ? { deviceTimeMs: body.timeMs } : {}),
      metrics: body.metrics,
      raw: message.body,
      auth: { kind: 'device-signature', address: key.address, counter: body.counter, signature: bytesToHex(message.signature) },
    }
    try {
      const [seq] = await o.ingest([reading])
      state.inflight.delete(body.counter)
      settle(true)
      if (body.counter > state.durable) {
        state.durable = body.counter
        state.lastId = id
      }
      this.#m.signed.inc({ source: o.source })
      this.touch(deviceId, { accepted: 1, state: JSON.stringify({ counter: state.durable.toString(), lastMessage: state.lastId }) })
      return { ok: true, deviceId, counter: body.counter, ...(seq !== undefined ? { seq } : {}), duplicate: false }
    } catch (e) {
      state.inflight.delete(body.counter)
      settle(false)
      if (isFieldproofError(e, 'READING_INVALID')) return this.#reject(o.source, 'invalid-reading', e.message, deviceId)
      if (isFieldproofError(e, 'BACKPRESSURE')) return this.#reject(o.source, 'backpressure', e.message, deviceId)
      if (isFieldproofError(e, 'STORE_FULL')) return this.#reject(o.source, 'store-full', e.message, deviceId)
      if (isFieldproofError(e, 'STORE_CLOSED')) return this.#reject(o.source, 'shutting-down', e.message, deviceId)
      this.#o.log.error({ err: e, device: deviceId }, 'signed reading could not be stored')
      return this.#reject(o.source, 'commit-failed', 'the reading could not be stored; nothing was acknowledged, retry', deviceId)
    }
  }

  #learnKey(deviceId: string, entry: SignedEntry, key: DevicePublicKey): void {
    const config = { ...entry.config, publicKey: bytesToHex(key.publicKey) }
    this.#signed.set(deviceId, { ...entry, key, config })
    try {
      this.#o.store.upsertDevice({ id: deviceId, kind: SIGNED_DEVICE_KIND, name: entry.name, config: JSON.stringify(config) })
    } catch (err) {
      this.#o.log.warn({ err, device: deviceId }, 'could not store the learned public key')
    }
  }

  /** Stop the workers and write pending activity. The store stays open (its owner closes it). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#flushTimer) clearInterval(this.#flushTimer)
    this.flush()
    await this.#pool.close()
  }
}
