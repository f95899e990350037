// Conformance of every registered decoder (decoders/index.ts):
// - ids are unique, lowercase kebab-case; each decoder has published vectors;
// - every vector passes: metrics (name, unit, value within a small tolerance)
//   and the listed meta, or the expected rejection code;
// - every result is well formed: metrics pass the unit registry, rejections
//   carry a known code and a reason;
// - every truncation of a valid vector input is rejected or decodes;
// - 10,000 random byte strings per bytes decoder (2,000 JSON-ish strings per
//   json decoder), plus mutated vectors, never make decode() throw.
// decode() is called directly, not through safeDecode, so a throw fails here.

import t from 'tap'
import type { DecodeFailureCode, DecodeOptions, DecodeResult, Decoder, DecoderVector, RawFrame } from '../core/decoder.ts'
import { checkMetric } from '../core/units.ts'
import { DECODER_VECTORS as DECODERS } from './vectors.ts'
import { rng } from '../../../test/helpers/fuzz.ts'

const FAILURE_CODES: ReadonlySet<DecodeFailureCode> = new Set<DecodeFailureCode>([
  'truncated',
  'malformed',
  'unsupported',
  'bad-mic',
  'replay',
  'missing-key',
  'out-of-range',
  'not-matched',
])

function concreteTopic(pattern: string): string {
  return pattern.replace(/\+/g, 'dev1').replace(/#/g, 'a/b')
}

function inputBytes(decoder: Decoder, input: string): Uint8Array {
  return decoder.input === 'json' ? new TextEncoder().encode(input) : Uint8Array.from(Buffer.from(input, 'hex'))
}

function frameFor(decoder: Decoder, bytes: Uint8Array, extra?: DecoderVector['frame']): RawFrame {
  const m = decoder.match
  return {
    transport: m.transport,
    ...(m.serviceDataUuid !== undefined ? { serviceDataUuid: m.serviceDataUuid } : {}),
    ...(m.manufacturerId !== undefined ? { manufacturerId: m.manufacturerId } : {}),
    ...(m.topic !== undefined ? { topic: concreteTopic(m.topic) } : {}),
    ...extra,
    bytes,
  }
}

/** Why a result is not a well-formed DecodeResult, or undefined. */
function malformedResult(r: unknown): string | undefined {
  if (typeof r !== 'object' || r === null) return 'result is not an object'
  const res = r as DecodeResult
  if (res.ok === false) {
    if (!FAILURE_CODES.has(res.code)) return `unknown failure code ${String(res.code)}`
    if (typeof res.reason !== 'string' || res.reason.length === 0) return 'rejection without a reason'
    return undefined
  }
  if (res.ok !== true || !Array.isArray(res.metrics)) return 'ok result without a metrics array'
  const names = new Set<string>()
  for (const mt of res.metrics) {
    const c = checkMetric(mt.name, mt.unit, mt.value)
    if (!c.ok) return c.reason
    if (c.unit !== mt.unit) return `metric ${mt.name}: unit ${mt.unit} differs from the registry's ${c.unit}`
    if (names.has(mt.name)) return `metric ${mt.name} appears twice`
    names.add(mt.name)
  }
  if (res.meta !== undefined) {
    for (const [k, v] of Object.entries(res.meta)) {
      if (!['number', 'string', 'boolean'].includes(typeof v)) return `meta ${k} is not a scalar`
      if (typeof v === 'number' && !Number.isFinite(v)) return `meta ${k} is not finite`
    }
  }
  if (res.deviceTimeMs !== undefined && !Number.isFinite(res.deviceTimeMs)) return 'deviceTimeMs is not finite'
  return undefined
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b))
}

function decodeNoThrow(decoder: Decoder, frame: RawFrame, options: DecodeOptions | undefined): { result?: DecodeResult; error?: unknown } {
  try {
    return { result: decoder.decode(frame, options) }
  } catch (error) {
    return { error }
  }
}

t.test('decoder ids are unique, kebab-case, and every decoder has vectors', async (t) => {
  t.ok(DECODERS.length > 0, 'at least one decoder is registered')
  const ids = DECODERS.map((d) => d.decoder.id)
  t.equal(new Set(ids).size, ids.length, `ids unique: ${ids.join(', ')}`)
  for (const { decoder, vectors } of DECODERS) {
    t.match(decoder.id, /^[a-z0-9]+(-[a-z0-9]+)*$/, `${decoder.id} is kebab-case`)
    t.ok(decoder.description.length > 0, `${decoder.id} has a description`)
    t.ok(vectors.length > 0, `${decoder.id} has published vectors`)
    for (const v of vectors) t.ok(v.source.length > 0, `${decoder.id} / ${v.name}: source cited`)
  }
})

for (const { decoder, vectors } of DECODERS) {
  t.test(`${decoder.id}: vectors`, async (t) => {
    for (const v of vectors) {
      const frame = frameFor(decoder, inputBytes(decoder, v.input), v.frame)
      const { result, error } = decodeNoThrow(decoder, frame, v.options)
      if (error !== undefined || result === undefined) {
        t.fail(`${v.name}: decode threw ${String(error)}`)
        continue
      }
      t.equal(malformedResult(result), undefined, `${v.name}: well-formed result`)
      if (!v.expect.ok) {
        t.same({ ok: result.ok, code: result.ok ? undefined : result.code }, { ok: false, code: v.expect.code }, `${v.name}: rejected as ${v.expect.code}`)
        continue
      }
      if (!result.ok) {
        t.fail(`${v.name}: expected metrics, got ${result.code}: ${result.reason}`)
        continue
      }
      const got = new Map(result.metrics.map((mt) => [mt.name, mt]))
      t.same(
        [...got.keys()].sort(),
        v.expect.metrics.map((mt) => mt.name).sort(),
        `${v.name}: metric names`,
      )
      for (const want of v.expect.metrics) {
        const mt = got.get(want.name)
        if (!mt) continue
        t.equal(mt.unit, want.unit, `${v.name}: ${want.name} unit`)
        t.ok(close(mt.value, want.value), `${v.name}: ${want.name} = ${mt.value}, expected ${want.value}`)
      }
      for (const [k, want] of Object.entries(v.expect.meta ?? {})) {
        const have = result.meta?.[k]
        if (typeof want === 'number' && typeof have === 'number') t.ok(close(have, want), `${v.name}: meta.${k} = ${have}, expected ${want}`)
        else t.equal(have, want, `${v.name}: meta.${k}`)
      }
    }
  })

  t.test(`${decoder.id}: truncated vector inputs are rejected or decode, never throw`, async (t) => {
    let cases = 0
    for (const v of vectors) {
      if (!v.expect.ok) continue
      const full = inputBytes(decoder, v.input)
      for (let n = 0; n < full.length; n++) {
        const frame = frameFor(decoder, full.slice(0, n), v.frame)
        const { result, error } = decodeNoThrow(decoder, frame, v.options)
        cases++
        if (error !== undefined) {
          t.fail(`${v.name}: first ${n} bytes: threw ${String(error)}`)
          continue
        }
        const bad = malformedResult(result)
        if (bad !== undefined) t.fail(`${v.name}: first ${n} bytes: ${bad}`)
      }
    }
    t.pass(`${cases} truncations checked`)
  })

  t.test(`${decoder.id}: random input never throws`, async (t) => {
    const rand = rng(0x5eed + decoder.id.length * 7919)
    const optionSets: (DecodeOptions | undefined)[] = [undefined, ...vectors.map((v) => v.options).filter((o) => o !== undefined)]
    const frames = vectors.map((v) => v.frame)
    let failures = 0
    const check = (bytes: Uint8Array, i: number, what: string): void => {
      const options = optionSets[i % optionSets.length]
      const frame = frameFor(decoder, bytes, frames[i % Math.max(1, frames.length)])
      const { result, error } = decodeNoThrow(decoder, frame, options)
      const bad = error !== undefined ? `threw ${String(error)}` : malformedResult(result)
      if (bad !== undefined && failures++ < 10) t.fail(`${what} ${Buffer.from(bytes).toString('hex')}: ${bad}`)
    }
    if (decoder.input === 'bytes') {
      for (let i = 0; i < 10_000; i++) {
        const len = Math.floor(rand() * 48)
        const bytes = new Uint8Array(len)
        for (let j = 0; j < len; j++) bytes[j] = Math.floor(rand() * 256)
        // Half the strings start like a real frame of this format, to get past the header checks.
        const seed = vectors[i % vectors.length]
        if (i % 2 === 1 && seed && len > 0) bytes[0] = inputBytes(decoder, seed.input)[0] ?? 0
        check(bytes, i, 'random bytes')
      }
    } else {
      const atoms = ['{', '}', '[', ']', ',', ':', '"', 'null', 'true', 'false', '0', '-1', '1e309', '"x"', '"Time"', '"ENERGY"', '{"a":', '1.5', '\\u0000', ' ']
      for (let i = 0; i < 2_000; i++) {
        let s = ''
        const parts = Math.floor(rand() * 24)
        for (let j = 0; j < parts; j++) s += atoms[Math.floor(rand() * atoms.length)]
        check(new TextEncoder().encode(s), i, 'random JSON-ish')
      }
    }
    // Mutations of every vector: byte flips keep most of the structure valid, reaching deeper code.
    for (const [vi, v] of vectors.entries()) {
      const base = inputBytes(decoder, v.input)
      for (let k = 0; k < 200 && base.length > 0; k++) {
        const bytes = base.slice()
        const flips = 1 + Math.floor(rand() * 3)
        for (let f = 0; f < flips; f++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256)
        const frame = frameFor(decoder, bytes, v.frame)
        const { result, error } = decodeNoThrow(decoder, frame, v.options)
        const bad = error !== undefined ? `threw ${String(error)}` : malformedResult(result)
        if (bad !== undefined && failures++ < 10) t.fail(`mutation of vector ${vi} ${Buffer.from(bytes).toString('hex')}: ${bad}`)
      }
    }
    t.equal(failures, 0, 'no random or mutated input threw or produced a malformed result')
  })
}
