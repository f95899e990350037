import t from 'tap'
import { checkMetric, METRIC_NAME_RE } from '../core/units.ts'
import { safeDecode } from '../core/decoder.ts'
import { cayenneLpp, decodeCayenneLpp, LPP_TYPES } from './cayenne-lpp.ts'
import { CAYENNE_LPP_VECTORS } from './cayenne-lpp.vectors.ts'
import { decodersFor, findDecoder } from './index.ts'
import { DECODER_VECTORS } from './vectors.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const decodeAll = (b: Uint8Array) => {
  const r = decodeCayenneLpp(b)
  return r.ok ? r.metrics : []
}

t.test('published vectors', async (t) => {
  for (const v of CAYENNE_LPP_VECTORS) {
    const r = cayenneLpp.decode({ transport: 'lorawan', bytes: hex(v.input) })
    if (!v.expect.ok) {
      t.equal(r.ok, false, `${v.name}: rejected`)
      if (!r.ok) t.equal(r.code, v.expect.code, `${v.name}: code`)
      continue
    }
    t.ok(r.ok, `${v.name}: decodes`)
    if (!r.ok) continue
    t.equal(r.metrics.length, v.expect.metrics.length, `${v.name}: metric count`)
    v.expect.metrics.forEach((m, i) => {
      const got = r.metrics[i]
      t.equal(got?.name, m.name, `${v.name}: name ${i}`)
      t.equal(got?.unit, m.unit, `${v.name}: unit of ${m.name}`)
      t.ok(Math.abs((got?.value ?? NaN) - m.value) < 1e-9, `${v.name}: ${m.name} = ${m.value} (got ${got?.value})`)
    })
    if (v.expect.meta) t.same(r.meta, v.expect.meta, `${v.name}: meta`)
  }
})

t.test('every metric name and unit passes the registry', async (t) => {
  for (const v of CAYENNE_LPP_VECTORS) {
    const r = decodeCayenneLpp(hex(v.input))
    if (!r.ok) continue
    for (const m of r.metrics) {
      t.match(m.name, METRIC_NAME_RE, m.name)
      const c = checkMetric(m.name, m.unit, m.value)
      t.ok(c.ok, `${m.name}: ${c.ok ? 'ok' : c.reason}`)
    }
  }
  // The longest name a channel can produce still fits METRIC_NAME_RE.
  for (const [type, def] of LPP_TYPES) {
    for (const f of def.fields) t.match(`${f.metric}_ch255`, METRIC_NAME_RE, `type ${type} ${f.metric}`)
  }
})

t.test('every type in the table has a vector that exercises it', async (t) => {
  const covered = new Set<number>()
  for (const v of CAYENNE_LPP_VECTORS) {
    if (!v.expect.ok) continue
    const b = hex(v.input)
    let o = 0
    while (o + 1 < b.length) {
      const type = b[o + 1] ?? 0
      covered.add(type)
      const def = LPP_TYPES.get(type)
      if (!def) break
      o += 2 + def.fields.reduce((s, f) => s + f.bytes, 0)
    }
  }
  for (const type of LPP_TYPES.keys()) t.ok(covered.has(type), `type ${type} covered`)
})

t.test('unix time sets deviceTimeMs', async (t) => {
  const r = decodeCayenneLpp(hex('0b8565a0bc00'))
  t.ok(r.ok)
  if (r.ok) {
    t.equal(r.deviceTimeMs, 0x65a0bc00 * 1000)
    t.same(r.metrics, [{ name: 'unix_time_s_ch11', unit: 's', value: 0x65a0bc00 }])
  }
})

t.test('signed values at the extremes', async (t) => {
  const cut = decodeCayenneLpp(hex('01678000' + '0388800000' + '7fffff' + '8000'))
  t.same(cut.ok ? null : cut.code, 'truncated', 'a GPS object one byte short')
  const ok = decodeCayenneLpp(hex('01678000' + '02677fff' + '0388800000' + '7fffff' + '800000' + '0468ff'))
  t.ok(ok.ok)
  if (!ok.ok) return
  t.same(
    ok.metrics.map((m) => [m.name, m.value]),
    [
      ['temperature_c_ch1', -3276.8],
      ['temperature_c_ch2', 3276.7],
      ['latitude_ch3', -838.8608],
      ['longitude_ch3', 838.8607],
      ['altitude_m_ch3', -83886.08],
      ['humidity_pct_ch4', 127.5],
    ],
  )
})

t.test('random and truncated bytes never throw', async (t) => {
  let seed = 12345
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed
  }
  let threw = 0
  const codes = new Set<string>()
  for (let i = 0; i < 5000; i++) {
    const len = rnd() % 64
    const b = new Uint8Array(len)
    for (let j = 0; j < len; j++) b[j] = rnd() & 0xff
    const r = safeDecode(cayenneLpp, { transport: 'lorawan', bytes: b })
    if (!r.ok) {
      if (/threw/.test(r.reason)) threw++
      codes.add(r.code)
    }
  }
  for (const v of CAYENNE_LPP_VECTORS) {
    const b = hex(v.input)
    for (let n = 1; n < b.length; n++) {
      const r = safeDecode(cayenneLpp, { transport: 'lorawan', bytes: b.subarray(0, n) })
      if (!r.ok && /threw/.test(r.reason)) threw++
      // A cut at an object boundary is a shorter valid payload: its metrics are a prefix of the whole.
      if (v.expect.ok && r.ok) t.same(r.metrics, v.expect.metrics.length ? decodeAll(b).slice(0, r.metrics.length) : [], `${v.name} cut to ${n}`)
    }
  }
  t.equal(threw, 0, 'rejections are values, never throws')
  t.ok(codes.has('truncated') && codes.has('unsupported'), 'random bytes hit both rejection kinds')
  t.equal(decodeCayenneLpp(new Uint8Array(256)).ok, false, 'over 255 bytes is rejected')
})

t.test('registered under the LoRaWAN payloads', async (t) => {
  t.equal(findDecoder('cayenne-lpp'), cayenneLpp)
  t.ok(decodersFor({ transport: 'lorawan', fPort: 1 }).includes(cayenneLpp))
  t.notOk(decodersFor({ transport: 'ble' }).includes(cayenneLpp))
  const entry = DECODER_VECTORS.find((d) => d.decoder.id === 'cayenne-lpp')
  t.equal(entry?.vectors, CAYENNE_LPP_VECTORS)
})
