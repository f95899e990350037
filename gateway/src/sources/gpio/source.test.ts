// The GPIO source through the real onoff (sysfs files, no mock): this file
// re-runs itself inside a private mount namespace (`unshare --mount`, root)
// where a sysfs-shaped directory (test/helpers/gpio-sysfs.ts) is bound on
// /sys/class/gpio. Levels are written into the value files; the polling
// path reads them through onoff. Epoll gives no edge interrupts on regular
// files (epoll_ctl: EPERM), so "interrupt" mode is checked to fall back to
// polling here; interrupts themselves need a real Pi (docs/gpio.md).

import t from 'tap'
import { fileURLToPath } from 'node:url'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { decodeReading } from '../../core/canonical.ts'
import type { Reading } from '../../core/types.ts'
import type { GpioInputConfig, GpioSourceConfig } from '../../config/sections/gpio.ts'
import { ReadingBus } from '../../pipeline/bus.ts'
import type { SourceContext } from '../../pipeline/source.ts'
import type { MetricsRegistry } from '../../pipeline/metrics.ts'
import type { Pipeline } from '../../pipeline/pipeline.ts'
import type { Store } from '../../store/store.ts'
import { FakeGpioSysfs, GPIO_NAMESPACE_ENV, bindOnSysClassGpio, mountNamespaceCommand } from '../../../../test/helpers/gpio-sysfs.ts'
import { openPipeline } from '../../../../test/helpers/readings.ts'
import { GpioSource, checkGpioConfig } from './source.ts'
import type { GatewayHealth } from './status-led.ts'

const BASE = 512 // pinctrl-bcm2711 on 6.6+ kernels

function input(over: Partial<GpioInputConfig> & Pick<GpioInputConfig, 'name' | 'pin' | 'kind'>): GpioInputConfig {
  return { factor: 0, pulses_per_unit: 0, offset: 0, edge: 'rising', debounce_ms: 10, active_low: false, interval_seconds: 60, metric: 'state', ...over }
}

function config(over: Partial<GpioSourceConfig>): GpioSourceConfig {
  return { enabled: true, mode: 'poll', poll_ms: 5, chip_base: -1, inputs: [], outputs: [], ...over }
}

function contextFor({ pipeline, metrics }: { pipeline: Pipeline; metrics: MetricsRegistry }, got: Reading[]): SourceContext {
  let mono = 0n
  return {
    ingest: async (r) => {
      const seqs = await pipeline.ingest(r)
      got.push(...r)
      return seqs
    },
    now: () => ({ bootId: '0123456789abcdef0123456789abcdef', monoNs: (mono += 1000n), wallMs: Date.now(), clock: 'ntp' }),
    log: pino({ level: 'silent' }),
    metrics,
    bus: new ReadingBus(),
  }
}

const value = (r: Reading | undefined, name: string) => r?.metrics.find((m) => m.name === name)?.value

t.test('config checks the schema cannot express', async (t) => {
  const issues = checkGpioConfig(
    config({
      inputs: [input({ name: 'rain', pin: 17, kind: 'rain' }), input({ name: 'rain', pin: 27, kind: 'rain' }), input({ name: 'door', pin: 17, kind: 'contact', metric: 'temperature_c' })],
      outputs: [{ name: 'status', pin: 27, function: 'status-led', active_low: false }],
    }),
  )
  t.match(issues.join('\n'), /name "rain" is used twice/)
  t.match(issues.join('\n'), /GPIO 17 of "door" is already used by "rain"/)
  t.match(issues.join('\n'), /"temperature_c" is not a well-known metric with unit "1"/)
  t.match(issues.join('\n'), /GPIO 27 of "status" is already used/)
  t.same(checkGpioConfig(config({ inputs: [input({ name: 'door', pin: 5, kind: 'contact', metric: 'door_open' })] })), [])
})

if (process.env[GPIO_NAMESPACE_ENV] !== '1') {
  const ns = mountNamespaceCommand(fileURLToPath(import.meta.url))
  await t.spawn(ns.cmd, ns.args, { env: ns.env }, 'onoff on a sysfs-shaped directory, in a private mount namespace')
} else {
  const root = t.testdir()
  const sysfs = new FakeGpioSysfs(join(root, 'gpio'), [
    { label: 'gpio-brcmstb@107d508500', base: 569, ngpio: 2 },
    { label: 'pinctrl-bcm2711', base: BASE, ngpio: 58 },
  ]).start()
  bindOnSysClassGpio(sysfs.dir)
  t.teardown(() => sysfs.stop())

  t.test('pulses written into the value file become counts, totals and rates; bounces are dropped', async (t) => {
    let now = 1000
    const p = openPipeline(t.testdir())
    const { store, pipeline } = p
    t.teardown(() => {
      pipeline.stop()
      store.close()
    })
    const got: Reading[] = []
    const c = config({
      inputs: [
        input({ name: 'rain', pin: 17, kind: 'rain', factor: 0.2794, debounce_ms: 10 }),
        input({ name: 'meter', pin: 27, kind: 'energy', pulses_per_unit: 1000, edge: 'falling', debounce_ms: 5 }),
      ],
    })
    const src = new GpioSource({ config: c, store, now: () => now, manual: true })
    const ac = new AbortController()
    const running = src.start(contextFor(p, got), ac.signal)
    await src.whenStarted()
    t.same(sysfs.exported.slice(0, 2), [BASE + 17, BASE + 27], 'BCM 17 and 27 exported as 529 and 539 (base 512 of pinctrl-bcm2711)')
    t.equal(sysfs.attr(BASE + 17, 'direction'), 'in')
    t.equal(sysfs.attr(BASE + 17, 'edge'), 'none', 'poll mode asks for no interrupts')

    // `dt` ms after the previous step the line goes to `level`, and the poll sees it.
    const step = (pin: number, level: 0 | 1, dt: number) => {
      now += dt
      sysfs.set(BASE + pin, level)
      src.poll()
    }
    // Rain gauge: 5 clean tips (30 ms low, 20 ms high).
    for (let i = 0; i < 5; i++) {
      step(17, 1, 30)
      step(17, 0, 20)
    }
    // 3 tips with contact bounce: 1 0 1 within 2 ms of the closing edge, and 0 1 0 on release.
    for (let i = 0; i < 3; i++) {
      step(17, 1, 30)
      step(17, 0, 1)
      step(17, 1, 1)
      step(17, 0, 25)
      step(17, 1, 1)
      step(17, 0, 1)
    }
    // Energy meter, counted on the falling edge: 4 pulses.
    for (let i = 0; i < 4; i++) {
      step(27, 1, 40)
      step(27, 0, 40)
    }
    const st = src.status()['inputs'] as { name: string; pulses: number; bounces: number }[]
    t.equal(st[0]?.pulses, 8, 'rain: 5 clean + 3 bouncy tips')
    t.equal(st[0]?.bounces, 6, 'rain: two bounces per bouncy tip dropped')
    t.equal(st[1]?.pulses, 4, 'meter: 4 falling edges')

    // A periodic reading after 60 s: total and rate over the period.
    now = 1000 + 60_000
    await src.emitPeriodic('rain')
    await src.emitPeriodic('meter')
    const rain = got.find((r) => r.deviceId === 'gpio:rain')
    t.equal(rain?.source, 'gpio')
    t.equal(value(rain, 'pulses'), 8)
    t.equal(value(rain, 'rain_mm'), 2.2352, '8 × 0.2794 mm')
    t.equal(value(rain, 'rain_rate_mmh'), 134.112, '2.2352 mm in 60 s = 134.112 mm/h')
    const meter = got.find((r) => r.deviceId === 'gpio:meter')
    t.equal(value(meter, 'energy_kwh'), 0.004, '4 pulses at 1000 imp/kWh')
    t.equal(value(meter, 'power_w'), 240, '0.004 kWh in 60 s = 240 W')
    t.same(rain?.metrics.map((m) => m.unit), ['count', 'mm', 'mm/h'])

    // The stored reading decodes to the same values (it went through the real pipeline).
    const row = store.queryReadings({ deviceId: 'gpio:rain', limit: 1 })[0]
    t.ok(row)
    if (row) t.equal(decodeReading(row.canonical).metrics.find((m) => m.name === 'rain_mm')?.value, 2.2352)
    t.same(JSON.parse(store.device('gpio:rain')?.state ?? '{}').pulses, 8, 'total written to the device row after commit')
    t.equal(store.device('gpio:rain')?.kind, 'gpio')

    // Next period: 2 tips in 30 s.
    for (let i = 0; i < 2; i++) {
      step(17, 1, 30)
      step(17, 0, 20)
    }
    now = 1000 + 90_000
    await src.emitPeriodic('rain')
    const rain2 = got.filter((r) => r.deviceId === 'gpio:rain')[1]
    t.equal(value(rain2, 'pulses'), 10)
    t.equal(value(rain2, 'rain_mm'), 2.794)
    t.equal(value(rain2, 'rain_rate_mmh'), 67.056, '0.5588 mm in 30 s')

    ac.abort()
    await running
  })

  t.test('the total survives a restart; a graceful stop keeps pulses counted after the last reading', async (t) => {
    let now = 0
    const dir = t.testdir()
    const got: Reading[] = []
    const c = config({ inputs: [input({ name: 'water', pin: 22, kind: 'water', factor: 0.5, offset: 100, debounce_ms: 0 })] })
    const run = async (pulses: number, emit: boolean): Promise<Store> => {
      const p = openPipeline(dir)
      const { store, pipeline } = p
      const src = new GpioSource({ config: c, store, now: () => now, manual: true })
      const ac = new AbortController()
      const running = src.start(contextFor(p, got), ac.signal)
      await src.whenStarted()
      for (let i = 0; i < pulses; i++) {
        sysfs.set(BASE + 22, 1)
        now += 10
        src.poll()
        sysfs.set(BASE + 22, 0)
        now += 10
        src.poll()
      }
      if (emit) await src.emitPeriodic('water')
      ac.abort()
      await running
      pipeline.stop()
      // The fake kernel removes the line a moment after the unexport (the real one at once).
      await waitFor(() => !existsSync(sysfs.linePath(BASE + 22)))
      return store
    }
    const s1 = await run(7, true)
    t.equal(JSON.parse(s1.device('gpio:water')?.state ?? '{}').pulses, 7)
    s1.close()
    const s2 = await run(3, false) // no periodic reading: the stop emits one
    t.equal(JSON.parse(s2.device('gpio:water')?.state ?? '{}').pulses, 10, 'restored 7 + 3 new, written by the reading at stop')
    s2.close()
    const s3 = await run(2, true)
    const last = got.at(-1)
    t.equal(value(last, 'pulses'), 12)
    t.equal(value(last, 'water_l'), 106, '12 × 0.5 L + 100 L offset')
    t.same(
      got.map((r) => value(r, 'pulses')),
      [7, 10, 12],
      'totals never go backwards across restarts',
    )
    s3.close()
  })

  t.test('interrupt mode falls back to polling on files; a contact reports changes and heartbeats (real timers)', async (t) => {
    const p = openPipeline(t.testdir())
    const { store, pipeline } = p
    t.teardown(() => {
      pipeline.stop()
      store.close()
    })
    const got: Reading[] = []
    const c = config({
      mode: 'interrupt',
      poll_ms: 2,
      inputs: [
        input({ name: 'door', pin: 5, kind: 'contact', metric: 'door_open', debounce_ms: 5, interval_seconds: 1 }),
        input({ name: 'wind', pin: 6, kind: 'wind', factor: 0.6667, debounce_ms: 2, interval_seconds: 1 }),
      ],
    })
    const src = new GpioSource({ config: c, store })
    const ac = new AbortController()
    const running = src.start(contextFor(p, got), ac.signal)
    await waitFor(() => got.some((r) => r.deviceId === 'gpio:door'))
    const modes = (src.status()['inputs'] as { mode: string }[]).map((i) => i.mode)
    t.same(modes, ['poll', 'poll'], 'epoll refuses regular files (EPERM): polling instead')
    t.equal(sysfs.attr(BASE + 5, 'edge'), 'both', 'interrupt mode asked the kernel for both edges')
    t.equal(value(got[0], 'door_open'), 0, 'the state at start')
    // The door opens: a reading on change. (Waiting for its commit first: polling shares the event
    // loop with SQLite commits, see docs/gpio.md.)
    sysfs.set(BASE + 5, 1)
    await waitFor(() => got.filter((r) => r.deviceId === 'gpio:door').length >= 2)
    // 10 anemometer pulses of 20 ms high / 20 ms low.
    const t0 = performance.now()
    for (let i = 0; i < 10; i++) {
      sysfs.set(BASE + 6, 1)
      await sleep(20)
      sysfs.set(BASE + 6, 0)
      await sleep(20)
    }
    const door = got.filter((r) => r.deviceId === 'gpio:door')
    t.equal(value(door[1], 'door_open'), 1, 'a reading on change')
    t.equal((src.status()['inputs'] as { pulses: number }[])[1]?.pulses, 10, 'every pulse seen by polling at 2 ms')
    // Heartbeat: another door reading within interval_seconds without a change.
    await waitFor(() => got.filter((r) => r.deviceId === 'gpio:door').length >= 3, 2500)
    t.equal(value(got.filter((r) => r.deviceId === 'gpio:door')[2], 'door_open'), 1, 'heartbeat repeats the state')
    const wind = got.find((r) => r.deviceId === 'gpio:wind')
    t.ok(wind, 'a periodic wind reading')
    const speed = value(wind, 'wind_speed_ms') ?? -1
    const elapsed = (performance.now() - t0) / 1000
    t.ok(speed > 0 && speed <= (10 * 0.6667) / 0.4 + 1e-9, `wind speed ${speed} m/s from 10 pulses within ${elapsed.toFixed(2)} s`)
    ac.abort()
    await running
  })

  t.test('the status LED value file shows the blink codes over time', async (t) => {
    let now = 0
    let health: GatewayHealth = 'starting'
    const p = openPipeline(t.testdir())
    const { store, pipeline } = p
    t.teardown(() => {
      pipeline.stop()
      store.close()
    })
    const c = config({ outputs: [{ name: 'status', pin: 26, function: 'status-led', active_low: false }], inputs: [] })
    const src = new GpioSource({ config: c, store, now: () => now, manual: true, health: () => health })
    const ac = new AbortController()
    const running = src.start(contextFor(p, []), ac.signal)
    await src.whenStarted()
    t.equal(sysfs.attr(BASE + 26, 'direction'), 'low', 'an output, driven low from the start (onoff writes "low" to direction)')
    const sample = (ms: number, every = 50): string => {
      let s = ''
      for (let k = 0; k < ms / every; k++) {
        src.ledTick()
        s += String(sysfs.get(BASE + 26))
        now += every
      }
      return s
    }
    t.equal(sample(1000), '11111111111111111111', 'starting: solid')
    health = 'healthy'
    t.equal(sample(2000), '11' + '0'.repeat(38), 'healthy: 100 ms every 2 s')
    health = 'upstream-down'
    t.equal(sample(2000), '111000111' + '0'.repeat(31), 'upstream down: double blink')
    health = 'error'
    t.equal(sample(800), '1100110011001100', 'error: 5 Hz')
    health = 'stopped'
    t.equal(sample(500), '0000000000', 'stopped: off')
    ac.abort()
    await running
    await waitFor(() => !existsSync(sysfs.linePath(BASE + 26)))
    t.ok(sysfs.unexported.includes(BASE + 26), 'LED line unexported on stop')
  })

  t.test('the LED blinks with real timers; an input that cannot be opened shows error', async (t) => {
    const p = openPipeline(t.testdir())
    const { store, pipeline } = p
    t.teardown(() => {
      pipeline.stop()
      store.close()
    })
    // BCM 60 is beyond the chip's 58 lines: the input fails, the LED shows error (5 Hz).
    const c = config({ outputs: [{ name: 'status', pin: 13, function: 'status-led', active_low: true }], inputs: [input({ name: 'bad', pin: 60, kind: 'rain' })] })
    const src = new GpioSource({ config: c, store, health: () => 'healthy' })
    const ac = new AbortController()
    const running = src.start(contextFor(p, []), ac.signal)
    await src.whenStarted()
    t.match((src.status()['inputs'] as { error: string | null }[])[0]?.error, /beyond the header chip's 58 lines/)
    t.equal(sysfs.attr(BASE + 13, 'active_low'), '1')
    t.equal(sysfs.attr(BASE + 13, 'direction'), 'high', 'active-low LED starts with the line high (off)')
    await waitFor(() => src.health() === 'error')
    let flips = 0
    let last = sysfs.get(BASE + 13)
    for (let k = 0; k < 50; k++) {
      await sleep(20)
      const v = sysfs.get(BASE + 13)
      if (v !== last) flips++
      last = v
    }
    t.ok(flips >= 6 && flips <= 14, `about 10 level changes in 1 s at 5 Hz (saw ${flips})`)
    ac.abort()
    await running
  })
}

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time')
    await sleep(5)
  }
}
