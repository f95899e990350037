import t from 'tap'
import { Debouncer, PulseCounter, counterMetrics, roundValue, unitsPerPulse } from './counter.ts'

t.test('debouncer: a change within the lock-out is a bounce; the settled level is taken after it', async (t) => {
  const d = new Debouncer(10, 0)
  t.equal(d.feed(1, 100), 1, 'first change accepted')
  t.equal(d.feed(0, 102), null, 'bounce')
  t.equal(d.bounces, 1)
  t.equal(d.feed(1, 103), null, 'back to the accepted level')
  t.equal(d.feed(0, 105), null, 'a release within the lock-out is refused...')
  t.ok(d.unsettled)
  t.equal(d.feed(0, 111), 0, '...and taken by the first read after it')
  t.notOk(d.unsettled)
  t.equal(d.bounces, 2)
  const z = new Debouncer(0, 1)
  t.equal(z.feed(0, 5), 0)
  t.equal(z.feed(1, 5), 1, 'debounce 0 accepts every change')
})

t.test('pulse counter: one count per accepted edge of the configured direction', async (t) => {
  const rising = new PulseCounter({ debounceMs: 5, edge: 'rising', initial: 0, total: 40 })
  const falling = new PulseCounter({ debounceMs: 5, edge: 'falling', initial: 0, total: 0 })
  let tm = 0
  for (let i = 0; i < 3; i++) {
    for (const [lvl, dt] of [[1, 10], [0, 1], [1, 1], [0, 10]] as const) {
      tm += dt
      rising.feed(lvl, tm)
      falling.feed(lvl, tm)
    }
  }
  t.equal(rising.total, 43, 'continues from the restored total')
  t.equal(falling.total, 3)
  t.equal(rising.debouncer.bounces, 3)
})

t.test('units per pulse and reading metrics for every kind', async (t) => {
  t.equal(unitsPerPulse('rain', 0, 0), 0.2794, 'rain default: 0.011 in bucket')
  t.equal(unitsPerPulse('energy', 0, 800), 1 / 800)
  t.equal(unitsPerPulse('energy', 0.002, 800), 0.002, 'factor wins')
  t.equal(unitsPerPulse('pulse', 5, 5), 1)
  t.equal(roundValue(0.2794 * 3), 0.8382)
  t.same(counterMetrics('rain', 0.2794, 0, 10, 3, 60_000), [
    { name: 'pulses', unit: 'count', value: 10 },
    { name: 'rain_mm', unit: 'mm', value: 2.794 },
    { name: 'rain_rate_mmh', unit: 'mm/h', value: 50.292 },
  ])
  t.same(counterMetrics('energy', 0.001, 1234.5, 500, 50, 180_000), [
    { name: 'pulses', unit: 'count', value: 500 },
    { name: 'energy_kwh', unit: 'kWh', value: 1235 },
    { name: 'power_w', unit: 'W', value: 1000 },
  ], '0.05 kWh in 3 min = 1 kW')
  t.same(counterMetrics('wind', 0.6667, 0, 1000, 30, 10_000), [
    { name: 'pulses', unit: 'count', value: 1000 },
    { name: 'wind_speed_ms', unit: 'm/s', value: 2.0001 },
  ], '3 Hz × 0.6667')
  t.same(counterMetrics('water', 0.5, 0, 20, 20, 60_000)[2], { name: 'flow_rate_lmin', unit: 'L/min', value: 10 })
  t.same(counterMetrics('gas', 0.01, 0, 100, 10, 3_600_000)[2], { name: 'flow_rate_m3h', unit: 'm3/h', value: 0.1 })
  t.same(counterMetrics('pulse', 1, 0, 7, 7, 2000), [
    { name: 'pulses', unit: 'count', value: 7 },
    { name: 'frequency_hz', unit: 'Hz', value: 3.5 },
  ])
  t.equal(counterMetrics('rain', 0.2794, 0, 1, 1, 0)[2]?.value, 0, 'an empty period has rate 0, never Infinity')
})
