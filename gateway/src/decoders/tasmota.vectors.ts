// Published Tasmota payloads (cited per vector) and the readings they give.

import type { DecoderVector } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const m = (name: string, unit: string, value: number): Metric => ({ name, unit, value })

export const TASMOTA_VECTORS: readonly DecoderVector[] = [
  {
    name: 'AM2301 temperature and humidity',
    source: 'https://tasmota.github.io/docs/AM2301 ("Sensor sends a tele/%topic%/SENSOR JSON response")',
    input: '{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},"TempUnit":"C"}',
    frame: { topic: 'tele/kitchen/SENSOR' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 24.6), m('humidity_pct', '%', 58.2)], meta: { sensors: 'AM2301' } },
  },
  {
    name: 'ENERGY object of a power-monitoring plug',
    source: 'https://blog.mylocalbytes.com/kb/2022-01-10/LB-PM-Power-Monitoring (tele/livingroom-lamp/SENSOR as published by Tasmota; fields per https://tasmota.github.io/docs/Power-Monitoring/)',
    input:
      '{"Time":"2022-01-11T21:57:38","ENERGY":{"TotalStartTime":"2020-10-21T22:15:00","Total":3.705,"Yesterday":0.028,"Today":0.026,"Period":1,"Power":5,"ApparentPower":5,"ReactivePower":0,"Factor":1.00,"Voltage":233,"Current":0.021}}',
    frame: { topic: 'tele/livingroom-lamp/SENSOR' },
    expect: {
      ok: true,
      metrics: [
        m('energy_kwh', 'kWh', 3.705),
        m('power_w', 'W', 5),
        m('apparent_power_va', 'VA', 5),
        m('reactive_power_var', 'var', 0),
        m('power_factor', '1', 1),
        m('voltage_v', 'V', 233),
        m('current_a', 'A', 0.021),
      ],
    },
  },
  {
    name: 'Fahrenheit temperatures are converted',
    source: 'Tasmota SetOption8 1 reports "TempUnit":"F" (https://tasmota.github.io/docs/Commands/#setoption8); payload shape of the AM2301 page',
    input: '{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":76.3,"Humidity":58.2},"TempUnit":"F"}',
    frame: { topic: 'tele/kitchen/SENSOR' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', ((76.3 - 32) * 5) / 9), m('humidity_pct', '%', 58.2)] },
  },
  {
    name: 'STATE: relay and WiFi signal',
    source: 'https://tasmota.github.io/docs/JSON-Status-Responses/ (StatusSTS, the object also published as tele/%topic%/STATE)',
    input: '{"Time":"2018-02-15T01:00:50","Uptime":"0T00:00:30","POWER":"ON","Wifi":{"AP":1,"SSId":"XXX","RSSI":100,"Signal":-46,"LinkCount":1}}',
    frame: { topic: 'tele/kitchen/STATE' },
    expect: { ok: true, metrics: [m('power_on', '1', 1), m('rssi_dbm', 'dBm', -46)] },
  },
  {
    name: 'LWT is not a reading',
    source: 'https://tasmota.github.io/docs/MQTT/ (tele/%topic%/LWT "Online"/"Offline")',
    input: 'Online',
    frame: { topic: 'tele/kitchen/LWT' },
    expect: { ok: false, code: 'not-matched' },
  },
  {
    name: 'truncated SENSOR JSON',
    source: 'the AM2301 payload cut short',
    input: '{"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,',
    frame: { topic: 'tele/kitchen/SENSOR' },
    expect: { ok: false, code: 'malformed' },
  },
]
