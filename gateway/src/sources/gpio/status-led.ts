// The status LED (docs/gpio.md, "Status LED"): the gateway's state as a
// blink code. `deriveHealth` and `blinkPattern`/`ledLevel` are pure; the
// driver `StatusLed` only samples the state and writes the pin when the level
// changes.
//
// Codes (period, then the lit spans within it):
//   starting       solid on
//   healthy        heartbeat: 100 ms on every 2 s
//   upstream-down  double blink: 150 on, 150 off, 150 on, then off, every 2 s
//   error          fast blink: 100 ms on, 100 ms off (5 Hz)
//   stopped        off

/** What the LED shows. */
export const GATEWAY_HEALTH = ['starting', 'healthy', 'upstream-down', 'error', 'stopped'] as const
export type GatewayHealth = (typeof GATEWAY_HEALTH)[number]

/** What the gateway knows that decides its health. */
export interface HealthInputs {
  readonly phase: 'starting' | 'running' | 'stopping' | 'stopped'
  /** The store refuses input (invariant 5). */
  readonly storeFull: boolean
  /** Sources that stopped with an error. */
  readonly failedSources: number
  /** State of each enabled sink (SinkStatus.state). */
  readonly sinkStates: readonly string[]
}

/**
 * The gateway's health from what it knows. Error outranks upstream trouble:
 * a full store or a dead source needs a person; a failing upstream usually
 * comes back by itself.
 *
 * @example deriveHealth({ phase: 'running', storeFull: false, failedSources: 0, sinkStates: ['stuck'] }) // 'upstream-down'
 */
export function deriveHealth(i: HealthInputs): GatewayHealth {
  if (i.phase === 'starting') return 'starting'
  if (i.phase === 'stopping' || i.phase === 'stopped') return 'stopped'
  if (i.storeFull || i.failedSources > 0) return 'error'
  // A sink retrying after a failure (backoff) or with its circuit open (stuck) makes no upstream progress.
  if (i.sinkStates.some((s) => s === 'backoff' || s === 'stuck')) return 'upstream-down'
  return 'healthy'
}

/** A repeating blink code: lit during each [start, end) span (ms) of every period. */
export interface BlinkPattern {
  readonly periodMs: number
  readonly on: readonly (readonly [number, number])[]
}

export const BLINK_PATTERNS: Readonly<Record<GatewayHealth, BlinkPattern>> = {
  starting: { periodMs: 1000, on: [[0, 1000]] },
  healthy: { periodMs: 2000, on: [[0, 100]] },
  'upstream-down': { periodMs: 2000, on: [[0, 150], [300, 450]] },
  error: { periodMs: 200, on: [[0, 100]] },
  stopped: { periodMs: 1000, on: [] },
}

export function blinkPattern(h: GatewayHealth): BlinkPattern {
  return BLINK_PATTERNS[h]
}

/** The LED level `ms` after the pattern started (1 = lit). */
export function ledLevel(p: BlinkPattern, ms: number): 0 | 1 {
  const t = ((ms % p.periodMs) + p.periodMs) % p.periodMs
  return p.on.some(([a, b]) => t >= a && t < b) ? 1 : 0
}

/** Drives one LED from a health getter. `tick()` is called by a timer, or by tests with a fake clock. */
export class StatusLed {
  readonly #write: (level: 0 | 1) => void
  readonly #health: () => GatewayHealth
  readonly #now: () => number
  #shown: GatewayHealth | undefined
  #since = 0
  #level: 0 | 1 | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(o: { write: (level: 0 | 1) => void; health: () => GatewayHealth; now?: () => number }) {
    this.#write = o.write
    this.#health = o.health
    this.#now = o.now ?? (() => performance.now())
  }

  /** The code being shown. */
  get showing(): GatewayHealth | undefined {
    return this.#shown
  }

  /** Sample the health, write the pin if the level changed; a new code starts at the beginning of its pattern. */
  tick(): 0 | 1 {
    const now = this.#now()
    const h = this.#health()
    if (h !== this.#shown) {
      this.#shown = h
      this.#since = now
    }
    const level = ledLevel(BLINK_PATTERNS[h], now - this.#since)
    if (level !== this.#level) {
      this.#write(level)
      this.#level = level
    }
    return level
  }

  /** Tick every `tickMs` (25 ms keeps every edge within a quarter of the shortest span). */
  start(tickMs = 25): void {
    this.tick()
    this.#timer = setInterval(() => this.tick(), tickMs)
  }

  /** Stop ticking and turn the LED off. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    if (this.#level !== 0) this.#write(0)
    this.#level = 0
    this.#shown = undefined
  }
}
