// A simulated Semtech UDP packet forwarder (Lora-net/packet_forwarder
// PROTOCOL.TXT, protocol v2) for tests and benchmarks: PUSH_DATA with rxpk
// and stat, PULL_DATA keepalives, PULL_RESP reception, TX_ACK replies. It
// speaks the real protocol over a real UDP socket on 127.0.0.1.

import dgram from 'node:dgram'
import { once } from 'node:events'
import { buildDatagram, parseDatagram, type Rxpk, type SemtechPacket, type Stat, type TxAckError, type Txpk } from '../../gateway/src/sources/lorawan/semtech-udp.ts'

export interface ReceivedPullResp {
  readonly token: number
  readonly txpk: Txpk
  readonly bytes: Uint8Array
  readonly atMs: number
}

/** An rxpk for a PHYPayload with sensible EU868 defaults. */
export function rxpkFor(data: Uint8Array, over: Partial<Rxpk> = {}): Rxpk {
  return {
    tmst: 1_000_000,
    freqHz: 868_100_000,
    chan: 0,
    rfch: 0,
    stat: 1,
    modu: 'LORA',
    datr: 'SF7BW125',
    codr: '4/5',
    rssi: -57,
    lsnr: 7.5,
    size: data.length,
    data,
    ...over,
  }
}

export class PacketForwarder {
  readonly eui: string
  readonly socket: dgram.Socket
  readonly target: { host: string; port: number }
  readonly pullResps: ReceivedPullResp[] = []
  readonly raw: Uint8Array[] = []
  readonly #acks = new Map<string, () => void>()
  #token = 1
  #waiters: { pred: (p: ReceivedPullResp) => boolean; resolve: (p: ReceivedPullResp) => void }[] = []

  private constructor(eui: string, socket: dgram.Socket, target: { host: string; port: number }) {
    this.eui = eui
    this.socket = socket
    this.target = target
    socket.on('message', (msg) => {
      const bytes = new Uint8Array(msg)
      this.raw.push(bytes)
      const p = parseDatagram(bytes)
      if (!p.ok) return
      const pk = p.packet
      if (pk.type === 'PUSH_ACK' || pk.type === 'PULL_ACK') {
        const k = `${pk.type}:${pk.token}`
        this.#acks.get(k)?.()
        this.#acks.delete(k)
      } else if (pk.type === 'PULL_RESP') {
        const r = { token: pk.token, txpk: pk.txpk, bytes, atMs: performance.now() }
        this.pullResps.push(r)
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.pred(r)) return true
          w.resolve(r)
          return false
        })
      }
    })
  }

  static async open(eui: string, target: { host: string; port: number }): Promise<PacketForwarder> {
    const s = dgram.createSocket('udp4')
    s.bind(0, '127.0.0.1')
    await once(s, 'listening')
    return new PacketForwarder(eui, s, target)
  }

  get port(): number {
    return this.socket.address().port
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.send(bytes, this.target.port, this.target.host)
  }

  #send(p: SemtechPacket, ackType: 'PUSH_ACK' | 'PULL_ACK' | undefined, timeoutMs: number): Promise<boolean> {
    const b = buildDatagram(p)
    if (!b.ok) throw new Error(b.reason)
    const acked = ackType
      ? new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            this.#acks.delete(`${ackType}:${p.token}`)
            resolve(false)
          }, timeoutMs)
          this.#acks.set(`${ackType}:${p.token}`, () => {
            clearTimeout(timer)
            resolve(true)
          })
        })
      : Promise.resolve(true)
    this.sendRaw(b.bytes)
    return acked
  }

  /** PUSH_DATA; resolves true when PUSH_ACK arrives (false after timeoutMs). */
  push(rxpk: readonly Rxpk[], stat?: Stat, timeoutMs = 1000): Promise<boolean> {
    const token = this.#token++ & 0xffff
    return this.#send({ type: 'PUSH_DATA', version: 2, token, gatewayEui: this.eui, rxpk, ...(stat ? { stat } : {}) }, 'PUSH_ACK', timeoutMs)
  }

  /** PULL_DATA; resolves true when PULL_ACK arrives. */
  pull(timeoutMs = 1000): Promise<boolean> {
    const token = this.#token++ & 0xffff
    return this.#send({ type: 'PULL_DATA', version: 2, token, gatewayEui: this.eui }, 'PULL_ACK', timeoutMs)
  }

  txAck(token: number, error: TxAckError = 'NONE'): void {
    void this.#send({ type: 'TX_ACK', version: 2, token, gatewayEui: this.eui, ack: { error } }, undefined, 0)
  }

  /** The next PULL_RESP (or one already received and not yet taken) matching `pred`. */
  nextPullResp(timeoutMs = 8000, pred: (p: ReceivedPullResp) => boolean = () => true): Promise<ReceivedPullResp> {
    const have = this.pullResps.find(pred)
    if (have) {
      this.pullResps.splice(this.pullResps.indexOf(have), 1)
      return Promise.resolve(have)
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done)
        reject(new Error(`no PULL_RESP within ${timeoutMs} ms`))
      }, timeoutMs)
      const done = (p: ReceivedPullResp): void => {
        clearTimeout(timer)
        this.pullResps.splice(this.pullResps.indexOf(p), 1)
        resolve(p)
      }
      this.#waiters.push({ pred, resolve: done })
    })
  }

  close(): void {
    this.socket.close()
  }
}
