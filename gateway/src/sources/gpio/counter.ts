// Pure input logic of the GPIO source (docs/gpio.md, "Inputs"): debouncing,
// pulse counting and the metrics of a counter's periodic reading. No I/O and
// no timers: the driver (source.ts) feeds levels with monotonic timestamps,
// from interrupts or from polling, and the same code counts either way.

import type { Metric } from '../../core/types.ts'
import { METRICS, type MetricName } from '../../core/units.ts'
import type { GpioInputKind } from '../../config/sections/gpio.ts'

export type Level = 0 | 1

/**
 * Lock-out debouncer: a level change is accepted when it comes at least
 * `debounceMs` after the last accepted change; earlier changes are bounces.
 * A change that was refused while locked out is accepted by the next feed
 * after the lock-out (the driver re-reads the pin then in interrupt mode).
 */
export class Debouncer {
  readonly #debounceMs: number
  #level: Level
  #raw: Level
  #lastChangeMs = Number.NEGATIVE_INFINITY
  /** Raw changes dropped as bounces. */
  bounces = 0

  constructor(debounceMs: number, initial: Level) {
    this.#debounceMs = debounceMs
    this.#level = initial
    this.#raw = initial
  }

  /** The debounced level. */
  get level(): Level {
    return this.#level
  }

  /** Monotonic ms of the last accepted change (-Infinity before the first). */
  get lastChangeMs(): number {
    return this.#lastChangeMs
  }

  /** Whether the raw level differs from the debounced one (a re-check is due after the lock-out). */
  get unsettled(): boolean {
    return this.#raw !== this.#level
  }

  /** Take `level` as the settled level without a change (the first read of a line). */
  reset(level: Level): void {
    this.#level = level
    this.#raw = level
    this.#lastChangeMs = Number.NEGATIVE_INFINITY
  }

  /** Feed the level observed at monotonic time `tMs`; returns the new debounced level when it changed, else null. */
  feed(level: Level, tMs: number): Level | null {
    const rawChanged = level !== this.#raw
    this.#raw = level
    if (level === this.#level) return null
    if (tMs - this.#lastChangeMs < this.#debounceMs) {
      if (rawChanged) this.bounces++
      return null
    }
    this.#level = level
    this.#lastChangeMs = tMs
    return level
  }
}

/** Counts one edge of a debounced input. */
export class PulseCounter {
  readonly #debouncer: Debouncer
  readonly #countOn: Level
  /** Cumulative pulses, restored from the store at start. */
  total: number

  constructor(o: { debounceMs: number; edge: 'rising' | 'falling'; initial: Level; total: number }) {
    this.#debouncer = new Debouncer(o.debounceMs, o.initial)
    this.#countOn = o.edge === 'rising' ? 1 : 0
    this.total = o.total
  }

  get debouncer(): Debouncer {
    return this.#debouncer
  }

  /** Feed a level; true when it completed one counted edge. */
  feed(level: Level, tMs: number): boolean {
    const changed = this.#debouncer.feed(level, tMs)
    if (changed === null || changed !== this.#countOn) return false
    this.total++
    return true
  }
}

/** Metrics of each counting kind: the cumulative total (if any) and the rate over a period. */
export interface CounterKind {
  /** Cumulative metric in units (pulses × factor + offset), or null when the kind has none. */
  readonly total: MetricName | null
  readonly rate: MetricName
  /** Multiplier from units per second to the rate metric's unit (3600: per hour; 3.6e6: kWh/s → W). */
  readonly perSecond: number
  /** Default units per pulse when neither factor nor pulses_per_unit is set. */
  readonly defaultFactor: number
}

export const COUNTER_KINDS = {
  rain: { total: 'rain_mm', rate: 'rain_rate_mmh', perSecond: 3600, defaultFactor: 0.2794 },
  energy: { total: 'energy_kwh', rate: 'power_w', perSecond: 3_600_000, defaultFactor: 0.001 },
  water: { total: 'water_l', rate: 'flow_rate_lmin', perSecond: 60, defaultFactor: 1 },
  gas: { total: 'gas_m3', rate: 'flow_rate_m3h', perSecond: 3600, defaultFactor: 0.01 },
  wind: { total: null, rate: 'wind_speed_ms', perSecond: 1, defaultFactor: 0.6667 },
  pulse: { total: null, rate: 'frequency_hz', perSecond: 1, defaultFactor: 1 },
} as const satisfies Record<Exclude<GpioInputKind, 'contact'>, CounterKind>

export type CounterKindId = keyof typeof COUNTER_KINDS

/** Units per pulse from the config: factor, else 1 / pulses_per_unit, else the kind's default. */
export function unitsPerPulse(kind: CounterKindId, factor: number, pulsesPerUnit: number): number {
  if (kind === 'pulse') return 1
  if (factor > 0) return factor
  if (pulsesPerUnit > 0) return 1 / pulsesPerUnit
  return COUNTER_KINDS[kind].defaultFactor
}

/** Round away binary noise (0.2794 × 3 = 0.8381999999999999): 6 decimals. */
export function roundValue(v: number): number {
  return Math.round(v * 1e6) / 1e6
}

const metric = (name: MetricName, value: number): Metric => ({ name, unit: METRICS[name].unit, value: roundValue(value) })

/**
 * The metrics of one periodic counter reading.
 *
 * @param totalPulses cumulative pulses since the input was installed
 * @param periodPulses pulses since the previous reading
 * @param periodMs monotonic ms since the previous reading (> 0)
 * @example counterMetrics('rain', 0.2794, 0, 10, 3, 60_000)
 *   // pulses 10, rain_mm 2.794, rain_rate_mmh 50.292 (0.8382 mm in a minute)
 */
export function counterMetrics(kind: CounterKindId, factor: number, offset: number, totalPulses: number, periodPulses: number, periodMs: number): Metric[] {
  const k: CounterKind = COUNTER_KINDS[kind]
  const out: Metric[] = [metric('pulses', totalPulses)]
  if (k.total !== null) out.push(metric(k.total, totalPulses * factor + offset))
  const seconds = periodMs / 1000
  out.push(metric(k.rate, seconds > 0 ? ((periodPulses * factor) / seconds) * k.perSecond : 0))
  return out
}
