// Shelly Gen2+ devices over MQTT (https://shelly-api-docs.shelly.cloud/gen2/General/Notifications,
// ".../ComponentsAndServices/Mqtt"): with "generic status update over MQTT"
// on, a component's status is published to <prefix>/status/<type>:<id>;
// with "RPC status notifications" on, changes arrive on <prefix>/events/rpc
// as {"method": "NotifyStatus", "params": {"ts": …, "<type>:<id>": {…}}}.
//
// Status fields (Switch, PM1, EM1, Temperature, Humidity, DevicePower,
// Illuminance, Input component pages): output → power_on, apower/act_power →
// power_w, aprt_power → apparent_power_va, voltage, current, pf, freq,
// aenergy.total (Wh) → energy_kwh, temperature.tC / tC → temperature_c,
// rh → humidity_pct, battery.V / battery.percent, lux, input state → state.
// Instance <type>:N with N > 0 appends _<N+1> to the metric names.

import { reject, type Decoder, type DecodeResult, strictUtf8 } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
const COMPONENT_RE = /^(switch|pm1|em1|temperature|humidity|devicepower|illuminance|input|cover|light):(\d{1,3})$/

function componentMetrics(type: string, st: Record<string, unknown>): Metric[] {
  const out: Metric[] = []
  const add = (name: string, unit: string, v: number | undefined) => {
    if (v !== undefined) out.push({ name, unit, value: v })
  }
  if (typeof st['output'] === 'boolean') add('power_on', '1', st['output'] ? 1 : 0)
  add('power_w', 'W', num(st['apower']) ?? num(st['act_power']))
  add('apparent_power_va', 'VA', num(st['aprt_power']))
  add('voltage_v', 'V', num(st['voltage']))
  add('current_a', 'A', num(st['current']))
  add('power_factor', '1', num(st['pf']))
  add('frequency_hz', 'Hz', num(st['freq']))
  const ae = st['aenergy']
  if (isObj(ae)) {
    const t = num(ae['total'])
    add('energy_kwh', 'kWh', t === undefined ? undefined : t / 1000)
  }
  const temp = st['temperature']
  if (isObj(temp)) add('temperature_c', 'Cel', num(temp['tC']))
  if (type === 'temperature') add('temperature_c', 'Cel', num(st['tC']))
  if (type === 'humidity') add('humidity_pct', '%', num(st['rh']))
  if (type === 'illuminance') add('illuminance_lx', 'lx', num(st['lux']))
  if (type === 'devicepower' && isObj(st['battery'])) {
    add('battery_v', 'V', num(st['battery']['V']))
    add('battery_pct', '%', num(st['battery']['percent']))
  }
  if (type === 'input' && typeof st['state'] === 'boolean') add('state', '1', st['state'] ? 1 : 0)
  return out
}

function suffixed(metrics: Metric[], id: number, taken: Set<string>): Metric[] {
  const out: Metric[] = []
  for (const m of metrics) {
    let name = id > 0 ? `${m.name}_${id + 1}` : m.name
    for (let i = 2; taken.has(name) && i < 100; i++) name = `${m.name}_${i}`
    if (taken.has(name)) continue
    taken.add(name)
    out.push({ ...m, name })
  }
  return out
}

function parse(bytes: Uint8Array): Record<string, unknown> | string {
  if (bytes.length > 32_768) return 'payload larger than 32 KiB'
  try {
    const j = JSON.parse(strictUtf8.decode(bytes)) as unknown
    return isObj(j) ? j : 'payload is not a JSON object'
  } catch (e) {
    return `not JSON: ${e instanceof Error ? e.message.slice(0, 80) : ''}`
  }
}

export const shellyDecoder: Decoder = {
  id: 'shelly',
  description: 'Shelly Gen2+: <prefix>/status/<component>:<id> and NotifyStatus on <prefix>/events/rpc',
  match: { transport: 'mqtt', topic: '#' },
  input: 'json',
  decode(frame): DecodeResult {
    const levels = (frame.topic ?? '').split('/')
    const n = levels.length
    if (n >= 3 && levels[n - 2] === 'status') {
      const c = COMPONENT_RE.exec(levels[n - 1] as string)
      if (!c) return reject('not-matched', `status of ${String(levels[n - 1]).slice(0, 40)} carries no reading`)
      const j = parse(frame.bytes)
      if (typeof j === 'string') return reject('malformed', j)
      const id = Number(c[2])
      return { ok: true, metrics: suffixed(componentMetrics(c[1] as string, j), id, new Set()), meta: { component: `${c[1]}:${id}` } }
    }
    if (n >= 3 && levels[n - 2] === 'events' && levels[n - 1] === 'rpc') {
      const j = parse(frame.bytes)
      if (typeof j === 'string') return reject('malformed', j)
      if (j['method'] !== 'NotifyStatus' && j['method'] !== 'NotifyFullStatus') return reject('not-matched', `method ${String(j['method']).slice(0, 40)} carries no status`)
      const params = j['params']
      if (!isObj(params)) return reject('malformed', 'NotifyStatus without params')
      const taken = new Set<string>()
      const metrics: Metric[] = []
      const components: string[] = []
      for (const [key, st] of Object.entries(params)) {
        const c = COMPONENT_RE.exec(key)
        if (!c || !isObj(st)) continue
        components.push(key)
        metrics.push(...suffixed(componentMetrics(c[1] as string, st), Number(c[2]), taken))
      }
      const ts = num(params['ts'])
      return {
        ok: true,
        metrics: metrics.slice(0, 64),
        meta: { components: components.join(',').slice(0, 200) },
        ...(ts !== undefined && ts > 0 && ts < 1e11 ? { deviceTimeMs: Math.round(ts * 1000) } : {}),
      }
    }
    return reject('not-matched', 'Shelly readings arrive on <prefix>/status/<component>:<id> or <prefix>/events/rpc')
  },
}
