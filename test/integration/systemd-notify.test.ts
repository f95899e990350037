// sd_notify for real: the gateway's messages go through systemd-notify(1)
// to a real AF_UNIX datagram receiver (test/helpers/notify-receiver.ts,
// python3), which also acknowledges each BARRIER=1 like the service manager.

import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { HealthResult } from '../../gateway/src/service/health.ts'
import { SystemdNotifier, watchdogIntervalMs } from '../../gateway/src/service/notify.ts'
import { startGateway } from '../helpers/gateway-process.ts'
import { startNotifyReceiver } from '../helpers/notify-receiver.ts'

/** Unix socket paths are limited to 108 bytes: sockets live in a short temp directory. */
function socketPath(t: Test, name = 'notify.sock'): string {
  const d = mkdtempSync(join(tmpdir(), 'fp-notify-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return join(d, name)
}

t.test('watchdogIntervalMs follows sd_watchdog_enabled(3)', async (t) => {
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42), 15_000, 'half of WatchdogSec')
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 15_000)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42), undefined, 'meant for another process')
  t.equal(watchdogIntervalMs({}, 42), undefined)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42), undefined)
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42), undefined)
})

t.test('outside systemd every call is a no-op', async (t) => {
  const n = new SystemdNotifier({ env: {}, command: '/nonexistent/systemd-notify' })
  t.equal(n.enabled, false)
  t.equal(await n.ready('x'), false)
  t.equal(n.watchdogMs, undefined)
})

t.test('READY, STATUS, STOPPING reach a real receiver through systemd-notify, with the barrier', async (t) => {
  const rx = await startNotifyReceiver(socketPath(t))
  t.teardown(() => rx.close())
  const env: Record<string, string | undefined> = { NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }
  const n = new SystemdNotifier({ env })
  t.same(Object.keys(env), [], 'NOTIFY_SOCKET and WATCHDOG_* are removed from the environment children inherit')
  t.equal(n.watchdogMs, 15_000)
  t.equal(await n.ready('gateway 0xabc\nsecond line'), true)
  const ready = await rx.waitFor((m) => m.fields['READY'] === '1')
  t.equal(ready.fields['STATUS'], 'gateway 0xabc second line', 'one STATUS line')
  // systemd-notify claims its parent's PID, which the kernel only lets a
  // privileged sender do (CAP_SYS_ADMIN); unprivileged, as the gateway runs,
  // it falls back to its own PID: hence NotifyAccess=all in the unit.
  t.type(ready.pid, 'number', 'the sender is identified by SCM_CREDENTIALS')
  const barrier = await rx.waitFor((m) => m.fields['BARRIER'] === '1')
  t.equal(barrier.fds, 1, 'the barrier carries a pipe fd, closed by the receiver')
  t.equal(await n.status('running'), true)
  await rx.waitFor((m) => m.fields['STATUS'] === 'running')
  const before = rx.messages.length
  t.equal(await n.status('running'), true)
  t.equal(rx.messages.length, before, 'an unchanged status is not sent again')
  t.equal(await n.stopping(), true)
  const stop = await rx.waitFor((m) => m.fields['STOPPING'] === '1')
  t.equal(stop.fields['STATUS'], 'stopping')
})

t.test('WATCHDOG=1 only while the health check passes', async (t) => {
  const rx = await startNotifyReceiver(socketPath(t))
  t.teardown(() => rx.close())
  const n = new SystemdNotifier({ env: { NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '200000' } })
  t.equal(n.watchdogMs, 100)
  let health: HealthResult = { ok: true, summary: 'fine' }
  n.startWatchdog(() => health)
  t.teardown(() => n.stopWatchdog())
  await rx.waitFor((m) => m.fields['WATCHDOG'] === '1' && m.fields['STATUS'] === 'running: fine')
  await rx.waitFor((m) => m.fields['WATCHDOG'] === '1' && m.fields['STATUS'] === undefined)

  health = { ok: false, reasons: ['pipeline stuck: 5 reading(s) pending, none committed for 61 s'] }
  const bad = await rx.waitFor((m) => (m.fields['STATUS'] ?? '').startsWith('unhealthy'))
  t.equal(bad.fields['WATCHDOG'], undefined, 'no ping with the unhealthy status')
  t.equal(bad.fields['STATUS'], 'unhealthy: pipeline stuck: 5 reading(s) pending, none committed for 61 s')
  const at = rx.messages.indexOf(bad)
  // Many watchdog periods pass; not one ping.
  await sleep(1000)
  t.same(rx.messages.slice(at + 1).filter((m) => m.fields['WATCHDOG'] !== undefined), [], 'no WATCHDOG=1 while unhealthy')

  health = { ok: true, summary: 'fine again' }
  const back = await rx.waitFor((m) => m.fields['WATCHDOG'] === '1', 20_000, at + 1)
  t.equal(back.fields['STATUS'], 'running: fine again', 'pings resume with the new status')
  n.stopWatchdog()
})

t.test('a message that cannot be delivered is reported, not thrown', async (t) => {
  const errors: string[] = []
  const n = new SystemdNotifier({ env: { NOTIFY_SOCKET: socketPath(t, 'nobody-listens.sock') }, onError: (e) => errors.push(e.message) })
  t.equal(await n.ready('x'), false)
  t.equal(errors.length, 1)
  t.match(errors[0], /systemd-notify exited/)
})

t.test('fieldproof start under a notify socket: READY=1, WATCHDOG=1, STOPPING=1', async (t) => {
  const dir = t.testdir()
  const rx = await startNotifyReceiver(socketPath(t))
  t.teardown(() => rx.close())
  const gw = await startGateway({ stateDir: join(dir, 'state'), env: { NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '1000000' } })
  t.teardown(() => gw.kill())
  const ready = await rx.waitFor((m) => m.fields['READY'] === '1')
  t.match(ready.fields['STATUS'], new RegExp(`gateway ${gw.address} listening on http://127\\.0\\.0\\.1:\\d+`))
  const ping = await rx.waitFor((m) => m.fields['WATCHDOG'] === '1')
  t.match(ping.fields['STATUS'] ?? '', /^running: last seq \d+, \d+ pending$/, 'the first ping says what the health check saw')
  t.ok(rx.messages.indexOf(ping) > rx.messages.indexOf(ready), 'pings follow READY=1')
  t.equal(await gw.stop(), 0)
  const stop = await rx.waitFor((m) => m.fields['STOPPING'] === '1')
  t.ok(rx.messages.indexOf(stop) > rx.messages.indexOf(ping))
})
