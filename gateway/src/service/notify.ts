// The systemd notification protocol (sd_notify(3), systemd.service(5)
// Type=notify and WatchdogSec=) for the gateway, docs/systemd.md.
//
// The protocol is a datagram of newline-separated VAR=VALUE lines on the
// AF_UNIX SOCK_DGRAM socket named by $NOTIFY_SOCKET. Node has no unix
// datagram sockets (node:dgram is UDP only; node:net is stream only), so the
// messages are sent by systemd-notify(1), spawned as a child:
//   - it is the reference client, shipped with systemd itself;
//   - since systemd 246 it waits, by default, until the manager has processed
//     the message (BARRIER=1 with a pipe fd, sd_notify_barrier(3)), which
//     closes the old race where the sender exited before PID 1 could map its
//     PID to the unit (systemd issue #2737);
//   - the sender is a child of the main process, so the unit needs
//     NotifyAccess=all (an unprivileged process cannot pass another PID in
//     SCM_CREDENTIALS).
// A native addon would avoid one fork per message, but adds a compiled
// dependency for arm64; at one WATCHDOG=1 every WatchdogSec/2 (15 s) the
// fork costs nothing that matters.
//
// Messages: READY=1 once started, STATUS=<one line> when it changes,
// WATCHDOG=1 every WatchdogSec/2 only while the health check (health.ts)
// passes, STOPPING=1 when shutting down. $WATCHDOG_USEC/$WATCHDOG_PID decide
// whether the watchdog is on for this process (sd_watchdog_enabled(3)).
// NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are removed from
// process.env (as sd_notify's unset_environment does) so that other children
// (codec workers, timedatectl) do not inherit them.

import { spawn } from 'node:child_process'
import type { HealthResult } from './health.ts'

/** One notification: ordered VAR=VALUE pairs, e.g. { READY: '1', STATUS: 'running' }. */
export type NotifyFields = Readonly<Record<string, string>>

export interface NotifierOptions {
  /** Environment holding NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID (default process.env; the variables are removed from it). */
  readonly env?: Record<string, string | undefined>
  /** PID compared with WATCHDOG_PID (default process.pid). */
  readonly pid?: number
  /** The sender program (default "systemd-notify"). */
  readonly command?: string
  /** Longest wait for one message to be acknowledged (default 10 s). */
  readonly timeoutMs?: number
  /** Reports a message that could not be sent. */
  readonly onError?: (err: Error, fields: NotifyFields) => void
}

/** Build the datagram text of a notification (newline-separated, no trailing newline). */
export function notifyPayload(fields: NotifyFields): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`)
    .join('\n')
}

/**
 * Watchdog interval for this process from WATCHDOG_USEC and WATCHDOG_PID,
 * or undefined when the watchdog is off (sd_watchdog_enabled(3)): half the
 * timeout, as systemd.service(5) recommends.
 */
export function watchdogIntervalMs(env: Readonly<Record<string, string | undefined>>, pid: number): number | undefined {
  const usec = env['WATCHDOG_USEC']
  if (usec === undefined || !/^\d+$/.test(usec) || Number(usec) === 0) return undefined
  const wpid = env['WATCHDOG_PID']
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return undefined
  return Math.max(1, Math.floor(Number(usec) / 2000))
}

/** Sends sd_notify messages through systemd-notify; does nothing when not started by systemd. */
export class SystemdNotifier {
  /** $NOTIFY_SOCKET, or undefined (not under systemd: every call is a no-op). */
  readonly socket: string | undefined
  /** WATCHDOG=1 period, or undefined when the watchdog is off. */
  readonly watchdogMs: number | undefined
  readonly #command: string
  readonly #timeoutMs: number
  readonly #onError: (err: Error, fields: NotifyFields) => void
  #timer: NodeJS.Timeout | undefined
  #inFlight = false
  #lastStatus: string | undefined

  constructor(o: NotifierOptions = {}) {
    const env = o.env ?? process.env
    const sock = env['NOTIFY_SOCKET']
    this.socket = sock === undefined || sock === '' ? undefined : sock
    this.watchdogMs = this.socket === undefined ? undefined : watchdogIntervalMs(env, o.pid ?? process.pid)
    delete env['NOTIFY_SOCKET']
    delete env['WATCHDOG_USEC']
    delete env['WATCHDOG_PID']
    this.#command = o.command ?? 'systemd-notify'
    this.#timeoutMs = o.timeoutMs ?? 10_000
    this.#onError = o.onError ?? (() => undefined)
  }

  get enabled(): boolean {
    return this.socket !== undefined
  }

  /**
   * Send one message; resolves true once systemd-notify reports it delivered
   * (and processed: the barrier), false when disabled or on failure.
   */
  notify(fields: NotifyFields): Promise<boolean> {
    const socket = this.socket
    if (socket === undefined) return Promise.resolve(false)
    const args = Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`)
    return new Promise((resolve) => {
      let stderr = ''
      const child = spawn(this.#command, args, { env: { ...process.env, NOTIFY_SOCKET: socket }, stdio: ['ignore', 'ignore', 'pipe'], timeout: this.#timeoutMs })
      child.stderr?.setEncoding('utf8')
      child.stderr?.on('data', (d: string) => (stderr += d))
      child.once('error', (err) => {
        this.#onError(err, fields)
        resolve(false)
      })
      child.once('close', (code, signal) => {
        if (code === 0) return resolve(true)
        this.#onError(new Error(`${this.#command} ${signal ? `killed by ${signal}` : `exited ${String(code)}`}${stderr ? `: ${stderr.trim()}` : ''}`), fields)
        resolve(false)
      })
    })
  }

  /** READY=1 with a status line. */
  ready(status: string): Promise<boolean> {
    this.#lastStatus = status
    return this.notify({ READY: '1', STATUS: status })
  }

  /** STATUS=<text>, sent only when it changed. */
  status(text: string): Promise<boolean> {
    if (text === this.#lastStatus) return Promise.resolve(true)
    this.#lastStatus = text
    return this.notify({ STATUS: text })
  }

  /** STOPPING=1 (and stops the watchdog). */
  stopping(status = 'stopping'): Promise<boolean> {
    this.stopWatchdog()
    this.#lastStatus = status
    return this.notify({ STOPPING: '1', STATUS: status })
  }

  /**
   * Every watchdogMs, run `health()`; send WATCHDOG=1 only when it passes
   * (with a STATUS= line when the state changed), otherwise only the STATUS=
   * line naming the reasons: systemd then kills and restarts the gateway
   * after WatchdogSec without a ping. No-op when the watchdog is off.
   */
  startWatchdog(health: () => HealthResult, statusOf: (h: HealthResult) => string = defaultStatus): void {
    const every = this.watchdogMs
    if (every === undefined || this.#timer !== undefined) return
    const tick = (): void => {
      // A slow systemd-notify (a loaded Pi) never piles up children.
      if (this.#inFlight) return
      const h = health()
      const text = statusOf(h)
      const fields: Record<string, string> = h.ok ? { WATCHDOG: '1' } : {}
      if (text !== this.#lastStatus) fields['STATUS'] = text
      this.#lastStatus = text
      if (Object.keys(fields).length === 0) return
      this.#inFlight = true
      void this.notify(fields).finally(() => {
        this.#inFlight = false
      })
    }
    this.#timer = setInterval(tick, every)
    // The ping must never keep a stopping process alive.
    this.#timer.unref()
  }

  stopWatchdog(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }
}

function defaultStatus(h: HealthResult): string {
  return h.ok ? `running: ${h.summary}` : `unhealthy: ${h.reasons.join('; ')}`
}
