// The BLE source: passive collection of sensor advertisements through BlueZ
// (docs/ble.md). One D-Bus connection (node-ble's dbus-next bus), LE
// discovery with DuplicateData, advertisement data from org.bluez.Device1
// signals, owner control (policy.ts), a discovery view (nearby.ts), and a
// liveness watchdog (reliability plan T39: a jammed controller reports no
// error, it just goes quiet).
//
// Life cycle: connect → wait for org.bluez → find the adapter → power it →
// SetDiscoveryFilter + StartDiscovery → handle signals. Losing the bus,
// bluetoothd (org.bluez name gone), the adapter, its power or discovery sends
// the loop back to the first step that failed, with exponential backoff; each
// state is in status() with what to do about it.
//
// BLE has no acknowledgement: a reading the store refuses (backpressure,
// store full) is dropped and counted (fieldproof_ble_advertisements_total
// {result="dropped"}). The counter of an encrypted device is written to its
// row BEFORE the reading is handed to the store (write-ahead), so no restart
// can accept a counter twice.

import { userInfo } from 'node:os'
import { performance } from 'node:perf_hooks'
import type { Static } from '@sinclair/typebox'
import type { Decoder } from '../../core/decoder.ts'
import { validateReading } from '../../core/canonical.ts'
import { isFieldproofError } from '../../core/errors.ts'
import type { Reading } from '../../core/types.ts'
import type { BleSourceSection } from '../../config/sections/ble.ts'
import { decodersFor as registryDecodersFor } from '../../decoders/index.ts'
import type { RateLimitedLog } from '../../log/logger.ts'
import type { Counter } from '../../pipeline/metrics.ts'
import type { Source, SourceContext } from '../../pipeline/source.ts'
import type { DeviceRow, Store } from '../../store/store.ts'
import { framesFromProps, int16Prop, macFromPath, normalizeMac, type AdvertFrame } from './advert.ts'
import { BluezClient } from './bluez.ts'
import { diagnose } from './dbus.ts'
import { NearbyTable, type BleNearbyView } from './nearby.ts'
import { BlePolicy, type BleDeviceState, type Decision, type RegisteredBle } from './policy.ts'

export type BleConfig = Static<typeof BleSourceSection>

/** Where the source is in its life cycle (status().state). */
export type BleState =
  | 'starting'
  | 'connecting'
  | 'bus-unavailable'
  | 'permission-denied'
  | 'bluez-missing'
  | 'adapter-missing'
  | 'adapter-off'
  | 'discovering'
  | 'stalled'
  | 'error'
  | 'stopped'

export interface BleSourceOptions {
  readonly config: BleConfig
  /** Devices table (allowlist, bind keys, persisted counters). */
  readonly store: Pick<Store, 'devices' | 'touchDevice' | 'db'>
  readonly rejects?: RateLimitedLog
  /** Timeout of one D-Bus call (default 10 s). */
  readonly callTimeoutMs?: number
  /** First backoff step (default 1000 ms); tests shorten it. */
  readonly backoffMinMs?: number
}

interface DeviceCache {
  mac: string
  rssi: number | undefined
  txPower: number | undefined
  name: string | undefined
}

/** Readings waiting to be handed to the store, and readings handed but not yet durable. */
const MAX_QUEUED = 4096
const FLUSH_MS = 25
const FLUSH_READINGS = 128
const ACTIVITY_FLUSH_MS = 10_000

/** Catch-all decoders (match only a transport, like the raw-advertisement decoder 'ble') never route source frames. */
function specificDecoders(frame: AdvertFrame): Decoder[] {
  return registryDecodersFor(frame).filter((d) => d.match.serviceDataUuid !== undefined || d.match.manufacturerId !== undefined)
}

/** A registered device from its devices row, or the reason it cannot be used. */
export function registeredFromRow(row: DeviceRow): RegisteredBle | string {
  let config: Record<string, unknown>
  let secret: Record<string, unknown> = {}
  let state: Record<string, unknown> = {}
  try {
    config = JSON.parse(row.config) as Record<string, unknown>
    if (row.secret) secret = JSON.parse(row.secret) as Record<string, unknown>
    state = JSON.parse(row.state || '{}') as Record<string, unknown>
  } catch {
    return 'config, secret or state is not valid JSON'
  }
  const mac = typeof config['mac'] === 'string' ? normalizeMac(config['mac']) : undefined
  if (!mac) return 'config.mac is missing or not a MAC address'
  const bindkey = secret['bindkey']
  if (bindkey !== undefined && (typeof bindkey !== 'string' || !/^[0-9a-fA-F]{32}$/.test(bindkey))) return 'secret.bindkey is not 32 hex digits'
  const minS = config['min_interval_seconds']
  const reset = config['counterResetMs']
  const st: BleDeviceState = {
    ...(typeof state['counter'] === 'number' ? { counter: state['counter'] } : {}),
    ...(typeof state['format'] === 'string' ? { format: state['format'] } : {}),
    ...(typeof state['resetApplied'] === 'number' ? { resetApplied: state['resetApplied'] } : {}),
  }
  return {
    id: row.id,
    mac,
    name: row.name,
    ...(typeof bindkey === 'string' ? { bindkey: bindkey.toLowerCase() } : {}),
    ...(typeof minS === 'number' && minS >= 0 ? { minIntervalMs: minS * 1000 } : {}),
    ...(typeof reset === 'number' ? { counterResetMs: reset } : {}),
    state: st,
  }
}

export class BleSource implements Source {
  readonly id = 'ble'
  readonly #cfg: BleConfig
  readonly #o: BleSourceOptions
  readonly #policy: BlePolicy
  readonly #nearby: NearbyTable
  readonly #user: string
  #ctx: SourceContext | undefined
  #state: BleState = 'starting'
  #message = 'starting'
  #client: BluezClient | undefined
  /** Whether discovery is believed on for the current session. */
  #discovering = false
  #wake: (() => void) | undefined
  readonly #devices = new Map<string, DeviceCache>()
  #lastAdvMs = performance.now()
  #stalled = false
  #stallAttempts = 0
  #nextStallAttemptMs = 0
  #since = Date.now()
  #lastCounterReset: { deviceId: string; atMs: number; reason: string } | undefined
  #queue: Reading[] = []
  #pendingStates = new Map<string, BleDeviceState>()
  #inFlight = 0
  #flushTimer: NodeJS.Timeout | undefined
  readonly #activity = new Map<string, { seenMs: number; accepted: number; rejected: number }>()
  #lastActivityFlush = performance.now()
  #badRows = new Set<string>()
  readonly #counts = { advertisements: 0, readings: 0, dropped: 0, stalls: 0, restarts: 0, reconnects: 0 }
  #adv: Counter | undefined
  #ingestRejects: Counter | undefined

  constructor(o: BleSourceOptions) {
    this.#o = o
    this.#cfg = o.config
    this.#policy = new BlePolicy({
      acceptAll: new Set(o.config.accept_all),
      minIntervalMs: o.config.min_interval_seconds * 1000,
      repeatWindowMs: o.config.repeat_window_seconds * 1000,
      maxTracked: o.config.max_tracked_devices,
      decodersFor: specificDecoders,
    })
    this.#nearby = new NearbyTable({ max: o.config.nearby_max, ttlMs: o.config.nearby_ttl_seconds * 1000 })
    let user = 'fieldproof'
    try {
      user = userInfo().username
    } catch {
      // no passwd entry (containers): keep the service account's usual name
    }
    this.#user = user
  }

  /** The discovery view (GET /api/v1/ble/nearby). Memory only. */
  nearby(): BleNearbyView {
    const now = performance.now()
    return {
      adapter: this.#cfg.adapter,
      state: this.#state,
      ttlSeconds: this.#cfg.nearby_ttl_seconds,
      devices: this.#nearby.list(now, Date.now() - now),
    }
  }

  status(): Record<string, unknown> {
    const now = performance.now()
    return {
      state: this.#state,
      message: this.#message,
      adapter: this.#cfg.adapter,
      bus: this.#cfg.bus_address || 'system',
      since: this.#since,
      discovering: this.#discovering,
      stalled: this.#stalled,
      lastAdvertisementAgoS: Math.round((now - this.#lastAdvMs) / 100) / 10,
      registeredDevices: this.#policy.registeredCount,
      trackedDevices: this.#devices.size,
      nearbyDevices: this.#nearby.size,
      acceptAll: this.#cfg.accept_all,
      counts: { ...this.#counts },
      ...(this.#lastCounterReset ? { lastCounterReset: this.#lastCounterReset } : {}),
    }
  }

  async start(ctx: SourceContext, signal: AbortSignal): Promise<void> {
    this.#ctx = ctx
    const m = ctx.metrics
    this.#adv = m.counter('fieldproof_ble_advertisements_total', 'BLE advertisements heard, by what became of them')
    this.#ingestRejects = m.counter('fieldproof_ingest_rejects_total', 'Input rejected at the edge, by source and cause')
    const stalls = m.counter('fieldproof_ble_stalls_total', 'Times no advertisement arrived for stall_seconds while discovery was on (ble_stalled)')
    m.gauge('fieldproof_ble_stalled', '1 while the BLE adapter is stalled (no advertisements while discovering)', () => [[{ adapter: this.#cfg.adapter }, this.#stalled ? 1 : 0]])
    m.gauge('fieldproof_ble_up', '1 while BLE discovery is running (0: see the source status for why not)', () => [[{ adapter: this.#cfg.adapter, state: this.#state }, this.#state === 'discovering' ? 1 : 0]])
    m.gauge('fieldproof_ble_tracked_devices', 'BLE advertisers held in memory, by table', () => [
      [{ table: 'bluez' }, this.#devices.size],
      [{ table: 'policy' }, this.#policy.trackedDevices],
      [{ table: 'nearby' }, this.#nearby.size],
    ])
    const restarts = m.counter('fieldproof_ble_discovery_restarts_total', 'Discovery restarts by cause (stall, adapter, bluez)')

    this.#reloadDevices()
    const reload = setInterval(() => this.#reloadDevices(), this.#cfg.device_reload_seconds * 1000)
    const tick = setInterval(() => {
      const now = performance.now()
      this.#nearby.expire(now)
      if (now - this.#lastActivityFlush >= ACTIVITY_FLUSH_MS) this.#flushActivity()
      if (this.#state === 'discovering' || this.#state === 'stalled') this.#checkStall(now, stalls, restarts)
    }, 1000)
    reload.unref()
    tick.unref()
    const onAbort = () => this.#wake?.()
    signal.addEventListener('abort', onAbort)
    const minBackoff = this.#o.backoffMinMs ?? 1000
    let backoff = minBackoff
    try {
      while (!signal.aborted) {
        let reachedDiscovery = false
        try {
          reachedDiscovery = await this.#session(signal, restarts)
        } catch (e) {
          this.#fail(e)
        }
        if (signal.aborted) break
        if (reachedDiscovery) backoff = minBackoff
        this.#counts.reconnects++
        await this.#sleep(backoff, signal)
        backoff = Math.min(backoff * 2, this.#cfg.backoff_max_seconds * 1000)
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
      clearInterval(reload)
      clearInterval(tick)
      this.#client?.close()
      this.#client = undefined
      this.#discovering = false
      this.#devices.clear()
      this.#flush()
      // Let the last hand-off to the store settle before reporting stopped.
      const deadline = Date.now() + 5000
      while (this.#inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      this.#flushActivity()
      if (this.#flushTimer) clearTimeout(this.#flushTimer)
      this.#setState('stopped', 'stopped')
    }
  }

  #setState(state: BleState, message: string): void {
    const changed = state !== this.#state || message !== this.#message
    if (state !== this.#state) this.#since = Date.now()
    this.#state = state
    this.#message = message
    if (!changed || !this.#ctx) return
    const log = this.#ctx.log
    if (state === 'discovering' || state === 'stopped' || state === 'connecting') log.info({ state, adapter: this.#cfg.adapter }, `BLE: ${message}`)
    else log.warn({ state, adapter: this.#cfg.adapter }, `BLE: ${message}`)
  }

  #fail(e: unknown): void {
    const d = diagnose(e, this.#cfg.bus_address || 'the system bus', this.#user)
    this.#discovering = false
    this.#setState(d.state, d.message)
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        if (this.#wake === done) this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#wake = done
    })
  }

  /** One connection's life. Resolves when it ends (lost bus); true if discovery ran during it. */
  async #session(signal: AbortSignal, restarts: Counter): Promise<boolean> {
    this.#setState('connecting', 'connecting to D-Bus')
    let ended = false
    const client = new BluezClient({
      busAddress: this.#cfg.bus_address,
      adapter: this.#cfg.adapter,
      callTimeoutMs: this.#o.callTimeoutMs ?? 10_000,
      events: {
        onOwner: (owner) => {
          this.#discovering = false
          this.#devices.clear()
          if (owner !== undefined) restarts.inc({ cause: 'bluez' })
          this.#wake?.()
        },
        onDevice: (path, props, full) => this.#onDevice(path, props, full),
        onDeviceRemoved: (path) => {
          const d = this.#devices.get(path)
          this.#devices.delete(path)
          if (d) this.#policy.forget(d.mac)
        },
        onAdapter: (props) => {
          if (props === undefined || props['Powered'] === false || props['Discovering'] === false) {
            if (this.#discovering) restarts.inc({ cause: 'adapter' })
            this.#discovering = false
            this.#wake?.()
          }
        },
        onDisconnect: (reason) => {
          ended = true
          this.#discovering = false
          this.#setState('bus-unavailable', `lost the D-Bus connection (${reason}); reconnecting`)
          this.#wake?.()
        },
      },
    })
    this.#client = client
    let reached = false
    try {
      await client.connect()
      let delay = this.#o.backoffMinMs ?? 1000
      while (!signal.aborted && !ended && !client.closed) {
        const ok = await this.#ensureDiscovering(client)
        if (ok) {
          reached = true
          delay = this.#o.backoffMinMs ?? 1000
          // Wait for something to change (or a periodic check that the bus still answers).
          await this.#sleep(30_000, signal)
          if (!this.#discovering || signal.aborted || ended) continue
          await client.refreshOwner()
          if (!client.owner) this.#discovering = false
        } else {
          await this.#sleep(delay, signal)
          delay = Math.min(delay * 2, this.#cfg.backoff_max_seconds * 1000)
        }
      }
    } finally {
      if (this.#client === client) this.#client = undefined
      if (!client.closed) {
        if (signal.aborted && this.#discovering) await client.stopDiscovery().catch(() => {})
        client.close()
      }
      this.#discovering = false
      this.#devices.clear()
    }
    return reached
  }

  /** Bring the adapter to "discovering"; false (with the state set) when something is missing. */
  async #ensureDiscovering(client: BluezClient): Promise<boolean> {
    if (this.#discovering) return true
    if (!client.owner) await client.refreshOwner()
    if (!client.owner) {
      this.#setState('bluez-missing', 'bluetoothd is not running: org.bluez is not on the bus (sudo systemctl enable --now bluetooth); waiting for it')
      return false
    }
    if (!(await client.adapterPresent())) {
      this.#setState(
        'adapter-missing',
        `no Bluetooth adapter ${this.#cfg.adapter} in BlueZ: check \`bluetoothctl list\`, \`rfkill list\` (unblock with rfkill unblock bluetooth), and that the adapter is enabled (Raspberry Pi: no dtoverlay=disable-bt); waiting for it`,
      )
      return false
    }
    let st = await client.adapterState()
    let powerError = ''
    if (!st.powered && this.#cfg.power_on) {
      try {
        await client.setPowered(true)
      } catch (e) {
        const d = diagnose(e, this.#cfg.bus_address || 'the system bus', this.#user)
        if (d.state !== 'error') throw e
        powerError = ` (powering it on failed: ${d.message.slice(0, 120)})`
      }
      st = await client.adapterState()
    }
    if (!st.powered) {
      this.#setState(
        'adapter-off',
        `adapter ${this.#cfg.adapter} is powered off${powerError}: \`rfkill unblock bluetooth\` then \`bluetoothctl power on\`${this.#cfg.power_on ? '' : ' (or set power_on = true)'}; waiting for it`,
      )
      return false
    }
    await client.startDiscovery()
    // Devices BlueZ already knows: remember their radio data, but their advertisement
    // data is old, so it becomes no reading.
    const known = await client.devices()
    for (const [path, props] of known) this.#cache(path, props)
    this.#discovering = true
    // While stalled the clock keeps running, so the next restart follows the backoff.
    if (!this.#stalled) {
      this.#lastAdvMs = performance.now()
      this.#setState('discovering', `discovering on ${this.#cfg.adapter} (LE, duplicate data on)`)
    } else {
      this.#setState('stalled', `ble_stalled: discovery restarted on ${this.#cfg.adapter} (attempt ${this.#stallAttempts}), still no advertisement`)
    }
    return true
  }

  #checkStall(now: number, stalls: Counter, restarts: Counter): void {
    if (!this.#discovering) return
    const stallMs = this.#cfg.stall_seconds * 1000
    if (now - this.#lastAdvMs < stallMs) return
    if (!this.#stalled) {
      this.#stalled = true
      this.#counts.stalls++
      stalls.inc({ adapter: this.#cfg.adapter })
      this.#stallAttempts = 0
      this.#nextStallAttemptMs = now
    }
    if (now < this.#nextStallAttemptMs) return
    const attempt = ++this.#stallAttempts
    const backoff = Math.min((this.#o.backoffMinMs ?? 1000) * 2 ** (attempt - 1), this.#cfg.backoff_max_seconds * 1000)
    this.#nextStallAttemptMs = now + backoff
    const powerCycle = this.#cfg.power_cycle_on_stall && attempt % 3 === 0
    this.#setState(
      'stalled',
      `ble_stalled: no advertisement for ${Math.round((now - this.#lastAdvMs) / 1000)} s while discovering; restart ${attempt} of discovery${powerCycle ? ' with an adapter power cycle' : ''} (check the adapter: \`btmgmt info\`, dmesg for "hci0: hardware error")`,
    )
    this.#counts.restarts++
    restarts.inc({ cause: 'stall' })
    const client = this.#client
    if (!client) return
    void (async () => {
      try {
        await client.stopDiscovery()
        if (powerCycle) {
          await client.setPowered(false)
          await client.setPowered(true)
        }
      } catch (e) {
        const d = diagnose(e, this.#cfg.bus_address || 'the system bus', this.#user)
        this.#ctx?.log.warn({ adapter: this.#cfg.adapter, err: d.message }, 'BLE: stopping discovery for a restart failed')
      }
      // The session loop starts discovery again (SetDiscoveryFilter + StartDiscovery).
      this.#discovering = false
      this.#wake?.()
    })()
  }

  #cache(path: string, props: Record<string, unknown>): DeviceCache | undefined {
    let d = this.#devices.get(path)
    if (!d) {
      const mac = macFromPath(path) ?? (typeof props['Address'] === 'string' ? normalizeMac(props['Address']) : undefined)
      if (!mac) return undefined
      d = { mac, rssi: undefined, txPower: undefined, name: undefined }
      this.#devices.set(path, d)
      while (this.#devices.size > this.#cfg.max_tracked_devices) {
        const oldest = this.#devices.keys().next().value
        if (oldest === undefined) break
        const gone = this.#devices.get(oldest)
        this.#devices.delete(oldest)
        if (gone) this.#policy.forget(gone.mac)
      }
    } else {
      // Most recently heard last (eviction order).
      this.#devices.delete(path)
      this.#devices.set(path, d)
    }
    const rssi = int16Prop(props['RSSI'])
    if (rssi !== undefined) d.rssi = rssi
    const tx = int16Prop(props['TxPower'])
    if (tx !== undefined) d.txPower = tx
    const name = props['Name'] ?? props['Alias']
    if (typeof name === 'string' && name.length > 0) d.name = name.slice(0, 64)
    return d
  }

  #onDevice(path: string, props: Record<string, unknown>, _full: boolean): void {
    const d = this.#cache(path, props)
    if (!d) return
    const now = performance.now()
    const hasData = props['ServiceData'] !== undefined || props['ManufacturerData'] !== undefined
    if (!hasData && props['RSSI'] === undefined) return
    // Any sign of radio reception proves the adapter is alive.
    this.#lastAdvMs = now
    if (this.#stalled) {
      this.#stalled = false
      this.#stallAttempts = 0
      if (this.#discovering) this.#setState('discovering', `advertisements resumed on ${this.#cfg.adapter}`)
    }
    if (!hasData) return
    this.#counts.advertisements++
    const decision = this.#policy.decide(d.mac, framesFromProps(d.mac, props), now)
    this.#apply(decision, d, now)
  }

  #apply(decision: Decision, d: DeviceCache, now: number): void {
    const reg = this.#policy.registered(d.mac)
    if (decision.nearby) {
      this.#nearby.update({
        mac: d.mac,
        info: decision.nearby,
        name: d.name,
        rssi: d.rssi,
        nowMs: now,
        registered: reg?.id,
        accepted: reg !== undefined || this.#cfg.accept_all.includes(decision.nearby.format as never),
      })
    }
    if (decision.kind === 'drop') {
      this.#adv?.inc({ result: decision.result })
      if (decision.result === 'ignored' || decision.result === 'duplicate' || decision.result === 'rate_limited') return
      // An allowed device's data refused: counted, logged once per cause with rate limiting.
      const cause = decision.result === 'rejected' ? (decision.reason?.split(':')[0] ?? 'rejected') : decision.result.replace('_', '-')
      this.#ingestRejects?.inc({ source: 'ble', cause })
      this.#o.rejects?.reject(`ble:${cause}`, { device: decision.deviceId, reason: decision.reason })
      if (reg) this.#activityFor(reg.id).rejected++
      if (decision.result === 'counter_reset' && decision.deviceId) {
        this.#lastCounterReset = { deviceId: decision.deviceId, atMs: Date.now(), reason: decision.reason ?? '' }
        this.#ctx?.log.warn({ event: 'ble_counter_reset', device: decision.deviceId, reason: decision.reason }, 'BLE: counter reset refused until the owner confirms it')
      }
      return
    }
    const ctx = this.#ctx
    if (!ctx) return
    const radio: Record<string, number | string> = { mac: d.mac, adapter: this.#cfg.adapter, format: decision.format }
    if (d.rssi !== undefined) radio['rssi'] = d.rssi
    if (d.txPower !== undefined) radio['tx_power'] = d.txPower
    const reading: Reading = {
      deviceId: decision.deviceId,
      source: 'ble',
      received: ctx.now(),
      metrics: decision.metrics,
      radio,
      raw: decision.frame.bytes.slice(),
      auth:
        decision.bthomeCounter !== undefined
          ? { kind: 'bthome-encryption', counter: decision.bthomeCounter }
          : decision.ccm !== undefined
            ? { kind: 'ble-aes-ccm', scheme: decision.ccm.scheme, counter: decision.ccm.counter }
            : { kind: 'none' },
      ...(decision.deviceTimeMs !== undefined ? { deviceTimeMs: decision.deviceTimeMs } : {}),
    }
    try {
      validateReading(reading)
    } catch (e) {
      this.#adv?.inc({ result: 'rejected' })
      this.#ingestRejects?.inc({ source: 'ble', cause: 'invalid-reading' })
      this.#o.rejects?.reject('ble:invalid-reading', { device: decision.deviceId, reason: (e as Error).message })
      return
    }
    if (this.#queue.length + this.#inFlight >= MAX_QUEUED) {
      this.#drop(1, 'backpressure')
      return
    }
    if (decision.persist) this.#pendingStates.set(decision.deviceId, decision.persist)
    this.#queue.push(reading)
    if (this.#queue.length >= FLUSH_READINGS) this.#flush()
    else this.#flushTimer ??= setTimeout(() => this.#flush(), FLUSH_MS)
  }

  #activityFor(id: string): { seenMs: number; accepted: number; rejected: number } {
    let a = this.#activity.get(id)
    if (!a) {
      a = { seenMs: Date.now(), accepted: 0, rejected: 0 }
      this.#activity.set(id, a)
    }
    a.seenMs = Date.now()
    return a
  }

  #drop(n: number, reason: string): void {
    this.#counts.dropped += n
    this.#adv?.inc({ result: 'dropped' }, n)
    this.#o.rejects?.reject(`ble:dropped-${reason}`, { readings: n })
  }

  /** Hand queued readings to the store; counters of encrypted devices are written first. */
  #flush(): void {
    if (this.#flushTimer) {
      clearTimeout(this.#flushTimer)
      this.#flushTimer = undefined
    }
    const ctx = this.#ctx
    if (!ctx || this.#queue.length === 0) return
    const batch = this.#queue
    this.#queue = []
    const states = this.#pendingStates
    this.#pendingStates = new Map()
    if (states.size > 0) {
      try {
        const store = this.#o.store
        store.db.transaction(() => {
          for (const [id, st] of states) store.touchDevice(id, { state: JSON.stringify(st) })
        })()
      } catch (e) {
        // Without the counter on disk the readings must not be stored (a restart would reopen the window).
        this.#drop(batch.length, 'state-write')
        ctx.log.error({ err: e }, 'BLE: could not persist device counters; readings dropped')
        return
      }
    }
    this.#inFlight += batch.length
    ctx.ingest(batch).then(
      () => {
        this.#inFlight -= batch.length
        this.#counts.readings += batch.length
        this.#adv?.inc({ result: 'reading' }, batch.length)
        for (const r of batch) {
          if (this.#policy.registered(r.radio?.['mac'] as string)) this.#activityFor(r.deviceId).accepted++
        }
      },
      (e: unknown) => {
        this.#inFlight -= batch.length
        const reason = isFieldproofError(e) ? e.code.toLowerCase() : 'error'
        this.#drop(batch.length, reason)
        if (!isFieldproofError(e)) ctx.log.error({ err: e }, 'BLE: ingest failed')
      },
    )
  }

  #flushActivity(): void {
    this.#lastActivityFlush = performance.now()
    if (this.#activity.size === 0) return
    const entries = [...this.#activity]
    this.#activity.clear()
    try {
      const store = this.#o.store
      store.db.transaction(() => {
        for (const [id, a] of entries) store.touchDevice(id, { seenMs: a.seenMs, accepted: a.accepted, rejected: a.rejected })
      })()
    } catch (e) {
      this.#ctx?.log.warn({ err: e }, 'BLE: could not record device activity')
    }
  }

  #reloadDevices(): void {
    let rows: DeviceRow[]
    try {
      rows = this.#o.store.devices('ble')
    } catch (e) {
      this.#ctx?.log.warn({ err: e }, 'BLE: could not read registered devices')
      return
    }
    const devices: RegisteredBle[] = []
    for (const row of rows) {
      const r = registeredFromRow(row)
      if (typeof r === 'string') {
        if (!this.#badRows.has(row.id)) {
          this.#badRows.add(row.id)
          this.#ctx?.log.warn({ device: row.id, reason: r }, 'BLE: registered device ignored')
        }
        continue
      }
      devices.push(r)
    }
    const writes = this.#policy.setRegistered(devices)
    if (writes.length > 0) {
      try {
        const store = this.#o.store
        store.db.transaction(() => {
          for (const w of writes) store.touchDevice(w.id, { state: JSON.stringify(w.state) })
        })()
        for (const w of writes) this.#ctx?.log.info({ device: w.id }, 'BLE: counter reset confirmed by the owner')
      } catch (e) {
        this.#ctx?.log.warn({ err: e }, 'BLE: could not record a counter reset')
      }
    }
  }
}
