// Announcing the gateway on the local network: multicast DNS (RFC 6762) with
// DNS-Based Service Discovery (RFC 6763), over the multicast-dns package
// (docs/discovery.md).
//
// Records, for each service type T (`_fieldproof._tcp`, `_mqtt._tcp`) and
// the instance I (the gateway name) on host H (`<name>.local`):
//   _services._dns-sd._udp.local PTR T.local          (RFC 6763 §9)
//   T.local   PTR I.T.local                           (§4.1)
//   I.T.local SRV 0 0 <port> H.local                  (§5, RFC 2782)
//   I.T.local TXT key=value ...                       (§6)
//   H.local   A <each IPv4 address>
// TTLs per RFC 6762 §10: 120 s for records naming a host (SRV, A), 4500 s for
// the others; unique records carry the cache-flush bit (§10.2).
// Start: two unsolicited announcements one second apart (§8.3). Queries:
// answered by multicast, or by unicast to the sender for a QU question (§5.4)
// and for a legacy query from a port other than 5353 (§6.7: same id,
// question echoed, TTL ≤ 10 s, no cache-flush bit). Known answers listed in
// a query are not repeated (§7.1). Stop: a goodbye, every record with TTL 0
// (§10.1). Not done: probing and conflict resolution (§8.1, §9).

import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import type { RemoteInfo } from 'node:dgram'
import type { Logger } from 'pino'
import makeMdns from 'multicast-dns'
import type { Answer, Packet, Question } from 'dns-packet'

/** The mDNS port and group (RFC 6762 §3). */
export const MDNS_PORT = 5353
export const MDNS_GROUP = '224.0.0.251'
export const SERVICES_META = '_services._dns-sd._udp.local'

/** One service to announce. */
export interface MdnsService {
  /** Service type with protocol, e.g. `_fieldproof._tcp`. */
  readonly type: string
  readonly port: number
  /** TXT key/value pairs (RFC 6763 §6.3: key=value strings). */
  readonly txt?: Readonly<Record<string, string>>
}

export interface MdnsAnnouncerOptions {
  /** Instance name, e.g. the gateway name. Dots become "-" (one DNS label). */
  readonly instance: string
  /** Host label; the host is `<host>.local`. Characters outside [a-z0-9-] become "-". */
  readonly host: string
  readonly services: readonly MdnsService[]
  /** '' (every non-loopback interface), an interface name, or one of its IPv4 addresses. */
  readonly interface: string
  readonly log: Logger
  /** UDP port (tests may use another; devices always 5353). */
  readonly port?: number
  /** Delays of the unsolicited announcements, ms from start (default [0, 1000]). */
  readonly announceAtMs?: readonly number[]
  /** How interfaces are listed (default os.networkInterfaces). */
  readonly interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>
}

/** Which addresses to announce and which interface to join, for an `interface` setting. */
export type InterfaceChoice = { readonly ok: true; readonly addresses: string[]; readonly join?: string } | { readonly ok: false; readonly reason: string }

/** Resolve the [discovery] interface setting against the machine's interfaces. */
export function chooseInterface(spec: string, ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>): InterfaceChoice {
  const v4 = (list: NetworkInterfaceInfo[] | undefined) => (list ?? []).filter((a) => a.family === 'IPv4')
  if (spec === '') {
    const addresses = Object.values(ifaces).flatMap((l) => v4(l).filter((a) => !a.internal).map((a) => a.address))
    if (addresses.length === 0) return { ok: false, reason: 'no network interface has an IPv4 address yet' }
    return { ok: true, addresses }
  }
  for (const [name, list] of Object.entries(ifaces)) {
    const mine = v4(list)
    if (name === spec && mine[0]) return { ok: true, addresses: mine.map((a) => a.address), join: mine[0].address }
    const hit = mine.find((a) => a.address === spec)
    if (hit) return { ok: true, addresses: [hit.address], join: hit.address }
  }
  return { ok: false, reason: `interface "${spec}" has no IPv4 address (yet)` }
}

/** Every record kind but EDNS's OPT pseudo-record. */
export type MdnsRecord = Exclude<Answer, { type: 'OPT' }>

const label = (s: string, re: RegExp) => s.replace(re, '-').slice(0, 63) || 'fieldproof'
const lower = (s: string) => s.toLowerCase()

/** The records of the announced services, for the given addresses and TTL scale (0 = goodbye). */
export function serviceRecords(o: Pick<MdnsAnnouncerOptions, 'instance' | 'host' | 'services'>, addresses: readonly string[], goodbye = false): MdnsRecord[] {
  const instance = label(o.instance, /\./g)
  const host = `${label(o.host.toLowerCase(), /[^a-z0-9-]/g)}.local`
  const ttl = (t: number) => (goodbye ? 0 : t)
  const out: MdnsRecord[] = []
  for (const s of o.services) {
    const type = `${s.type}.local`
    const full = `${instance}.${type}`
    out.push({ name: SERVICES_META, type: 'PTR', class: 'IN', ttl: ttl(4500), data: type })
    out.push({ name: type, type: 'PTR', class: 'IN', ttl: ttl(4500), data: full })
    out.push({ name: full, type: 'SRV', class: 'IN', flush: true, ttl: ttl(120), data: { priority: 0, weight: 0, port: s.port, target: host } })
    const txt = Object.entries(s.txt ?? {}).map(([k, v]) => `${k}=${v}`)
    out.push({ name: full, type: 'TXT', class: 'IN', flush: true, ttl: ttl(4500), data: txt.length > 0 ? txt : [''] })
  }
  for (const a of addresses) out.push({ name: host, type: 'A', class: 'IN', flush: true, ttl: ttl(120), data: a })
  return out
}

/** A question's class with the QU bit (RFC 6762 §5.4) decoded; dns-packet leaves it as UNKNOWN_<n>. */
export function questionClass(q: Question): { cls: string; unicast: boolean } {
  const m = /^UNKNOWN_(\d+)$/.exec(String(q.class ?? 'IN'))
  if (!m) return { cls: String(q.class ?? 'IN'), unicast: false }
  const n = Number(m[1])
  const base = n & 0x7fff
  return { cls: base === 1 ? 'IN' : base === 255 ? 'ANY' : `UNKNOWN_${base}`, unicast: (n & 0x8000) !== 0 }
}

const sameData = (a: MdnsRecord, b: MdnsRecord) => JSON.stringify(a.data) === JSON.stringify(b.data)

/**
 * Answers to `questions` among `records`, with the additional records
 * RFC 6763 §12 recommends, minus the known answers (§7.1).
 */
export function answersFor(records: readonly MdnsRecord[], questions: readonly Question[], known: readonly MdnsRecord[] = []): { answers: MdnsRecord[]; additionals: MdnsRecord[] } {
  const answers: MdnsRecord[] = []
  for (const q of questions) {
    const { cls } = questionClass(q)
    if (cls !== 'IN' && cls !== 'ANY') continue
    for (const r of records) {
      if (lower(r.name) !== lower(q.name)) continue
      if (String(q.type) !== 'ANY' && q.type !== r.type) continue
      const k = known.find((a) => lower(a.name) === lower(r.name) && a.type === r.type && sameData(a, r))
      if (k && typeof k.ttl === 'number' && typeof r.ttl === 'number' && k.ttl >= r.ttl / 2) continue
      if (!answers.includes(r)) answers.push(r)
    }
  }
  const additionals: MdnsRecord[] = []
  const add = (pred: (r: MdnsRecord) => boolean) => {
    for (const r of records) if (pred(r) && !answers.includes(r) && !additionals.includes(r)) additionals.push(r)
  }
  for (const a of [...answers]) {
    if (a.type === 'PTR' && lower(a.name) !== SERVICES_META) {
      const target = lower(a.data as string)
      add((r) => lower(r.name) === target && (r.type === 'SRV' || r.type === 'TXT'))
    }
  }
  for (const a of [...answers, ...additionals]) {
    if (a.type === 'SRV') {
      const host = lower((a.data as { target: string }).target)
      add((r) => r.type === 'A' && lower(r.name) === host)
    }
  }
  return { answers, additionals }
}

type Mdns = ReturnType<typeof makeMdns>

/**
 * Announces services and answers queries until stopped.
 *
 * @example
 * const mdns = new MdnsAnnouncer({ instance: 'fieldproof', host: 'fieldproof', interface: '', log,
 *   services: [{ type: '_fieldproof._tcp', port: 8080, txt: { path: '/api/v1' } }] })
 * await mdns.start()
 * // ...
 * await mdns.stop() // goodbye: TTL 0
 */
export class MdnsAnnouncer {
  readonly #o: MdnsAnnouncerOptions
  #mdns: Mdns | undefined
  #timers: NodeJS.Timeout[] = []
  #retry: NodeJS.Timeout | undefined
  #addresses: string[] = []
  #stopped = false
  #answered = 0

  constructor(o: MdnsAnnouncerOptions) {
    this.#o = o
  }

  status(): Record<string, unknown> {
    return { running: this.#mdns !== undefined, addresses: this.#addresses, services: this.#o.services.map((s) => `${s.type}:${s.port}`), answered: this.#answered }
  }

  /** Open the socket and announce; when the interface has no address yet, try again every 5 s. */
  async start(): Promise<void> {
    if (this.#stopped) return
    const choice = chooseInterface(this.#o.interface, (this.#o.interfaces ?? networkInterfaces)())
    if (!choice.ok) {
      this.#o.log.warn({ reason: choice.reason }, 'mDNS: waiting for a network address')
      this.#retry = setTimeout(() => void this.start(), 5000)
      this.#retry.unref()
      return
    }
    this.#addresses = choice.addresses
    const mdns = makeMdns({ port: this.#o.port ?? MDNS_PORT, bind: '0.0.0.0', reuseAddr: true, ...(choice.join !== undefined ? { interface: choice.join } : {}) })
    this.#mdns = mdns
    mdns.on('warning', (err: Error) => this.#o.log.debug({ err }, 'mDNS warning'))
    mdns.on('query', (q: Packet, rinfo: RemoteInfo) => this.#onQuery(q, rinfo))
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', () => resolve())
      mdns.once('error', (err: Error) => reject(err))
    }).catch((err: unknown) => {
      this.#mdns = undefined
      mdns.destroy()
      throw err
    })
    mdns.on('error', (err: Error) => this.#o.log.warn({ err }, 'mDNS socket error'))
    for (const at of this.#o.announceAtMs ?? [0, 1000]) {
      const timer = setTimeout(() => this.#announce(), at)
      timer.unref()
      this.#timers.push(timer)
    }
    this.#o.log.info({ addresses: this.#addresses, services: this.#o.services.map((s) => `${s.type}:${s.port}`) }, 'mDNS: announcing')
  }

  /** Send the goodbye (TTL 0) and close. */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#retry) clearTimeout(this.#retry)
    for (const t of this.#timers) clearTimeout(t)
    const mdns = this.#mdns
    this.#mdns = undefined
    if (!mdns) return
    await new Promise<void>((resolve) => mdns.respond({ answers: serviceRecords(this.#o, this.#addresses, true) }, () => resolve()))
    await new Promise<void>((resolve) => mdns.destroy(() => resolve()))
  }

  #records(): MdnsRecord[] {
    // Addresses may change (DHCP renewal, WiFi joining later): read them again for every answer.
    const choice = chooseInterface(this.#o.interface, (this.#o.interfaces ?? networkInterfaces)())
    if (choice.ok) this.#addresses = choice.addresses
    return serviceRecords(this.#o, this.#addresses)
  }

  #announce(): void {
    this.#mdns?.respond({ answers: this.#records() })
  }

  #onQuery(q: Packet, rinfo: RemoteInfo): void {
    const mdns = this.#mdns
    const questions = q.questions ?? []
    if (!mdns || questions.length === 0) return
    const { answers, additionals } = answersFor(this.#records(), questions, (q.answers ?? []) as MdnsRecord[])
    if (answers.length === 0) return
    this.#answered++
    const port = this.#o.port ?? MDNS_PORT
    if (rinfo.port !== port) {
      // Legacy unicast (RFC 6762 §6.7): a plain DNS resolver asking on an ephemeral port.
      const legacy = (r: MdnsRecord): Answer => ({ ...r, flush: false, ttl: Math.min(r.ttl ?? 10, 10) }) as MdnsRecord
      mdns.respond({ id: q.id ?? 0, questions, answers: answers.map(legacy), additionals: additionals.map(legacy) }, { port: rinfo.port, address: rinfo.address })
      return
    }
    const unicast = questions.every((x) => questionClass(x).unicast)
    mdns.respond({ answers, additionals }, unicast ? { port: rinfo.port, address: rinfo.address } : undefined)
  }
}

/**
 * The services a gateway announces: `_fieldproof._tcp` on the HTTP API port
 * (TXT address, version, path) and, when [sources.mqtt] is enabled with a
 * fixed port, `_mqtt._tcp` on the broker's port. The MQTT section is read as
 * plain data: discovery does not depend on the MQTT source.
 */
export function gatewayServices(config: { readonly sources: object }, apiPort: number, address: string, version: string): MdnsService[] {
  const services: MdnsService[] = [{ type: '_fieldproof._tcp', port: apiPort, txt: { address, version, path: '/api/v1' } }]
  const mqtt = (config.sources as Record<string, unknown>)['mqtt'] as { enabled?: unknown; listen?: unknown } | undefined
  if (mqtt?.enabled === true && typeof mqtt.listen === 'string') {
    const port = Number(/:(\d{1,5})$/.exec(mqtt.listen)?.[1] ?? 0)
    // Port 0 (the kernel's pick) is not known here; such a broker is not announced.
    if (port > 0 && port <= 65535) services.push({ type: '_mqtt._tcp', port })
  }
  return services
}
