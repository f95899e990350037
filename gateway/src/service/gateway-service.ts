// The gateway under systemd (docs/systemd.md): READY=1 once started, the
// watchdog gated by the gateway's own health check (health.ts), STATUS=
// lines, STOPPING=1 on shutdown. Outside systemd (no $NOTIFY_SOCKET) this
// does nothing.

import type { Gateway } from '../gateway.ts'
import { HealthCheck, type HealthResult } from './health.ts'
import { SystemdNotifier, type NotifierOptions } from './notify.ts'

/** What `fieldproof start` holds while the gateway runs. */
export interface GatewayService {
  readonly notifier: SystemdNotifier
  readonly health: HealthCheck
  /** Send STOPPING=1 and stop the watchdog; call before Gateway.stop(). */
  stopping(): Promise<void>
}

/** Health probes over a started gateway. */
export function gatewayHealth(gw: Gateway, opts: { stuckMs?: number; probeIntervalMs?: number; now?: () => number } = {}): HealthCheck {
  return new HealthCheck({
    ...opts,
    probes: {
      pending: () => gw.pipeline?.state.pending ?? 0,
      lastSeq: () => gw.store?.lastSeq() ?? 0n,
      writeProbe: () => {
        if (!gw.store || gw.store.closed) throw new Error('the store is closed')
        gw.store.setMeta('health_probe_ms', String(Date.now()))
      },
      running: () => {
        const h = gw.health()
        return h !== 'starting' && h !== 'stopped' && gw.store !== undefined && !gw.store.closed
      },
    },
  })
}

/**
 * Announce a started gateway to systemd and keep the watchdog fed while it is
 * healthy.
 *
 * @example
 * const started = await gw.start()
 * const service = await startGatewayService(gw, `gateway ${started.address}`)
 * // on SIGTERM: await service.stopping(); await gw.stop()
 */
export async function startGatewayService(gw: Gateway, readyStatus: string, opts: NotifierOptions = {}): Promise<GatewayService> {
  const notifier = new SystemdNotifier({
    onError: (err, fields) => gw.log.warn({ err, fields: Object.keys(fields) }, 'systemd notification not delivered'),
    ...opts,
  })
  const health = gatewayHealth(gw)
  let wasOk = true
  const checked = (): HealthResult => {
    const h = health.check()
    if (h.ok !== wasOk) {
      if (h.ok) gw.log.info('health check passes again; watchdog pings resume')
      else gw.log.error({ reasons: h.reasons }, 'health check failed; watchdog pings withheld (systemd restarts the gateway after WatchdogSec)')
      wasOk = h.ok
    }
    return h
  }
  if (notifier.enabled) {
    await notifier.ready(readyStatus)
    notifier.startWatchdog(checked)
    gw.log.info({ watchdogMs: notifier.watchdogMs ?? null }, 'notified systemd: ready')
  }
  return {
    notifier,
    health,
    async stopping() {
      await notifier.stopping()
    },
  }
}
