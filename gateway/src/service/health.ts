// The gateway's own liveness check, which gates the systemd watchdog
// (docs/systemd.md, "Watchdog"). It answers one question: would restarting
// the process help? So it fails only for conditions a restart can clear:
//
//   - the store is not writable: a write probe (one meta row, in its own
//     transaction, synchronous=FULL) fails; the probe runs at most every
//     `probeIntervalMs`, and not at all while commits show the store takes
//     writes (the sequence advanced since the last probe);
//   - the pipeline is stuck: readings are pending but none has been
//     committed for `stuckMs`;
//   - the process is stopping or the store is closed.
//
// A full store (invariant 5) is not a failure here: the gateway refuses input
// loudly, and a restart would not free space. A blocked event loop needs no
// check: the timer that sends WATCHDOG=1 does not fire, and systemd kills the
// process after WatchdogSec.

/** What the check reads from the gateway. */
export interface HealthProbes {
  /** Readings waiting for commit. */
  pending(): number
  /** The highest committed sequence number. */
  lastSeq(): bigint
  /** Write something small and durable; throws when the store cannot write. */
  writeProbe(): void
  /** True while the gateway runs (not starting, stopping or stopped, store open). */
  running(): boolean
}

export interface HealthOptions {
  readonly probes: HealthProbes
  /** Pending readings with no commit for this long = stuck (default 60 s). */
  readonly stuckMs?: number
  /** Least time between two write probes (default 60 s). */
  readonly probeIntervalMs?: number
  /** Monotonic milliseconds (default performance.now()). */
  readonly now?: () => number
}

/** The result of one check. */
export type HealthResult = { readonly ok: true; readonly summary: string } | { readonly ok: false; readonly reasons: readonly string[] }

export class HealthCheck {
  readonly #p: HealthProbes
  readonly #stuckMs: number
  readonly #probeMs: number
  readonly #now: () => number
  #lastSeq: bigint | undefined
  #progressAt = 0
  #probeAt = -Infinity
  #probeSeq: bigint | undefined
  #probeError: string | undefined

  constructor(o: HealthOptions) {
    this.#p = o.probes
    this.#stuckMs = o.stuckMs ?? 60_000
    this.#probeMs = o.probeIntervalMs ?? 60_000
    this.#now = o.now ?? (() => performance.now())
  }

  check(): HealthResult {
    const now = this.#now()
    const reasons: string[] = []
    if (!this.#p.running()) return { ok: false, reasons: ['the gateway is not running'] }
    let seq: bigint
    try {
      seq = this.#p.lastSeq()
    } catch (e) {
      return { ok: false, reasons: [`store not readable: ${(e as Error).message}`] }
    }
    if (this.#lastSeq === undefined || seq !== this.#lastSeq) {
      this.#lastSeq = seq
      this.#progressAt = now
    }
    const pending = this.#p.pending()
    if (pending === 0) this.#progressAt = now
    else if (now - this.#progressAt >= this.#stuckMs) {
      reasons.push(`pipeline stuck: ${pending} reading(s) pending, none committed for ${Math.round((now - this.#progressAt) / 1000)} s`)
    }
    // Commits since the last probe prove the store writes; otherwise probe.
    const committedSinceProbe = this.#probeSeq !== undefined && seq !== this.#probeSeq
    if (committedSinceProbe) {
      this.#probeSeq = seq
      this.#probeAt = now
      this.#probeError = undefined
    } else if (now - this.#probeAt >= this.#probeMs || this.#probeError !== undefined) {
      this.#probeAt = now
      this.#probeSeq = seq
      try {
        this.#p.writeProbe()
        this.#probeError = undefined
      } catch (e) {
        this.#probeError = (e as Error).message
      }
    }
    if (this.#probeError !== undefined) reasons.push(`store not writable: ${this.#probeError}`)
    if (reasons.length > 0) return { ok: false, reasons }
    return { ok: true, summary: `last seq ${seq.toString()}, ${pending} pending` }
  }
}
