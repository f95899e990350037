// Walking a config schema (plain JSON Schema objects): its tables and keys
// for the template and the docs, type names for messages, and the simulation
// overlay. No TypeBox import: the running gateway uses this on the schema's
// JSON form (schema.generated.ts).

import { LISTEN_FORMAT } from './common.ts'
import type { JsonSchema } from './validate.ts'

export type { JsonSchema }

/** One key of a table, as the template and the docs show it. */
export interface ConfigKeyInfo {
  /** Dotted path, e.g. `api.listen`. */
  readonly path: string
  readonly name: string
  /** Human-readable type, e.g. `integer (1..65535)`, `"info" | "warn"`. */
  readonly type: string
  readonly description: string
  readonly default: unknown
  /** Present when simulation mode uses another default. */
  readonly simulationDefault?: unknown
  readonly schema: JsonSchema
}

/** One table (`[gateway]`, `[sources.sim]`, ...) and its scalar keys. */
export interface ConfigTableInfo {
  /** Dotted path, e.g. `sources.sim`. */
  readonly path: string
  readonly description: string
  readonly keys: readonly ConfigKeyInfo[]
  /** Whether it has sub-tables. */
  readonly hasSubTables: boolean
}

function isTable(s: JsonSchema): boolean {
  return s['type'] === 'object' && s['properties'] !== undefined
}

function literalValues(s: JsonSchema): unknown[] | null {
  const anyOf = s['anyOf'] as JsonSchema[] | undefined
  if (anyOf === undefined || !anyOf.every((m) => m['const'] !== undefined)) return null
  return anyOf.map((m) => m['const'])
}

/** A human-readable name of a schema's type, as used in docs and error messages. */
export function describeType(s: JsonSchema): string {
  const literals = literalValues(s)
  if (literals !== null) return literals.map((v) => JSON.stringify(v)).join(' | ')
  const t = s['type']
  if (t === 'array') {
    const items = s['items'] as JsonSchema
    const inner = describeType(items)
    return `array of ${literalValues(items) !== null ? `(${inner})` : inner}`
  }
  if (t === 'integer' || t === 'number') {
    const min = s['minimum'] as number | undefined
    const max = s['maximum'] as number | undefined
    if (min !== undefined && max !== undefined) return `${t} (${min}..${max})`
    if (min !== undefined) return `${t} (>= ${min})`
    if (max !== undefined) return `${t} (<= ${max})`
    return t
  }
  if (t === 'string' && s['format'] === LISTEN_FORMAT) return 'string (HOST:PORT)'
  if (t === 'object') return 'table'
  return String(t)
}

/** Every table of the schema, depth first, in declaration order. */
export function configTables(schema: JsonSchema): ConfigTableInfo[] {
  const out: ConfigTableInfo[] = []
  const visit = (s: JsonSchema, path: string[]): void => {
    const props = s['properties'] as Record<string, JsonSchema>
    const keys: ConfigKeyInfo[] = []
    const subs: [string, JsonSchema][] = []
    for (const [name, child] of Object.entries(props)) {
      if (isTable(child)) {
        subs.push([name, child])
        continue
      }
      const info: ConfigKeyInfo = {
        path: [...path, name].join('.'),
        name,
        type: describeType(child),
        description: String(child['description'] ?? ''),
        default: child['default'],
        schema: child,
        ...('simulationDefault' in child ? { simulationDefault: child['simulationDefault'] } : {}),
      }
      keys.push(info)
    }
    if (path.length > 0) {
      out.push({ path: path.join('.'), description: String(s['description'] ?? ''), keys, hasSubTables: subs.length > 0 })
    }
    for (const [name, child] of subs) visit(child, [...path, name])
  }
  visit(schema, [])
  return out
}

/** The keys whose default differs in simulation mode, as a partial config to lay under the defaults. */
export function simulationOverlay(schema: JsonSchema): Record<string, unknown> {
  const overlay: Record<string, unknown> = {}
  for (const t of configTables(schema)) {
    for (const k of t.keys) {
      if (!('simulationDefault' in k)) continue
      let node = overlay
      for (const part of t.path.split('.')) {
        const next = (node[part] ??= {}) as Record<string, unknown>
        node = next
      }
      node[k.name] = structuredClone(k.simulationDefault)
    }
  }
  return overlay
}
