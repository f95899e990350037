// The LNS side of LoRa Basics Station (doc.sm.tc/station, "The LNS Protocol";
// lorabasics/basicstation src/tc.c for the connection sequence):
//
//   station ──WS /router-info──▶ {"router": <EUI>}  ◀── {"router","muxs","uri"} | {"router","error"}
//   station ──WS /router-<eui>─▶ {"msgtype":"version",...}  ◀── router_config
//           ── updf / jreq ───▶ the LoRaWAN server's uplink handler (server.ts), as
//                               receptions whose downlinks come back through here
//           ◀── dnmsg ─────────  class A join-accepts and ACKs (xtime + RxDelay)
//           ── dntxed ────────▶ counted as a TX acknowledgement
//           ── timesync ──────▶ answered with the GPS time of this gateway's clock
//           ── propdf ────────▶ counted (proprietary frames are not stored)
//
// TLS (server certificate, optionally client certificates) and token auth (the
// station sends an Authorization header taken from its tc.key file) are
// configured in [sources.lorawan.station]. Every bad message is counted and
// rejected with a reason; the connection stays up (only frames over 1 MiB, the
// WebSocket limit, end a connection).

import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import type { Counter, MetricsRegistry } from '../../../pipeline/metrics.ts'
import type { GatewayLink, LinkDownlink } from '../server.ts'
import { REGIONS, type Region, type RegionId } from '../region.ts'
import type { Rxpk } from '../semtech-udp.ts'
import {
  buildDnmsg,
  buildRouterConfig,
  datrOfDr,
  formatId6,
  gpsTimeUs,
  MAX_STATION_MESSAGE_BYTES,
  parseEui,
  parseJsonExact,
  parseStationMessage,
  type StationRadio,
} from './protocol.ts'

/** [sources.lorawan.station] (config/sections/lorawan.ts). */
export interface StationSectionConfig {
  readonly enabled: boolean
  readonly listen: string
  readonly tls_cert_file: string
  readonly tls_key_file: string
  readonly tls_client_ca_file: string
  readonly auth_token_file: string
  readonly max_stations: number
  readonly ping_interval_s: number
}

/** An uplink heard by a station, handed to the LoRaWAN server. */
export interface StationUplinkEvent {
  readonly gatewayEui: string
  readonly rxpk: Rxpk
  readonly monoNs: bigint
  readonly link: GatewayLink
}

export interface StationServerOptions {
  readonly config: StationSectionConfig
  readonly region: RegionId
  /** US915/AU915 sub-band of router_config ([sources.lorawan] sub_band). */
  readonly subBand: number
  /** Router EUIs accepted ([sources.lorawan] gateway_euis); undefined = any. */
  readonly allow: ReadonlySet<string> | undefined
  readonly metrics: MetricsRegistry
  readonly log?: Logger
  readonly reject: (reason: string, details?: object) => void
  readonly uplink: (u: StationUplinkEvent) => void
  /** A dntxed for a downlink this server sent. */
  readonly txAck: (gatewayEui: string, d: { readonly kind: string; readonly deviceId: string }) => void
}

/** Per-station state, reported in the LoRaWAN status. */
interface Station {
  readonly eui: string
  ws: WebSocket | undefined
  remote: string
  alive: boolean
  firstSeenMs: number
  connectedAtMs: number | undefined
  lastSeenMs: number
  version: { station: string; firmware: string | null; model: string | null; protocol: number | null; features: string | null } | undefined
  routerConfigs: number
  rx: number
  tx: number
  txConfirmed: number
  txMissing: number
  propdf: number
  timesyncs: number
  rejected: number
  connections: number
  readonly pending: Map<number, { kind: string; deviceId: string; expires: number }>
}

/** WebSocket frames larger than this end the connection (ws maxPayload). */
const MAX_FRAME_BYTES = 1024 * 1024
/** A dnmsg without dntxed is forgotten after this long. */
const PENDING_MS = 30_000

function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s)
  if (!m) throw new Error(`lorawan station listen "${s}" is not HOST:PORT`)
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) }
}

/** The token from a token file: its content, without a leading "Authorization:" (tc.key holds a header line). */
export function tokenFromFile(text: string): string {
  const line = text.replace(/\r?\n/g, '\n').split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? ''
  return line.replace(/^authorization\s*:\s*/i, '').trim()
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message.slice(0, 200) : String(e).slice(0, 200)
}

export class StationServer {
  readonly #o: StationServerOptions
  readonly #c: StationSectionConfig
  readonly #region: Region
  readonly #stations = new Map<string, Station>()
  readonly #wss: WebSocketServer
  #server: http.Server | https.Server | undefined
  #token: Buffer[] | undefined
  #tls = false
  #address: { host: string; port: number } | undefined
  #ping: NodeJS.Timeout | undefined
  #diid = 0
  readonly #m: { messages: Counter; connections: Counter; downlinks: Counter }

  constructor(o: StationServerOptions) {
    this.#o = o
    this.#c = o.config
    this.#region = REGIONS[o.region]
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES })
    const m = o.metrics
    this.#m = {
      messages: m.counter('fieldproof_lorawan_station_messages_total', 'Basics Station messages received, by msgtype (valid messages only; refusals are in fieldproof_lorawan_rejected_total)'),
      connections: m.counter('fieldproof_lorawan_station_connections_total', 'Basics Station connections, by event (router-info, connected, replaced, closed, refused)'),
      downlinks: m.counter('fieldproof_lorawan_station_downlinks_total', 'dnmsg sent to stations and dntxed received, by event'),
    }
    m.gauge('fieldproof_lorawan_stations', 'Basics Station gateways connected', () => [[{}, [...this.#stations.values()].filter((s) => s.ws !== undefined).length]])
    m.gauge('fieldproof_lorawan_station_last_seen_seconds', 'Seconds since a Basics Station gateway was last heard', () =>
      [...this.#stations.values()].map((s) => [{ gateway_eui: s.eui }, (Date.now() - s.lastSeenMs) / 1000] as [Record<string, string>, number]),
    )
  }

  /** The bound address, once listening. */
  get address(): { host: string; port: number } | undefined {
    return this.#address
  }

  get tls(): boolean {
    return this.#tls
  }

  async start(): Promise<{ host: string; port: number }> {
    const c = this.#c
    if (c.auth_token_file !== '') {
      const t = tokenFromFile(readFileSync(c.auth_token_file, 'utf8'))
      if (t === '') throw new Error(`lorawan station auth_token_file ${c.auth_token_file} is empty`)
      this.#token = [digest(t), digest(`Bearer ${t}`)]
    }
    if ((c.tls_cert_file === '') !== (c.tls_key_file === '')) throw new Error('lorawan station: tls_cert_file and tls_key_file go together')
    // A station's tc.key holds either its client key or a token header, never both.
    if (c.tls_client_ca_file !== '' && c.auth_token_file !== '') throw new Error('lorawan station: use tls_client_ca_file or auth_token_file, not both')
    let server: http.Server | https.Server
    if (c.tls_cert_file !== '') {
      this.#tls = true
      server = https.createServer({
        cert: readFileSync(c.tls_cert_file),
        key: readFileSync(c.tls_key_file),
        ...(c.tls_client_ca_file !== '' ? { ca: readFileSync(c.tls_client_ca_file), requestCert: true, rejectUnauthorized: true } : {}),
      })
    } else {
      if (c.tls_client_ca_file !== '') throw new Error('lorawan station: tls_client_ca_file needs tls_cert_file and tls_key_file')
      server = http.createServer()
    }
    this.#server = server
    server.on('request', (_req, res) => {
      res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' })
      res.end('LoRa Basics Station LNS: connect with a WebSocket to /router-info\n')
    })
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      try {
        this.#onUpgrade(req, socket, head)
      } catch (e) {
        this.#o.reject('station-internal', { err: errText(e) })
        socket.destroy()
      }
    })
    server.on('clientError', (_e, socket) => socket.destroy())
    const { host, port } = parseListen(c.listen)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.on('error', (err) => this.#o.log?.error({ err }, 'lorawan station server error'))
    const a = server.address()
    this.#address = typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : { host, port }
    this.#ping = setInterval(() => this.#keepalive(), Math.max(1, c.ping_interval_s) * 1000)
    this.#ping.unref()
    this.#o.log?.info({ listen: `${this.#address.host}:${this.#address.port}`, tls: this.#tls, auth: this.#token !== undefined }, 'lorawan basics station LNS listening')
    return this.#address
  }

  async close(): Promise<void> {
    if (this.#ping) clearInterval(this.#ping)
    for (const s of this.#stations.values()) {
      try {
        s.ws?.close(1001, 'server shutting down')
      } catch {
        // already closing
      }
    }
    const server = this.#server
    if (!server) return
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
      setTimeout(() => {
        for (const c of this.#wss.clients) c.terminate()
        resolve()
      }, 1000).unref()
    })
    this.#wss.close()
  }

  // ------------------------------------------------------------------ connections

  #refuse(socket: Duplex, status: number, text: string, reason: string, details: object): void {
    this.#o.reject(reason, details)
    this.#m.connections.inc({ event: 'refused' })
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    socket.destroy()
  }

  #authorized(req: http.IncomingMessage): boolean {
    if (!this.#token) return true
    const h = req.headers['authorization']
    if (typeof h !== 'string' || h.length > 4096) return false
    const d = digest(h.trim())
    let ok = false
    for (const t of this.#token) if (timingSafeEqual(d, t)) ok = true
    return ok
  }

  #onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const from = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`
    let path: string
    try {
      path = new URL(req.url ?? '/', 'http://station').pathname
    } catch {
      return this.#refuse(socket, 400, 'Bad Request', 'station-bad-path', { from })
    }
    if (!this.#authorized(req)) return this.#refuse(socket, 401, 'Unauthorized', 'station-auth-failed', { from, path: path.slice(0, 80) })
    if (/(^|\/)router-info\/?$/.test(path)) {
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onRouterInfo(ws, req, from))
      return
    }
    const m = /(?:^|\/)router-([^/]+)\/?$/.exec(path)
    let eui: string | undefined
    try {
      eui = m ? parseEui(decodeURIComponent(m[1] as string)) : undefined
    } catch {
      eui = undefined
    }
    if (eui === undefined) return this.#refuse(socket, 404, 'Not Found', 'station-bad-path', { from, path: path.slice(0, 80) })
    if (this.#o.allow && !this.#o.allow.has(eui)) return this.#refuse(socket, 403, 'Forbidden', 'gateway-not-allowed', { gatewayEui: eui, from })
    const st = this.#station(eui)
    if (!st) return this.#refuse(socket, 503, 'Service Unavailable', 'too-many-stations', { gatewayEui: eui, from })
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onRouter(st, ws, from))
  }

  #station(eui: string): Station | undefined {
    let s = this.#stations.get(eui)
    if (s) return s
    if (this.#stations.size >= this.#c.max_stations) {
      let oldest: Station | undefined
      for (const x of this.#stations.values()) if (x.ws === undefined && (!oldest || x.lastSeenMs < oldest.lastSeenMs)) oldest = x
      if (!oldest) return undefined
      this.#stations.delete(oldest.eui)
    }
    const now = Date.now()
    s = {
      eui,
      ws: undefined,
      remote: '',
      alive: true,
      firstSeenMs: now,
      connectedAtMs: undefined,
      lastSeenMs: now,
      version: undefined,
      routerConfigs: 0,
      rx: 0,
      tx: 0,
      txConfirmed: 0,
      txMissing: 0,
      propdf: 0,
      timesyncs: 0,
      rejected: 0,
      connections: 0,
      pending: new Map(),
    }
    this.#stations.set(eui, s)
    return s
  }

  /** Discovery: {"router": <id>} → where the station's data connection goes. */
  #onRouterInfo(ws: WebSocket, req: http.IncomingMessage, from: string): void {
    this.#m.connections.inc({ event: 'router-info' })
    const timer = setTimeout(() => ws.terminate(), 10_000)
    timer.unref()
    ws.on('error', () => undefined)
    ws.on('close', () => clearTimeout(timer))
    ws.once('message', (data, isBinary) => {
      const text = isBinary ? undefined : Buffer.isBuffer(data) ? data.toString('utf8') : undefined
      const j = text !== undefined && text.length <= MAX_STATION_MESSAGE_BYTES ? parseJsonExact(text) : undefined
      const raw = j?.ok && typeof j.value === 'object' && j.value !== null && !Array.isArray(j.value) ? (j.value as Record<string, unknown>)['router'] : undefined
      const eui = parseEui(raw)
      const echo = typeof raw === 'bigint' ? raw.toString() : typeof raw === 'string' || typeof raw === 'number' ? raw : null
      const reply = (o: Record<string, unknown>): void => {
        ws.send(JSON.stringify(o), () => ws.close(1000))
      }
      if (eui === undefined) {
        this.#o.reject('station-router-info-invalid', { from })
        return reply({ router: echo, error: 'router must be an EUI-64: an integer, "xx-xx-xx-xx-xx-xx-xx-xx" or an ID6 string' })
      }
      if (this.#o.allow && !this.#o.allow.has(eui)) {
        this.#o.reject('gateway-not-allowed', { gatewayEui: eui, from })
        return reply({ router: formatId6(eui), error: `router ${formatId6(eui)} is not accepted by this LNS (gateway_euis)` })
      }
      reply({ router: formatId6(eui), muxs: '::0', uri: `${this.#tls ? 'wss' : 'ws'}://${this.#hostFor(req)}/router-${eui}` })
    })
  }

  #hostFor(req: http.IncomingMessage): string {
    const h = req.headers.host
    if (typeof h === 'string' && h.length <= 255 && /^[A-Za-z0-9.\-:[\]]+$/.test(h)) return h
    const a = this.#address ?? parseListen(this.#c.listen)
    return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
  }

  #onRouter(st: Station, ws: WebSocket, from: string): void {
    const old = st.ws
    if (old) {
      this.#m.connections.inc({ event: 'replaced' })
      try {
        old.close(1000, 'replaced by a new connection')
      } catch {
        // closing already
      }
    }
    st.ws = ws
    st.remote = from
    st.alive = true
    st.connectedAtMs = Date.now()
    st.lastSeenMs = Date.now()
    st.version = undefined
    st.connections++
    this.#m.connections.inc({ event: 'connected' })
    this.#o.log?.info({ gatewayEui: st.eui, from }, 'lorawan basics station connected')
    ws.on('pong', () => {
      st.alive = true
    })
    ws.on('error', (err) => {
      // ws emits errors for protocol violations (bad frames, frames over maxPayload) and then closes.
      this.#reject(st, 'station-websocket-error', { err: errText(err) })
    })
    ws.on('close', () => {
      if (st.ws === ws) {
        st.ws = undefined
        st.connectedAtMs = undefined
        this.#m.connections.inc({ event: 'closed' })
        this.#o.log?.info({ gatewayEui: st.eui }, 'lorawan basics station disconnected')
      }
    })
    ws.on('message', (data, isBinary) => {
      try {
        this.#onMessage(st, ws, data, isBinary)
      } catch (e) {
        // Never reached by design (parsing is total); one bad message must not end the connection.
        this.#reject(st, 'station-internal', { err: errText(e) })
      }
    })
  }

  #reject(st: Station, reason: string, details: object = {}): void {
    st.rejected++
    this.#o.reject(reason, { gatewayEui: st.eui, ...details })
  }

  #send(ws: WebSocket, text: string): boolean {
    if (ws.readyState !== ws.OPEN) return false
    ws.send(text)
    return true
  }

  #onMessage(st: Station, ws: WebSocket, data: unknown, isBinary: boolean): void {
    st.lastSeenMs = Date.now()
    st.alive = true
    if (isBinary) return this.#reject(st, 'station-binary-message')
    const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data as Buffer[]) : Buffer.from(data as ArrayBuffer)
    if (buf.length > MAX_STATION_MESSAGE_BYTES) return this.#reject(st, 'station-message-too-large', { bytes: buf.length })
    const monoNs = process.hrtime.bigint()
    const p = parseStationMessage(buf.toString('utf8'), this.#region)
    if (!p.ok) return this.#reject(st, `station-${p.code}`, { reason: p.reason })
    const msg = p.message
    this.#m.messages.inc({ msgtype: msg.msgtype })
    switch (msg.msgtype) {
      case 'version': {
        st.version = { station: msg.station, firmware: msg.firmware, model: msg.model, protocol: msg.protocol, features: msg.features }
        const rc = buildRouterConfig({ region: this.#region.id, subBand: this.#o.subBand, nowMs: Date.now() })
        if (!rc.ok) {
          this.#reject(st, 'station-router-config-failed', { reason: rc.reason })
          ws.close(1011, 'no router_config for this region')
          return
        }
        if (this.#send(ws, JSON.stringify(rc.message))) st.routerConfigs++
        return
      }
      case 'updf':
      case 'jreq': {
        if (st.version === undefined) return this.#reject(st, 'station-before-version', { msgtype: msg.msgtype })
        st.rx++
        const rxpk = this.#rxpk(msg.radio, msg.phyPayload)
        if (!rxpk) return this.#reject(st, 'station-bad-field', { reason: `DR${msg.radio.dr}` })
        this.#o.uplink({ gatewayEui: st.eui, rxpk, monoNs, link: this.#link(st, ws, msg.radio) })
        return
      }
      case 'propdf':
        // Proprietary frames carry no LoRaWAN addressing or integrity: counted, not stored.
        st.rx++
        st.propdf++
        return
      case 'dntxed': {
        const pend = st.pending.get(msg.diid)
        if (!pend) {
          st.txMissing++
          this.#m.downlinks.inc({ event: 'dntxed-unknown' })
          return
        }
        st.pending.delete(msg.diid)
        st.txConfirmed++
        this.#m.downlinks.inc({ event: 'dntxed' })
        this.#o.txAck(st.eui, pend)
        return
      }
      case 'timesync': {
        st.timesyncs++
        const tx = typeof msg.txtime === 'bigint' ? msg.txtime.toString() : JSON.stringify(msg.txtime)
        this.#send(ws, `{"msgtype":"timesync","txtime":${tx},"gpstime":${gpsTimeUs(Date.now())}}`)
        return
      }
    }
  }

  /** A Semtech-style rxpk of a station reception (what the uplink handler and radio metadata read). */
  #rxpk(radio: StationRadio, phy: Uint8Array): Rxpk | undefined {
    const d = datrOfDr(this.#region, radio.dr)
    if (!d) return undefined
    // A station learns the GPS second from the LNS (timesync) and only the PPS edge from its
    // receiver, so its gpstime is kept as metadata (tmms) and never vouches for this clock.
    const tmms = radio.gpstime > 0n && radio.gpstime < 2n ** 62n ? Number(radio.gpstime / 1000n) : undefined
    return {
      // The low 32 bits of xtime are the concentrator's µs counter (what Semtech UDP calls tmst).
      tmst: Number(radio.xtime & 0xffffffffn),
      freqHz: radio.freqHz,
      stat: 1,
      modu: d.modu,
      datr: d.datr,
      size: phy.length,
      data: phy,
      ...(radio.rssi !== undefined ? { rssi: radio.rssi } : {}),
      ...(radio.snr !== undefined ? { lsnr: radio.snr } : {}),
      ...(tmms !== undefined ? { tmms } : {}),
    }
  }

  /** How the LoRaWAN server answers this reception: a dnmsg on the connection it came from. */
  #link(st: Station, ws: WebSocket, radio: StationRadio): GatewayLink {
    return {
      transport: 'basics-station',
      send: (d: LinkDownlink) => {
        if (ws.readyState !== ws.OPEN || st.ws !== ws) return { ok: false, reason: 'station connection closed since the uplink' }
        if (!d.rx1 && !d.rx2) return { ok: false, reason: 'no receive window' }
        this.#diid = this.#diid >= Number.MAX_SAFE_INTEGER ? 1 : this.#diid + 1
        const diid = this.#diid
        const text = buildDnmsg({
          // The station reports dntxed only for a non-zero DevEui.
          devEui: d.devEui ?? '0101010101010101',
          diid,
          pdu: d.payload,
          rxDelayS: d.rx1DelayS,
          ...(d.rx1 ? { rx1: d.rx1 } : {}),
          ...(d.rx2 ? { rx2: d.rx2 } : {}),
          priority: d.kind === 'join-accept' ? 2 : 1,
          xtime: radio.xtime,
          rctx: radio.rctx,
          nowMs: Date.now(),
        })
        const now = Date.now()
        for (const [k, p] of st.pending) if (p.expires <= now) st.pending.delete(k)
        st.pending.set(diid, { kind: d.kind, deviceId: d.deviceId, expires: now + PENDING_MS })
        ws.send(text)
        st.tx++
        this.#m.downlinks.inc({ event: 'dnmsg' })
        return { ok: true }
      },
    }
  }

  #keepalive(): void {
    for (const s of this.#stations.values()) {
      const ws = s.ws
      if (!ws) continue
      if (!s.alive) {
        this.#reject(s, 'station-keepalive-timeout')
        ws.terminate()
        continue
      }
      s.alive = false
      try {
        ws.ping()
      } catch {
        // closing
      }
    }
  }

  // ------------------------------------------------------------------ status

  status(): Record<string, unknown>[] {
    const now = Date.now()
    return [...this.#stations.values()].map((s) => ({
      gatewayEui: s.eui,
      connected: s.ws !== undefined,
      remoteAddress: s.remote,
      connectedAtMs: s.connectedAtMs ?? null,
      lastSeenMs: s.lastSeenMs,
      lastSeenAgoS: Math.round((now - s.lastSeenMs) / 1000),
      version: s.version ?? null,
      routerConfigs: s.routerConfigs,
      rx: s.rx,
      tx: s.tx,
      txConfirmed: s.txConfirmed,
      txUnknownConfirmations: s.txMissing,
      propdf: s.propdf,
      timesyncs: s.timesyncs,
      rejected: s.rejected,
      connections: s.connections,
    }))
  }
}
