// validate.ts against TypeBox's own Value.Default and Value.Errors (the test
// oracle: the schema is declared with TypeBox), on generated configs: the
// defaults, every key deleted, given a wrong type, out of range, malformed, and
// unknown keys added.
import t from 'tap'
import { Value } from '@sinclair/typebox/value'
import { ValueErrorType } from '@sinclair/typebox/errors'
import { ConfigSchema } from './schema.ts'
import { CONFIG_SCHEMA } from './schema.generated.ts'
import { applyDefaults, satisfies, schemaErrors, type SchemaErrorKind } from './validate.ts'
import { loadConfig } from './load.ts'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { rng } from '../../../test/helpers/fuzz.ts'

const KIND: Partial<Record<ValueErrorType, SchemaErrorKind>> = {
  [ValueErrorType.Object]: 'object',
  [ValueErrorType.ObjectRequiredProperty]: 'required',
  [ValueErrorType.ObjectAdditionalProperties]: 'additional-property',
  [ValueErrorType.Integer]: 'type',
  [ValueErrorType.Number]: 'type',
  [ValueErrorType.String]: 'type',
  [ValueErrorType.Boolean]: 'type',
  [ValueErrorType.Array]: 'type',
  [ValueErrorType.Union]: 'union',
  [ValueErrorType.IntegerMinimum]: 'minimum',
  [ValueErrorType.NumberMinimum]: 'minimum',
  [ValueErrorType.IntegerMaximum]: 'maximum',
  [ValueErrorType.NumberMaximum]: 'maximum',
  [ValueErrorType.StringMinLength]: 'min-length',
  [ValueErrorType.StringMaxLength]: 'max-length',
  [ValueErrorType.StringPattern]: 'pattern',
  [ValueErrorType.StringFormat]: 'format',
  [ValueErrorType.StringFormatUnknown]: 'unknown-format',
  [ValueErrorType.ArrayMinItems]: 'min-items',
  [ValueErrorType.ArrayMaxItems]: 'max-items',
  [ValueErrorType.ArrayUniqueItems]: 'unique-items',
}

type Json = Record<string, unknown>
const isTable = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Every [path, schema] of the schema's keys (tables included). */
function keyPaths(s: Json, path: string[] = []): [string[], Json][] {
  const out: [string[], Json][] = []
  const props = (s['properties'] ?? {}) as Record<string, Json>
  for (const [k, c] of Object.entries(props)) {
    out.push([[...path, k], c])
    if (c['type'] === 'object') out.push(...keyPaths(c, [...path, k]))
  }
  return out
}

const KEYS = keyPaths(CONFIG_SCHEMA as Json)
const SCALARS: unknown[] = ['', 'x', 'fieldproof', '127.0.0.1:8080', '0.0.0.0:99999', '[::1]:80', 'a b', 0, 1, -1, 1.5, 65536, 1e12, -0, true, false, [], ['a'], [1, 1], ['th', 'th'], ['th', 'aq'], {}, { x: 1 }]

function mutate(base: Json, r: () => number): Json {
  const cfg = structuredClone(base)
  const n = 1 + Math.floor(r() * 4)
  for (let i = 0; i < n; i++) {
    const [path, schema] = KEYS[Math.floor(r() * KEYS.length)] as [string[], Json]
    let node: unknown = cfg
    for (const p of path.slice(0, -1)) {
      if (!isTable(node)) break
      node = node[p]
    }
    if (!isTable(node)) continue
    const key = path[path.length - 1] as string
    const what = r()
    if (what < 0.2) delete node[key]
    else if (what < 0.3) node[`${key}${r() < 0.5 ? 's' : '_x'}`] = 1 // an unknown (misspelt) key
    else if (what < 0.4 && schema['type'] === 'object') node[key] = SCALARS[Math.floor(r() * 16)] // a scalar for a table (SCALARS[0..15]: no array or table)
    // no table where an array belongs: TypeBox turns {} into [] there (validate.ts refuses it, tested below)
    else if (schema['type'] === 'array') node[key] = structuredClone(SCALARS[Math.floor(r() * (SCALARS.length - 2))])
    else if (schema['type'] !== 'object') node[key] = structuredClone(SCALARS[Math.floor(r() * SCALARS.length)])
  }
  return cfg
}

t.test('defaults and errors agree with TypeBox on 4,000 generated configs', (t) => {
  const r = rng(20261124)
  const full = Value.Default(ConfigSchema, {}) as Json
  let mismatches = 0
  let withErrors = 0
  for (let i = 0; i < 4000; i++) {
    const input = i === 0 ? {} : i === 1 ? full : mutate(r() < 0.5 ? full : {}, r)
    const ours = applyDefaults(CONFIG_SCHEMA, structuredClone(input))
    const theirs = Value.Default(ConfigSchema, structuredClone(input))
    const ourErrors = [...schemaErrors(CONFIG_SCHEMA, ours)].map((e) => `${e.path} ${e.kind}`)
    const theirErrors = [...Value.Errors(ConfigSchema, theirs)].map((e) => `${e.path} ${KIND[e.type] ?? `typebox-${e.type}`}`)
    if (ourErrors.length > 0) withErrors++
    const same = JSON.stringify(ours) === JSON.stringify(theirs) && JSON.stringify(ourErrors) === JSON.stringify(theirErrors)
    if (!same && mismatches++ < 3) {
      t.same(ours, theirs, `defaults of config ${i}: ${JSON.stringify(input).slice(0, 300)}`)
      t.same(ourErrors, theirErrors, `errors of config ${i}`)
    }
    if (satisfies(CONFIG_SCHEMA, ours) !== Value.Check(ConfigSchema, theirs)) mismatches++
  }
  t.equal(mismatches, 0, 'no disagreement')
  t.ok(withErrors > 1000 && withErrors < 3900, `valid and invalid configs both generated (${withErrors} invalid)`)
  t.end()
})

t.test('what TypeBox would let through, validate.ts refuses: arrays and dates where a table belongs, tables where an array belongs', (t) => {
  const dir = t.testdir()
  const file = join(dir, 'fieldproof.toml')
  writeFileSync(file, 'gateway = [1, 2]\napi = 1979-05-27T07:32:00Z\n')
  t.ok(Value.Check(ConfigSchema, Value.Default(ConfigSchema, { sources: { ble: { accept_all: { x: 1 } } } })), 'TypeBox: a table becomes an array')
  t.notOk(satisfies(CONFIG_SCHEMA, applyDefaults(CONFIG_SCHEMA, { sources: { ble: { accept_all: { x: 1 } } } })), 'validate.ts: refused')
  t.throws(() => loadConfig({ path: file, cwd: dir }), { code: 'CONFIG_INVALID', message: /api: expected a table, got date-time[\s\S]*gateway: expected a table, got array/ })
  t.end()
})

t.test('the generated schema is the TypeBox schema as JSON', (t) => {
  t.same(CONFIG_SCHEMA, JSON.parse(JSON.stringify(ConfigSchema)))
  t.end()
})

t.test('messages for the keywords TypeBox left generic', (t) => {
  const dir = t.testdir()
  const file = join(dir, 'fieldproof.toml')
  writeFileSync(file, `[sources.ble]\naccept_all = ${JSON.stringify(Array.from({ length: 40 }, () => 'bthome'))}\n`)
  t.throws(() => loadConfig({ path: file, cwd: dir }), { code: 'CONFIG_INVALID', message: /sources\.ble\.accept_all: must (have at most \d+ item\(s\)|not repeat an item)/ })
  t.end()
})
