// Published test vectors for the Ruuvi decoder (ruuvi.ts): the "Test vectors"
// sections of the Ruuvi data format specifications (ruuvi/docs repository,
// rendered at docs.ruuvi.com). Inputs are the manufacturer data after the
// company id 0x0499. Expected values are the specification's, converted to
// this gateway's units: G -> m/s2 (x 9.80665), Pa -> hPa, V as V.
// "Not available" fields are absent metrics, never zeros.

import type { DecoderVector } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const m = (name: string, unit: string, value: number): Metric => ({ name, unit, value })
/** Standard gravity: the specification gives acceleration in G. */
const G = 9.80665

const DF5 =
  'https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2 (ruuvi/docs communication/bluetooth-advertisements/data-format-5-rawv2.md @ 271a6f7e1f31aaa8771842fe7be76a96d9cc5d88), Test vectors'
const DF6 =
  'https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-6 (ruuvi/docs communication/bluetooth-advertisements/data-format-6.md @ 0b4a7c2cdc42488e3de5a8d4f3c15df5c5badd11), Test vectors'

export const RUUVI_VECTORS: readonly DecoderVector[] = [
  {
    name: 'format 5, valid data',
    source: `${DF5}, case "valid data"`,
    input: '0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F',
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
      meta: { dataFormat: 5, movementCounter: 66, sequence: 205, mac: 'cb:b8:33:4c:88:4f' },
    },
  },
  {
    name: 'format 5, maximum values',
    source: `${DF5}, case "maximum values"`,
    input: '057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F',
    expect: {
      ok: true,
      metrics: [
        m('temperature_c', 'Cel', 163.835),
        m('humidity_pct', '%', 163.835),
        m('pressure_hpa', 'hPa', 1155.34),
        m('acceleration_x_ms2', 'm/s2', 32.767 * G),
        m('acceleration_y_ms2', 'm/s2', 32.767 * G),
        m('acceleration_z_ms2', 'm/s2', 32.767 * G),
        m('battery_v', 'V', 3.646),
        m('tx_power_dbm', 'dBm', 20),
      ],
      meta: { dataFormat: 5, movementCounter: 254, sequence: 65534, mac: 'cb:b8:33:4c:88:4f' },
    },
  },
  {
    name: 'format 5, minimum values',
    source: `${DF5}, case "minimum values" (the corrected vector, see ruuvi/ruuvi-sensor-protocols issue #30)`,
    input: '058001000000008001800180010000000000CBB8334C884F',
    expect: {
      ok: true,
      metrics: [
        m('temperature_c', 'Cel', -163.835),
        m('humidity_pct', '%', 0),
        m('pressure_hpa', 'hPa', 500),
        m('acceleration_x_ms2', 'm/s2', -32.767 * G),
        m('acceleration_y_ms2', 'm/s2', -32.767 * G),
        m('acceleration_z_ms2', 'm/s2', -32.767 * G),
        m('battery_v', 'V', 1.6),
        m('tx_power_dbm', 'dBm', -40),
      ],
      meta: { dataFormat: 5, movementCounter: 0, sequence: 0, mac: 'cb:b8:33:4c:88:4f' },
    },
  },
  {
    name: 'format 5, invalid values: every field not available',
    source: `${DF5}, case "Invalid values" (all NAN: no metric, no sequence, no MAC)`,
    input: '058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF',
    expect: { ok: true, metrics: [], meta: { dataFormat: 5 } },
  },
  {
    name: 'format 6, valid data',
    source: `${DF6}, case "valid data" (reserved byte XX sent as FF)`,
    input: '06170C5668C79E007000C90501D9FFCD004C884F',
    expect: {
      ok: true,
      metrics: [
        m('temperature_c', 'Cel', 29.5),
        m('humidity_pct', '%', 55.3),
        m('pressure_hpa', 'hPa', 1011.02),
        m('pm2_5_ugm3', 'ug/m3', 11.2),
        m('co2_ppm', 'ppm', 201),
        m('voc_index', '1', 10),
        m('nox_index', '1', 2),
        m('illuminance_lx', 'lx', 13026.67),
      ],
      meta: { dataFormat: 6, sequence: 205, calibrationInProgress: false, macSuffix: '4c:88:4f' },
    },
  },
  {
    name: 'format 6, maximum values',
    source: `${DF6}, case "maximum values" (reserved byte XX sent as FF; the raw data carries MAC bytes 4C 8F 4F, the table says 4C 88 4F)`,
    input: '067FFF9C40FFFE27109C40FAFAFEFFFF074C8F4F',
    expect: {
      ok: true,
      metrics: [
        m('temperature_c', 'Cel', 163.835),
        m('humidity_pct', '%', 100),
        m('pressure_hpa', 'hPa', 1155.34),
        m('pm2_5_ugm3', 'ug/m3', 1000),
        m('co2_ppm', 'ppm', 40000),
        m('voc_index', '1', 500),
        m('nox_index', '1', 500),
        m('illuminance_lx', 'lx', 65535),
      ],
      meta: { dataFormat: 6, sequence: 255, calibrationInProgress: true, macSuffix: '4c:8f:4f' },
    },
  },
  {
    name: 'format 6, minimum values',
    source: `${DF6}, case "minimum values" (reserved byte XX sent as FF)`,
    input: '0680010000000000000000000000FF00004C884F',
    expect: {
      ok: true,
      metrics: [
        m('temperature_c', 'Cel', -163.835),
        m('humidity_pct', '%', 0),
        m('pressure_hpa', 'hPa', 500),
        m('pm2_5_ugm3', 'ug/m3', 0),
        m('co2_ppm', 'ppm', 0),
        m('voc_index', '1', 0),
        m('nox_index', '1', 0),
        m('illuminance_lx', 'lx', 0),
      ],
      meta: { dataFormat: 6, sequence: 0, calibrationInProgress: false, macSuffix: '4c:88:4f' },
    },
  },
  {
    name: 'format 6, invalid values: every field not available',
    source: `${DF6}, case "Invalid values" (reserved byte XX sent as FF; sequence 255 has no not-available value)`,
    input: '068000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF',
    expect: { ok: true, metrics: [], meta: { dataFormat: 6, sequence: 255, calibrationInProgress: true } },
  },
  {
    name: 'format 3 (RAWv1) is not decoded',
    source:
      'https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-3-rawv1, case "valid data" (deprecated format, rejected as unsupported)',
    input: '03291A1ECE1EFC18F94202CA0B53',
    expect: { ok: false, code: 'unsupported' },
  },
  {
    name: 'format 5 cut short',
    source: `${DF5}, case "valid data" without its last MAC byte`,
    input: '0512FC5394C37C0004FFFC040CAC364200CDCBB8334C88',
    expect: { ok: false, code: 'truncated' },
  },
  {
    name: 'format 5 with a trailing byte',
    source: `${DF5}, case "valid data" with one byte appended (format 5 is exactly 24 bytes)`,
    input: '0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F00',
    expect: { ok: false, code: 'malformed' },
  },
]
