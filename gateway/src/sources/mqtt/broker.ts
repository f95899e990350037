// The MQTT source: an embedded aedes broker (docs/mqtt.md) that turns what
// WiFi sensors publish into readings.
//
// Invariant 1 with aedes: aedes writes the QoS 1 PUBACK as soon as
// authorizePublish calls back (lib/handlers/publish.js: authorizePublish,
// then enqueuePublish → write(PubAck)). So the reading is committed INSIDE
// authorizePublish and the callback runs only after pipeline ingest resolved.
//
// What a device sees when its publish is refused:
//   MQTT 5   — PUBACK with a reason code and a reason string (QoS 1); the
//              connection stays up. 0x87 not authorized (topic ACL, bad
//              signature, unknown or mismatched device), 0x99 payload format
//              invalid (undecodable payload, bad metric), 0x83 implementation
//              specific error (replayed counter).
//   MQTT 3.1.1 — a topic ACL violation closes the connection (MQTT-3.3.5-2);
//              a payload refused for what it contains (undecodable, bad
//              signature, replay) is acknowledged and dropped, because 3.1.1
//              cannot say why and a retry could never succeed.
//   Both     — a refusal the device should retry (backpressure, store full,
//              shutting down) closes the connection WITHOUT a PUBACK: the
//              client keeps the message and sends it again after reconnecting.
//   QoS 0    — no acknowledgement exists; the reading is ingested best effort
//              and refusals are counted only.
// Every refusal is counted in fieldproof_mqtt_rejects_total{cause} and logged
// once per cause with rate limiting.

import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Duplex } from 'node:stream'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { Logger } from 'pino'
import { safeDecode, type Decoder } from '../../core/decoder.ts'
import { DEVICE_ID_RE } from '../../core/canonical.ts'
import { isFieldproofError } from '../../core/errors.ts'
import type { Reading } from '../../core/types.ts'
import { decodersFor } from '../../decoders/index.ts'
import type { DeviceRegistry } from '../../pipeline/devices.ts'
import type { Counter, MetricsRegistry } from '../../pipeline/metrics.ts'
import type { Source, SourceContext } from '../../pipeline/source.ts'
import type { Store } from '../../store/store.ts'
import { devicePrefixes, MQTT_FORMATS, mayPublish, maySubscribe, type ClientGrant, type MqttDeviceConfig, type MqttFormat } from './acl.ts'
import { parseSecret, verifyPassword } from './credentials.ts'
import { parseJsonReading } from './json-reading.ts'
import { disconnectV5, installMqtt5Writer, isV5, markV5, REASON, setConnackReason, setPubackReason } from './mqtt5.ts'

/** The [sources.mqtt] table (config/sections/mqtt.ts). */
export interface MqttSourceConfig {
  readonly listen: string
  readonly allow_anonymous: boolean
  readonly max_connections: number
  readonly max_packet_bytes: number
  readonly connect_timeout_ms: number
  readonly auth_failures_per_minute: number
  readonly tls_listen: string
  readonly tls_cert: string
  readonly tls_key: string
  readonly ws_listen: string
}

export interface MqttSourceOptions {
  readonly config: MqttSourceConfig
  readonly store: Store
  readonly devices: DeviceRegistry
  readonly metrics: MetricsRegistry
  readonly rejects: { reject(cause: string, details?: Record<string, unknown>): void }
  readonly log: Logger
}

/** Causes of refusal, stable ids (metrics labels, docs/mqtt.md). */
export type MqttCause =
  | 'anonymous'
  | 'bad-credentials'
  | 'throttled'
  | 'client-id-taken'
  | 'too-many-connections'
  | 'packet-too-large'
  | 'acl-publish'
  | 'acl-subscribe'
  | 'undecodable'
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

const TRANSIENT: ReadonlySet<string> = new Set(['backpressure', 'store-full', 'shutting-down', 'commit-failed'])
const REASON_FOR: Readonly<Record<string, number>> = {
  'acl-publish': REASON.notAuthorized,
  'unknown-device': REASON.notAuthorized,
  'device-mismatch': REASON.notAuthorized,
  'bad-signature': REASON.notAuthorized,
  replay: REASON.implementationSpecific,
  undecodable: REASON.payloadFormatInvalid,
  malformed: REASON.payloadFormatInvalid,
  'invalid-metric': REASON.payloadFormatInvalid,
  'invalid-reading': REASON.payloadFormatInvalid,
}
/** Where refused publishes are re-routed so aedes delivers them to nobody (no client may subscribe under `$`). */
const DROP_TOPIC = '$fieldproof/refused'
const SIGNED_TOPIC_RE = /^fieldproof\/(.+)\/up$/
const CREDENTIAL_CACHE_MS = 5 * 60_000
const DEVICE_CACHE_MS = 5_000
/** Entries in the (format, topic) → decoder cache before it is cleared. */
const DECODER_CACHE_MAX = 10_000

type AedesClient = {
  id: string
  conn: Socket & { client?: unknown; remoteAddress?: string }
  _parser: { parse: (buf: Buffer) => unknown; settings?: Record<string, unknown>; on: (ev: string, f: (p: Record<string, unknown>) => void) => void }
  close: () => void
}
type PublishPacket = { topic: string; payload: Buffer | string; qos: 0 | 1 | 2; retain: boolean; messageId?: number }

interface DeviceEntry {
  readonly kind: string
  readonly cfg: MqttDeviceConfig | undefined
  readonly secret: ReturnType<typeof parseSecret>
  readonly loadedAt: number
}

class Refusal extends Error {
  readonly returnCode: number
  constructor(message: string, returnCode: number) {
    super(message)
    this.returnCode = returnCode
  }
}

function splitListen(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':')
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) }
}

/**
 * Count the MQTT fixed headers in the bytes handed to the client's parser
 * and close the connection when a packet's declared size exceeds `max`,
 * before the parser buffers it (aedes has no packet size limit).
 */
function limitPacketSize(client: AedesClient, max: number, onTooBig: (size: number) => void): void {
  const parser = client._parser
  const parse = parser.parse.bind(parser)
  let stage: 'type' | 'len' | 'body' = 'type'
  let len = 0
  let mul = 1
  let headerBytes = 1
  let left = 0
  let dead = false
  parser.parse = (buf: Buffer) => {
    if (dead) return undefined
    let i = 0
    while (i < buf.length) {
      if (stage === 'type') {
        stage = 'len'
        len = 0
        mul = 1
        headerBytes = 1
        i++
      } else if (stage === 'len') {
        const b = buf[i++] as number
        headerBytes++
        len += (b & 0x7f) * mul
        mul *= 128
        if ((b & 0x80) === 0 || headerBytes > 5) {
          if (len + headerBytes > max || headerBytes > 5) {
            dead = true
            onTooBig(len + headerBytes)
            return undefined
          }
          left = len
          stage = left === 0 ? 'type' : 'body'
        }
      } else {
        const take = Math.min(left, buf.length - i)
        left -= take
        i += take
        if (left === 0) stage = 'type'
      }
    }
    return parse(buf)
  }
}

export class MqttSource implements Source {
  readonly id = 'mqtt'
  readonly #o: MqttSourceOptions
  readonly #grants = new WeakMap<object, ClientGrant & { anonymous: boolean; username: string }>()
  readonly #deviceCache = new Map<string, DeviceEntry>()
  readonly #goodCredentials = new Map<string, number>()
  readonly #failures = new Map<string, { windowStart: number; count: number }>()
  /** The decoder for a (format, topic), or null when the topic is not one of the format's reading topics. */
  readonly #decoderCache = new Map<string, Map<string, Decoder | null>>()
  /** Publishes counted since the last flush into fieldproof_mqtt_messages_total, by QoS, then outcome. */
  readonly #counts = new Map<string, Map<string, number>>()
  #countsFlushScheduled = false
  readonly #m: { rejects: Counter; messages: Counter; connects: Counter }
  #broker: Aedes | undefined
  #ctx: SourceContext | undefined
  readonly #servers: (NetServer | HttpServer)[] = []
  #addresses: Record<string, string> = {}
  #wss: WebSocketServer | undefined

  constructor(o: MqttSourceOptions) {
    this.#o = o
    this.#m = {
      rejects: o.metrics.counter('fieldproof_mqtt_rejects_total', 'MQTT connections and publishes refused, by cause'),
      messages: o.metrics.counter('fieldproof_mqtt_messages_total', 'MQTT publishes received, by QoS and outcome (stored, ignored, refused)'),
      connects: o.metrics.counter('fieldproof_mqtt_connects_total', 'MQTT CONNECTs, by protocol level and result'),
    }
    o.metrics.gauge('fieldproof_mqtt_clients', 'Connected MQTT clients', () => [[{}, this.#broker?.connectedClients ?? 0]])
  }

  /** Bound addresses, by transport (tcp, tls, ws), once started. */
  get addresses(): Readonly<Record<string, string>> {
    return this.#addresses
  }

  status(): Record<string, unknown> {
    return { listening: this.#addresses, clients: this.#broker?.connectedClients ?? 0, anonymous: this.#o.config.allow_anonymous }
  }

  /**
   * Count a publish by QoS and outcome. Counts are added to the counter once
   * per turn of the event loop rather than once per message: building a
   * label key per message cost more than the rest of the accounting.
   */
  #count(qos: string, outcome: string): void {
    let byOutcome = this.#counts.get(qos)
    if (byOutcome === undefined) this.#counts.set(qos, (byOutcome = new Map()))
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1)
    if (this.#countsFlushScheduled) return
    this.#countsFlushScheduled = true
    setImmediate(() => this.#flushCounts())
  }

  #flushCounts(): void {
    this.#countsFlushScheduled = false
    for (const [qos, byOutcome] of this.#counts) {
      for (const [outcome, n] of byOutcome) this.#m.messages.inc({ qos, outcome }, n)
      byOutcome.clear()
    }
  }

  /** The decoder of `format` for a topic (decodersFor routes by topic patterns), cached by format, then topic. */
  #decoderFor(format: string, topic: string): Decoder | undefined {
    let byTopic = this.#decoderCache.get(format)
    if (byTopic === undefined) this.#decoderCache.set(format, (byTopic = new Map()))
    const hit = byTopic.get(topic)
    if (hit !== undefined) return hit ?? undefined
    const d = decodersFor({ transport: 'mqtt', topic }).find((x) => x.id === format)
    if (byTopic.size >= DECODER_CACHE_MAX) byTopic.clear()
    byTopic.set(topic, d ?? null)
    return d
  }

  #reject(cause: MqttCause, details: Record<string, unknown>): void {
    this.#m.rejects.inc({ cause })
    this.#o.rejects.reject(`mqtt:${cause}`, details)
  }

  async start(ctx: SourceContext, signal: AbortSignal): Promise<void> {
    this.#ctx = ctx
    const c = this.#o.config
    installMqtt5Writer()
    const broker = new Aedes({
      connectTimeout: c.connect_timeout_ms,
      maxClientsIdLength: 128,
      heartbeatInterval: 3_600_000,
      drainTimeout: 10_000,
      concurrency: 100,
      queueLimit: 42,
      preConnect: (client, packet, cb) => this.#preConnect(client as unknown as AedesClient, packet as unknown as Record<string, unknown>, cb),
      authenticate: (client, username, password, cb) => {
        this.#authenticate(client as unknown as AedesClient, username, password).then(
          () => cb(null, true),
          (e: unknown) => cb(e as Refusal & { returnCode: 2 | 3 | 4 | 5 }, false),
        )
      },
      authorizePublish: (client, packet, cb) => {
        let r: Error | null | Promise<Error | null>
        try {
          r = this.#authorizePublish(client as unknown as AedesClient | null, packet as unknown as PublishPacket)
        } catch (e) {
          cb(e instanceof Error ? e : new Error(String(e)))
          return
        }
        // Decided without waiting (refusals, ignored topics, QoS 0): answer at once.
        if (!(r instanceof Promise)) cb(r)
        else r.then((err) => cb(err), (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))))
      },
      authorizeSubscribe: (client, sub, cb) => {
        const g = this.#grants.get(client as object)
        if (g && maySubscribe(g, sub.topic)) return cb(null, sub)
        this.#reject('acl-subscribe', { device: g?.deviceId, filter: sub.topic.slice(0, 200) })
        // null: SUBACK 0x80 (3.1.1) / 0x87 (5) for this filter, the connection stays.
        cb(null, null)
      },
    })
    this.#broker = broker
    broker.on('clientError', (client, err) => ctx.log.debug({ client: (client as { id?: string }).id, err: err.message }, 'mqtt client error'))
    broker.on('connectionError', (_client, err) => ctx.log.debug({ err: err.message }, 'mqtt connection error'))
    await broker.listen()

    const handle = (conn: Duplex & { remoteAddress?: string | undefined }) => {
      const client = broker.handle(conn as Socket) as unknown as AedesClient
      limitPacketSize(client, c.max_packet_bytes, (size) => {
        this.#reject('packet-too-large', { size, max: c.max_packet_bytes, remote: conn.remoteAddress })
        disconnectV5(client, REASON.packetTooLarge, `packet of ${size} bytes exceeds ${c.max_packet_bytes}`)
        conn.destroy()
      })
    }
    try {
      const tcp = createNetServer((s) => handle(s))
      tcp.maxConnections = c.max_connections
      this.#addresses['tcp'] = await this.#listen(tcp, c.listen)
      const tls = c.tls_cert && c.tls_key ? { cert: readFileSync(c.tls_cert), key: readFileSync(c.tls_key) } : undefined
      if (c.tls_listen) {
        if (!tls) throw new Error('[sources.mqtt] tls_listen needs tls_cert and tls_key')
        const s = createTlsServer(tls, (sock) => handle(sock))
        s.maxConnections = c.max_connections
        this.#addresses['tls'] = await this.#listen(s, c.tls_listen)
      }
      if (c.ws_listen) {
        // Only WebSocket upgrades are served; a plain request is answered and closed (not left hanging).
        const notUpgrade = (_req: IncomingMessage, res: ServerResponse) => {
          res.writeHead(426, { connection: 'close', upgrade: 'websocket', 'content-type': 'text/plain; charset=utf-8' })
          res.end('MQTT over WebSocket: connect with a WebSocket client (subprotocol "mqtt")\n')
        }
        const http = tls ? createHttpsServer(tls, notUpgrade) : createHttpServer(notUpgrade)
        http.headersTimeout = c.connect_timeout_ms
        http.requestTimeout = c.connect_timeout_ms
        http.maxConnections = c.max_connections
        const wss = new WebSocketServer({ server: http, maxPayload: c.max_packet_bytes + 8, handleProtocols: (ps) => (ps.has('mqtt') ? 'mqtt' : false) })
        this.#wss = wss
        wss.on('connection', (ws, req) => {
          const stream = createWebSocketStream(ws) as Duplex & { remoteAddress?: string | undefined }
          stream.remoteAddress = req.socket.remoteAddress
          stream.on('error', () => stream.destroy())
          handle(stream)
        })
        this.#addresses['ws'] = await this.#listen(http, c.ws_listen)
      }
    } catch (e) {
      await this.#close()
      throw e
    }
    ctx.log.info({ listen: this.#addresses, anonymous: c.allow_anonymous }, 'mqtt broker listening')
    if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
    await this.#close()
  }

  #listen(server: NetServer | HttpServer, at: string): Promise<string> {
    const { host, port } = splitListen(at)
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        this.#servers.push(server)
        const a = server.address()
        resolve(typeof a === 'object' && a ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : at)
      })
    })
  }

  async #close(): Promise<void> {
    this.#wss?.close()
    for (const s of this.#servers) {
      s.close()
      ;(s as HttpServer).closeAllConnections?.()
    }
    const b = this.#broker
    if (b && !b.closed) await new Promise<void>((resolve) => b.close(() => resolve()))
    this.#flushCounts()
  }

  // --- connect ------------------------------------------------------------------

  #preConnect(client: AedesClient, packet: Record<string, unknown>, cb: (err: Error | null, ok: boolean) => void): void {
    const v5 = markV5(client, packet, this.#o.config.max_packet_bytes)
    this.#m.connects.inc({ protocol: v5 ? '5' : String(packet['protocolVersion']), result: 'received' })
    if ((this.#broker?.connectedClients ?? 0) >= this.#o.config.max_connections) {
      this.#reject('too-many-connections', { remote: client.conn.remoteAddress })
      cb(new Error('too many connections'), false)
      client.conn.destroy()
      return
    }
    cb(null, true)
  }

  #throttled(ip: string): boolean {
    const f = this.#failures.get(ip)
    return f !== undefined && Date.now() - f.windowStart < 60_000 && f.count >= this.#o.config.auth_failures_per_minute
  }

  #failed(ip: string): void {
    const now = Date.now()
    const f = this.#failures.get(ip)
    if (!f || now - f.windowStart >= 60_000) this.#failures.set(ip, { windowStart: now, count: 1 })
    else f.count++
    if (this.#failures.size > 10_000) {
      for (const [k, v] of this.#failures) if (now - v.windowStart >= 60_000) this.#failures.delete(k)
    }
  }

  #device(id: string): DeviceEntry | undefined {
    const now = Date.now()
    const cached = this.#deviceCache.get(id)
    if (cached && now - cached.loadedAt < DEVICE_CACHE_MS) return cached
    const row = DEVICE_ID_RE.test(id) ? this.#o.store.device(id) : undefined
    if (!row) {
      this.#deviceCache.delete(id)
      return undefined
    }
    let cfg: MqttDeviceConfig | undefined
    if (row.kind === 'mqtt') {
      try {
        const j = JSON.parse(row.config) as Partial<MqttDeviceConfig>
        const format = (MQTT_FORMATS as readonly string[]).includes(String(j.format)) ? (j.format as MqttFormat) : 'json'
        cfg = { format, prefixes: Array.isArray(j.prefixes) ? j.prefixes.filter((p): p is string => typeof p === 'string') : [] }
      } catch {
        cfg = undefined
      }
    }
    const e: DeviceEntry = { kind: row.kind, cfg, secret: row.kind === 'mqtt' ? parseSecret(row.secret) : undefined, loadedAt: now }
    if (this.#deviceCache.size > 10_000) this.#deviceCache.clear()
    this.#deviceCache.set(id, e)
    return e
  }

  async #authenticate(client: AedesClient, username: string | undefined, password: Buffer | undefined): Promise<void> {
    const ip = client.conn.remoteAddress ?? 'unknown'
    const v5 = isV5(client)
    const refuse = (cause: MqttCause, rc: number, v5Reason: number, msg: string): never => {
      this.#reject(cause, { remote: ip, username: username?.slice(0, 128), clientId: client.id?.slice(0, 128) })
      this.#m.connects.inc({ protocol: v5 ? '5' : '4', result: cause })
      setConnackReason(client, v5Reason)
      throw new Refusal(msg, rc)
    }
    if (this.#throttled(ip)) refuse('throttled', 3, REASON.connectionRateExceeded, 'too many failed logins from this address; wait a minute')
    if (username === undefined || username === '') {
      if (!this.#o.config.allow_anonymous) {
        this.#failed(ip)
        refuse('anonymous', 5, REASON.notAuthorized, 'anonymous clients are not allowed (fieldproof devices add mqtt)')
      }
      this.#grants.set(client, { deviceId: '', prefixes: ['sim'], subscribe: false, anonymous: true, username: '' })
      this.#m.connects.inc({ protocol: v5 ? '5' : '4', result: 'anonymous' })
      return
    }
    const dev = this.#device(username)
    let grant: (ClientGrant & { anonymous: boolean; username: string }) | undefined
    if (dev?.kind === 'mqtt' && dev.cfg && dev.secret && password !== undefined && password.length > 0 && password.length <= 256) {
      const key = createHash('sha256').update(username).update('\0').update(password).digest('hex')
      const at = this.#goodCredentials.get(key)
      let ok = at !== undefined && Date.now() - at < CREDENTIAL_CACHE_MS
      if (!ok) {
        ok = await verifyPassword(password, dev.secret)
        if (ok) {
          if (this.#goodCredentials.size > 10_000) this.#goodCredentials.clear()
          this.#goodCredentials.set(key, Date.now())
        }
      }
      if (ok) grant = { deviceId: username, prefixes: devicePrefixes(username, dev.cfg), subscribe: true, anonymous: false, username }
    } else if (dev?.kind === 'signed' && (password === undefined || password.length === 0)) {
      // A signed device's messages carry their own proof: it may log in by id
      // alone and publish only signed messages to fieldproof/<id>/up.
      grant = { deviceId: username, prefixes: [], publishOnly: [`fieldproof/${username}/up`], subscribe: false, anonymous: false, username }
    }
    if (!grant) {
      this.#failed(ip)
      refuse('bad-credentials', 4, REASON.badUserNameOrPassword, 'bad user name or password')
    }
    const g = grant as NonNullable<typeof grant>
    // A client id in use by ANOTHER device's session would take it over (MQTT-3.1.4-2): refuse.
    const existing = (this.#broker as unknown as { clients?: Record<string, object> } | undefined)?.clients?.[client.id]
    if (existing && existing !== client && this.#grants.get(existing)?.deviceId !== g.deviceId) {
      refuse('client-id-taken', 2, REASON.clientIdNotValid, 'client id in use by another device')
    }
    this.#grants.set(client, g)
    this.#m.connects.inc({ protocol: v5 ? '5' : '4', result: 'accepted' })
  }

  // --- publish ------------------------------------------------------------------

  /**
   * Decide and ingest one PUBLISH. Gives (or resolves with) null to let
   * aedes continue (PUBACK for QoS 1 follows), or an Error that makes aedes
   * close the connection without a PUBACK. Decisions that need no commit
   * are returned synchronously.
   */
  #authorizePublish(client: AedesClient | null, packet: PublishPacket): Error | null | Promise<Error | null> {
    if (client === null) return null // a will message of a client already gone: not a reading
    const ctx = this.#ctx as SourceContext
    const g = this.#grants.get(client)
    const v5 = isV5(client)
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    const qos = String(packet.qos)

    const refuse = (cause: MqttCause, reason: string, deviceId?: string): Error | null => {
      this.#reject(cause, { device: deviceId ?? g?.deviceId, topic: packet.topic.slice(0, 200), reason: reason.slice(0, 200) })
      this.#count(qos, 'refused')
      if (deviceId !== undefined || g?.deviceId) this.#o.devices.touch(deviceId ?? (g?.deviceId as string), { rejected: 1 })
      if (TRANSIENT.has(cause)) return new Error(`${cause}: ${reason}`)
      if (cause === 'acl-publish' && !v5) return new Error(`not authorized to publish to ${packet.topic.slice(0, 200)}`)
      if (v5 && packet.qos > 0 && packet.messageId !== undefined) setPubackReason(client, packet.messageId, REASON_FOR[cause] ?? REASON.unspecified, `${cause}: ${reason}`)
      // Deliver nowhere, retain nothing.
      packet.topic = DROP_TOPIC
      packet.retain = false
      return null
    }
    if (!g) return refuse('acl-publish', 'not authenticated')
    if (!mayPublish(g, packet.topic)) return refuse('acl-publish', `${g.anonymous ? 'anonymous clients' : `device ${g.deviceId}`} may not publish to ${packet.topic.slice(0, 200)}`)

    const signedRun = async (expect: string): Promise<Error | null> => {
      const out = await this.#o.devices.ingestSigned(payload, { source: 'mqtt', expectDeviceId: expect, received: ctx.now(), ingest: (r) => ctx.ingest(r) })
      if (out.ok) {
        this.#count(qos, out.duplicate ? 'duplicate' : 'stored')
        return null
      }
      // The registry already counted the device's rejection; count the MQTT side here.
      this.#m.rejects.inc({ cause: out.cause })
      this.#o.rejects.reject(`mqtt:${out.cause}`, { device: expect, reason: out.reason.slice(0, 200) })
      this.#count(qos, 'refused')
      if (out.transient) return new Error(`${out.cause}: ${out.reason}`)
      if (v5 && packet.qos > 0 && packet.messageId !== undefined) setPubackReason(client, packet.messageId, REASON_FOR[out.cause] ?? REASON.unspecified, `${out.cause}: ${out.reason}`)
      packet.topic = DROP_TOPIC
      packet.retain = false
      return null
    }
    const stored = (): null => {
      this.#count(qos, 'stored')
      if (!g.anonymous) this.#o.devices.touch(g.deviceId, { accepted: 1 })
      return null
    }
    const notStored = (e: unknown): Error | null => {
      if (isFieldproofError(e, 'READING_INVALID')) return refuse('invalid-reading', e.message)
      if (isFieldproofError(e, 'BACKPRESSURE')) return refuse('backpressure', e.message)
      if (isFieldproofError(e, 'STORE_FULL')) return refuse('store-full', e.message)
      if (isFieldproofError(e, 'STORE_CLOSED')) return refuse('shutting-down', e.message)
      ctx.log.error({ err: e }, 'mqtt reading could not be stored')
      return refuse('commit-failed', 'the reading could not be stored')
    }

    const run = (): Error | null | Promise<Error | null> => {
      const signed = SIGNED_TOPIC_RE.exec(packet.topic)
      if (signed) {
        const expect = signed[1] as string
        if (!g.anonymous && expect !== g.deviceId) return refuse('device-mismatch', `device ${g.deviceId} may not publish for ${expect}`)
        return signedRun(expect)
      }
      let reading: Reading | undefined
      if (g.anonymous) {
        // sim/<name>[/...]: the generic JSON reading, device mqtt:<name>.
        const name = packet.topic.split('/')[1] ?? ''
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) return refuse('acl-publish', 'anonymous topics are sim/<name>[/…] with name [A-Za-z0-9._-]{1,64}')
        const p = parseJsonReading(payload)
        if (!p.ok) return refuse('undecodable', p.reason)
        reading = { deviceId: `mqtt:${name}`, source: 'mqtt', received: ctx.now(), ...(p.timeMs !== undefined ? { deviceTimeMs: p.timeMs } : {}), metrics: p.metrics, auth: { kind: 'none' } }
      } else {
        const dev = this.#device(g.deviceId)
        if (!dev?.cfg) return refuse('unknown-device', `device ${g.deviceId} is no longer registered`)
        const auth = { kind: 'mqtt-credentials', username: g.username } as const
        if (dev.cfg.format === 'json') {
          const p = parseJsonReading(payload)
          if (!p.ok) return refuse('undecodable', p.reason)
          reading = { deviceId: g.deviceId, source: 'mqtt', received: ctx.now(), ...(p.timeMs !== undefined ? { deviceTimeMs: p.timeMs } : {}), metrics: p.metrics, raw: new Uint8Array(payload), auth }
        } else {
          const decoder = this.#decoderFor(dev.cfg.format, packet.topic)
          if (!decoder) {
            // Not a reading topic of this firmware (LWT, RESULT, INFO, ...): accepted, not stored.
            this.#count(qos, 'ignored')
            return null
          }
          const r = safeDecode(decoder, { transport: 'mqtt', topic: packet.topic, bytes: payload })
          if (!r.ok) {
            if (r.code === 'not-matched') {
              this.#count(qos, 'ignored')
              return null
            }
            return refuse('undecodable', `${decoder.id}: ${r.code}: ${r.reason}`)
          }
          if (r.metrics.length === 0) {
            this.#count(qos, 'ignored')
            return null
          }
          reading = {
            deviceId: g.deviceId,
            source: 'mqtt',
            received: ctx.now(),
            ...(r.deviceTimeMs !== undefined ? { deviceTimeMs: r.deviceTimeMs } : {}),
            metrics: r.metrics,
            raw: new Uint8Array(payload),
            auth,
          }
        }
      }
      return ctx.ingest([reading]).then(stored, notStored)
    }
    if (packet.qos === 0) {
      // No acknowledgement exists: ingest best effort, let the client go on.
      try {
        const r = run()
        if (r instanceof Promise) r.catch((e: unknown) => ctx.log.error({ err: e }, 'mqtt QoS 0 ingest failed'))
      } catch (e) {
        ctx.log.error({ err: e }, 'mqtt QoS 0 ingest failed')
      }
      return null
    }
    return run()
  }
}
