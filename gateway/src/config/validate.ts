// Defaults and validation for the config schema, over the plain JSON Schema
// objects that schema.ts declares (the subset it uses: object with
// properties / required / additionalProperties false, string with
// minLength / maxLength / pattern / format, integer and number with minimum /
// maximum, boolean, array with items / minItems / maxItems / uniqueItems, and
// anyOf of const values).
//
// Why not TypeBox's Value.Default / Value.Errors at run time: importing
// @sinclair/typebox loads about 250 modules, some 15 MB of resident memory
// for the life of the gateway process on a 512 MB Pi Zero 2 W. The schema
// is still declared with TypeBox (types, docs, template); the running gateway
// validates against its JSON form (schema.generated.ts) with this file, whose
// results validate.test.ts checks against TypeBox's own on thousands of
// generated configs.

import { LISTEN_FORMAT, parseListenAddress } from './common.ts'

/** A JSON Schema object as schema.ts produces it. */
export type JsonSchema = Readonly<Record<string, unknown>>

/** The kinds of problem, one per failed JSON Schema keyword. */
export type SchemaErrorKind =
  | 'object'
  | 'required'
  | 'additional-property'
  | 'type'
  | 'union'
  | 'minimum'
  | 'maximum'
  | 'min-length'
  | 'max-length'
  | 'pattern'
  | 'format'
  | 'unknown-format'
  | 'min-items'
  | 'max-items'
  | 'unique-items'

/** One problem: the schema and value at `path` (a JSON pointer, `/sources/sim/kinds/1`). */
export interface SchemaError {
  readonly kind: SchemaErrorKind
  readonly path: string
  readonly schema: JsonSchema
  readonly value: unknown
}

/** String formats by name: a value is valid when the check returns true. */
const FORMATS = new Map<string, (value: string) => boolean>([[LISTEN_FORMAT, (v) => parseListenAddress(v).ok]])

/** Register the check of a `format` name (idempotent). */
export function registerFormat(name: string, check: (value: string) => boolean): void {
  FORMATS.set(name, check)
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)
const props = (s: JsonSchema): Record<string, JsonSchema> => (s['properties'] as Record<string, JsonSchema> | undefined) ?? {}
const escapeKey = (k: string): string => k.replace(/~/g, '~0').replace(/\//g, '~1')

function schemaKind(s: JsonSchema): 'object' | 'array' | 'union' | 'const' | 'string' | 'integer' | 'number' | 'boolean' | 'any' {
  if (Array.isArray(s['anyOf'])) return 'union'
  if ('const' in s) return 'const'
  const t = s['type']
  if (t === 'object' || t === 'array' || t === 'string' || t === 'integer' || t === 'number' || t === 'boolean') return t
  return 'any'
}

/**
 * Fill in defaults where a value is missing, the way the config promises:
 * a missing key takes its `default`; a table given in the file is completed
 * key by key; array items that are tables are completed too. Mutates and
 * returns `value` (or the default put in its place).
 */
export function applyDefaults(schema: JsonSchema, value: unknown): unknown {
  let v = value
  if (v === undefined && 'default' in schema) v = structuredClone(schema['default'])
  switch (schemaKind(schema)) {
    case 'object':
      if (isTable(v)) {
        for (const [k, ps] of Object.entries(props(schema))) {
          const d = applyDefaults(ps, v[k])
          if (d !== undefined) v[k] = d
        }
      }
      return v
    case 'array':
      if (Array.isArray(v)) {
        const items = schema['items'] as JsonSchema | undefined
        if (items) for (let i = 0; i < v.length; i++) v[i] = applyDefaults(items, v[i])
      }
      return v
    default:
      return v
  }
}

/** Whether `value` satisfies `schema` (no problem at all). */
export function satisfies(schema: JsonSchema, value: unknown): boolean {
  return schemaErrors(schema, value).next().done === true
}

/** Every problem of `value` against `schema`, depth first in declaration order. */
export function* schemaErrors(schema: JsonSchema, value: unknown, path = ''): Generator<SchemaError> {
  const err = (kind: SchemaErrorKind, s: JsonSchema = schema, p = path, v: unknown = value): SchemaError => ({ kind, path: p, schema: s, value: v })
  switch (schemaKind(schema)) {
    case 'object': {
      if (!isTable(value)) return yield err('object')
      const known = props(schema)
      const required = Array.isArray(schema['required']) ? (schema['required'] as string[]) : []
      for (const k of required) if (!(k in value)) yield err('required', known[k] ?? {}, `${path}/${escapeKey(k)}`, undefined)
      if (schema['additionalProperties'] === false) {
        for (const k of Object.keys(value)) if (!Object.hasOwn(known, k)) yield err('additional-property', schema, `${path}/${escapeKey(k)}`, value[k])
      }
      for (const [k, ps] of Object.entries(known)) {
        if (value[k] !== undefined) yield* schemaErrors(ps, value[k], `${path}/${escapeKey(k)}`)
      }
      return
    }
    case 'array': {
      if (!Array.isArray(value)) return yield err('type')
      const min = schema['minItems'] as number | undefined
      const max = schema['maxItems'] as number | undefined
      if (min !== undefined && value.length < min) yield err('min-items')
      if (max !== undefined && value.length > max) yield err('max-items')
      const items = schema['items'] as JsonSchema | undefined
      if (items) for (let i = 0; i < value.length; i++) yield* schemaErrors(items, value[i], `${path}/${i}`)
      if (schema['uniqueItems'] === true && new Set(value.map(stableKey)).size !== value.length) yield err('unique-items')
      return
    }
    case 'union':
      if (!(schema['anyOf'] as JsonSchema[]).some((m) => satisfies(m, value))) yield err('union')
      return
    case 'const':
      if (value !== schema['const']) yield err('union')
      return
    case 'string': {
      if (typeof value !== 'string') return yield err('type')
      const minLength = schema['minLength'] as number | undefined
      const maxLength = schema['maxLength'] as number | undefined
      if (minLength !== undefined && value.length < minLength) yield err('min-length')
      if (maxLength !== undefined && value.length > maxLength) yield err('max-length')
      if (typeof schema['pattern'] === 'string' && !new RegExp(schema['pattern']).test(value)) yield err('pattern')
      if (typeof schema['format'] === 'string') {
        const check = FORMATS.get(schema['format'])
        if (!check) yield err('unknown-format')
        else if (!check(value)) yield err('format')
      }
      return
    }
    case 'integer':
    case 'number': {
      const ok = schemaKind(schema) === 'integer' ? Number.isInteger(value) : typeof value === 'number' && Number.isFinite(value)
      if (!ok) return yield err('type')
      const n = value as number
      if (schema['maximum'] !== undefined && !(n <= (schema['maximum'] as number))) yield err('maximum')
      if (schema['minimum'] !== undefined && !(n >= (schema['minimum'] as number))) yield err('minimum')
      return
    }
    case 'boolean':
      if (typeof value !== 'boolean') yield err('type')
      return
    case 'any':
      return
  }
}

/** A key equal for equal JSON values (object keys sorted). */
function stableKey(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableKey).join(',')}]`
  if (isTable(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableKey(v[k])}`)
      .join(',')}}`
  return v instanceof Date ? `D${v.toISOString()}` : JSON.stringify(v) ?? 'undefined'
}
