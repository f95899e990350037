// The generic JSON payload for MQTT devices registered with format "json"
// and for anonymous simulation clients (docs/mqtt.md, "Payloads"):
//   {"metrics": {"temperature_c": 21.5, "co2": {"value": 600, "unit": "ppm"}}, "time": 1700000000000}
// or metrics as [{"name", "value", "unit"?}]. Units come from core/units.ts.
// Parsing is total: every problem is a rejection naming the field.

import { checkMetric } from '../../core/units.ts'
import type { Metric } from '../../core/types.ts'
import { strictUtf8 } from '../../core/decoder.ts'

const MAX_METRICS = 64

export type JsonReadingResult = { ok: true; metrics: Metric[]; timeMs?: number } | { ok: false; reason: string }

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

export function parseJsonReading(payload: Uint8Array): JsonReadingResult {
  let j: unknown
  try {
    j = JSON.parse(strictUtf8.decode(payload))
  } catch (e) {
    return { ok: false, reason: `not JSON: ${e instanceof Error ? e.message.slice(0, 100) : ''}` }
  }
  if (!isObj(j)) return { ok: false, reason: 'payload must be a JSON object {"metrics": …, "time"?: …}' }
  for (const k of Object.keys(j)) if (k !== 'metrics' && k !== 'time') return { ok: false, reason: `unknown key "${k.slice(0, 40)}"` }
  const metrics: Metric[] = []
  const add = (name: unknown, value: unknown, unit: unknown, at: string): string | undefined => {
    if (typeof name !== 'string') return `${at}.name: must be a string`
    if (unit !== undefined && typeof unit !== 'string') return `${at}.unit: must be a string`
    if (typeof value !== 'number') return `${at}.value: must be a number`
    const c = checkMetric(name, unit as string | undefined, value)
    if (!c.ok) return `${at}: ${c.reason}`
    if (metrics.some((m) => m.name === name)) return `${at}: "${name}" appears twice`
    metrics.push({ name, unit: c.unit, value })
    return undefined
  }
  const m = j['metrics']
  if (Array.isArray(m)) {
    if (m.length > MAX_METRICS) return { ok: false, reason: `at most ${MAX_METRICS} metrics` }
    for (let i = 0; i < m.length; i++) {
      const x: unknown = m[i]
      if (!isObj(x)) return { ok: false, reason: `metrics[${i}]: must be an object {name, value, unit?}` }
      const e = add(x['name'], x['value'], x['unit'], `metrics[${i}]`)
      if (e) return { ok: false, reason: e }
    }
  } else if (isObj(m)) {
    const entries = Object.entries(m)
    if (entries.length > MAX_METRICS) return { ok: false, reason: `at most ${MAX_METRICS} metrics` }
    for (const [name, v] of entries) {
      const e = isObj(v) ? add(name, v['value'], v['unit'], `metrics.${name.slice(0, 64)}`) : add(name, v, undefined, `metrics.${name.slice(0, 64)}`)
      if (e) return { ok: false, reason: e }
    }
  } else return { ok: false, reason: 'metrics: must be an object {name: value} or an array of {name, value, unit}' }
  const t = j['time']
  if (t === undefined) return { ok: true, metrics }
  if (typeof t === 'number' && Number.isSafeInteger(t) && t >= 0) return { ok: true, metrics, timeMs: t }
  if (typeof t === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(t) && !Number.isNaN(Date.parse(t))) return { ok: true, metrics, timeMs: Date.parse(t) }
  return { ok: false, reason: 'time: must be epoch milliseconds or an RFC 3339 timestamp' }
}
