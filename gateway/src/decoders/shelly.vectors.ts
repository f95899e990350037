// Shelly Gen2+ MQTT payloads. Status fields from the Switch component page
// (https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Switch,
// "Example status object", first fields as published there); NotifyStatus
// frames as specified on https://shelly-api-docs.shelly.cloud/gen2/General/Notifications.

import type { DecoderVector } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const m = (name: string, unit: string, value: number): Metric => ({ name, unit, value })
const SWITCH = 'https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Switch (example status object)'
const NOTIFY = 'https://shelly-api-docs.shelly.cloud/gen2/General/Notifications (NotifyStatus: params.ts + component objects)'

export const SHELLY_VECTORS: readonly DecoderVector[] = [
  {
    name: 'status/switch:0 with metering',
    source: SWITCH,
    input: '{"id":0,"source":"timer","output":false,"timer_started_at":1626942399.36,"timer_duration":60,"apower":0,"voltage":237.571,"aenergy":{"total":14.093}}',
    frame: { topic: 'shellyplus1pm-a8032ab12345/status/switch:0' },
    expect: { ok: true, metrics: [m('power_on', '1', 0), m('power_w', 'W', 0), m('voltage_v', 'V', 237.571), m('energy_kwh', 'kWh', 0.014093)], meta: { component: 'switch:0' } },
  },
  {
    name: 'status/switch:1: names carry the instance',
    source: SWITCH,
    input: '{"id":1,"source":"init","output":true,"apower":8.9,"voltage":229.1,"current":0.07,"temperature":{"tC":41.2,"tF":106.2}}',
    frame: { topic: 'shellyplus2pm-1/status/switch:1' },
    expect: { ok: true, metrics: [m('power_on_2', '1', 1), m('power_w_2', 'W', 8.9), m('voltage_v_2', 'V', 229.1), m('current_a_2', 'A', 0.07), m('temperature_c_2', 'Cel', 41.2)] },
  },
  {
    name: 'NotifyStatus on events/rpc',
    source: NOTIFY,
    input: '{"src":"shellyplus1pm-a8032ab12345","dst":"shellyplus1pm-a8032ab12345/events","method":"NotifyStatus","params":{"ts":1631266595.44,"switch:0":{"id":0,"output":true,"source":"button"}}}',
    frame: { topic: 'shellyplus1pm-a8032ab12345/events/rpc' },
    expect: { ok: true, metrics: [m('power_on', '1', 1)], meta: { components: 'switch:0' } },
  },
  {
    name: 'H&T temperature and humidity status',
    source: 'https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Temperature (tC) and .../Humidity (rh)',
    input: '{"src":"shellyhtg3-1","method":"NotifyStatus","params":{"ts":1700000000,"temperature:0":{"id":0,"tC":21.5,"tF":70.7},"humidity:0":{"id":0,"rh":45.2}}}',
    frame: { topic: 'shellyhtg3-1/events/rpc' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 21.5), m('humidity_pct', '%', 45.2)] },
  },
  {
    name: 'NotifyEvent carries no status',
    source: 'https://shelly-api-docs.shelly.cloud/gen2/General/Notifications (NotifyEvent)',
    input: '{"src":"shellyplus1-1","method":"NotifyEvent","params":{"ts":1631266595.44,"events":[{"component":"input:0","id":0,"event":"single_push"}]}}',
    frame: { topic: 'shellyplus1-1/events/rpc' },
    expect: { ok: false, code: 'not-matched' },
  },
  {
    name: 'broken status JSON',
    source: SWITCH,
    input: '{"id":0,"output":',
    frame: { topic: 'shellyplus1-1/status/switch:0' },
    expect: { ok: false, code: 'malformed' },
  },
]
