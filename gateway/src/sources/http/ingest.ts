// The HTTP source's body format: POST /api/v1/readings takes one reading
// object or an array of them (docs/http-api.md). Parsing is total: every
// problem is a rejection naming the field, never a throw.

import { checkMetric } from '../../core/units.ts'
import type { Metric, Reading, ReceiveTime } from '../../core/types.ts'

export const DEVICE_ID_RE = /^[A-Za-z0-9._:@/-]{1,128}$/
const MAX_METRICS = 64
const READING_KEYS = new Set(['device', 'metrics', 'time', 'raw'])
const METRIC_KEYS = new Set(['name', 'value', 'unit'])

export type IngestCause = 'invalid-json' | 'invalid-reading' | 'unknown-unit' | 'too-many' | 'empty'

export type ParseResult =
  | { readonly ok: true; readonly readings: Reading[] }
  | { readonly ok: false; readonly cause: IngestCause; readonly reason: string }

export interface ParseContext {
  readonly received: ReceiveTime
  /** Name of the bearer token that authenticated the request (never the secret). */
  readonly tokenId: string
  readonly maxReadings: number
}

const fail = (cause: IngestCause, reason: string): ParseResult => ({ ok: false, cause, reason })
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const short = (v: unknown) => JSON.stringify(v)?.slice(0, 60) ?? String(v)

function parseTime(v: unknown, at: string): number | string {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) return `${at}.time: must be milliseconds since the epoch (a non-negative integer)`
    return v
  }
  if (typeof v === 'string') {
    const ms = Date.parse(v)
    if (!/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(ms) || ms < 0) return `${at}.time: must be an RFC 3339 timestamp or epoch milliseconds`
    return ms
  }
  return `${at}.time: must be a number or a string`
}

function parseRaw(v: unknown, at: string): Uint8Array | string {
  if (typeof v !== 'string') return `${at}.raw: must be a 0x-prefixed hex string`
  if (!/^0x([0-9a-fA-F]{2})*$/.test(v) || v.length > 2 + 2 * 65536) return `${at}.raw: must be 0x-prefixed hex, at most 64 KiB`
  return new Uint8Array(Buffer.from(v.slice(2), 'hex'))
}

function parseMetrics(v: unknown, at: string): Metric[] | { cause: IngestCause; reason: string } {
  const out: Metric[] = []
  const add = (name: string, value: unknown, unit: unknown, where: string) => {
    if (unit !== undefined && typeof unit !== 'string') return { cause: 'invalid-reading' as const, reason: `${where}.unit: must be a string` }
    if (typeof value !== 'number') return { cause: 'invalid-reading' as const, reason: `${where}.value: must be a number, got ${short(value)}` }
    const c = checkMetric(name, unit as string | undefined, value)
    if (!c.ok) return { cause: c.reason.includes('unknown unit') ? ('unknown-unit' as const) : ('invalid-reading' as const), reason: `${where}: ${c.reason}` }
    out.push({ name, unit: c.unit, value })
    return undefined
  }
  if (Array.isArray(v)) {
    if (v.length > MAX_METRICS) return { cause: 'too-many', reason: `${at}.metrics: at most ${MAX_METRICS} metrics` }
    for (let i = 0; i < v.length; i++) {
      const m: unknown = v[i]
      const where = `${at}.metrics[${i}]`
      if (!isObj(m)) return { cause: 'invalid-reading', reason: `${where}: must be an object {name, value, unit?}` }
      for (const k of Object.keys(m)) if (!METRIC_KEYS.has(k)) return { cause: 'invalid-reading', reason: `${where}: unknown key "${k.slice(0, 40)}"` }
      if (typeof m['name'] !== 'string') return { cause: 'invalid-reading', reason: `${where}.name: must be a string` }
      const e = add(m['name'], m['value'], m['unit'], where)
      if (e) return e
    }
  } else if (isObj(v)) {
    const entries = Object.entries(v)
    if (entries.length > MAX_METRICS) return { cause: 'too-many', reason: `${at}.metrics: at most ${MAX_METRICS} metrics` }
    for (const [name, value] of entries) {
      const e = isObj(value) ? add(name, value['value'], value['unit'], `${at}.metrics.${name.slice(0, 64)}`) : add(name, value, undefined, `${at}.metrics.${name.slice(0, 64)}`)
      if (e) return e
    }
  } else {
    return { cause: 'invalid-reading', reason: `${at}.metrics: must be an object {name: value} or an array of {name, value, unit}` }
  }
  const names = new Set<string>()
  for (const m of out) {
    if (names.has(m.name)) return { cause: 'invalid-reading', reason: `${at}.metrics: "${m.name}" appears twice` }
    names.add(m.name)
  }
  return out
}

/** Parse a decoded JSON body into readings (all-or-nothing). */
export function parseIngestBody(body: unknown, ctx: ParseContext): ParseResult {
  const items = Array.isArray(body) ? body : [body]
  if (items.length === 0) return fail('empty', 'body: an empty array holds no reading')
  if (items.length > ctx.maxReadings) return fail('too-many', `body: at most ${ctx.maxReadings} readings per request, got ${items.length}`)
  const readings: Reading[] = []
  for (let i = 0; i < items.length; i++) {
    const at = Array.isArray(body) ? `[${i}]` : 'body'
    const it: unknown = items[i]
    if (!isObj(it)) return fail('invalid-reading', `${at}: must be an object with "device" and "metrics"`)
    for (const k of Object.keys(it)) if (!READING_KEYS.has(k)) return fail('invalid-reading', `${at}: unknown key "${k.slice(0, 40)}"`)
    const device = it['device']
    if (typeof device !== 'string' || !DEVICE_ID_RE.test(device)) return fail('invalid-reading', `${at}.device: must match ${DEVICE_ID_RE.source}`)
    if (it['metrics'] === undefined) return fail('invalid-reading', `${at}.metrics: required`)
    const metrics = parseMetrics(it['metrics'], at)
    if (!Array.isArray(metrics)) return fail(metrics.cause, metrics.reason)
    let deviceTimeMs: number | undefined
    if (it['time'] !== undefined) {
      const t = parseTime(it['time'], at)
      if (typeof t === 'string') return fail('invalid-reading', t)
      deviceTimeMs = t
    }
    let raw: Uint8Array | undefined
    if (it['raw'] !== undefined) {
      const r = parseRaw(it['raw'], at)
      if (typeof r === 'string') return fail('invalid-reading', r)
      raw = r
    }
    readings.push({
      deviceId: device,
      source: 'http',
      received: ctx.received,
      ...(deviceTimeMs !== undefined ? { deviceTimeMs } : {}),
      metrics,
      ...(raw !== undefined ? { raw } : {}),
      auth: { kind: 'http-token', tokenId: ctx.tokenId },
    })
  }
  return { ok: true, readings }
}
