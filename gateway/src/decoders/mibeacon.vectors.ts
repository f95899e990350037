// Published test vectors for the MiBeacon decoder (mibeacon.ts). Sources:
// - XB: Bluetooth-Devices/xiaomi-ble tests/test_parser.py (service data after
//   UUID 0xFE95, as in the test; the stored version is the repository's
//   current one, test names cited).
// - BM: custom-components/ble_monitor custom_components/ble_monitor/test/test_xiaomi_parser.py;
//   those tests hold whole HCI reports, the input here is the service data
//   cut out after "len 16 95FE", the MAC is the report's advertiser address.
// Values the references estimate (battery voltage from the battery %) are not
// reported by this decoder.

import type { DecoderVector } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'

const m = (name: string, unit: string, value: number): Metric => ({ name, unit, value })
const XB = 'Bluetooth-Devices/xiaomi-ble tests/test_parser.py'
const BM = 'custom-components/ble_monitor custom_components/ble_monitor/test/test_xiaomi_parser.py'

export const MIBEACON_VECTORS: readonly DecoderVector[] = [
  {
    name: 'LYWSDCGQ temperature and humidity 0x100D',
    source: `${XB}, test_Xiaomi_LYWSDCGQ (also ${BM})`,
    input: '5020aa01da219335342d580d1004fe004802',
    frame: { mac: '58:2D:34:35:93:21' },
    expect: {
      ok: true,
      metrics: [m('temperature_c', 'Cel', 25.4), m('humidity_pct', '%', 58.4)],
      meta: { version: 2, productId: 0x01aa, frameCounter: 218, counter: 218, mac: '58:2d:34:35:93:21', encrypted: false },
    },
  },
  {
    name: 'LYWSDCGQ temperature, humidity and battery 0x100A',
    source: `${XB}, test_Xiaomi_LYWSDCGQ (frame with battery object)`,
    input: '5020aa01a3bf2e3b342d580d1004b40095020a10013b',
    frame: { mac: '58:2D:34:3B:2E:BF' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 18.0), m('humidity_pct', '%', 66.1), m('battery_pct', '%', 59)], meta: { frameCounter: 163 } },
  },
  {
    name: 'LYWSD03MMC unencrypted MiBeacon v3',
    source: `${XB}, test_Xiaomi_LYWSD03MMC (also ${BM})`,
    input: '50305b05034c94b438c1a40d10041001ea01',
    frame: { mac: 'A4:C1:38:B4:94:4C' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 27.2), m('humidity_pct', '%', 49.0)], meta: { version: 3, frameCounter: 3 } },
  },
  {
    name: 'HHCCJCY01 temperature 0x1004, with capability byte',
    source: `${BM}, test_Xiaomi_HHCCJCY01`,
    input: '7120980012f34f6b8d7cc40d041002c400',
    frame: { mac: 'C4:7C:8D:6B:4F:F3' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 19.6)], meta: { frameCounter: 18, capability: 13 } },
  },
  {
    name: 'GCLS002 temperature',
    source: `${XB}, test_Xiaomi_GCLS002 (also ${BM})`,
    input: '7120bc03cd3e596d8d7cc40d0410023c01',
    frame: { mac: 'C4:7C:8D:6D:59:3E' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 31.6)], meta: { frameCounter: 205 } },
  },
  {
    name: 'HHCCJCY01 illuminance 0x1007',
    source: `${XB}, test_Xiaomi_HHCCJCY01_all_values (first advertisement)`,
    input: '71209800667a3e6a8d7cc40d071003000000',
    frame: { mac: 'C4:7C:8D:6A:3E:7A' },
    expect: { ok: true, metrics: [m('illuminance_lx', 'lx', 0)] },
  },
  {
    name: 'HHCCJCY01 conductivity 0x1009',
    source: `${XB}, test_Xiaomi_HHCCJCY01_all_values (second advertisement)`,
    input: '71209800687a3e6a8d7cc40d0910025702',
    frame: { mac: 'C4:7C:8D:6A:3E:7A' },
    expect: { ok: true, metrics: [m('conductivity_uscm', 'uS/cm', 599)] },
  },
  {
    name: 'HHCCJCY01 moisture 0x1008',
    source: `${XB}, test_Xiaomi_HHCCJCY01_all_values (third advertisement)`,
    input: '71209800477a3e6a8d7cc40d08100140',
    frame: { mac: 'C4:7C:8D:6A:3E:7A' },
    expect: { ok: true, metrics: [m('moisture_pct', '%', 64)] },
  },
  {
    name: 'HHCCJCY01 temperature',
    source: `${XB}, test_Xiaomi_HHCCJCY01_all_values (fourth advertisement)`,
    input: '71209800697a3e6a8d7cc40d041002f400',
    frame: { mac: 'C4:7C:8D:6A:3E:7A' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 24.4)] },
  },
  {
    name: 'JQJCY01YM formaldehyde 0x1010 (1.25 mg/m3)',
    source: `${XB}, test_Xiaomi_JQJCY01YM1`,
    input: '5040df0201df02008d7cc41010027d00',
    frame: { mac: 'C4:7C:8D:00:02:DF' },
    expect: { ok: true, metrics: [m('formaldehyde_ugm3', 'ug/m3', 1250)], meta: { version: 4 } },
  },
  {
    name: 'MMC-W505 body temperature 0x000A',
    source: `${BM}, test_Xiaomi_MMC_W505`,
    input: '702291030fdbab531824d0090a0002750d',
    frame: { mac: 'D0:24:18:53:AB:DB' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 34.45)], meta: { frameCounter: 15 } },
  },
  {
    name: 'button object 0x1001 is not decoded',
    source: `${BM}, test_Xiaomi_XMMF01JQD`,
    input: '5030e1048e54d3e63053e2011003010000',
    frame: { mac: 'E2:53:30:E6:D3:54' },
    expect: { ok: false, code: 'unsupported' },
  },
  {
    name: 'motion object 0x0003 is not decoded',
    source: `${BM}, test_Xiaomi_MUE4094RT`,
    input: '4030dd032403000101',
    frame: { mac: 'DE:70:E8:B2:39:0C' },
    expect: { ok: false, code: 'unsupported' },
  },
  {
    name: 'CGDK2 encrypted v5 temperature',
    source: `${XB}, test_Xiaomi_CGDK2 (also ${BM})`,
    input: '58586f0607892012342d585f176dd54f0200002fa453fa',
    frame: { mac: '58:2D:34:12:20:89' },
    options: { bindkey: 'a3bfe9853dd85a620debe3620caaa351' },
    expect: { ok: true, metrics: [m('temperature_c', 'Cel', 22.6)], meta: { version: 5, encrypted: true, frameCounter: 7, counter: 0x000002 * 256 + 7 } },
  },
  {
    name: 'LYWSD03MMC encrypted v5 humidity',
    source: `${XB}, test_Xiaomi_LYWSD03MMC_encrypted (also ${BM})`,
    input: '58585b0550f4830238c1a495ef58763c26000097e2abb5',
    frame: { mac: 'A4:C1:38:02:83:F4' },
    options: { bindkey: 'e9ea895fac7cca6d30532432a516f3a8' },
    expect: { ok: true, metrics: [m('humidity_pct', '%', 46.7)], meta: { encrypted: true, frameCounter: 80 } },
  },
  {
    name: 'CGG1 encrypted v5 humidity',
    source: `${XB}, test_Xiaomi_CGG1 (also ${BM})`,
    input: '5858480b685f12342d585a0b1841e2aa000e00a4964fb5',
    frame: { mac: '5A:58:2D:34:12:5F' },
    options: { bindkey: '814aac74c4f17b6c1581e1ab87816b99' },
    expect: { ok: true, metrics: [m('humidity_pct', '%', 59.6)], meta: { frameCounter: 104 } },
  },
  {
    name: 'XMWSDJ04MMC encrypted v5 without MAC in the frame, humidity float 0x4C08',
    source: `${BM}, test_Xiaomi_XMWSDJ04MMC`,
    input: '48590312a41b776e7c96add7000000f2bf545b',
    frame: { mac: '2C:11:65:25:70:04' },
    options: { bindkey: 'b2cf9a553d53571b5657defd582d676e' },
    expect: { ok: true, metrics: [m('humidity_pct', '%', 45.0)], meta: { frameCounter: 164, mac: '2c:11:65:25:70:04' } },
  },
  {
    name: 'LYWSD02MMC encrypted v5 humidity 0x4C02',
    source: `${XB}, test_Xiaomi_LYWSD02MMC (also ${BM})`,
    input: '5858e4162c84535638c1a42b6ef2e91200006c884d9e',
    frame: { mac: 'A4:C1:38:56:53:84' },
    options: { bindkey: 'a115210eed7a88e50ad52662e732a9fb' },
    expect: { ok: true, metrics: [m('humidity_pct', '%', 58)], meta: { frameCounter: 44 } },
  },
  {
    name: 'JTYJGD03MI encrypted smoke 0x1015',
    source: `${XB}, test_Xiaomi_JTYJGD03MI_smoke (also ${BM})`,
    input: '5859970966bc9ce344ef5401081205000000715ebe90',
    frame: { mac: '54:EF:44:E3:9C:BC' },
    options: { bindkey: '5b51a7c91cde6707c9ef18dfda143a58' },
    expect: { ok: true, metrics: [m('smoke_detected', '1', 1)], meta: { frameCounter: 102 } },
  },
  {
    name: 'SJWS01LM encrypted moisture detected 0x1014',
    source: `${BM}, test_Xiaomi_SJWS01LM`,
    input: '5859630808bc27e044ef54f58fe704000000fc69d15c',
    frame: { mac: '54:EF:44:E0:27:BC' },
    options: { bindkey: '255e6cabb39b2eddd0de992b9fee2bf2' },
    expect: { ok: true, metrics: [m('moisture_detected', '1', 1)] },
  },
  {
    name: 'RS1BB encrypted moisture clear 0x4806',
    source: `${BM}, test_Xiaomi_RS1BB`,
    input: '58590F3F4A674CB938C1A4D6E57B83040000D01E0B4B',
    frame: { mac: 'A4:C1:38:B9:4C:67' },
    options: { bindkey: '33ede53321bc73c790a8daae4581f3d5' },
    expect: { ok: true, metrics: [m('moisture_detected', '1', 0)], meta: { frameCounter: 74 } },
  },
  {
    name: 'HS1BB encrypted battery 0x4C03',
    source: `${BM}, test_linptech_HS1BB_battery`,
    input: '5859eb2a9ee98e0538c1a4d07ad3e338000033635d10',
    frame: { mac: 'A4:C1:38:05:8E:E9' },
    options: { bindkey: '7475a4a77584401780ffc3ee62dd353c' },
    expect: { ok: true, metrics: [m('battery_pct', '%', 100)], meta: { frameCounter: 158 } },
  },
  {
    name: 'MJZNZ018H encrypted battery 0x5403',
    source: `${BM}, test_MJZNZ018H_battery`,
    input: '5859db200a7b37d6d1b5cce79fcf95020000a0e4f773',
    frame: { mac: 'CC:B5:D1:D6:37:7B' },
    options: { bindkey: '13f072b8c8469f54ac2c333ee746d771' },
    expect: { ok: true, metrics: [m('battery_pct', '%', 76)], meta: { frameCounter: 10 } },
  },
  {
    name: 'RTCGQ02LM encrypted with a wrong key',
    source: `${BM}, test_Xiaomi_RTCGQ02LM ("with wrong encryption key": data False)`,
    input: '58598d0a170fc4e044ef547cc27a5c03a1000000790df258',
    frame: { mac: '54:EF:44:E0:C4:0F' },
    options: { bindkey: 'FFD8CE9C08AE7533A79BDAF0BB755E96' },
    expect: { ok: false, code: 'bad-mic' },
  },
  {
    name: 'encrypted v5 without a key',
    source: `${XB}, test_Xiaomi_CGDK2 frame without its bind key`,
    input: '58586f0607892012342d585f176dd54f0200002fa453fa',
    frame: { mac: '58:2D:34:12:20:89' },
    expect: { ok: false, code: 'missing-key' },
  },
  {
    name: 'legacy v3 encryption (no MIC) is not supported',
    source: `${BM}, test_Xiaomi_YLKG07YL_press (MiBeacon V3 encrypted)`,
    input: '5830b603d28b98c54124f8c3491476757e00000099',
    frame: { mac: 'F8:24:41:C5:98:8B' },
    options: { bindkey: 'b853075158487ca39a5b5ea9' },
    expect: { ok: false, code: 'unsupported' },
  },
  {
    name: 'MAC in the frame differs from the advertiser',
    source: `${XB}, test_Xiaomi_LYWSDCGQ frame heard from another address (the reference rejects it too)`,
    input: '5020aa01da219335342d580d1004fe004802',
    frame: { mac: '58:2D:34:35:93:22' },
    expect: { ok: false, code: 'malformed' },
  },
  {
    name: 'LYWSDCGQ frame cut inside its object',
    source: `${XB}, test_Xiaomi_LYWSDCGQ without the last byte (object 0x100D declares 4 bytes, 3 remain)`,
    input: '5020aa01da219335342d580d1004fe0048',
    frame: { mac: '58:2D:34:35:93:21' },
    expect: { ok: false, code: 'truncated' },
  },
  {
    name: 'LYWSDCGQ object with a wrong length',
    source: `${XB}, test_Xiaomi_LYWSDCGQ with the 0x100D length byte changed from 4 to 3`,
    input: '5020aa01da219335342d580d1003fe0048',
    frame: { mac: '58:2D:34:35:93:21' },
    expect: { ok: false, code: 'malformed' },
  },
]
