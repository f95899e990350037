// Device sessions of the LoRaWAN server ("session" trust mode): the devices
// registered with this gateway (store devices table, kind 'lorawan'), their
// keys and their counters.
//
//   devices.config  LorawanDeviceConfig  (EUIs, activation, version, codec; no keys)
//   devices.secret  LorawanDeviceSecret  (AppKey; NwkSKey/AppSKey of the current session)
//   devices.state   LorawanDeviceState   (DevAddr, FCntUp, FCntDown, DevNonce history,
//                                         JoinNonce, last uplink)
//
// Persistence rules (LoRaWAN L2 1.0.4 §4.3.1.5, §6.2; reliability plan T24):
// - an uplink's FCntUp is written (fsynced) before its reading is handed to
//   the pipeline, so a crash can lose an unacknowledged reading but never
//   reopen a replay window;
// - a join's DevNonce, JoinNonce, DevAddr, session keys and reset counters are
//   written in one transaction before the join-accept is sent;
// - FCntDown is written before the downlink that uses it is sent.
// Writes of many devices in the same tick share one transaction (StateWriter).
// Keys never leave this module except as AesKey values for the crypto.

import { aesKey, bytesToHex, type AesKey } from '../../core/lorawan/crypto.ts'
import { normalizeEui } from '../../core/lorawan/phy.ts'
import type { Store } from '../../store/store.ts'
import { CODEC_IDS, type CodecId, type DeviceCodec, type FieldMapping } from './codecs.ts'

export const LORAWAN_DEVICE_KIND = 'lorawan'
export const LORAWAN_VERSIONS = ['1.0.3', '1.0.4'] as const
export type LorawanVersion = (typeof LORAWAN_VERSIONS)[number]

/** devices.config of a LoRaWAN device (never holds key material). */
export interface LorawanDeviceConfig {
  readonly activation: 'otaa' | 'abp'
  readonly lorawanVersion: LorawanVersion
  /** OTAA: 16 hex digits, MSB first. */
  readonly devEui?: string
  readonly joinEui?: string
  /** ABP: 8 hex digits. */
  readonly devAddr?: string
  readonly codec: CodecId
  /** The JavaScript source of a 'js' codec. */
  readonly codecSource?: string
  /** Field path → metric, for 'js' codecs. */
  readonly fields?: Readonly<Record<string, FieldMapping>>
}

/** devices.secret: 32 hex digits each. */
export interface LorawanDeviceSecret {
  readonly appKey?: string
  readonly nwkSKey?: string
  readonly appSKey?: string
}

/** devices.state. */
export interface LorawanDeviceState {
  /** DevAddr of the current session (8 hex digits); ABP: from the config. */
  readonly devAddr?: string
  readonly fcntUp: number | null
  readonly fcntDown: number | null
  /** 1.0.3: DevNonces seen (a device joins rarely; bounded by 65536). */
  readonly usedDevNonces?: readonly number[]
  readonly lastDevNonce?: number | null
  readonly lastJoinNonce?: number | null
  readonly joinedAtMs?: number
  /** The last accepted uplink: its counter, MIC (hex) and whether its reading is durable. */
  readonly lastUp?: { readonly fcnt: number; readonly mic: string; readonly stored: boolean | 'unknown' }
}

/** A device in memory. Mutable counters; `secretText` is what the row holds, to notice outside changes. */
export interface Session {
  readonly id: string
  config: LorawanDeviceConfig
  codec: DeviceCodec
  appKey: AesKey | undefined
  nwkSKey: AesKey | undefined
  appSKey: AesKey | undefined
  devAddr: number | undefined
  fcntUp: number | null
  fcntDown: number | null
  usedDevNonces: number[]
  lastDevNonce: number | null
  lastJoinNonce: number | null
  joinedAtMs: number | undefined
  lastUp: { fcnt: number; mic: string; stored: boolean | 'unknown' } | undefined
  configText: string
  secretText: string | null
  /** Counters for status (since start). */
  accepted: number
  rejected: number
  lastSeenMs: number | undefined
  lastRssi: number | undefined
  lastLsnr: number | undefined
}

export type ParseDeviceResult = { readonly ok: true; readonly session: Session } | { readonly ok: false; readonly reason: string }

function obj(text: string | null): Record<string, unknown> | undefined {
  if (text === null) return undefined
  try {
    const v: unknown = JSON.parse(text)
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

const u32OrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : null)

/** Parse a DevAddr written as 8 hex digits. */
export function parseDevAddr(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined
  const c = s.replace(/^0x/i, '')
  return /^[0-9a-fA-F]{8}$/.test(c) ? parseInt(c, 16) >>> 0 : undefined
}

export function devAddrHex(a: number): string {
  return (a >>> 0).toString(16).padStart(8, '0')
}

/** Check a device config as the CLI writes it; the reason names the field. */
export function checkDeviceConfig(c: Record<string, unknown>): { ok: true; config: LorawanDeviceConfig } | { ok: false; reason: string } {
  const activation = c['activation']
  if (activation !== 'otaa' && activation !== 'abp') return { ok: false, reason: 'activation must be "otaa" or "abp"' }
  const v = c['lorawanVersion'] ?? '1.0.4'
  if (!(LORAWAN_VERSIONS as readonly unknown[]).includes(v)) return { ok: false, reason: 'lorawanVersion must be 1.0.3 or 1.0.4' }
  const codec = c['codec'] ?? 'raw'
  if (!(CODEC_IDS as readonly unknown[]).includes(codec)) return { ok: false, reason: `codec must be one of ${CODEC_IDS.join(', ')}` }
  if (codec === 'js' && (typeof c['codecSource'] !== 'string' || c['codecSource'].length === 0)) return { ok: false, reason: 'a js codec needs codecSource' }
  const out: Record<string, unknown> = { activation, lorawanVersion: v, codec }
  if (activation === 'otaa') {
    const devEui = normalizeEui(String(c['devEui'] ?? ''))
    const joinEui = normalizeEui(String(c['joinEui'] ?? '0000000000000000'))
    if (!devEui) return { ok: false, reason: 'devEui must be 16 hex digits' }
    if (!joinEui) return { ok: false, reason: 'joinEui must be 16 hex digits' }
    out['devEui'] = devEui
    out['joinEui'] = joinEui
  } else {
    const a = parseDevAddr(c['devAddr'])
    if (a === undefined) return { ok: false, reason: 'devAddr must be 8 hex digits' }
    out['devAddr'] = devAddrHex(a)
  }
  if (codec === 'js') out['codecSource'] = c['codecSource']
  const fields = c['fields']
  if (fields !== undefined) {
    if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) return { ok: false, reason: 'fields must be a table of { name, unit }' }
    const f: Record<string, FieldMapping> = {}
    for (const [k, m] of Object.entries(fields as Record<string, unknown>)) {
      if (m === null || typeof m !== 'object') return { ok: false, reason: `fields.${k} must be { name, unit }` }
      const name = (m as Record<string, unknown>)['name']
      const unit = (m as Record<string, unknown>)['unit']
      if (typeof name !== 'string' || (unit !== undefined && typeof unit !== 'string')) return { ok: false, reason: `fields.${k} must be { name, unit }` }
      f[k] = unit === undefined ? { name } : { name, unit }
    }
    out['fields'] = f
  }
  return { ok: true, config: out as unknown as LorawanDeviceConfig }
}

/** Build the in-memory session of a devices row. */
export function sessionFromRow(row: { id: string; config: string; secret: string | null; state: string }): ParseDeviceResult {
  const c = obj(row.config)
  if (!c) return { ok: false, reason: 'config is not a JSON object' }
  const checked = checkDeviceConfig(c)
  if (!checked.ok) return checked
  const config = checked.config
  const sec = obj(row.secret) ?? {}
  const st = obj(row.state) ?? {}
  const key = (k: string): AesKey | undefined => (typeof sec[k] === 'string' ? aesKey(sec[k]) : undefined)
  const appKey = key('appKey')
  const nwkSKey = key('nwkSKey')
  const appSKey = key('appSKey')
  if (config.activation === 'otaa' && !appKey) return { ok: false, reason: 'an OTAA device needs an AppKey' }
  if (config.activation === 'abp' && (!nwkSKey || !appSKey)) return { ok: false, reason: 'an ABP device needs NwkSKey and AppSKey' }
  const devAddr = config.activation === 'abp' ? parseDevAddr(config.devAddr) : parseDevAddr(st['devAddr'])
  const lu = st['lastUp'] as Record<string, unknown> | undefined
  const lastUp =
    lu && typeof lu === 'object' && u32OrNull(lu['fcnt']) !== null && typeof lu['mic'] === 'string'
      ? // After a restart the durability of the last uplink's reading is not known unless it was recorded.
        { fcnt: lu['fcnt'] as number, mic: lu['mic'], stored: lu['stored'] === true ? true : ('unknown' as const) }
      : undefined
  const used = Array.isArray(st['usedDevNonces']) ? (st['usedDevNonces'] as unknown[]).filter((n): n is number => Number.isInteger(n)) : []
  const intOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null)
  return {
    ok: true,
    session: {
      id: row.id,
      config,
      codec: { id: config.codec, ...(config.codecSource !== undefined ? { source: config.codecSource } : {}), ...(config.fields ? { fields: config.fields } : {}) },
      appKey,
      nwkSKey: devAddr === undefined ? undefined : nwkSKey,
      appSKey: devAddr === undefined ? undefined : appSKey,
      devAddr,
      fcntUp: u32OrNull(st['fcntUp']),
      fcntDown: u32OrNull(st['fcntDown']),
      usedDevNonces: used,
      lastDevNonce: intOrNull(st['lastDevNonce']),
      lastJoinNonce: intOrNull(st['lastJoinNonce']),
      joinedAtMs: typeof st['joinedAtMs'] === 'number' ? st['joinedAtMs'] : undefined,
      lastUp,
      configText: row.config,
      secretText: row.secret,
      accepted: 0,
      rejected: 0,
      lastSeenMs: undefined,
      lastRssi: undefined,
      lastLsnr: undefined,
    },
  }
}

/** The state JSON of a session. */
export function stateOf(s: Session): LorawanDeviceState {
  return {
    ...(s.devAddr !== undefined ? { devAddr: devAddrHex(s.devAddr) } : {}),
    fcntUp: s.fcntUp,
    fcntDown: s.fcntDown,
    ...(s.usedDevNonces.length > 0 ? { usedDevNonces: s.usedDevNonces } : {}),
    lastDevNonce: s.lastDevNonce,
    lastJoinNonce: s.lastJoinNonce,
    ...(s.joinedAtMs !== undefined ? { joinedAtMs: s.joinedAtMs } : {}),
    ...(s.lastUp ? { lastUp: s.lastUp } : {}),
  }
}

/** The secret JSON of a session. */
export function secretOf(s: Session): string {
  const h = (k: AesKey | undefined): string | undefined => (k ? bytesToHex(k) : undefined)
  return JSON.stringify({ appKey: h(s.appKey), nwkSKey: h(s.nwkSKey), appSKey: h(s.appSKey) })
}

interface PendingWrite {
  session: Session
  state: string
  secret?: string
  accepted: number
  rejected: number
  seenMs?: number
}

/**
 * Group-commits device state: every write requested in one tick goes into one
 * SQLite transaction (synchronous=FULL, so durable when the promise resolves).
 */
export class StateWriter {
  readonly #store: Store
  readonly #pending = new Map<string, PendingWrite>()
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = []
  #scheduled = false
  readonly #updateSecret: { run(secret: string, id: string): unknown }
  writes = 0
  transactions = 0

  constructor(store: Store) {
    this.#store = store
    this.#updateSecret = store.db.prepare<[string, string]>('UPDATE devices SET secret = ? WHERE id = ?')
  }

  /** Queue a write of the session's state (and secret); resolves once durable. */
  write(s: Session, u: { secret?: boolean; accepted?: number; rejected?: number; seenMs?: number } = {}): Promise<void> {
    const prev = this.#pending.get(s.id)
    const w: PendingWrite = {
      session: s,
      state: JSON.stringify(stateOf(s)),
      accepted: (prev?.accepted ?? 0) + (u.accepted ?? 0),
      rejected: (prev?.rejected ?? 0) + (u.rejected ?? 0),
      ...(u.secret || prev?.secret !== undefined ? { secret: u.secret ? secretOf(s) : (prev?.secret as string) } : {}),
      ...((u.seenMs ?? prev?.seenMs) !== undefined ? { seenMs: (u.seenMs ?? prev?.seenMs) as number } : {}),
    }
    this.#pending.set(s.id, w)
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }))
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.flush())
    }
    return p
  }

  /** Write what is queued now (synchronous). */
  flush(): void {
    this.#scheduled = false
    if (this.#pending.size === 0 && this.#waiters.length === 0) return
    const items = [...this.#pending]
    const waiters = this.#waiters
    this.#pending.clear()
    this.#waiters = []
    try {
      if (this.#store.closed) throw new Error('the store is closed')
      this.#store.db.transaction(() => {
        for (const [id, w] of items) {
          if (w.secret !== undefined) this.#updateSecret.run(w.secret, id)
          this.#store.touchDevice(id, { state: w.state, accepted: w.accepted, rejected: w.rejected, ...(w.seenMs !== undefined ? { seenMs: w.seenMs } : {}) })
        }
      })()
      // Only now does the row hold the new secret. Marking the session earlier would make a
      // registry refresh in between see a row "changed from outside" and reload it, losing
      // the join that is being committed.
      for (const [, w] of items) if (w.secret !== undefined) w.session.secretText = w.secret
      this.writes += items.length
      this.transactions++
    } catch (e) {
      for (const w of waiters) w.reject(e)
      return
    }
    for (const w of waiters) w.resolve()
  }
}

/** Index of sessions by id, DevEUI and DevAddr. */
export class SessionRegistry {
  readonly byId = new Map<string, Session>()
  readonly #byDevEui = new Map<string, Session[]>()
  readonly #byDevAddr = new Map<number, Session[]>()

  add(s: Session): void {
    this.remove(s.id)
    this.byId.set(s.id, s)
    if (s.config.devEui) push(this.#byDevEui, s.config.devEui, s)
    if (s.devAddr !== undefined) push(this.#byDevAddr, s.devAddr, s)
  }

  remove(id: string): void {
    const s = this.byId.get(id)
    if (!s) return
    this.byId.delete(id)
    if (s.config.devEui) pull(this.#byDevEui, s.config.devEui, s)
    if (s.devAddr !== undefined) pull(this.#byDevAddr, s.devAddr, s)
  }

  /** Move a session to a new DevAddr (after a join). */
  setDevAddr(s: Session, devAddr: number): void {
    if (s.devAddr !== undefined) pull(this.#byDevAddr, s.devAddr, s)
    s.devAddr = devAddr
    push(this.#byDevAddr, devAddr, s)
  }

  byDevEui(devEui: string, joinEui: string): Session | undefined {
    return this.#byDevEui.get(devEui)?.find((s) => s.config.joinEui === joinEui)
  }

  byDevAddr(devAddr: number): readonly Session[] {
    return this.#byDevAddr.get(devAddr) ?? []
  }

  devAddrInUse(devAddr: number): boolean {
    return (this.#byDevAddr.get(devAddr)?.length ?? 0) > 0
  }

  get size(): number {
    return this.byId.size
  }
}

function push<K>(m: Map<K, Session[]>, k: K, s: Session): void {
  const a = m.get(k)
  if (a) a.push(s)
  else m.set(k, [s])
}

function pull<K>(m: Map<K, Session[]>, k: K, s: Session): void {
  const a = m.get(k)
  if (!a) return
  const i = a.indexOf(s)
  if (i >= 0) a.splice(i, 1)
  if (a.length === 0) m.delete(k)
}
