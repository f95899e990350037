// The GPIO source (docs/gpio.md): wired pulse counters and contacts on the
// Raspberry Pi header become readings, and the status LED shows the gateway's
// state. Lines go through the kernel's sysfs GPIO interface (onoff); edges
// come from interrupts (epoll on the value file) or from polling the value
// file, and feed the same pure counting code (counter.ts).
//
// A counter's cumulative pulse count is kept in its device row (`state`,
// {"pulses": N}) and written only after the reading carrying it is committed
// (invariant 1), so the totals a verifier sees never go backwards across
// restarts. A graceful stop emits a last reading so no counted pulse is lost.

import type { Metric, Reading } from '../../core/types.ts'
import { FieldproofError, isFieldproofError } from '../../core/errors.ts'
import { metricInfo } from '../../core/units.ts'
import type { GpioInputConfig, GpioSourceConfig } from '../../config/sections/gpio.ts'
import type { RateLimitedLog } from '../../log/logger.ts'
import type { Source, SourceContext } from '../../pipeline/source.ts'
import type { Store } from '../../store/store.ts'
import { COUNTER_KINDS, Debouncer, PulseCounter, counterMetrics, unitsPerPulse, type CounterKindId, type Level } from './counter.ts'
import { SYSFS_GPIO_ROOT, detectChipBase, sysfsNumber } from './pins.ts'
import { StatusLed, type GatewayHealth } from './status-led.ts'
import { onoffPins, type InputPin, type OutputPin, type PinOpener } from './sysfs.ts'

/** Device kind of GPIO inputs in the devices table. */
export const GPIO_DEVICE_KIND = 'gpio'

export interface GpioSourceOptions {
  readonly config: GpioSourceConfig
  readonly store: Store
  readonly rejects?: RateLimitedLog
  /** The gateway's state, shown by the status LED (plugins.ts PluginContext.health). */
  readonly health?: () => GatewayHealth
  /** Directory read to find the header chip's base (default /sys/class/gpio). */
  readonly sysfsRoot?: string
  /** How lines are opened (default: onoff on /sys/class/gpio). */
  readonly pins?: PinOpener
  /** Monotonic milliseconds (default performance.now). */
  readonly now?: () => number
  /**
   * No timers: polling, periodic readings and the LED advance only when
   * poll(), emitPeriodic() and ledTick() are called (tests with a fake clock).
   */
  readonly manual?: boolean
}

/** Problems of a [sources.gpio] table the schema cannot see; empty when fine. */
export function checkGpioConfig(c: GpioSourceConfig): string[] {
  const issues: string[] = []
  const names = new Set<string>()
  const pins = new Map<number, string>()
  const claim = (what: string, name: string, pin: number) => {
    if (names.has(name)) issues.push(`sources.gpio.${what}: name "${name}" is used twice`)
    names.add(name)
    const other = pins.get(pin)
    if (other !== undefined) issues.push(`sources.gpio.${what}: GPIO ${pin} of "${name}" is already used by "${other}"`)
    pins.set(pin, name)
  }
  c.inputs.forEach((i, k) => {
    claim(`inputs[${k}]`, i.name, i.pin)
    if (i.kind === 'contact') {
      const info = metricInfo(i.metric)
      if (info?.unit !== '1') issues.push(`sources.gpio.inputs[${k}].metric: "${i.metric}" is not a well-known metric with unit "1" (e.g. state, door_open, window_open)`)
    }
  })
  c.outputs.forEach((o, k) => claim(`outputs[${k}]`, o.name, o.pin))
  if (c.outputs.filter((o) => o.function === 'status-led').length > 1) issues.push('sources.gpio.outputs: more than one status-led')
  return issues
}

interface InputState {
  readonly cfg: GpioInputConfig
  readonly deviceId: string
  sysfs: number
  pin: InputPin | undefined
  mode: 'interrupt' | 'poll'
  readonly counter: PulseCounter | undefined
  readonly contact: Debouncer | undefined
  readonly factor: number
  lastEmitMs: number
  lastEmitPulses: number
  committedPulses: number
  readings: number
  refused: number
  error: string | undefined
  recheck: NodeJS.Timeout | undefined
}

export class GpioSource implements Source {
  readonly id = 'gpio'
  readonly #o: GpioSourceOptions
  readonly #now: () => number
  readonly #inputs: InputState[] = []
  #led: { pin: OutputPin; driver: StatusLed; bcm: number } | undefined
  #chip: { base: number; label: string; board: string } | undefined
  #ctx: SourceContext | undefined
  readonly #inflight = new Set<Promise<void>>()
  #stopping = false
  readonly #started = Promise.withResolvers<void>()

  constructor(o: GpioSourceOptions) {
    const issues = checkGpioConfig(o.config)
    if (issues.length > 0) throw new FieldproofError('CONFIG_INVALID', issues.join('\n'), { details: { issues } })
    this.#o = o
    this.#now = o.now ?? (() => performance.now())
  }

  status(): Record<string, unknown> {
    return {
      mode: this.#o.config.mode,
      chip: this.#chip ?? null,
      inputs: this.#inputs.map((i) => ({
        name: i.cfg.name,
        device: i.deviceId,
        pin: i.cfg.pin,
        sysfs: i.sysfs,
        kind: i.cfg.kind,
        mode: i.mode,
        level: i.counter?.debouncer.level ?? i.contact?.level ?? null,
        pulses: i.counter?.total ?? null,
        bounces: (i.counter?.debouncer ?? i.contact)?.bounces ?? 0,
        readings: i.readings,
        refused: i.refused,
        error: i.error ?? null,
      })),
      led: this.#led ? { pin: this.#led.bcm, showing: this.#led.driver.showing ?? null } : null,
    }
  }

  /** Resolves once start() has opened every line it could and started its timers. */
  whenStarted(): Promise<void> {
    return this.#started.promise
  }

  /** What the LED shows: the gateway's state, or error while an input could not be opened. */
  health(): GatewayHealth {
    const h = this.#o.health?.() ?? 'healthy'
    if ((h === 'healthy' || h === 'upstream-down') && this.#inputs.some((i) => i.error !== undefined)) return 'error'
    return h
  }

  async start(ctx: SourceContext, signal: AbortSignal): Promise<void> {
    this.#ctx = ctx
    const c = this.#o.config
    const pins = this.#o.pins ?? onoffPins
    let base: number
    let ngpio = 54
    if (c.chip_base >= 0) {
      base = c.chip_base
      this.#chip = { base, label: '(configured)', board: '(chip_base)' }
    } else {
      const found = detectChipBase(this.#o.sysfsRoot ?? SYSFS_GPIO_ROOT)
      if (!found.ok) throw new FieldproofError('CONFIG_INVALID', `sources.gpio: ${found.reason}`)
      base = found.base
      ngpio = found.ngpio
      this.#chip = { base, label: found.label, board: found.board }
    }
    ctx.log.info({ base, chip: this.#chip }, 'GPIO header chip')
    const lineOf = (bcm: number): number => {
      const r = sysfsNumber(bcm, base, ngpio)
      if (!r.ok) throw new FieldproofError('CONFIG_INVALID', `sources.gpio: ${r.reason}`)
      return r.value
    }

    const led = c.outputs.find((o) => o.function === 'status-led')
    if (led) {
      try {
        const pin = await pins.openOutput(lineOf(led.pin), { activeLow: led.active_low }, signal)
        const driver = new StatusLed({ write: (l) => pin.write(l), health: () => this.health(), now: this.#now })
        this.#led = { pin, driver, bcm: led.pin }
        if (this.#o.manual) driver.tick()
        else driver.start()
      } catch (err) {
        ctx.log.error({ err, pin: led.pin }, 'cannot open the status LED')
      }
    }

    for (const cfg of c.inputs) {
      const input = this.#newInput(cfg)
      this.#inputs.push(input)
      try {
        input.sysfs = lineOf(cfg.pin)
        const interrupts = c.mode === 'interrupt'
        const pin = await pins.openInput(input.sysfs, { activeLow: cfg.active_low, interrupts }, signal)
        input.pin = pin
        const level = pin.read()
        input.lastEmitMs = this.#now()
        const debouncer = input.counter?.debouncer ?? input.contact
        debouncer?.reset(level)
        if (interrupts && !this.#o.manual) {
          const ok = pin.watch(
            (l) => this.#observe(input, l, this.#now()),
            (err) => this.#o.rejects?.reject('gpio_interrupt_error', { input: cfg.name, err: err.message }),
          )
          if (!ok) ctx.log.warn({ input: cfg.name, pin: cfg.pin }, 'no edge interrupts for this line: polling its value file instead')
          input.mode = ok ? 'interrupt' : 'poll'
        } else {
          input.mode = 'poll'
        }
        if (input.contact) this.#track(this.#emitContact(input))
      } catch (err) {
        if (signal.aborted) break
        input.error = (err as Error).message
        ctx.log.error({ err, input: cfg.name, pin: cfg.pin }, 'cannot open GPIO input')
      }
    }

    const timers: NodeJS.Timeout[] = []
    if (!this.#o.manual && !signal.aborted) {
      if (this.#inputs.some((i) => i.pin && i.mode === 'poll')) timers.push(setInterval(() => this.poll(), c.poll_ms))
      for (const i of this.#inputs) {
        if (i.pin) timers.push(setInterval(() => this.emitPeriodic(i.cfg.name), i.cfg.interval_seconds * 1000))
      }
    }
    ctx.log.info({ inputs: this.#inputs.map((i) => `${i.cfg.name}:${i.mode}`), led: led?.pin ?? null }, 'GPIO source started')
    this.#started.resolve()

    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve()
      else signal.addEventListener('abort', () => resolve(), { once: true })
    })
    for (const t of timers) clearInterval(t)
    await this.#shutdown()
  }

  /** Read every polled input once (the poll timer calls this every poll_ms). */
  poll(): void {
    const t = this.#now()
    for (const i of this.#inputs) {
      if (!i.pin || i.mode !== 'poll') continue
      try {
        this.#observe(i, i.pin.read(), t)
      } catch (err) {
        this.#o.rejects?.reject('gpio_read_error', { input: i.cfg.name, err: (err as Error).message })
      }
    }
  }

  /** Emit the periodic reading of input `name` (its timer calls this every interval_seconds). */
  emitPeriodic(name: string): Promise<void> {
    const i = this.#inputs.find((x) => x.cfg.name === name)
    if (!i?.pin) return Promise.resolve()
    return this.#track(i.counter ? this.#emitCounter(i) : this.#emitContact(i))
  }

  /** Advance the status LED once (its timer calls this); returns the level written. */
  ledTick(): 0 | 1 | undefined {
    return this.#led?.driver.tick()
  }

  /** Every reading in flight has settled (committed or refused). */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
  }

  #newInput(cfg: GpioInputConfig): InputState {
    const deviceId = `gpio:${cfg.name}`
    const store = this.#o.store
    const isCounter = cfg.kind !== 'contact'
    let pulses = 0
    if (isCounter) {
      const row = store.device(deviceId)
      pulses = row ? restoredPulses(row.state) : 0
    }
    store.upsertDevice({
      id: deviceId,
      kind: GPIO_DEVICE_KIND,
      name: cfg.name,
      config: JSON.stringify({ pin: cfg.pin, kind: cfg.kind, factor: cfg.factor, pulses_per_unit: cfg.pulses_per_unit, offset: cfg.offset, edge: cfg.edge, debounce_ms: cfg.debounce_ms, active_low: cfg.active_low, metric: cfg.metric }),
    })
    return {
      cfg,
      deviceId,
      sysfs: -1,
      pin: undefined,
      mode: 'poll',
      counter: isCounter ? new PulseCounter({ debounceMs: cfg.debounce_ms, edge: cfg.edge, initial: 0, total: pulses }) : undefined,
      contact: isCounter ? undefined : new Debouncer(cfg.debounce_ms, 0),
      factor: isCounter ? unitsPerPulse(cfg.kind as CounterKindId, cfg.factor, cfg.pulses_per_unit) : 1,
      lastEmitMs: this.#now(),
      lastEmitPulses: pulses,
      committedPulses: pulses,
      readings: 0,
      refused: 0,
      error: undefined,
      recheck: undefined,
    }
  }

  #observe(i: InputState, level: Level, t: number): void {
    if (i.counter) {
      i.counter.feed(level, t)
    } else if (i.contact && i.contact.feed(level, t) !== null) {
      this.#track(this.#emitContact(i))
    }
    // After an edge the line may still settle within the lock-out; with interrupts no further edge may
    // come, so read it once more when the lock-out ends.
    const d = i.counter?.debouncer ?? i.contact
    if (i.mode === 'interrupt' && d?.unsettled && i.recheck === undefined && !this.#stopping) {
      const wait = Math.max(1, d.lastChangeMs + i.cfg.debounce_ms - t + 1)
      i.recheck = setTimeout(() => {
        i.recheck = undefined
        if (i.pin && !this.#stopping) this.#observe(i, i.pin.read(), this.#now())
      }, wait)
    }
  }

  #track(p: Promise<void>): Promise<void> {
    this.#inflight.add(p)
    void p.finally(() => this.#inflight.delete(p))
    return p
  }

  async #emitCounter(i: InputState): Promise<void> {
    const counter = i.counter as PulseCounter
    const t = this.#now()
    const total = counter.total
    const metrics = counterMetrics(i.cfg.kind as CounterKindId, i.factor, i.cfg.offset, total, total - i.lastEmitPulses, t - i.lastEmitMs)
    i.lastEmitMs = t
    i.lastEmitPulses = total
    const seq = await this.#ingest(i, metrics)
    if (seq === undefined || total <= i.committedPulses) return
    // Durable: only now may the total outlive a restart.
    i.committedPulses = total
    this.#o.store.touchDevice(i.deviceId, { state: JSON.stringify({ pulses: total, seq: seq.toString() }) })
  }

  async #emitContact(i: InputState): Promise<void> {
    const level = (i.contact as Debouncer).level
    await this.#ingest(i, [{ name: i.cfg.metric, unit: '1', value: level }])
  }

  async #ingest(i: InputState, metrics: Metric[]): Promise<bigint | undefined> {
    const ctx = this.#ctx
    if (!ctx) return undefined
    const reading: Reading = { deviceId: i.deviceId, source: 'gpio', received: ctx.now(), metrics, auth: { kind: 'none' } }
    try {
      const [seq] = await ctx.ingest([reading])
      i.readings++
      try {
        this.#o.store.touchDevice(i.deviceId, { seenMs: Date.now(), accepted: 1 })
      } catch {
        // The store closing under a last reading: the reading itself is committed.
      }
      return seq
    } catch (err) {
      i.refused++
      const code = isFieldproofError(err) ? err.code : 'INTERNAL'
      if (this.#o.rejects) this.#o.rejects.reject(`gpio_ingest_${code.toLowerCase()}`, { device: i.deviceId, err: (err as Error).message })
      else ctx.log.warn({ err, device: i.deviceId }, 'GPIO reading refused')
      return undefined
    }
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true
    for (const i of this.#inputs) {
      if (i.recheck) clearTimeout(i.recheck)
      i.recheck = undefined
    }
    // Last readings: pulses counted since the last periodic reading survive a graceful stop.
    for (const i of this.#inputs) {
      if (i.pin && i.counter && i.counter.total !== i.lastEmitPulses) this.#track(this.#emitCounter(i))
    }
    await this.settled()
    for (const i of this.#inputs) {
      try {
        i.pin?.close()
      } catch (err) {
        this.#ctx?.log.warn({ err, input: i.cfg.name }, 'cannot release GPIO input')
      }
      i.pin = undefined
    }
    if (this.#led) {
      this.#led.driver.stop()
      try {
        this.#led.pin.close()
      } catch (err) {
        this.#ctx?.log.warn({ err }, 'cannot release the status LED')
      }
      this.#led = undefined
    }
  }
}

/** The pulse total of a device row's state, 0 when absent or unreadable. */
export function restoredPulses(state: string): number {
  try {
    const v = (JSON.parse(state) as { pulses?: unknown } | null)?.pulses
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0
  } catch {
    return 0
  }
}

/** Metric names a counting kind produces (docs, status). */
export function counterMetricNames(kind: CounterKindId): string[] {
  const k = COUNTER_KINDS[kind]
  return ['pulses', ...(k.total !== null ? [k.total] : []), k.rate]
}
