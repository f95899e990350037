// Simulated sensors, so `fieldproof start` on a laptop shows the whole
// pipeline: temperature/humidity nodes, air-quality nodes and power meters
// with realistic, slowly drifting values and a daily cycle.

import type { Metric, Reading } from '../../core/types.ts'
import { isFieldproofError } from '../../core/errors.ts'
import type { Source, SourceContext } from '../../pipeline/source.ts'

export type SimKind = 'th' | 'aq' | 'power'

export interface SimOptions {
  readonly sensors: number
  readonly intervalMs: number
  readonly kinds: readonly SimKind[]
  /** Seed for reproducible runs (tests, benchmarks). */
  readonly seed?: number
}

/** Small, fast, seedable PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits

export class SimSensor {
  readonly id: string
  readonly kind: SimKind
  readonly #rand: () => number
  #drift = 0
  #energyKwh: number
  #battery = 100

  constructor(kind: SimKind, index: number, seed: number) {
    this.kind = kind
    this.id = `sim-${kind}-${String(index + 1).padStart(2, '0')}`
    this.#rand = prng(seed + index * 7919)
    this.#energyKwh = round(1000 + this.#rand() * 500, 3)
  }

  /** Values for wall time `ms`: a daily cycle plus a random walk plus noise. */
  sample(ms: number): Metric[] {
    const r = this.#rand
    const day = Math.sin(((ms / 3_600_000) % 24) / 24 * 2 * Math.PI - Math.PI / 2) // -1 at 00:00, +1 at 12:00
    this.#drift = Math.max(-3, Math.min(3, this.#drift + (r() - 0.5) * 0.2))
    const noise = (s: number) => (r() - 0.5) * 2 * s
    this.#battery = Math.max(5, this.#battery - r() * 0.001)
    switch (this.kind) {
      case 'th': {
        const t = 18 + 6 * day + this.#drift + noise(0.1)
        const h = Math.max(5, Math.min(99, 55 - 15 * day - this.#drift * 2 + noise(0.5)))
        return [
          { name: 'temperature_c', unit: 'Cel', value: round(t, 2) },
          { name: 'humidity_pct', unit: '%', value: round(h, 1) },
          { name: 'pressure_hpa', unit: 'hPa', value: round(1013 + this.#drift * 3 + noise(0.2), 1) },
          { name: 'battery_pct', unit: '%', value: round(this.#battery, 1) },
        ]
      }
      case 'aq': {
        const occupancy = Math.max(0, day)
        return [
          { name: 'co2_ppm', unit: 'ppm', value: Math.round(420 + 600 * occupancy + this.#drift * 20 + noise(15)) },
          { name: 'pm2_5_ugm3', unit: 'ug/m3', value: round(Math.max(0, 8 + this.#drift * 2 + noise(1.5)), 1) },
          { name: 'pm10_ugm3', unit: 'ug/m3', value: round(Math.max(0, 14 + this.#drift * 3 + noise(2.5)), 1) },
          { name: 'tvoc_ppb', unit: 'ppb', value: Math.round(Math.max(0, 120 + 200 * occupancy + noise(20))) },
        ]
      }
      case 'power': {
        const v = 230 + noise(2.5)
        const p = Math.max(0, 350 + 900 * Math.max(0, day) + this.#drift * 40 + noise(60))
        const pf = 0.92 + noise(0.03)
        this.#energyKwh += p / 1000 / 3600 // one second's worth per sample at most: monotonic, realistic
        return [
          { name: 'voltage_v', unit: 'V', value: round(v, 1) },
          { name: 'current_a', unit: 'A', value: round(p / (v * pf), 3) },
          { name: 'power_w', unit: 'W', value: round(p, 1) },
          { name: 'power_factor', unit: '1', value: round(pf, 3) },
          { name: 'energy_kwh', unit: 'kWh', value: round(this.#energyKwh, 4) },
          { name: 'frequency_hz', unit: 'Hz', value: round(50 + noise(0.03), 3) },
        ]
      }
    }
  }
}

export function createSimSensors(o: SimOptions): SimSensor[] {
  const kinds = o.kinds.length ? o.kinds : (['th', 'aq', 'power'] as const)
  return Array.from({ length: o.sensors }, (_, i) => new SimSensor(kinds[i % kinds.length] as SimKind, i, o.seed ?? 1))
}

export class SimSource implements Source {
  readonly id = 'sim'
  readonly #o: SimOptions
  readonly #sensors: SimSensor[]
  #sent = 0
  #refused = 0

  constructor(o: SimOptions) {
    this.#o = o
    this.#sensors = createSimSensors(o)
  }

  status(): Record<string, unknown> {
    return { sensors: this.#sensors.map((s) => s.id), intervalMs: this.#o.intervalMs, stored: this.#sent, refused: this.#refused }
  }

  async start(ctx: SourceContext, signal: AbortSignal): Promise<void> {
    const timers: NodeJS.Timeout[] = []
    this.#sensors.forEach((sensor, i) => {
      // Spread the sensors over the interval so readings arrive steadily.
      const offset = Math.floor((this.#o.intervalMs * i) / Math.max(1, this.#sensors.length))
      const tick = () => {
        const received = ctx.now()
        const reading: Reading = {
          deviceId: sensor.id,
          source: 'sim',
          received,
          deviceTimeMs: received.wallMs,
          metrics: sensor.sample(received.wallMs),
          auth: { kind: 'none' },
        }
        ctx.ingest([reading]).then(
          () => void this.#sent++,
          (e: unknown) => {
            this.#refused++
            if (!isFieldproofError(e, 'STORE_CLOSED')) ctx.log.warn({ err: e, device: sensor.id }, 'simulated reading refused')
          },
        )
      }
      const start = setTimeout(() => {
        tick()
        timers.push(setInterval(tick, this.#o.intervalMs))
      }, offset)
      timers.push(start)
    })
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve()
      signal.addEventListener('abort', () => resolve(), { once: true })
    })
    for (const t of timers) clearTimeout(t)
  }
}
