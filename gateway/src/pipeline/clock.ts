// Receive time (invariant 7): boot id + monotonic time + wall time + clock
// state. The Pi may have no RTC, so the wall clock is evidence, not order.

import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import type { ClockState, ReceiveTime } from '../core/types.ts'

export interface ClockOptions {
  /** How to learn whether the wall clock is synchronized. */
  readonly syncCheck: 'timedatectl' | 'none'
  /** For tests: a fixed state, or a file whose existence means "synchronized". */
  readonly syncFile?: string
  readonly bootIdFile?: string
}

/** systemd-timesyncd creates this file once the clock is synchronized (systemd ≥ 239). */
export const TIMESYNC_FILE = '/run/systemd/timesync/synchronized'

export function readBootId(file = '/proc/sys/kernel/random/boot_id'): string {
  try {
    const id = readFileSync(file, 'utf8').trim().replace(/-/g, '').toLowerCase()
    if (/^[0-9a-f]{32}$/.test(id)) return id
  } catch {
    // not Linux, or /proc unavailable: fall through to a per-process id
  }
  return randomBytes(16).toString('hex')
}

export class Clock {
  readonly bootId: string
  #state: ClockState = 'unsynchronized'
  #checkedAt = -Infinity
  readonly #opts: ClockOptions

  constructor(opts: ClockOptions = { syncCheck: 'timedatectl' }) {
    this.#opts = opts
    this.bootId = readBootId(opts.bootIdFile)
    this.refresh()
  }

  /** Re-read the synchronization state (cheap; called at most once per 10 s by now()). */
  refresh(): ClockState {
    this.#checkedAt = performance.now()
    if (this.#opts.syncCheck === 'none') return (this.#state = 'unsynchronized')
    const file = this.#opts.syncFile ?? TIMESYNC_FILE
    this.#state = existsSync(file) ? 'ntp' : 'unsynchronized'
    return this.#state
  }

  get state(): ClockState {
    return this.#state
  }

  /** Mark the clock as synchronized by another source (GPS time from a LoRa forwarder). */
  setState(state: ClockState): void {
    this.#state = state
    this.#checkedAt = performance.now()
  }

  now(): ReceiveTime {
    if (performance.now() - this.#checkedAt > 10_000) this.refresh()
    return { bootId: this.bootId, monoNs: process.hrtime.bigint(), wallMs: Date.now(), clock: this.#state }
  }
}
