import t from 'tap'
import { BLINK_PATTERNS, GATEWAY_HEALTH, StatusLed, deriveHealth, ledLevel, type GatewayHealth } from './status-led.ts'

t.test('health from the gateway state', async (t) => {
  const base = { phase: 'running', storeFull: false, failedSources: 0, sinkStates: ['idle', 'sending'] } as const
  t.equal(deriveHealth(base), 'healthy')
  t.equal(deriveHealth({ ...base, phase: 'starting' }), 'starting')
  t.equal(deriveHealth({ ...base, phase: 'stopping' }), 'stopped')
  t.equal(deriveHealth({ ...base, sinkStates: ['idle', 'backoff'] }), 'upstream-down')
  t.equal(deriveHealth({ ...base, sinkStates: ['stuck'] }), 'upstream-down')
  t.equal(deriveHealth({ ...base, sinkStates: ['stuck'], storeFull: true }), 'error', 'error outranks upstream trouble')
  t.equal(deriveHealth({ ...base, failedSources: 1 }), 'error')
  t.equal(deriveHealth({ ...base, sinkStates: [] }), 'healthy', 'no sink: nothing upstream to miss')
})

t.test('patterns are distinct and within their period', async (t) => {
  const seen = new Set<string>()
  for (const h of GATEWAY_HEALTH) {
    const p = BLINK_PATTERNS[h]
    for (const [a, b] of p.on) t.ok(a >= 0 && a < b && b <= p.periodMs, `${h}: span ${a}..${b}`)
    let s = ''
    for (let ms = 0; ms < 2000; ms += 50) s += String(ledLevel(p, ms))
    t.notOk(seen.has(s), `${h} looks unlike the others`)
    seen.add(s)
  }
  t.equal(ledLevel(BLINK_PATTERNS.error, 2_000_050), 1, 'periodic')
})

t.test('driver writes only changes, restarts a pattern on a new state, turns off on stop', async (t) => {
  let now = 0
  let h: GatewayHealth = 'healthy'
  const writes: [number, number][] = []
  const led = new StatusLed({ write: (l) => writes.push([now, l]), health: () => h, now: () => now })
  for (; now < 4000; now += 25) led.tick()
  t.same(writes, [[0, 1], [100, 0], [2000, 1], [2100, 0]])
  writes.length = 0
  now = 4010
  h = 'error'
  for (; now < 4410; now += 25) led.tick()
  t.same(writes, [[4010, 1], [4110, 0], [4210, 1], [4310, 0]], 'error pattern starts when the state changes')
  led.tick()
  t.same(writes.at(-1), [4410, 1])
  led.stop()
  t.same(writes.at(-1), [4410, 0], 'a lit LED is turned off')
  t.equal(led.showing, undefined)
})
