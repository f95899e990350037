// The metrics registry's series keys: one series per label set whatever the
// order its names are given in, none shared between different label sets
// (also when values hold separators or quotes), and the exposition text.

import t from 'tap'
import { MetricsRegistry } from './metrics.ts'

t.test('a label set is one series whatever the order of its names', async (t) => {
  const m = new MetricsRegistry()
  const c = m.counter('x_total', 'x')
  c.inc({ b: '2', a: '1' })
  c.inc({ a: '1', b: '2' }, 2)
  t.equal(c.get({ b: '2', a: '1' }), 3)
  t.equal(c.get({ a: '1', b: '2' }), 3)
  t.match(m.render(), /^x_total\{a="1",b="2"\} 3$/m)
})

t.test('different label sets never share a series', async (t) => {
  const m = new MetricsRegistry()
  const c = m.counter('y_total', 'y')
  const sets = [
    {},
    { a: '' },
    { a: 'x' },
    { a: 'x', b: '' },
    { a: 'x2:b', b: 'y' },
    { a: 'x', b: '2:by' },
    { a: 'x\u0001b\u0000y' },
    { a: 'x', b: 'y' },
    { ab: 'x' },
    { a: 'bx' },
    { a: '"q"\\\n' },
  ]
  sets.forEach((labels, i) => c.inc(labels, i + 1))
  sets.forEach((labels, i) => t.equal(c.get(labels), i + 1, JSON.stringify(labels)))
  t.equal(c.total(), (sets.length * (sets.length + 1)) / 2)
  t.match(m.render(), /^y_total\{a="\\"q\\"\\\\\\n"\} 11$/m, 'values are escaped in the exposition')
})

t.test('histograms keep their series apart the same way', async (t) => {
  const m = new MetricsRegistry()
  const h = m.histogram('z_seconds', 'z', [0.1, 1])
  h.observe(0.05)
  h.observe(0.5, { s: 'a' })
  h.observe(5, { s: 'a' })
  const text = m.render()
  t.match(text, /^z_seconds_bucket\{le="0\.1"\} 1$/m)
  t.match(text, /^z_seconds_count 1$/m)
  t.match(text, /^z_seconds_bucket\{s="a",le="1"\} 1$/m)
  t.match(text, /^z_seconds_count\{s="a"\} 2$/m)
  t.equal(h.quantile(0.5, { s: 'a' }), 1)
})
