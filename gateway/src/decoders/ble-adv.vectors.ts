// Vectors for the raw-advertisement decoder 'ble' (ble-adv.ts). Each input is
// a complete advertising payload: AD structures as defined in the Bluetooth
// Core Specification v5.4, Vol 3, Part C, §11 (length, type, data), with the
// flags structure 02 01 06 (Supplement Part A §1.3: LE General Discoverable,
// BR/EDR not supported) where a sensor sends it. The data elements inside are
// the published vectors of the format decoders, cited per vector; the
// expected values are the ones those sources state.

import type { DecoderVector } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const m = (name: string, unit: string, value: number): Metric => ({ name, unit, value })
const G = 9.80665
const BTHOME_TESTS = 'Bluetooth-Devices/bthome-ble tests/test_parser_v2.py @ 00771fd672fc889d5e8c49d0d5f0fc25577f9b05'
const RUUVI_DF5 = 'https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2, case "valid data"'
const AD = 'Bluetooth Core Specification v5.4 Vol 3 Part C §11; Supplement Part A §1.4 (service data 0x16), §1.11 (manufacturer data 0xFF), §1.2 (name 0x09)'

export const BLE_ADV_VECTORS: readonly DecoderVector[] = [
  {
    name: 'BTHome service data after flags',
    source: `${AD}; data element: ${BTHOME_TESTS}, test_bthome_temperature_humidity (4002ca0903bf13)`,
    input: '0201060a16d2fc4002ca0903bf13',
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 25.06), m('humidity_pct', '%', 50.55)], meta: { decoder: 'bthome', serviceDataUuid: 'fcd2', encrypted: false } },
  },
  {
    name: 'BTHome with a complete local name',
    source: `${AD}; data element: ${BTHOME_TESTS}, test_bthome_temperature_humidity`,
    input: '020106' + '0a16d2fc4002ca0903bf13' + '0809' + Buffer.from('DIY-sen').toString('hex'),
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 25.06), m('humidity_pct', '%', 50.55)], meta: { decoder: 'bthome', name: 'DIY-sen' } },
  },
  {
    name: 'encrypted BTHome with bindkey and MAC options',
    source: `${AD}; data element, key and MAC: ${BTHOME_TESTS}, test_bindkey_correct`,
    input: '02010612' + '16d2fc' + '41a47266c95f730011223378237214',
    options: { bindkey: '231d39c1d7cc1ab1aee224cd096db932', mac: '54:48:e6:8f:80:a5' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 25.06), m('humidity_pct', '%', 50.55)], meta: { decoder: 'bthome', encrypted: true, counter: 857870592 } },
  },
  {
    name: 'encrypted BTHome without a bind key',
    source: `${AD}; data element: ${BTHOME_TESTS}, test_bindkey_correct`,
    input: '0201061216d2fc41a47266c95f730011223378237214',
    expect: { ok: false, code: 'missing-key' },
  },
  {
    name: 'Ruuvi RAWv2 manufacturer data (company 0x0499)',
    source: `${AD}; data element: ${RUUVI_DF5}`,
    input: '0201061bff99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F',
    expect: {
      ok: true,
      metrics: [
        m('temperature_c', 'Cel', 24.3),
        m('humidity_pct', '%', 53.49),
        m('pressure_hpa', 'hPa', 1000.44),
        m('acceleration_x_ms2', 'm/s2', 0.004 * G),
        m('acceleration_y_ms2', 'm/s2', -0.004 * G),
        m('acceleration_z_ms2', 'm/s2', 1.036 * G),
        m('battery_v', 'V', 2.977),
        m('tx_power_dbm', 'dBm', 4),
      ],
      meta: { decoder: 'ruuvi', manufacturerId: 0x0499, sequence: 205 },
    },
  },
  {
    name: 'zero-length AD structure ends the data (padding ignored)',
    source: `${AD} (early termination); data element: ${BTHOME_TESTS}, test_bthome_temperature_humidity`,
    input: '0a16d2fc4002ca0903bf1300000000',
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 25.06), m('humidity_pct', '%', 50.55)], meta: { decoder: 'bthome' } },
  },
  {
    name: 'AD length past the end',
    source: `${AD}: a structure's length byte counts the bytes that follow it`,
    input: '0201060f16d2fc4002ca0903bf13',
    expect: { ok: false, code: 'truncated' },
  },
  {
    name: 'phone: Apple manufacturer data (company 0x004C) only',
    source: `${AD}; Bluetooth SIG Assigned Numbers, company identifiers: 0x004C Apple, Inc.`,
    input: '0201061aff4c000215fda50693a4e24fb1afcfc6eb0764782500010002c5',
    expect: { ok: false, code: 'unsupported' },
  },
  {
    name: 'Ruuvi manufacturer data one byte too long',
    source: `${AD}; data element: ${RUUVI_DF5} with one byte appended (the decoder's rejection is passed on)`,
    input: '0201061cff99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F00',
    expect: { ok: false, code: 'malformed' },
  },
]
