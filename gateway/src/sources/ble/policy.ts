// What becomes a reading, per advertisement: owner control (allowlist by MAC
// or format switch), de-duplication, a minimum interval per device, and
// counter-based replay protection for encrypted formats. No I/O: the source
// feeds it advertisements and the clock, and persists what it returns.
//
// Replay policy (docs/ble.md; reliability plan §1.8 and T25): the reference
// BTHome receiver (Bluetooth-Devices/bthome-ble, parser.py
// _check_encryption_counter) accepts a counter below 100 after a higher one
// ("battery change") and keeps the counter in memory only. Here a counter at
// or below the last accepted one is always rejected; a drop to below 100 is
// reported as a counter reset (the owner confirms it with
// `fieldproof devices add ble --mac M --reset-counter`), and the last counter
// is written to the device row before the reading is handed to the store, so
// a restart cannot reopen the window.
// Counters: BTHome 32 bits (bthome.io/encryption), MiBeacon v4/v5 32 bits
// (extended counter << 8 | frame counter), pvvx encrypted 8 bits: with 256
// values it can only be checked in a window (RFC 1982 serial arithmetic,
// newer = 1..127 ahead), so it resists immediate replays, not long-delayed
// ones.

import type { Decoder, DecodeOptions, DecodeResult } from '../../core/decoder.ts'
import { safeDecode } from '../../core/decoder.ts'
import type { BleCcmScheme, Metric } from '../../core/types.ts'
import type { AdvertFrame } from './advert.ts'

/** A BLE device registered by the owner (devices table, kind 'ble'). */
export interface RegisteredBle {
  readonly id: string
  /** Lowercase, colon-separated. */
  readonly mac: string
  readonly name: string | null
  /** 32 hex digits, from the row's secret; never logged. */
  readonly bindkey?: string
  /** Per-device override of the minimum interval between stored readings. */
  readonly minIntervalMs?: number
  /** Set by `--reset-counter`: accept the next counter once, whatever the last one was. */
  readonly counterResetMs?: number
  /** The row's persisted state. */
  readonly state: BleDeviceState
}

/** Persisted per-device state (devices.state JSON). */
export interface BleDeviceState {
  /** Last accepted counter of an authenticated (encrypted) format. */
  readonly counter?: number
  readonly format?: string
  /** The counterResetMs already applied. */
  readonly resetApplied?: number
}

export interface PolicyOptions {
  /** Formats (decoder ids) whose unregistered devices still become readings. */
  readonly acceptAll: ReadonlySet<string>
  readonly minIntervalMs: number
  /** Identical bytes without a packet id/sequence/counter count as a repeat within this window. */
  readonly repeatWindowMs: number
  /** Most devices with runtime state (registered ones are always kept). */
  readonly maxTracked: number
  /** Decoders for a frame (the registry's decodersFor, without catch-all decoders). */
  readonly decodersFor: (frame: AdvertFrame) => readonly Decoder[]
}

/** Why an advertisement did not become a reading. */
export type DropResult =
  | 'ignored' // no decoder for any of its data (phones, beacons, passers-by) or not allowed
  | 'duplicate'
  | 'rate_limited'
  | 'replay'
  | 'counter_reset'
  | 'downgrade'
  | 'rejected' // a decoder refused an allowed device's data

/** Latest decoded data of a device, for the discovery view. */
export interface NearbyInfo {
  readonly format: string
  readonly metrics: readonly Metric[]
  readonly encrypted: boolean
  /** Encrypted and no bind key known: register it with --bindkey to read it. */
  readonly needsKey: boolean
  readonly error?: string
}

export type Decision =
  | { readonly kind: 'drop'; readonly result: DropResult; readonly deviceId?: string; readonly reason?: string; readonly nearby?: NearbyInfo }
  | {
      readonly kind: 'reading'
      readonly deviceId: string
      readonly registered: boolean
      readonly format: string
      readonly frame: AdvertFrame
      readonly metrics: readonly Metric[]
      readonly deviceTimeMs?: number
      /** BTHome encrypted: the counter for auth { kind: 'bthome-encryption' }. */
      readonly bthomeCounter?: number
      /** MiBeacon v4/v5 or pvvx encrypted, tag verified: scheme and counter for auth { kind: 'ble-aes-ccm' }. */
      readonly ccm?: { readonly scheme: BleCcmScheme; readonly counter: number }
      /** New persisted state to write BEFORE the reading is stored (counter advanced). */
      readonly persist?: BleDeviceState
      readonly nearby: NearbyInfo
    }

interface Runtime {
  lastId: string | undefined
  lastRaw: string | undefined
  lastStoredMs: number
  counter: number | undefined
  counterRaw: string | undefined
  resetApplied: number | undefined
}

/** Decoder id → auth scheme of its AES-CCM encrypted frames (BTHome has its own auth kind). */
const CCM_SCHEMES: ReadonlyMap<string, BleCcmScheme> = new Map([
  ['mibeacon', 'mibeacon'],
  ['atc', 'pvvx'],
])

const EVENT_METRICS = /^(button_event|dimmer_event|command_event)(_\d+)?$/

function counterBits(format: string): 8 | 32 {
  return format === 'atc' ? 8 : 32
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** Whether a decoded frame was authenticated with the device's key (and carries a replay counter). */
function authenticatedCounter(format: string, meta: Readonly<Record<string, unknown>> | undefined): number | undefined {
  if (!meta) return undefined
  const c = meta['counter']
  if (typeof c !== 'number') return undefined
  if (format === 'atc') return meta['format'] === 'pvvx-encrypted' ? c : undefined
  return meta['encrypted'] === true ? c : undefined
}

/** The id that marks repeats of one measurement: packet id, measurement sequence or counter. */
function measurementId(meta: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (!meta) return undefined
  for (const k of ['counter', 'packetId', 'sequence', 'frameCounter']) {
    const v = meta[k]
    if (typeof v === 'number') return `${k}:${v}`
  }
  return undefined
}

export class BlePolicy {
  readonly #o: PolicyOptions
  /** Registered devices by MAC. */
  #registered = new Map<string, RegisteredBle>()
  /** Runtime state by MAC; unregistered entries are evicted oldest first beyond maxTracked. */
  readonly #runtime = new Map<string, Runtime>()

  constructor(o: PolicyOptions) {
    this.#o = o
  }

  get trackedDevices(): number {
    return this.#runtime.size
  }

  get registeredCount(): number {
    return this.#registered.size
  }

  registered(mac: string): RegisteredBle | undefined {
    return this.#registered.get(mac)
  }

  /**
   * Replace the allowlist (from the devices table). Runtime state of kept
   * devices stays; a persisted counter above the runtime one wins; an owner's
   * counter reset not yet applied clears the counter. Returns the devices
   * whose state must be written (reset applied).
   */
  setRegistered(devices: readonly RegisteredBle[]): { id: string; state: BleDeviceState }[] {
    const next = new Map<string, RegisteredBle>()
    const writes: { id: string; state: BleDeviceState }[] = []
    for (const d of devices) {
      next.set(d.mac, d)
      let rt = this.#runtime.get(d.mac)
      const persisted = d.state.counter
      if (!rt) {
        rt = { lastId: undefined, lastRaw: undefined, lastStoredMs: -Infinity, counter: persisted, counterRaw: undefined, resetApplied: d.state.resetApplied }
        this.#runtime.set(d.mac, rt)
      } else if (persisted !== undefined && (rt.counter === undefined || persisted > rt.counter)) {
        rt.counter = persisted
      }
      if (rt.resetApplied === undefined) rt.resetApplied = d.state.resetApplied
      if (d.counterResetMs !== undefined && d.counterResetMs !== rt.resetApplied) {
        rt.counter = undefined
        rt.counterRaw = undefined
        rt.resetApplied = d.counterResetMs
        writes.push({ id: d.id, state: { ...(d.state.format !== undefined ? { format: d.state.format } : {}), resetApplied: d.counterResetMs } })
      }
    }
    // Devices no longer registered lose their state (they may come back through accept_all).
    for (const mac of this.#registered.keys()) if (!next.has(mac)) this.#runtime.delete(mac)
    this.#registered = next
    return writes
  }

  #runtimeFor(mac: string): Runtime {
    let rt = this.#runtime.get(mac)
    if (rt) {
      // Touch for LRU order (unregistered devices only; registered ones are never evicted).
      if (!this.#registered.has(mac)) {
        this.#runtime.delete(mac)
        this.#runtime.set(mac, rt)
      }
      return rt
    }
    rt = { lastId: undefined, lastRaw: undefined, lastStoredMs: -Infinity, counter: undefined, counterRaw: undefined, resetApplied: undefined }
    this.#runtime.set(mac, rt)
    if (this.#runtime.size > this.#o.maxTracked + this.#registered.size) {
      for (const k of this.#runtime.keys()) {
        if (this.#runtime.size <= this.#o.maxTracked + this.#registered.size) break
        if (!this.#registered.has(k)) this.#runtime.delete(k)
      }
    }
    return rt
  }

  /** Forget runtime state of an unregistered device (it vanished from BlueZ). */
  forget(mac: string): void {
    if (!this.#registered.has(mac)) this.#runtime.delete(mac)
  }

  /**
   * Decide what one advertisement (all its data elements) becomes at `nowMs`
   * (monotonic milliseconds).
   */
  decide(mac: string, frames: readonly AdvertFrame[], nowMs: number): Decision {
    const reg = this.#registered.get(mac)
    let picked: { frame: AdvertFrame; decoder: Decoder } | undefined
    for (const frame of frames) {
      const d = this.#o.decodersFor(frame)[0]
      if (d) {
        picked = { frame, decoder: d }
        break
      }
    }
    if (!picked) return { kind: 'drop', result: 'ignored' }
    const { frame, decoder } = picked
    const format = decoder.id
    const options: DecodeOptions = reg?.bindkey !== undefined ? { bindkey: reg.bindkey, mac } : { mac }
    const r: DecodeResult = safeDecode(decoder, frame, options)
    const encrypted = r.ok ? r.meta?.['encrypted'] === true || r.meta?.['format'] === 'pvvx-encrypted' : r.code === 'missing-key'
    const nearby: NearbyInfo = r.ok
      ? { format, metrics: r.metrics, encrypted, needsKey: false }
      : { format, metrics: [], encrypted, needsKey: r.code === 'missing-key', error: `${r.code}: ${r.reason}` }
    const allowed = reg !== undefined || this.#o.acceptAll.has(format)
    if (!allowed) return { kind: 'drop', result: 'ignored', nearby }
    const deviceId = reg?.id ?? `ble:${mac.replace(/:/g, '')}`
    if (!r.ok) return { kind: 'drop', result: 'rejected', deviceId, reason: `${r.code}: ${r.reason}`, nearby }

    const rt = this.#runtimeFor(mac)
    const raw = hex(frame.bytes)
    const counter = authenticatedCounter(format, r.meta)
    let persist: BleDeviceState | undefined
    if (reg?.bindkey !== undefined && counter === undefined) {
      return { kind: 'drop', result: 'downgrade', deviceId, reason: `unencrypted ${format} data from a device registered with a bind key`, nearby }
    }
    if (counter !== undefined) {
      const last = rt.counter
      if (last !== undefined) {
        if (counter === last) {
          // The same encrypted packet repeated (devices send each one several times) is a duplicate;
          // different bytes under a used counter are a replay or a nonce reuse.
          return raw === rt.counterRaw
            ? { kind: 'drop', result: 'duplicate', deviceId, nearby }
            : { kind: 'drop', result: 'replay', deviceId, reason: `counter ${counter} already used`, nearby }
        }
        if (counterBits(format) === 8) {
          const ahead = (counter - last + 256) % 256
          if (ahead > 127) return { kind: 'drop', result: 'replay', deviceId, reason: `8-bit counter ${counter} is behind ${last}`, nearby }
        } else if (counter < last) {
          return counter < 100
            ? { kind: 'drop', result: 'counter_reset', deviceId, reason: `counter went from ${last} to ${counter} (device reset?); confirm with fieldproof devices add ble --mac ${mac} --reset-counter`, nearby }
            : { kind: 'drop', result: 'replay', deviceId, reason: `counter ${counter} ≤ last accepted ${last}`, nearby }
        }
      }
      rt.counter = counter
      rt.counterRaw = raw
      persist = { counter, format, ...(rt.resetApplied !== undefined ? { resetApplied: rt.resetApplied } : {}) }
    }

    // Repeats of one measurement.
    const id = measurementId(r.meta)
    if (id !== undefined) {
      if (id === rt.lastId) return { kind: 'drop', result: 'duplicate', deviceId, nearby }
    } else if (raw === rt.lastRaw && nowMs - rt.lastStoredMs < this.#o.repeatWindowMs) {
      return { kind: 'drop', result: 'duplicate', deviceId, nearby }
    }
    // Minimum interval; events (buttons, trigger-based BTHome) are never held back.
    const isEvent = r.meta?.['triggerBased'] === true || r.metrics.some((m) => EVENT_METRICS.test(m.name))
    const minMs = reg?.minIntervalMs ?? this.#o.minIntervalMs
    if (!isEvent && nowMs - rt.lastStoredMs < minMs) {
      // The measurement is not stored; its id is remembered so its own repeats stay duplicates.
      rt.lastId = id
      return { kind: 'drop', result: 'rate_limited', deviceId, nearby }
    }
    rt.lastId = id
    rt.lastRaw = raw
    rt.lastStoredMs = nowMs
    const base = {
      kind: 'reading' as const,
      deviceId,
      registered: reg !== undefined,
      format,
      frame,
      metrics: r.metrics,
      nearby,
      ...(r.deviceTimeMs !== undefined ? { deviceTimeMs: r.deviceTimeMs } : {}),
      ...(persist !== undefined && reg !== undefined ? { persist } : {}),
    }
    if (counter === undefined) return base
    if (format === 'bthome') return { ...base, bthomeCounter: counter }
    const scheme = CCM_SCHEMES.get(format)
    return scheme !== undefined ? { ...base, ccm: { scheme, counter } } : base
  }
}
