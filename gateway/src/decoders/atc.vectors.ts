// Published test vectors for the ATC1441 / pvvx decoder (atc.ts), taken from
// custom-components/ble_monitor custom_components/ble_monitor/test/test_atc_parser.py
// at commit 5822d949fffdc8810ddb187ba0c4e79f917cf988. That file holds whole
// HCI LE advertising reports; the input here is the 0x181A service data cut
// out of them (after the AD header "len 16 1A18"), and the MAC is the
// report's advertiser address. Battery voltage for the encrypted format is an
// estimate in that parser and is not reported here.

import type { DecoderVector } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const m = (name: string, unit: string, value: number): Metric => ({ name, unit, value })
const SRC = 'custom-components/ble_monitor custom_components/ble_monitor/test/test_atc_parser.py @ 5822d949fffdc8810ddb187ba0c4e79f917cf988'

export const ATC_VECTORS: readonly DecoderVector[] = [
  {
    name: 'atc1441 format',
    source: `${SRC}, test_atc_atc1441`,
    input: 'a4c1380283f400a22f5f0bf819',
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 16.2), m('humidity_pct', '%', 47), m('battery_pct', '%', 95), m('battery_v', 'V', 3.064)],
      meta: { format: 'atc1441', counter: 25, mac: 'a4:c1:38:02:83:f4' },
    },
  },
  {
    name: 'atc1441 format (extended advertisement)',
    source: `${SRC}, test_atc_atc1441_ext`,
    input: 'a4c138bc7c4e0102284f0b6720',
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 25.8), m('humidity_pct', '%', 40), m('battery_pct', '%', 79), m('battery_v', 'V', 2.919)],
      meta: { format: 'atc1441', counter: 32, mac: 'a4:c1:38:bc:7c:4e' },
    },
  },
  {
    name: 'pvvx custom format',
    source: `${SRC}, test_atc_custom`,
    input: 'f4830238c1a4a9066911b60b58f70d',
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 17.05), m('humidity_pct', '%', 44.57), m('battery_v', 'V', 2.998), m('battery_pct', '%', 88)],
      meta: { format: 'pvvx', counter: 247, mac: 'a4:c1:38:02:83:f4' },
    },
  },
  {
    name: 'pvvx custom format (firmware 2.9 and later)',
    source: `${SRC}, test_atc_custom_v2_9`,
    input: 'b2188d38c1a42b089011f70a43200f',
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 20.91), m('humidity_pct', '%', 44.96), m('battery_v', 'V', 2.807), m('battery_pct', '%', 67)],
      meta: { format: 'pvvx', counter: 32, mac: 'a4:c1:38:8d:18:b2' },
    },
  },
  {
    name: 'pvvx custom format (extended advertisement)',
    source: `${SRC}, test_atc_custom_ext`,
    input: '8b376338c1a4ce0913107f0b521204',
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 25.1), m('humidity_pct', '%', 41.15), m('battery_v', 'V', 2.943), m('battery_pct', '%', 82)],
      meta: { format: 'pvvx', counter: 18, mac: 'a4:c1:38:63:37:8b' },
    },
  },
  {
    name: 'pvvx encrypted custom format',
    source: `${SRC}, test_atc_custom_encrypted`,
    input: '11d603fbfa7b6dfb1e26fd',
    frame: { mac: 'A4:C1:38:8D:18:B2' },
    options: { bindkey: 'b9ea895fac7eea6d30532432a516f3a3' },
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 23.45), m('humidity_pct', '%', 41.73), m('battery_pct', '%', 61)],
      meta: { format: 'pvvx-encrypted', encrypted: true, counter: 17, mac: 'a4:c1:38:8d:18:b2' },
    },
  },
  {
    name: 'pvvx encrypted custom format, wrong key',
    source: `${SRC}, test_atc_custom_encrypted with the key's last byte changed`,
    input: '11d603fbfa7b6dfb1e26fd',
    frame: { mac: 'A4:C1:38:8D:18:B2' },
    options: { bindkey: 'b9ea895fac7eea6d30532432a516f3a4' },
    expect: { ok: false, code: 'bad-mic' },
  },
  {
    name: 'pvvx encrypted custom format, no key',
    source: `${SRC}, test_atc_custom_encrypted without its key`,
    input: '11d603fbfa7b6dfb1e26fd',
    frame: { mac: 'A4:C1:38:8D:18:B2' },
    expect: { ok: false, code: 'missing-key' },
  },
  {
    name: 'atc1441 format cut short',
    source: `${SRC}, test_atc_atc1441 without the frame counter`,
    input: 'a4c1380283f400a22f5f0bf8',
    expect: { ok: false, code: 'truncated' },
  },
  {
    name: 'pvvx custom format cut to 13 bytes (the atc1441 length)',
    source: `${SRC}, test_atc_custom without its last two bytes; the reversed MAC does not match the advertiser`,
    input: 'f4830238c1a4a9066911b60b58',
    frame: { mac: 'A4:C1:38:02:83:F4' },
    expect: { ok: false, code: 'malformed' },
  },
  {
    name: 'pvvx custom format with a trailing byte',
    source: `${SRC}, test_atc_custom with one byte appended (16 bytes: no such layout)`,
    input: 'f4830238c1a4a9066911b60b58f70d00',
    frame: { mac: 'A4:C1:38:02:83:F4' },
    expect: { ok: false, code: 'malformed' },
  },
  {
    name: 'atc1441 format heard from another address',
    source: `${SRC}, test_atc_atc1441 with another advertiser address`,
    input: 'a4c1380283f400a22f5f0bf819',
    frame: { mac: 'A4:C1:38:02:83:F5' },
    expect: { ok: false, code: 'malformed' },
  },
]
