// Relay to upstream LoRaWAN network servers over the Semtech UDP protocol
// (Lora-net/packet_forwarder PROTOCOL.TXT §3, §5). Every PUSH_DATA and
// PULL_DATA a forwarder sends is also sent, byte for byte, to each upstream,
// from one UDP socket per forwarder EUI, so the upstream sees each forwarder as
// its own gateway with its own address. An upstream's PULL_RESP is sent back,
// byte for byte, to the forwarder's PULL_DATA address; the forwarder's TX_ACK
// for that token goes back to the upstream that sent it. The upstream's
// PUSH_ACK/PULL_ACK are consumed here (the forwarder was acknowledged locally).
// Sending is fire and forget: an upstream that is down costs a counted error,
// never a delay of local handling.

import dgram from 'node:dgram'
import { isIPv6 } from 'node:net'
import { parseDatagram } from './semtech-udp.ts'

export interface Upstream {
  readonly host: string
  readonly port: number
  readonly label: string
}

/** Per-upstream counters, for status and /metrics. */
export interface UpstreamStats {
  pushSent: number
  pullSent: number
  txAckSent: number
  sendErrors: number
  pushAcks: number
  pullAcks: number
  downlinks: number
  downlinksDropped: number
  rejected: number
  lastAckMs: number | undefined
}

export interface RelayOptions {
  readonly upstreams: readonly Upstream[]
  readonly maxForwarders: number
  /** Send an upstream's PULL_RESP to the forwarder; false when the forwarder has no known downlink address. */
  readonly sendToForwarder: (gatewayEui: string, datagram: Uint8Array) => boolean
  readonly onEvent?: (upstream: string, event: 'push' | 'pull' | 'tx_ack' | 'downlink' | 'downlink_dropped' | 'ack' | 'send_error' | 'rejected' | 'no_socket') => void
}

/** Parse "HOST:PORT" ("[v6]:PORT" too). */
export function parseUpstream(s: string): Upstream | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(s)
  if (!m) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? m[2]) as string, port, label: s }
}

const TOKEN_TTL_MS = 30_000

export class Relay {
  readonly #o: RelayOptions
  readonly #sockets = new Map<string, dgram.Socket>()
  /** `${eui}:${token}` → upstream index and expiry, for TX_ACKs. */
  readonly #tokens = new Map<string, { upstream: number; expires: number }>()
  readonly stats: UpstreamStats[]
  #closed = false
  #noSocket = 0

  constructor(o: RelayOptions) {
    this.#o = o
    this.stats = o.upstreams.map(() => ({
      pushSent: 0,
      pullSent: 0,
      txAckSent: 0,
      sendErrors: 0,
      pushAcks: 0,
      pullAcks: 0,
      downlinks: 0,
      downlinksDropped: 0,
      rejected: 0,
      lastAckMs: undefined,
    }))
  }

  get enabled(): boolean {
    return this.#o.upstreams.length > 0
  }

  get forwarders(): number {
    return this.#sockets.size
  }

  get forwardersRefused(): number {
    return this.#noSocket
  }

  /** Whether a TX_ACK token belongs to a downlink relayed from an upstream. */
  ownsToken(gatewayEui: string, token: number): boolean {
    const e = this.#tokens.get(`${gatewayEui}:${token}`)
    return e !== undefined && e.expires > Date.now()
  }

  #socket(eui: string): dgram.Socket | undefined {
    let s = this.#sockets.get(eui)
    if (s) return s
    if (this.#closed) return undefined
    if (this.#sockets.size >= this.#o.maxForwarders) {
      this.#noSocket++
      for (const u of this.#o.upstreams) this.#o.onEvent?.(u.label, 'no_socket')
      return undefined
    }
    const v6 = this.#o.upstreams.some((u) => isIPv6(u.host))
    s = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4' })
    s.on('error', () => {
      // Bind or ICMP errors surface per send; a socket-level error closes this socket, the next datagram opens another.
      this.#sockets.delete(eui)
      try {
        s?.close()
      } catch {
        // already closed
      }
    })
    s.on('message', (msg, rinfo) => this.#fromUpstream(eui, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo))
    s.unref()
    this.#sockets.set(eui, s)
    return s
  }

  #send(eui: string, datagram: Uint8Array, kind: 'push' | 'pull' | 'tx_ack', only?: number): void {
    const s = this.#socket(eui)
    if (!s) return
    this.#o.upstreams.forEach((u, i) => {
      if (only !== undefined && only !== i) return
      const st = this.stats[i] as UpstreamStats
      if (kind === 'push') st.pushSent++
      else if (kind === 'pull') st.pullSent++
      else st.txAckSent++
      this.#o.onEvent?.(u.label, kind)
      s.send(datagram, u.port, u.host, (err) => {
        if (err) {
          st.sendErrors++
          this.#o.onEvent?.(u.label, 'send_error')
        }
      })
    })
  }

  /** Forward a PUSH_DATA datagram as received. */
  push(gatewayEui: string, datagram: Uint8Array): void {
    if (this.enabled) this.#send(gatewayEui, datagram, 'push')
  }

  /** Forward a PULL_DATA keepalive as received. */
  pull(gatewayEui: string, datagram: Uint8Array): void {
    if (this.enabled) this.#send(gatewayEui, datagram, 'pull')
  }

  /** Forward a TX_ACK to the upstream whose PULL_RESP it answers; false when the token is not an upstream's. */
  txAck(gatewayEui: string, token: number, datagram: Uint8Array): boolean {
    const key = `${gatewayEui}:${token}`
    const e = this.#tokens.get(key)
    if (!e || e.expires <= Date.now()) return false
    this.#tokens.delete(key)
    this.#send(gatewayEui, datagram, 'tx_ack', e.upstream)
    return true
  }

  #upstreamOf(rinfo: dgram.RemoteInfo): number {
    const exact = this.#o.upstreams.findIndex((u) => u.port === rinfo.port && u.host === rinfo.address)
    if (exact >= 0) return exact
    // A host name: match by port when only one upstream uses it.
    const byPort = this.#o.upstreams.map((u, i) => [u, i] as const).filter(([u]) => u.port === rinfo.port)
    return byPort.length === 1 ? (byPort[0]?.[1] ?? -1) : -1
  }

  #fromUpstream(eui: string, msg: Uint8Array, rinfo: dgram.RemoteInfo): void {
    const i = this.#upstreamOf(rinfo)
    if (i < 0) return // not one of our upstreams: ignore (no counters keyed by strangers)
    const u = this.#o.upstreams[i] as Upstream
    const st = this.stats[i] as UpstreamStats
    const p = parseDatagram(msg)
    if (!p.ok) {
      st.rejected++
      this.#o.onEvent?.(u.label, 'rejected')
      return
    }
    switch (p.packet.type) {
      case 'PUSH_ACK':
        st.pushAcks++
        st.lastAckMs = Date.now()
        this.#o.onEvent?.(u.label, 'ack')
        return
      case 'PULL_ACK':
        st.pullAcks++
        st.lastAckMs = Date.now()
        this.#o.onEvent?.(u.label, 'ack')
        return
      case 'PULL_RESP': {
        const now = Date.now()
        if (this.#tokens.size > 4096) for (const [k, v] of this.#tokens) if (v.expires <= now) this.#tokens.delete(k)
        this.#tokens.set(`${eui}:${p.packet.token}`, { upstream: i, expires: now + TOKEN_TTL_MS })
        if (this.#o.sendToForwarder(eui, msg)) {
          st.downlinks++
          this.#o.onEvent?.(u.label, 'downlink')
        } else {
          st.downlinksDropped++
          this.#o.onEvent?.(u.label, 'downlink_dropped')
        }
        return
      }
      default:
        st.rejected++
        this.#o.onEvent?.(u.label, 'rejected')
    }
  }

  close(): void {
    this.#closed = true
    for (const s of this.#sockets.values()) {
      try {
        s.close()
      } catch {
        // already closed
      }
    }
    this.#sockets.clear()
  }
}
