// The LoRaWAN server side of the gateway (docs/lorawan.md):
//
//   packet forwarders ──Semtech UDP v2──▶ this server ──▶ readings ──▶ pipeline
//        ▲   PUSH_ACK / PULL_ACK / PULL_RESP (join-accepts, ACKs)   │
//        └───────────────────────────────────────────────────────────┘
//                         └──byte for byte──▶ upstream network servers (relay.ts)
//   Basics Station gateways ──WebSocket──▶ station/server.ts ──▶ the same uplink
//        handler (dedup, sessions, witness); their downlinks go back as dnmsg
//        through the GatewayLink of the reception they answer.
//
// Protocol: Lora-net/packet_forwarder PROTOCOL.TXT (semtech-udp.ts): PUSH_DATA
// is acknowledged at once (§3.3: acks are for link quality, not delivery), and
// PULL_DATA gives the forwarder's downlink address (§5.2). Frames: LoRaWAN L2
// 1.0.4 (core/lorawan/phy.ts), regional parameters RP002-1.0.3 (region.ts).
//
// Two trust modes, named so in config, readings, status and docs:
//   "session"  devices registered here, whose keys this gateway holds: joins
//              (OTAA, join.ts) and ABP sessions, MIC checked, 32-bit FCnt
//              reconstructed, replays refused, payload decrypted and decoded;
//              reading auth { kind: 'lorawan-mic', devAddr, fcnt }.
//   "witness"  frames of other devices: the PHYPayload as heard, never
//              decrypted, auth { kind: 'none' }, device id lorawan-witness:<devaddr>.
// The same PHYPayload heard by several forwarders within dedup_window_ms is
// handled once, with every reception in the reading's radio metadata (radio.ts).
// A confirmed uplink is acknowledged (downlink with ACK) only after its
// reading is durable (invariant 1). Bad input of any kind is counted and
// rejected with a reason, never thrown (invariant 6).

import { randomInt } from 'node:crypto'
import dgram from 'node:dgram'
import { isIPv6 } from 'node:net'
import type { Logger } from 'pino'
import { bytesToHex, type AesKey } from '../../core/lorawan/crypto.ts'
import { buildDataFrame, decryptFrmPayload, encodeCfListFrequencies, parsePhyPayload, verifyDataFrameMic, type DataFrame, type JoinRequestFrame } from '../../core/lorawan/phy.ts'
import type { ClockState, Reading, ReceiveTime } from '../../core/types.ts'
import type { Counter } from '../../pipeline/metrics.ts'
import type { MetricsRegistry } from '../../pipeline/metrics.ts'
import type { Source, SourceContext } from '../../pipeline/source.ts'
import type { Store } from '../../store/store.ts'
import { CodecRunner, decodePayload } from './codecs.ts'
import { nextDownlinkFCnt, reconstructFCnt } from './fcnt.ts'
import { handleJoinRequest } from './join.ts'
import { frameKeys, matchesPrefix, netIdPrefix, parsePrefix, radioMeta, sortReceptions, type DevAddrPrefix, type Reception } from './radio.ts'
import { cfListChMask, EU868_CFLIST_FREQS_HZ, JOIN_ACCEPT_DELAY1_S, maxPayload, REGIONS, rx1, rx2, txpkFor, type Region, type RegionId } from './region.ts'
import { parseUpstream, Relay, type Upstream } from './relay.ts'
import { buildPullAck, buildPullResp, buildPushAck, parseDatagram, type Rxpk, type Stat, type TxAckError } from './semtech-udp.ts'
import { devAddrHex, LORAWAN_DEVICE_KIND, SessionRegistry, sessionFromRow, StateWriter, type Session } from './sessions.ts'
import { StationServer, type StationSectionConfig } from './station/server.ts'

/** The subset of config [sources.lorawan] this source reads (config/sections/lorawan.ts). */
export interface LorawanSectionConfig {
  readonly enabled: boolean
  readonly listen: string
  readonly region: RegionId
  readonly net_id: string
  readonly gateway_euis: readonly string[]
  readonly max_forwarders: number
  readonly dedup_window_ms: number
  readonly rx1_delay_s: number
  readonly downlink_lead_ms: number
  readonly gps_clock: boolean
  readonly codec_timeout_ms: number
  readonly codec_memory_mb: number
  readonly witness: { readonly enabled: boolean; readonly dev_addr_prefixes: readonly string[]; readonly net_ids: readonly string[] }
  readonly relay: { readonly upstreams: readonly string[]; readonly max_forwarders: number }
  /** US915/AU915 sub-band (1..8) of join-accept CFLists and Basics Station router_config; default 2. */
  readonly sub_band?: number
  /** [sources.lorawan.station]: the Basics Station LNS (absent = off). */
  readonly station?: StationSectionConfig
}

/** A class A downlink for a transport that schedules it itself (Basics Station dnmsg). */
export interface LinkDownlink {
  readonly kind: 'join-accept' | 'ack'
  readonly deviceId: string
  /** The device's DevEUI when known (OTAA). */
  readonly devEui: string | undefined
  readonly payload: Uint8Array
  /** Seconds from the end of the uplink to RX1; RX2 is one second later. */
  readonly rx1DelayS: number
  /** RX1 data rate and frequency; absent when RX1 can no longer be reached. */
  readonly rx1?: { readonly dr: number; readonly freqHz: number }
  /** RX2 data rate and frequency; absent when RX2 can no longer be reached either. */
  readonly rx2?: { readonly dr: number; readonly freqHz: number }
}

/** How a reception heard through a transport other than Semtech UDP is answered. */
export interface GatewayLink {
  readonly transport: string
  send(d: LinkDownlink): { readonly ok: true } | { readonly ok: false; readonly reason: string }
}

/** A reception, with the link that answers it when it did not come over Semtech UDP. */
interface LinkedReception extends Reception {
  readonly link?: GatewayLink
}

/** Counters of GPS receive times that agree (or not) with the wall clock. */
interface GpsTally {
  gpsAgree: number
  gpsDisagree: number
}

/** Something with a clock state that GPS time may raise (pipeline/clock.ts Clock). */
export interface ClockLike {
  readonly state: ClockState
  setState(state: ClockState): void
}

/** Rejections logged once per cause with rate limiting (log/logger.ts RateLimitedLog). */
export interface RejectLog {
  reject(cause: string, details?: object): void
}

export interface LorawanSourceOptions {
  readonly config: LorawanSectionConfig
  readonly store: Store
  readonly metrics: MetricsRegistry
  readonly log?: Logger
  readonly clock?: ClockLike
  readonly rejects?: RejectLog
  /** How often the device registry is re-read for added/removed devices (ms). Default 5000. */
  readonly registryRefreshMs?: number
  /** How long a handled frame's hash is remembered to tell late copies from replays (ms). Default 10000. */
  readonly recentMs?: number
}

interface Forwarder {
  readonly eui: string
  pushAddr: { address: string; port: number } | undefined
  pullAddr: { address: string; port: number } | undefined
  version: number
  firstSeenMs: number
  lastSeenMs: number
  lastPullMs: number | undefined
  pushData: number
  pullData: number
  rxpk: number
  txAcks: Record<string, number>
  downlinks: number
  stat: Stat | undefined
  statAtMs: number | undefined
  gpsAgree: number
  gpsDisagree: number
}

interface DedupEntry {
  readonly key: string
  readonly data: Uint8Array
  readonly receptions: LinkedReception[]
  readonly received: ReceiveTime
  timer: NodeJS.Timeout | undefined
}

type DownlinkKind = 'join-accept' | 'ack'

interface DownlinkRequest {
  readonly kind: DownlinkKind
  readonly deviceId: string
  readonly devEui?: string | undefined
  readonly payload: Uint8Array
  readonly receptions: readonly LinkedReception[]
  /** Seconds from the uplink to RX1 (RX2 one second later). */
  readonly rx1DelayS: number
}

interface PendingDownlink {
  readonly req: DownlinkRequest
  readonly eui: string
  readonly window: 'rx1' | 'rx2'
  readonly expires: number
}

/** Most receptions kept per frame. */
const MAX_RECEPTIONS = 16
/** How long a handled frame's hash is remembered to tell late copies from replays. */
const RECENT_MS = 10_000
/** GPS receive time must agree with the wall clock this closely to vouch for it. */
const GPS_AGREE_MS = 1000
/** Forwarders idle this long may be evicted when the table is full. */
const FORWARDER_IDLE_MS = 60_000

function parseNetId(s: string): number {
  return parseInt(s.replace(/^0x/i, ''), 16) >>> 0
}

/** Parse the listen address "HOST:PORT" / "[v6]:PORT". */
function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s)
  if (!m) throw new Error(`lorawan listen "${s}" is not HOST:PORT`)
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
}

export class LorawanSource implements Source {
  readonly id = 'lorawan'
  readonly #o: LorawanSourceOptions
  readonly #c: LorawanSectionConfig
  readonly #region: Region
  readonly #netId: number
  readonly #allow: ReadonlySet<string> | undefined
  readonly #witnessPrefixes: DevAddrPrefix[]
  readonly #registry = new SessionRegistry()
  readonly #state: StateWriter
  readonly #forwarders = new Map<string, Forwarder>()
  readonly #dedup = new Map<string, DedupEntry>()
  readonly #recent = new Map<string, number>()
  readonly #pendingDownlinks = new Map<string, PendingDownlink>()
  readonly #inflight = new Set<Promise<void>>()
  readonly #runner: CodecRunner
  readonly #relay: Relay
  #socket: dgram.Socket | undefined
  #station: StationServer | undefined
  #ctx: SourceContext | undefined
  #address: { host: string; port: number } | undefined
  #readyResolve!: (a: { host: string; port: number }) => void
  #readyReject!: (e: unknown) => void
  /** Resolves with the bound address once the UDP socket listens. */
  readonly ready: Promise<{ host: string; port: number }>
  readonly #m: {
    datagrams: Counter
    rejected: Counter
    uplinks: Counter
    joins: Counter
    downlinks: Counter
    txAcks: Counter
    receptions: Counter
    duplicates: Counter
    codec: Counter
    unmapped: Counter
    relay: Counter
  }
  readonly counts = { datagrams: 0, rejected: 0, sessionUplinks: 0, witnessUplinks: 0, joins: 0, downlinks: 0, acksWithheld: 0 }

  constructor(o: LorawanSourceOptions) {
    this.#o = o
    this.#c = o.config
    this.#region = REGIONS[o.config.region]
    this.#netId = parseNetId(o.config.net_id)
    this.#allow = o.config.gateway_euis.length > 0 ? new Set(o.config.gateway_euis.map((e) => e.toLowerCase())) : undefined
    this.#witnessPrefixes = [
      ...o.config.witness.dev_addr_prefixes.map(parsePrefix).filter((p): p is DevAddrPrefix => p !== undefined),
      ...o.config.witness.net_ids.map((n) => netIdPrefix(parseNetId(n))).filter((p): p is DevAddrPrefix => p !== undefined),
    ]
    this.#state = new StateWriter(o.store)
    this.#runner = new CodecRunner({ timeoutMs: o.config.codec_timeout_ms, memoryMb: o.config.codec_memory_mb })
    const upstreams = o.config.relay.upstreams.map(parseUpstream).filter((u): u is Upstream => u !== undefined)
    const m = o.metrics
    this.#m = {
      datagrams: m.counter('fieldproof_lorawan_datagrams_total', 'Semtech UDP datagrams received, by packet type'),
      rejected: m.counter('fieldproof_lorawan_rejected_total', 'LoRaWAN datagrams, frames and joins refused, by reason'),
      uplinks: m.counter('fieldproof_lorawan_uplinks_total', 'LoRaWAN uplinks stored as readings, by trust mode (session, witness)'),
      joins: m.counter('fieldproof_lorawan_joins_total', 'OTAA join-requests, by result'),
      downlinks: m.counter('fieldproof_lorawan_downlinks_total', 'Downlinks sent to forwarders (PULL_RESP), by kind and receive window'),
      txAcks: m.counter('fieldproof_lorawan_tx_ack_total', 'TX_ACKs from forwarders, by error'),
      receptions: m.counter('fieldproof_lorawan_receptions_total', 'rxpk received, by forwarder EUI'),
      duplicates: m.counter('fieldproof_lorawan_duplicates_total', 'Copies of a frame heard by more than one forwarder: merged (within the dedup window) or late'),
      codec: m.counter('fieldproof_lorawan_codec_total', 'Payload codec runs, by codec and result'),
      unmapped: m.counter('fieldproof_lorawan_codec_unmapped_fields_total', 'Decoded fields that could not become metrics (kept as data_* meta)'),
      relay: m.counter('fieldproof_lorawan_relay_total', 'Relay to upstream network servers, by upstream and event'),
    }
    m.gauge('fieldproof_lorawan_forwarders', 'Packet forwarders known', () => [[{}, this.#forwarders.size]])
    m.gauge('fieldproof_lorawan_sessions', 'Devices with keys on this gateway ("session" trust mode)', () => [[{}, this.#registry.size]])
    m.gauge('fieldproof_lorawan_forwarder_last_seen_seconds', 'Seconds since a forwarder was last heard', () =>
      [...this.#forwarders.values()].map((f) => [{ gateway_eui: f.eui }, (Date.now() - f.lastSeenMs) / 1000] as [Record<string, string>, number]),
    )
    m.gauge('fieldproof_lorawan_device_fcnt_up', 'Last accepted uplink frame counter per session device', () =>
      [...this.#registry.byId.values()].filter((s) => s.fcntUp !== null).map((s) => [{ device: s.id }, s.fcntUp as number] as [Record<string, string>, number]),
    )
    this.#relay = new Relay({
      upstreams,
      maxForwarders: o.config.relay.max_forwarders,
      sendToForwarder: (eui, datagram) => this.#sendToForwarder(eui, datagram),
      onEvent: (upstream, event) => this.#m.relay.inc({ upstream, event }),
    })
    this.ready = new Promise((resolve, reject) => {
      this.#readyResolve = resolve
      this.#readyReject = reject
    })
    this.ready.catch(() => undefined)
    this.#loadRegistry()
  }

  // ------------------------------------------------------------------ lifecycle

  async start(ctx: SourceContext, signal: AbortSignal): Promise<void> {
    this.#ctx = ctx
    const { host, port } = parseListen(this.#c.listen)
    const socket = dgram.createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' })
    this.#socket = socket
    socket.on('message', (msg, rinfo) => {
      try {
        this.#onDatagram(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo)
      } catch (e) {
        // Never reached by design (every parser is total); kept so one bad datagram can never stop the socket.
        this.#reject('internal', { err: e instanceof Error ? e.message.slice(0, 200) : String(e).slice(0, 200) })
      }
    })
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject)
        socket.bind(port, host, () => {
          socket.off('error', reject)
          resolve()
        })
      })
    } catch (e) {
      this.#readyReject(e)
      await this.#runner.close()
      this.#relay.close()
      throw e
    }
    socket.on('error', (err) => this.#o.log?.error({ err }, 'lorawan socket error'))
    if (this.#c.station?.enabled) {
      const station = new StationServer({
        config: this.#c.station,
        region: this.#region.id,
        subBand: this.#c.sub_band ?? 2,
        allow: this.#allow,
        metrics: this.#o.metrics,
        ...(this.#o.log ? { log: this.#o.log } : {}),
        reject: (reason, details) => this.#reject(reason, details),
        // No GPS tally: a station's GPS time comes from this server's own timesync answers.
        uplink: (u) => this.#onReception(u.gatewayEui, undefined, u.rxpk, u.monoNs, u.link),
        txAck: () => this.#m.txAcks.inc({ error: 'NONE' }),
      })
      try {
        await station.start()
      } catch (e) {
        this.#readyReject(e)
        socket.close()
        await this.#runner.close()
        this.#relay.close()
        throw e
      }
      this.#station = station
    }
    const a = socket.address()
    this.#address = { host: a.address, port: a.port }
    this.#o.log?.info({ listen: `${a.address}:${a.port}`, region: this.#region.id, devices: this.#registry.size, witness: this.#c.witness.enabled, upstreams: this.#c.relay.upstreams }, 'lorawan listening')
    this.#readyResolve(this.#address)
    const refresh = setInterval(() => this.#refreshRegistry(), this.#o.registryRefreshMs ?? 5000)
    refresh.unref()
    const housekeeping = setInterval(() => this.#housekeeping(), 1000)
    housekeeping.unref()
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve()
      else signal.addEventListener('abort', () => resolve(), { once: true })
    })
    clearInterval(refresh)
    clearInterval(housekeeping)
    await this.#shutdown()
  }

  async #shutdown(): Promise<void> {
    try {
      this.#socket?.close()
    } catch {
      // already closed
    }
    await this.#station?.close()
    // Frames waiting out the dedup window are handled now, not dropped.
    for (const e of [...this.#dedup.values()]) {
      if (e.timer) clearTimeout(e.timer)
      this.#handle(e)
    }
    const deadline = new Promise((r) => setTimeout(r, 3000).unref())
    await Promise.race([Promise.allSettled([...this.#inflight]), deadline])
    this.#state.flush()
    this.#relay.close()
    await this.#runner.close()
  }

  /** The bound UDP address, once listening. */
  get address(): { host: string; port: number } | undefined {
    return this.#address
  }

  /** The Basics Station LNS address, once listening (when [sources.lorawan.station] is enabled). */
  get stationAddress(): { host: string; port: number } | undefined {
    return this.#station?.address
  }

  // ------------------------------------------------------------------ registry

  #loadRegistry(): void {
    for (const row of this.#o.store.devices(LORAWAN_DEVICE_KIND)) {
      const p = sessionFromRow(row)
      if (p.ok) this.#registry.add(p.session)
      else this.#reject('device-invalid', { device: row.id, reason: p.reason })
    }
  }

  /** Pick up devices added, changed or removed (by the CLI) while running; counters in memory stay authoritative. */
  #refreshRegistry(): void {
    if (this.#o.store.closed) return
    let rows
    try {
      rows = this.#o.store.devices(LORAWAN_DEVICE_KIND)
    } catch {
      return
    }
    const seen = new Set<string>()
    for (const row of rows) {
      seen.add(row.id)
      const cur = this.#registry.byId.get(row.id)
      if (cur && cur.configText === row.config && cur.secretText === row.secret) continue
      const p = sessionFromRow(row)
      if (!p.ok) {
        this.#reject('device-invalid', { device: row.id, reason: p.reason })
        continue
      }
      if (cur && cur.secretText === row.secret) {
        // Only the config changed (codec, fields): keep the live session.
        cur.config = p.session.config
        cur.codec = p.session.codec
        cur.configText = row.config
        continue
      }
      this.#registry.add(p.session)
    }
    for (const id of [...this.#registry.byId.keys()]) if (!seen.has(id)) this.#registry.remove(id)
  }

  // ------------------------------------------------------------------ datagrams

  #reject(reason: string, details: object = {}): void {
    this.counts.rejected++
    this.#m.rejected.inc({ reason })
    this.#o.rejects?.reject(`lorawan:${reason}`, details)
  }

  #forwarder(eui: string): Forwarder | undefined {
    let f = this.#forwarders.get(eui)
    if (f) return f
    if (this.#forwarders.size >= this.#c.max_forwarders) {
      // Make room by evicting the longest-idle forwarder, if idle long enough.
      let oldest: Forwarder | undefined
      for (const x of this.#forwarders.values()) if (!oldest || x.lastSeenMs < oldest.lastSeenMs) oldest = x
      if (!oldest || Date.now() - oldest.lastSeenMs < FORWARDER_IDLE_MS) return undefined
      this.#forwarders.delete(oldest.eui)
    }
    const now = Date.now()
    f = {
      eui,
      pushAddr: undefined,
      pullAddr: undefined,
      version: 2,
      firstSeenMs: now,
      lastSeenMs: now,
      lastPullMs: undefined,
      pushData: 0,
      pullData: 0,
      rxpk: 0,
      txAcks: {},
      downlinks: 0,
      stat: undefined,
      statAtMs: undefined,
      gpsAgree: 0,
      gpsDisagree: 0,
    }
    this.#forwarders.set(eui, f)
    return f
  }

  #reply(bytes: Uint8Array, to: { address: string; port: number }): void {
    this.#socket?.send(bytes, to.port, to.address, () => undefined)
  }

  #onDatagram(buf: Uint8Array, rinfo: dgram.RemoteInfo): void {
    this.counts.datagrams++
    const p = parseDatagram(buf)
    if (!p.ok) {
      this.#m.datagrams.inc({ type: 'invalid' })
      this.#reject(`datagram-${p.code}`, { from: `${rinfo.address}:${rinfo.port}`, reason: p.reason })
      return
    }
    const pk = p.packet
    this.#m.datagrams.inc({ type: pk.type })
    if (pk.type !== 'PUSH_DATA' && pk.type !== 'PULL_DATA' && pk.type !== 'TX_ACK') {
      this.#reject('datagram-unexpected-type', { type: pk.type, from: `${rinfo.address}:${rinfo.port}` })
      return
    }
    if (this.#allow && !this.#allow.has(pk.gatewayEui)) {
      this.#reject('gateway-not-allowed', { gatewayEui: pk.gatewayEui, from: `${rinfo.address}:${rinfo.port}` })
      return
    }
    const f = this.#forwarder(pk.gatewayEui)
    if (!f) {
      this.#reject('too-many-forwarders', { gatewayEui: pk.gatewayEui })
      return
    }
    f.lastSeenMs = Date.now()
    const from = { address: rinfo.address, port: rinfo.port }
    switch (pk.type) {
      case 'PUSH_DATA': {
        f.pushData++
        f.pushAddr = from
        this.#reply(buildPushAck(pk.token, pk.version), from)
        this.#relay.push(pk.gatewayEui, buf)
        if (pk.stat) {
          f.stat = pk.stat
          f.statAtMs = Date.now()
        }
        const monoNs = process.hrtime.bigint()
        for (const rx of pk.rxpk) {
          f.rxpk++
          this.#onReception(f.eui, f, rx, monoNs, undefined)
        }
        return
      }
      case 'PULL_DATA':
        f.pullData++
        f.pullAddr = from
        f.version = pk.version
        f.lastPullMs = Date.now()
        this.#reply(buildPullAck(pk.token, pk.version), from)
        this.#relay.pull(pk.gatewayEui, buf)
        return
      case 'TX_ACK':
        this.#onTxAck(f, pk.token, pk.ack.error, buf)
        return
    }
  }

  /**
   * One reception of a frame, from a Semtech UDP forwarder or a Basics Station
   * (`link` answers it then): the single entry point of uplinks into dedup,
   * sessions and witness handling. `f` counts GPS receive times that may vouch for the clock.
   */
  #onReception(eui: string, f: GpsTally | undefined, rx: Rxpk, monoNs: bigint, link: GatewayLink | undefined): void {
    this.#m.receptions.inc({ gateway_eui: eui })
    if (rx.stat !== 1) {
      this.#reject(rx.stat === -1 ? 'crc-bad' : 'crc-none', { gatewayEui: eui })
      return
    }
    if (rx.modu !== 'LORA' && rx.modu !== 'FSK') {
      this.#reject('modulation-unsupported', { gatewayEui: eui, modu: rx.modu })
      return
    }
    if (rx.timeMs !== undefined && f) {
      if (Math.abs(rx.timeMs - Date.now()) <= GPS_AGREE_MS) {
        f.gpsAgree++
        if (this.#c.gps_clock && this.#o.clock && this.#o.clock.state === 'unsynchronized') this.#o.clock.setState('gps')
      } else {
        f.gpsDisagree++
        this.#m.rejected.inc({ reason: 'gps-time-disagrees' })
      }
    }
    const key = Buffer.from(rx.data).toString('base64')
    const reception: LinkedReception = { gatewayEui: eui, rxpk: rx, monoNs, ...(link ? { link } : {}) }
    const open = this.#dedup.get(key)
    if (open) {
      this.#m.duplicates.inc({ kind: 'merged' })
      if (open.receptions.length < MAX_RECEPTIONS && !open.receptions.some((r) => r.gatewayEui === eui)) open.receptions.push(reception)
      return
    }
    const handledAt = this.#recent.get(key)
    if (handledAt !== undefined && Date.now() - handledAt < (this.#o.recentMs ?? RECENT_MS)) {
      this.#m.duplicates.inc({ kind: 'late' })
      return
    }
    const ctx = this.#ctx
    if (!ctx) return
    const entry: DedupEntry = { key, data: rx.data, receptions: [reception], received: ctx.now(), timer: undefined }
    this.#dedup.set(key, entry)
    if (this.#c.dedup_window_ms === 0) this.#handle(entry)
    else entry.timer = setTimeout(() => this.#handle(entry), this.#c.dedup_window_ms)
  }

  #handle(entry: DedupEntry): void {
    if (this.#dedup.get(entry.key) !== entry) return
    this.#dedup.delete(entry.key)
    this.#recent.set(entry.key, Date.now())
    const p = this.#process(entry).catch((e: unknown) => {
      this.#reject('internal', { err: e instanceof Error ? e.message.slice(0, 200) : String(e).slice(0, 200) })
    })
    this.#inflight.add(p)
    void p.finally(() => this.#inflight.delete(p))
  }

  async #process(entry: DedupEntry): Promise<void> {
    const parsed = parsePhyPayload(entry.data)
    if (!parsed.ok) {
      this.#reject(`phy-${parsed.code}`, { reason: parsed.reason })
      return
    }
    const fr = parsed.frame
    if (fr.kind === 'join-request') return this.#onJoinRequest(fr, entry)
    if (fr.kind === 'data' && fr.direction === 'up') return this.#onDataUp(fr, entry)
    this.#reject(`frame-${fr.kind === 'data' ? 'downlink' : fr.kind}`, {})
  }

  // ------------------------------------------------------------------ joins

  #allocateDevAddr(): number {
    const p = netIdPrefix(this.#netId) ?? { prefix: 0, bits: 7 }
    const freeBits = 32 - p.bits
    for (let i = 0; i < 64; i++) {
      const nwkAddr = freeBits >= 31 ? randomInt(0, 2 ** 31) : randomInt(0, 2 ** freeBits)
      const a = (p.prefix | nwkAddr) >>> 0
      if (!this.#registry.devAddrInUse(a)) return a
    }
    throw new Error('no free DevAddr found')
  }

  #onJoinRequest(fr: JoinRequestFrame, entry: DedupEntry): void {
    const s = this.#registry.byDevEui(fr.devEui, fr.joinEui)
    if (!s || !s.appKey) {
      this.#m.joins.inc({ result: 'unknown-device' })
      this.#reject('join-unknown-device', { devEui: fr.devEui, joinEui: fr.joinEui })
      return
    }
    const cfList = this.#region.id === 'EU868' ? encodeCfListFrequencies(EU868_CFLIST_FREQS_HZ) : cfListChMask(this.#region, this.#c.sub_band ?? 2)
    const r = handleJoinRequest(
      {
        devEui: s.config.devEui as string,
        joinEui: s.config.joinEui as string,
        appKey: s.appKey,
        lorawanVersion: s.config.lorawanVersion,
        usedDevNonces: s.usedDevNonces,
        lastDevNonce: s.lastDevNonce,
        lastJoinNonce: s.lastJoinNonce,
      },
      fr,
      {
        netId: this.#netId,
        allocateDevAddr: () => this.#allocateDevAddr(),
        rx1DrOffset: 0,
        rx2DataRate: this.#region.rx2.dr,
        rxDelayS: this.#c.rx1_delay_s,
        ...(cfList ? { cfList } : {}),
      },
    )
    if (!r.ok) {
      this.#m.joins.inc({ result: r.code })
      s.rejected++
      this.#reject(`join-${r.code}`, { device: s.id, reason: r.reason })
      void this.#state.write(s, { rejected: 1 }).catch(() => undefined)
      return
    }
    // The new session, persisted in one transaction before the join-accept is sent.
    s.usedDevNonces = r.nextState.usedDevNonces ? [...r.nextState.usedDevNonces] : s.usedDevNonces
    s.lastDevNonce = r.nextState.lastDevNonce
    s.lastJoinNonce = r.nextState.lastJoinNonce
    s.nwkSKey = r.nwkSKey
    s.appSKey = r.appSKey
    s.fcntUp = null
    s.fcntDown = null
    s.lastUp = undefined
    s.joinedAtMs = Date.now()
    this.#registry.setDevAddr(s, r.devAddr)
    this.#noteSeen(s, entry)
    void this.#state.write(s, { secret: true, seenMs: Date.now() }).then(
      () => {
        this.counts.joins++
        this.#m.joins.inc({ result: 'accepted' })
        this.#o.log?.info({ device: s.id, devAddr: devAddrHex(r.devAddr), devNonce: r.devNonce, joinNonce: r.joinNonce }, 'lorawan join accepted')
        this.#downlink({ kind: 'join-accept', deviceId: s.id, devEui: s.config.devEui, payload: r.joinAccept, receptions: entry.receptions, rx1DelayS: JOIN_ACCEPT_DELAY1_S }, ['rx1', 'rx2'])
      },
      (e: unknown) => {
        this.#m.joins.inc({ result: 'persist-failed' })
        this.#reject('join-persist-failed', { device: s.id, err: e instanceof Error ? e.message.slice(0, 200) : 'error' })
      },
    )
  }

  // ------------------------------------------------------------------ data uplinks

  #noteSeen(s: Session, entry: DedupEntry): void {
    const best = sortReceptions(entry.receptions)[0]
    s.lastSeenMs = Date.now()
    s.lastRssi = best?.rxpk.rssi
    s.lastLsnr = best?.rxpk.lsnr
  }

  /** Find the session a data frame belongs to and check its counter. */
  #matchSession(fr: DataFrame):
    | { kind: 'new'; s: Session; fcnt32: number }
    | { kind: 'retransmission'; s: Session; fcnt32: number }
    | { kind: 'reject'; reason: string; s?: Session; details: object }
    | { kind: 'none' } {
    const candidates = this.#registry.byDevAddr(fr.devAddr).filter((s) => s.nwkSKey && s.appSKey)
    if (candidates.length === 0) return { kind: 'none' }
    let verdict: { kind: 'reject'; reason: string; s?: Session; details: object } = { kind: 'reject', reason: 'mic-fail', details: { devAddr: devAddrHex(fr.devAddr) } }
    for (const s of candidates) {
      const key = s.nwkSKey as AesKey
      const fc = reconstructFCnt(fr.fcnt16, s.fcntUp)
      if (fc.ok) {
        if (verifyDataFrameMic(fr, key, fc.fcnt32)) return { kind: 'new', s, fcnt32: fc.fcnt32 }
        continue
      }
      // Not a fresh counter: a MIC that verifies with the old counter is a replay (or a retransmission).
      const last = s.fcntUp ?? 0
      let old = ((last & 0xffff0000) | fr.fcnt16) >>> 0
      if (old > last) old -= 0x10000
      if (old < 0 || !verifyDataFrameMic(fr, key, old)) continue
      if (fc.code === 'replay' && s.lastUp && s.lastUp.fcnt === old && s.lastUp.mic === bytesToHex(fr.mic)) return { kind: 'retransmission', s, fcnt32: old }
      verdict = { kind: 'reject', reason: fc.code === 'gap-too-large' ? 'fcnt-gap' : fc.code === 'exhausted' ? 'fcnt-exhausted' : 'fcnt-replay', s, details: { device: s.id, fcnt16: fr.fcnt16, last } }
    }
    return verdict
  }

  async #onDataUp(fr: DataFrame, entry: DedupEntry): Promise<void> {
    const match = this.#matchSession(fr)
    if (match.kind === 'none') return this.#witness(fr, entry)
    if (match.kind === 'reject') {
      if (match.s) {
        match.s.rejected++
        void this.#state.write(match.s, { rejected: 1 }).catch(() => undefined)
      }
      this.#reject(match.reason, match.details)
      return
    }
    const s = match.s
    const fcnt32 = match.fcnt32
    const mic = bytesToHex(fr.mic)
    if (match.kind === 'retransmission') {
      const lu = s.lastUp
      if (lu?.stored === true) {
        // Stored already: answer a confirmed retransmission with a fresh ACK, store nothing.
        this.#m.duplicates.inc({ kind: 'retransmission' })
        if (fr.confirmed) await this.#sendAck(s, entry)
        return
      }
      if (lu?.stored === 'unknown') {
        // After a restart it is not known whether the reading was stored: refuse rather than risk a duplicate.
        s.rejected++
        this.#reject('fcnt-replay', { device: s.id, fcnt: fcnt32, note: 'retransmission of an uplink whose storage is unknown after a restart' })
        return
      }
      // stored === false: its reading was refused earlier (backpressure, store full): take it again.
    }
    s.fcntUp = fcnt32
    s.lastUp = { fcnt: fcnt32, mic, stored: false }
    this.#noteSeen(s, entry)
    const keys = { nwkSKey: s.nwkSKey as AesKey, appSKey: s.appSKey as AesKey }
    const plain = decryptFrmPayload(fr, keys, fcnt32)
    try {
      // The counter is durable before the reading exists: a crash cannot reopen a replay window.
      await this.#state.write(s, { seenMs: Date.now() })
    } catch (e) {
      this.#reject('state-persist-failed', { device: s.id, err: e instanceof Error ? e.message.slice(0, 200) : 'error' })
      return
    }
    const decoded =
      fr.fport !== null && fr.fport > 0
        ? await decodePayload(s.codec, this.#runner, { bytes: plain, fPort: fr.fport, recvTimeMs: entry.received.wallMs })
        : { status: 'none' as const, metrics: [], meta: {}, unmapped: 0, warnings: [] as string[] }
    if (decoded.status !== 'none') this.#m.codec.inc({ codec: s.codec.id, result: decoded.status })
    if (decoded.unmapped > 0) this.#m.unmapped.inc({}, decoded.unmapped)
    if (decoded.status !== 'ok' && decoded.status !== 'none') this.#reject(`codec-${decoded.status}`, { device: s.id, reason: decoded.reason })
    const extra: Record<string, number | string> = { ...decoded.meta }
    if (decoded.status !== 'ok' && decoded.status !== 'none') extra['codec_error'] = `${decoded.status}: ${decoded.reason ?? ''}`.slice(0, 200)
    const reading: Reading = {
      deviceId: s.id,
      source: 'lorawan',
      received: entry.received,
      ...(decoded.deviceTimeMs !== undefined ? { deviceTimeMs: decoded.deviceTimeMs } : {}),
      metrics: decoded.metrics,
      radio: radioMeta(frameKeys('session', fr, fcnt32), entry.receptions, extra),
      ...(fr.fport !== null ? { raw: plain } : {}),
      auth: { kind: 'lorawan-mic', devAddr: fr.devAddr, fcnt: fcnt32 },
    }
    const ctx = this.#ctx as SourceContext
    try {
      await ctx.ingest([reading])
    } catch (e) {
      // Not durable: no ACK (the device retransmits a confirmed uplink; see the retransmission rule above).
      const code = e !== null && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : 'error'
      this.counts.acksWithheld += fr.confirmed ? 1 : 0
      this.#reject(`ingest-${code.toLowerCase()}`, { device: s.id, fcnt: fcnt32 })
      return
    }
    s.accepted++
    this.counts.sessionUplinks++
    this.#m.uplinks.inc({ trust: 'session' })
    if (s.lastUp && s.lastUp.fcnt === fcnt32) s.lastUp = { ...s.lastUp, stored: true }
    if (fr.confirmed) await this.#sendAck(s, entry)
    else void this.#state.write(s, { accepted: 1 }).catch(() => undefined)
  }

  /** ACK a confirmed uplink: an unconfirmed downlink with FCtrl.ACK, FCntDown persisted before it is sent. */
  async #sendAck(s: Session, entry: DedupEntry): Promise<void> {
    const next = nextDownlinkFCnt(s.fcntDown)
    if (next === undefined || s.devAddr === undefined || !s.nwkSKey || !s.appSKey) {
      this.#reject('downlink-fcnt-exhausted', { device: s.id })
      return
    }
    const built = buildDataFrame({ mtype: 'unconfirmed-data-down', devAddr: s.devAddr, fcnt32: next, ack: true }, { nwkSKey: s.nwkSKey, appSKey: s.appSKey })
    if (!built.ok) {
      this.#reject('downlink-build-failed', { device: s.id, reason: built.reason })
      return
    }
    s.fcntDown = next
    try {
      await this.#state.write(s, { accepted: 1 })
    } catch (e) {
      this.#reject('state-persist-failed', { device: s.id, err: e instanceof Error ? e.message.slice(0, 200) : 'error' })
      return
    }
    this.#downlink({ kind: 'ack', deviceId: s.id, devEui: s.config.devEui, payload: built.bytes, receptions: entry.receptions, rx1DelayS: this.#c.rx1_delay_s }, ['rx1', 'rx2'])
  }

  // ------------------------------------------------------------------ witness

  #witnessed(devAddr: number): boolean {
    if (this.#witnessPrefixes.length === 0) return true
    return this.#witnessPrefixes.some((p) => matchesPrefix(devAddr, p))
  }

  async #witness(fr: DataFrame, entry: DedupEntry): Promise<void> {
    if (!this.#c.witness.enabled) {
      this.#reject('unknown-devaddr', { devAddr: devAddrHex(fr.devAddr) })
      return
    }
    if (!this.#witnessed(fr.devAddr)) {
      this.#m.rejected.inc({ reason: 'witness-filtered' })
      return
    }
    const reading: Reading = {
      deviceId: `lorawan-witness:${devAddrHex(fr.devAddr)}`,
      source: 'lorawan',
      received: entry.received,
      metrics: [],
      radio: radioMeta(frameKeys('witness', fr, fr.fcnt16), entry.receptions),
      raw: fr.bytes,
      auth: { kind: 'none' },
    }
    try {
      await (this.#ctx as SourceContext).ingest([reading])
    } catch (e) {
      const code = e !== null && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : 'error'
      this.#reject(`ingest-${code.toLowerCase()}`, { devAddr: devAddrHex(fr.devAddr) })
      return
    }
    this.counts.witnessUplinks++
    this.#m.uplinks.inc({ trust: 'witness' })
  }

  // ------------------------------------------------------------------ downlinks

  #token(eui: string): number {
    for (let i = 0; i < 16; i++) {
      const t = randomInt(0, 0x10000)
      if (!this.#pendingDownlinks.has(`${eui}:${t}`) && !this.#relay.ownsToken(eui, t)) return t
    }
    return randomInt(0, 0x10000)
  }

  /**
   * Send a class A downlink through the best forwarder that heard the uplink
   * and has a downlink address, in the first window still reachable.
   */
  #downlink(req: DownlinkRequest, windows: readonly ('rx1' | 'rx2')[]): boolean {
    const candidates = (sortReceptions(req.receptions) as LinkedReception[]).filter((r) => r.link !== undefined || this.#forwarders.get(r.gatewayEui)?.pullAddr !== undefined)
    const r = candidates[0]
    if (!r) {
      this.#reject('downlink-no-forwarder', { device: req.deviceId, kind: req.kind })
      return false
    }
    if (r.link) return this.#linkDownlink(req, r, r.link, windows)
    const f = this.#forwarders.get(r.gatewayEui) as Forwarder
    const elapsedUs = Number(process.hrtime.bigint() - r.monoNs) / 1000
    let why = 'no window left'
    for (const window of windows) {
      const delayUs = (window === 'rx1' ? req.rx1DelayS : req.rx1DelayS + 1) * 1_000_000
      if (delayUs - elapsedUs < this.#c.downlink_lead_ms * 1000) {
        why = `${window} opens in ${Math.round((delayUs - elapsedUs) / 1000)} ms`
        continue
      }
      const tx = txpkFor({
        region: this.#region,
        uplink: { tmst: r.rxpk.tmst, freqHz: r.rxpk.freqHz, datr: r.rxpk.datr },
        window,
        rx1DelayS: req.rx1DelayS,
        phyPayload: req.payload,
        rx1DrOffset: 0,
        rx2Dr: this.#region.rx2.dr,
      })
      if (!tx.ok) {
        why = `${window}: ${tx.reason}`
        continue
      }
      const token = this.#token(f.eui)
      const dg = buildPullResp(token, tx.txpk, f.version)
      if (!dg.ok) {
        why = `${window}: ${dg.reason}`
        continue
      }
      this.#pendingDownlinks.set(`${f.eui}:${token}`, { req, eui: f.eui, window, expires: Date.now() + 10_000 })
      this.#reply(dg.bytes, f.pullAddr as { address: string; port: number })
      f.downlinks++
      this.counts.downlinks++
      this.#m.downlinks.inc({ kind: req.kind, window })
      return true
    }
    this.#m.downlinks.inc({ kind: req.kind, window: 'missed' })
    this.#reject('downlink-missed', { device: req.deviceId, kind: req.kind, reason: why })
    return false
  }

  /**
   * A downlink through a link (Basics Station): one message carries every window still
   * reachable (the station itself falls back from RX1 to RX2); windows and data rates
   * come from the same region table as txpk downlinks.
   */
  #linkDownlink(req: DownlinkRequest, r: LinkedReception, link: GatewayLink, windows: readonly ('rx1' | 'rx2')[]): boolean {
    const elapsedUs = Number(process.hrtime.bigint() - r.monoNs) / 1000
    const reachable = (w: 'rx1' | 'rx2'): boolean => windows.includes(w) && (w === 'rx1' ? req.rx1DelayS : req.rx1DelayS + 1) * 1_000_000 - elapsedUs >= this.#c.downlink_lead_ms * 1000
    const macLen = req.payload.length - 5
    const fits = (dr: number): boolean => {
      const max = maxPayload(this.#region, dr)
      return max === undefined || macLen <= max.m
    }
    let why = 'no window left'
    let w1: { dr: number; freqHz: number } | undefined
    let w2: { dr: number; freqHz: number } | undefined
    if (reachable('rx1')) {
      const x = rx1(this.#region, { freqHz: r.rxpk.freqHz, datr: r.rxpk.datr }, 0)
      if (x.ok && fits(x.dr)) w1 = { dr: x.dr, freqHz: x.freqHz }
      else why = x.ok ? `rx1: payload too large for DR${x.dr}` : `rx1: ${x.reason}`
    }
    if (reachable('rx2')) {
      const x = rx2(this.#region, this.#region.rx2.dr)
      if (x.ok && fits(x.dr)) w2 = { dr: x.dr, freqHz: x.freqHz }
      else why = x.ok ? `rx2: payload too large for DR${x.dr}` : `rx2: ${x.reason}`
    }
    const sent = w1 || w2 ? link.send({ kind: req.kind, deviceId: req.deviceId, devEui: req.devEui, payload: req.payload, rx1DelayS: req.rx1DelayS, ...(w1 ? { rx1: w1 } : {}), ...(w2 ? { rx2: w2 } : {}) }) : { ok: false as const, reason: why }
    if (!sent.ok) {
      this.#m.downlinks.inc({ kind: req.kind, window: 'missed' })
      this.#reject('downlink-missed', { device: req.deviceId, kind: req.kind, reason: sent.reason })
      return false
    }
    this.counts.downlinks++
    this.#m.downlinks.inc({ kind: req.kind, window: w1 ? 'rx1' : 'rx2' })
    return true
  }

  #sendToForwarder(eui: string, datagram: Uint8Array): boolean {
    const f = this.#forwarders.get(eui)
    if (!f?.pullAddr) return false
    this.#reply(datagram, f.pullAddr)
    return true
  }

  #onTxAck(f: Forwarder, token: number, error: TxAckError | 'UNKNOWN', datagram: Uint8Array): void {
    if (this.#relay.txAck(f.eui, token, datagram)) return
    f.txAcks[error] = (f.txAcks[error] ?? 0) + 1
    this.#m.txAcks.inc({ error })
    const key = `${f.eui}:${token}`
    const p = this.#pendingDownlinks.get(key)
    if (!p) return
    this.#pendingDownlinks.delete(key)
    if (error === 'NONE') return
    this.#reject(`tx-ack-${error.toLowerCase()}`, { gatewayEui: f.eui, device: p.req.deviceId, kind: p.req.kind, window: p.window })
    // RX1 refused (too late, collision, frequency, ...): RX2 opens a second later, if it is still reachable.
    if (p.window === 'rx1') this.#downlink(p.req, ['rx2'])
  }

  #housekeeping(): void {
    const now = Date.now()
    for (const [k, t] of this.#recent) if (now - t >= (this.#o.recentMs ?? RECENT_MS)) this.#recent.delete(k)
    for (const [k, p] of this.#pendingDownlinks) if (p.expires <= now) this.#pendingDownlinks.delete(k)
  }

  // ------------------------------------------------------------------ status

  status(): Record<string, unknown> {
    const now = Date.now()
    return {
      listen: this.#address ? `${this.#address.host}:${this.#address.port}` : this.#c.listen,
      region: this.#region.id,
      netId: this.#netId.toString(16).padStart(6, '0'),
      trustModes: {
        session: { devices: this.#registry.size, uplinks: this.counts.sessionUplinks, joins: this.counts.joins },
        witness: { enabled: this.#c.witness.enabled, filters: [...this.#c.witness.dev_addr_prefixes, ...this.#c.witness.net_ids.map((n) => `netid:${n}`)], uplinks: this.counts.witnessUplinks },
      },
      counts: { ...this.counts },
      forwarders: [...this.#forwarders.values()].map((f) => ({
        gatewayEui: f.eui,
        pushAddress: f.pushAddr ? `${f.pushAddr.address}:${f.pushAddr.port}` : null,
        pullAddress: f.pullAddr ? `${f.pullAddr.address}:${f.pullAddr.port}` : null,
        protocolVersion: f.version,
        lastSeenMs: f.lastSeenMs,
        lastSeenAgoS: Math.round((now - f.lastSeenMs) / 1000),
        pushData: f.pushData,
        pullData: f.pullData,
        rx: f.rxpk,
        tx: f.downlinks,
        txAcks: { ...f.txAcks },
        stat: f.stat
          ? {
              ...f.stat,
              receivedMs: f.statAtMs,
            }
          : null,
        position: f.stat?.lati !== undefined && f.stat.long !== undefined ? { lat: f.stat.lati, lon: f.stat.long, alt: f.stat.alti ?? null } : null,
        gpsTime: { agree: f.gpsAgree, disagree: f.gpsDisagree },
      })),
      devices: [...this.#registry.byId.values()].map((s) => ({
        id: s.id,
        trust: 'session',
        activation: s.config.activation,
        lorawanVersion: s.config.lorawanVersion,
        devEui: s.config.devEui ?? null,
        devAddr: s.devAddr !== undefined ? devAddrHex(s.devAddr) : null,
        joined: s.nwkSKey !== undefined,
        fcntUp: s.fcntUp,
        fcntDown: s.fcntDown,
        codec: s.codec.id,
        accepted: s.accepted,
        rejected: s.rejected,
        lastSeenMs: s.lastSeenMs ?? null,
        lastRssi: s.lastRssi ?? null,
        lastLsnr: s.lastLsnr ?? null,
      })),
      basicsStation: this.#station
        ? {
            listen: this.#station.address ? `${this.#station.address.host}:${this.#station.address.port}` : (this.#c.station?.listen ?? null),
            tls: this.#station.tls,
            stations: this.#station.status(),
          }
        : { enabled: false },
      relay: {
        upstreams: this.#c.relay.upstreams.map((u, i) => ({ upstream: u, ...this.#relay.stats[i] })),
        forwarderSockets: this.#relay.forwarders,
        forwardersNotRelayed: this.#relay.forwardersRefused,
      },
      codec: { ...this.#runner.stats },
      state: { writes: this.#state.writes, transactions: this.#state.transactions },
    }
  }
}
