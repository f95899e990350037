import t from 'tap'
import { HealthCheck, type HealthProbes } from './health.ts'

function fake() {
  const s = { pending: 0, seq: 0n, running: true, probeFails: undefined as string | undefined, probes: 0, now: 0 }
  const probes: HealthProbes = {
    pending: () => s.pending,
    lastSeq: () => s.seq,
    running: () => s.running,
    writeProbe: () => {
      s.probes++
      if (s.probeFails !== undefined) throw new Error(s.probeFails)
    },
  }
  const h = new HealthCheck({ probes, stuckMs: 60_000, probeIntervalMs: 30_000, now: () => s.now })
  return { s, h }
}

t.test('healthy while idle; the write probe runs at most every probeIntervalMs', async (t) => {
  const { s, h } = fake()
  t.equal(h.check().ok, true)
  t.equal(s.probes, 1)
  s.now = 10_000
  t.equal(h.check().ok, true)
  t.equal(s.probes, 1, 'not again within the interval')
  s.now = 30_000
  h.check()
  t.equal(s.probes, 2)
})

t.test('commits prove the store writes: no probe while the sequence advances', async (t) => {
  const { s, h } = fake()
  h.check()
  for (let i = 1; i <= 5; i++) {
    s.now += 40_000
    s.seq += 10n
    s.pending = 3
    t.equal(h.check().ok, true)
  }
  t.equal(s.probes, 1)
})

t.test('pipeline stuck: pending readings and no commit for stuckMs', async (t) => {
  const { s, h } = fake()
  s.pending = 5
  h.check()
  s.now = 59_000
  t.equal(h.check().ok, true, 'not yet')
  s.now = 61_000
  const r = h.check()
  t.equal(r.ok, false)
  if (!r.ok) t.match(r.reasons.join(), /pipeline stuck: 5 reading\(s\) pending, none committed for 61 s/)
  s.seq = 1n
  t.equal(h.check().ok, true, 'a commit clears it')
  s.pending = 0
  s.now = 200_000
  t.equal(h.check().ok, true, 'nothing pending is never stuck')
})

t.test('store not writable', async (t) => {
  const { s, h } = fake()
  s.probeFails = 'SQLITE_READONLY: attempt to write a readonly database'
  const r = h.check()
  t.equal(r.ok, false)
  if (!r.ok) t.match(r.reasons.join(), /store not writable: SQLITE_READONLY/)
  s.now = 1000
  t.equal(h.check().ok, false, 'a failed probe is retried at every check')
  t.equal(s.probes, 2)
  s.probeFails = undefined
  s.now = 2000
  t.equal(h.check().ok, true, 'and clears once it works')
})

t.test('not running', async (t) => {
  const { s, h } = fake()
  s.running = false
  t.same(h.check(), { ok: false, reasons: ['the gateway is not running'] })
})
