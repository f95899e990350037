// Logging: pino, one JSON object per line on stderr (journald keeps it; the
// image keeps the journal in RAM, reliability plan §2 "Volatile, rate-limited
// logging"). Secrets are redacted by key name wherever they appear in the
// first three levels of a log object. Bad input is logged through
// RateLimitedLog, so a flood of bad packets cannot become a flood of log
// lines (invariant 6, plan R3/T23).

import { pino, type DestinationStream, type Logger } from 'pino'
import type { LogLevel } from '../config/schema.ts'

export type { Logger } from 'pino'

/** Object keys whose values are never written to the log. */
export const REDACTED_KEYS = [
  'privateKey',
  'token',
  'password',
  'passphrase',
  'bindkey',
  'appKey',
  'nwkSKey',
  'appSKey',
  'authorization',
  'Authorization',
] as const

/** The pino redact paths of {@link REDACTED_KEYS}: the key at the top level and nested one or two levels deep. */
export const REDACT_PATHS: readonly string[] = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`])

export interface CreateLoggerOptions {
  readonly level: LogLevel
  /** Component name, written as `name` on every line. */
  readonly name?: string
  /** Where lines go; default stderr, written synchronously so the last lines before a crash are kept. */
  readonly destination?: DestinationStream | NodeJS.WritableStream
}

/**
 * A pino logger writing JSON lines (`{"level":"info","time":...,"name":...,"msg":...}`).
 *
 * @example
 * const log = createLogger({ level: config.gateway.log_level, name: 'gateway' })
 * log.info({ address }, 'gateway key loaded')
 */
export function createLogger(opts: CreateLoggerOptions): Logger {
  const destination = opts.destination ?? pino.destination({ dest: 2, sync: true })
  return pino(
    {
      level: opts.level,
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      base: { pid: process.pid },
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    destination as DestinationStream,
  )
}

export interface RateLimitedLogOptions {
  /** At most one line per cause per interval after the first (default 60 000 ms). */
  readonly intervalMs?: number
  /** Clock in ms (default Date.now); monotonic enough for spacing log lines. */
  readonly now?: () => number
  /** Level of the lines (default warn). */
  readonly level?: 'debug' | 'info' | 'warn' | 'error'
  /** Most causes tracked, `(other)` included; further causes are counted under `(other)` (default 256, at least 2). */
  readonly maxCauses?: number
}

interface CauseState {
  count: number
  suppressed: number
  lastLoggedAt: number
}

/** The cause new causes are folded into once `maxCauses` distinct ones are tracked. */
export const OTHER_CAUSE = '(other)'

/**
 * Logs rejected input once per cause per interval, with exact counts.
 * The first occurrence of a cause is logged at once; later ones within the
 * interval are only counted, and the next line for that cause says how many
 * were suppressed (`{ cause, suppressed: n }`).
 *
 * @example
 * const rejects = new RateLimitedLog(log.child({ source: 'semtech-udp' }))
 * rejects.reject('bad-mic', { devAddr: '26011bda' })
 */
export class RateLimitedLog {
  readonly #logger: Logger
  readonly #intervalMs: number
  readonly #now: () => number
  readonly #level: 'debug' | 'info' | 'warn' | 'error'
  readonly #maxCauses: number
  readonly #causes = new Map<string, CauseState>()

  constructor(logger: Logger, opts: RateLimitedLogOptions = {}) {
    this.#logger = logger
    this.#intervalMs = opts.intervalMs ?? 60_000
    this.#now = opts.now ?? Date.now
    this.#level = opts.level ?? 'warn'
    this.#maxCauses = Math.max(2, opts.maxCauses ?? 256)
  }

  /** Count one rejection; log it unless this cause was logged less than an interval ago. */
  reject(cause: string, details: object = {}): void {
    let key = cause
    let state = this.#causes.get(key)
    // One slot stays free for OTHER_CAUSE, so at most maxCauses entries are kept.
    if (state === undefined && cause !== OTHER_CAUSE && this.#causes.size >= this.#maxCauses - 1) {
      key = OTHER_CAUSE
      state = this.#causes.get(key)
    }
    const now = this.#now()
    if (state === undefined) {
      this.#causes.set(key, { count: 1, suppressed: 0, lastLoggedAt: now })
      this.#write(key, 0, key === cause ? details : { ...details, originalCause: cause })
      return
    }
    state.count++
    if (now - state.lastLoggedAt >= this.#intervalMs) {
      const suppressed = state.suppressed
      state.suppressed = 0
      state.lastLoggedAt = now
      this.#write(key, suppressed, key === cause ? details : { ...details, originalCause: cause })
    } else {
      state.suppressed++
    }
  }

  /**
   * Write a summary line for every cause with suppressed occurrences (on
   * stop, or from a periodic timer, so the tail of a flood is not left unsaid).
   */
  flush(): void {
    const now = this.#now()
    for (const [cause, state] of this.#causes) {
      if (state.suppressed === 0) continue
      this.#logger[this.#level]({ cause, suppressed: state.suppressed, total: state.count }, 'input rejected (summary)')
      state.suppressed = 0
      state.lastLoggedAt = now
    }
  }

  /** Total rejections per cause since construction (exact, suppressed ones included). */
  counts(): Map<string, number> {
    return new Map([...this.#causes].map(([cause, s]) => [cause, s.count]))
  }

  #write(cause: string, suppressed: number, details: object): void {
    this.#logger[this.#level]({ ...details, cause, suppressed }, `input rejected: ${cause}`)
  }
}
