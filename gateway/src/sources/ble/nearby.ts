// The discovery view: decodable sensors heard recently, with their latest
// values, so the owner can pick which to register. Memory only, bounded
// (oldest entry evicted first) and expiring; phones and other undecodable
// advertisers never get here, and nothing here is stored or logged.

import type { Metric } from '../../core/types.ts'
import type { NearbyInfo } from './policy.ts'

/** One nearby sensor as GET /api/v1/ble/nearby shows it. */
export interface NearbyDevice {
  readonly mac: string
  /** Decoder id: bthome, ruuvi, atc, mibeacon. */
  readonly format: string
  readonly name?: string
  readonly rssi?: number
  readonly lastSeenMs: number
  /** Advertisements heard since it entered the view. */
  readonly count: number
  readonly metrics: readonly Metric[]
  readonly encrypted: boolean
  /** Encrypted and no bind key registered: add it with --bindkey. */
  readonly needsKey: boolean
  /** Its device id when registered. */
  readonly registered?: string
  /** Becomes readings (registered, or its format is in accept_all). */
  readonly accepted: boolean
  readonly error?: string
}

/** The document served by GET /api/v1/ble/nearby and printed by `fieldproof devices scan ble`. */
export interface BleNearbyView {
  readonly adapter: string
  readonly state: string
  readonly ttlSeconds: number
  readonly devices: readonly NearbyDevice[]
}

interface Entry {
  mac: string
  format: string
  name: string | undefined
  rssi: number | undefined
  lastSeenMs: number
  count: number
  info: NearbyInfo
  registered: string | undefined
  accepted: boolean
}

export class NearbyTable {
  readonly #max: number
  readonly #ttlMs: number
  readonly #entries = new Map<string, Entry>()

  constructor(o: { max: number; ttlMs: number }) {
    this.#max = Math.max(1, o.max)
    this.#ttlMs = o.ttlMs
  }

  get size(): number {
    return this.#entries.size
  }

  update(u: { mac: string; info: NearbyInfo; name: string | undefined; rssi: number | undefined; nowMs: number; registered: string | undefined; accepted: boolean }): void {
    const prev = this.#entries.get(u.mac)
    if (prev) this.#entries.delete(u.mac)
    // A failed decode (e.g. a bad MIC) does not hide the last good values.
    const info = !u.info.error || !prev || prev.info.error ? u.info : { ...prev.info, error: u.info.error }
    this.#entries.set(u.mac, {
      mac: u.mac,
      format: u.info.format,
      name: u.name ?? prev?.name,
      rssi: u.rssi ?? prev?.rssi,
      lastSeenMs: u.nowMs,
      count: (prev?.count ?? 0) + 1,
      info,
      registered: u.registered,
      accepted: u.accepted,
    })
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value
      if (oldest === undefined) break
      this.#entries.delete(oldest)
    }
  }

  remove(mac: string): void {
    this.#entries.delete(mac)
  }

  clear(): void {
    this.#entries.clear()
  }

  /** Drop entries not heard for the TTL. Entries are in last-seen order, so this stops at the first fresh one. */
  expire(nowMs: number): void {
    for (const [mac, e] of this.#entries) {
      if (nowMs - e.lastSeenMs < this.#ttlMs) break
      this.#entries.delete(mac)
    }
  }

  list(nowMs: number, wallOffsetMs: number): NearbyDevice[] {
    this.expire(nowMs)
    const out: NearbyDevice[] = []
    for (const e of this.#entries.values()) {
      out.push({
        mac: e.mac,
        format: e.format,
        ...(e.name !== undefined ? { name: e.name } : {}),
        ...(e.rssi !== undefined ? { rssi: e.rssi } : {}),
        lastSeenMs: Math.round(e.lastSeenMs + wallOffsetMs),
        count: e.count,
        metrics: e.info.metrics,
        encrypted: e.info.encrypted,
        needsKey: e.info.needsKey,
        ...(e.registered !== undefined ? { registered: e.registered } : {}),
        accepted: e.accepted,
        ...(e.info.error !== undefined ? { error: e.info.error } : {}),
      })
    }
    return out.sort((a, b) => (b.rssi ?? -999) - (a.rssi ?? -999) || a.mac.localeCompare(b.mac))
  }
}
