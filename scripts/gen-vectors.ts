// Regenerates the vector files shared by the gateway tests and the
// firmware's host tests:
//   test/vectors/canonical.json        canonical reading encoding (docs/canonical-encoding.md)
//   test/vectors/device-protocol.json  device protocol versions 1 and 2 (docs/device-protocol.md)
//
//   node scripts/gen-vectors.ts           write the files
//   node scripts/gen-vectors.ts --check   exit 1 when a committed file differs
//
// The inputs are the readings and bodies below; every expected value is
// computed by gateway/src/core/canonical.ts and core/device-protocol.ts. The
// tests check them against independent oracles: leaf hashes against
// @openzeppelin/merkle-tree's StandardMerkleTree, version-1 digests and
// signers against viem's EIP-191, version-2 digests and signers against
// @noble/hashes' SHA-256 and @noble/curves' secp256k1 recovery.

import { readFileSync, writeFileSync } from 'node:fs'
import { secp256k1 } from '@noble/curves/secp256k1'
import { sha256 } from '@noble/hashes/sha2'
import { fileURLToPath } from 'node:url'
import { signDigest } from '../gateway/src/core/batch.ts'
import {
  CANONICAL_MAGIC,
  CANONICAL_VERSION,
  encodeReading,
  leafHash,
  readingHash,
  readingToJson,
  type ReadingJson,
} from '../gateway/src/core/canonical.ts'
import {
  encodeSignedBinary,
  encodeSignedBody,
  encodeSignedJson,
  signBody,
  signedBodyDigest,
  type SignedBody,
  type SignedMessage,
} from '../gateway/src/core/device-protocol.ts'
import { bytesToHex, hexToBytes, publicKeyToAddress } from '../gateway/src/core/hex.ts'
import { hashPersonalMessage } from '../gateway/src/core/proof.ts'
import type { Reading, ReceiveTime } from '../gateway/src/core/types.ts'

export const VECTORS_PATH = fileURLToPath(new URL('../test/vectors/canonical.json', import.meta.url))
export const DEVICE_VECTORS_PATH = fileURLToPath(new URL('../test/vectors/device-protocol.json', import.meta.url))

/**
 * Foundry anvil's default account #0 — a published, well-known test key
 * (https://book.getfoundry.sh/reference/anvil/ "Default accounts"); never
 * use it for anything of value.
 */
const DEVICE_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80'
const DEVICE_ADDRESS = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'

const BOOT = '3f1c2a9be05d4e7f8a6b0c1d2e3f4a5b'
const rt = (clock: ReceiveTime['clock'], monoNs = 12_345_678_901n, wallMs = 1_717_171_717_171): ReceiveTime => ({ bootId: BOOT, monoNs, wallMs, clock })

function deviceSigned(raw: Uint8Array, counter: bigint): Reading['auth'] {
  const signature = signDigest(hashPersonalMessage(raw), hexToBytes(DEVICE_KEY, 32))
  return { kind: 'device-signature', address: DEVICE_ADDRESS, counter, signature }
}

// BTHome v2 (unencrypted form of the example in https://bthome.io/format/):
// flags 0x40, temperature 0x02 sint16 ×0.01, humidity 0x03 uint16 ×0.01.
const BTHOME_RAW = hexToBytes('0x4002ca0903bf13')
// A LoRaWAN FRMPayload (Cayenne LPP: channel 1 temperature 0x0110 ×0.1 = 27.2 °C,
// channel 2 humidity 0x62 ×0.5 = 49 %; https://docs.mydevices.com/docs/lorawan/cayenne-lpp).
const LPP_RAW = hexToBytes('0x03670110056762')
const SIGNED_RAW = new TextEncoder().encode('{"t":21.37,"h":40.5,"ctr":7}')
const LONG_RAW = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff)
// Encrypted BLE service data carried as opaque bytes: MiBeacon v5 from
// Bluetooth-Devices/xiaomi-ble tests/test_parser.py test_Xiaomi_CGDK2 (bind key
// a3bfe9853dd85a620debe3620caaa351), pvvx encrypted custom format from
// custom-components/ble_monitor custom_components/ble_monitor/test/test_atc_parser.py
// test_atc_custom_encrypted (bind key b9ea895fac7eea6d30532432a516f3a3); both
// decode to the metrics below (gateway/src/decoders/{mibeacon,atc}.vectors.ts).
const MIBEACON_CGDK2_RAW = hexToBytes('0x58586f0607892012342d585f176dd54f0200002fa453fa')
const PVVX_ENCRYPTED_RAW = hexToBytes('0x11d603fbfa7b6dfb1e26fd')

interface Input {
  readonly name: string
  readonly description: string
  readonly seq: bigint
  readonly reading: Reading
}

export const INPUTS: readonly Input[] = [
  {
    name: 'minimal-sim-none',
    description: 'sim source, unsynchronized clock, one metric, no optional fields, auth none',
    seq: 1n,
    reading: { deviceId: 'sim-th-01', source: 'sim', received: rt('unsynchronized', 1_000_000n, 1000), metrics: [{ name: 'temperature_c', unit: 'Cel', value: 21.5 }], auth: { kind: 'none' } },
  },
  {
    name: 'http-token-unsorted-metrics',
    description: 'http source, NTP clock, device time, three metrics given out of order (the encoding sorts them by name)',
    seq: 2n,
    reading: {
      deviceId: 'esp32-garden.01',
      source: 'http',
      received: rt('ntp'),
      deviceTimeMs: 1_717_171_716_500,
      metrics: [
        { name: 'temperature_c', unit: 'Cel', value: 18.25 },
        { name: 'humidity_pct', unit: '%', value: 63.1 },
        { name: 'pressure_hpa', unit: 'hPa', value: 1013.4 },
      ],
      auth: { kind: 'http-token', tokenId: 'tok_garden' },
    },
  },
  {
    name: 'mqtt-credentials-unicode',
    description: 'mqtt source, GPS clock, non-ASCII UTF-8 in the username and radio strings (2-, 3- and 4-byte sequences; a leading U+FEFF is data and must be kept)',
    seq: 3n,
    reading: {
      deviceId: 'tasmota/kitchen-plug',
      source: 'mqtt',
      received: rt('gps'),
      metrics: [
        { name: 'power_w', unit: 'W', value: 1234.5 },
        { name: 'voltage_v', unit: 'V', value: 229.8 },
      ],
      radio: { topic: 'tele/küche/SENSOR', note: '温度計 🌡', bom: '\uFEFFkept' },
      auth: { kind: 'mqtt-credentials', username: 'zoë-温度-🌡' },
    },
  },
  {
    name: 'lorawan-mic-radio-raw',
    description: 'lorawan source, RTC clock, device time, radio metadata of both types (keys sorted by bytes), raw FRMPayload, LoRaWAN MIC auth',
    seq: 4n,
    reading: {
      deviceId: 'lorawan:70b3d57ed0001234',
      source: 'lorawan',
      received: rt('rtc'),
      deviceTimeMs: 1_717_171_700_000,
      metrics: [
        { name: 'temperature_c', unit: 'Cel', value: 27.2 },
        { name: 'humidity_pct', unit: '%', value: 49 },
      ],
      radio: { rssi: -112, snr: -7.25, frequency: 868_100_000, gatewayEui: '0016c001ff10a235', dataRate: 'SF7BW125', channel: 0 },
      raw: LPP_RAW,
      auth: { kind: 'lorawan-mic', devAddr: 0x260b1234, fcnt: 4660 },
    },
  },
  {
    name: 'bthome-repeated-metrics',
    description: 'ble source, repeated metric kinds (temperature_c, temperature_c_2), raw advertisement, BTHome encryption auth',
    seq: 5n,
    reading: {
      deviceId: 'ble:a4c138000001',
      source: 'ble',
      received: rt('ntp'),
      metrics: [
        { name: 'temperature_c_2', unit: 'Cel', value: 19.75 },
        { name: 'temperature_c', unit: 'Cel', value: 25.06 },
        { name: 'humidity_pct', unit: '%', value: 50.55 },
        { name: 'battery_pct', unit: '%', value: 93 },
      ],
      radio: { rssi: -67, mac: 'a4:c1:38:00:00:01' },
      raw: BTHOME_RAW,
      auth: { kind: 'bthome-encryption', counter: 0x11223344 },
    },
  },
  {
    name: 'device-signature',
    description: 'mqtt source, device-signature auth: the signature is EIP-191 personal_sign over raw by Foundry anvil test account #0',
    seq: 6n,
    reading: {
      deviceId: 'esp32-signer-07',
      source: 'mqtt',
      received: rt('ntp'),
      metrics: [
        { name: 'temperature_c', unit: 'Cel', value: 21.37 },
        { name: 'humidity_pct', unit: '%', value: 40.5 },
      ],
      raw: SIGNED_RAW,
      auth: deviceSigned(SIGNED_RAW, 7n),
    },
  },
  {
    name: 'radio-witness-no-metrics',
    description: 'ble source, no metrics at all (a radio witness): only radio metadata',
    seq: 7n,
    reading: { deviceId: 'ble:e4:5f:01:aa:bb:cc', source: 'ble', received: rt('unsynchronized'), metrics: [], radio: { rssi: -90 }, auth: { kind: 'none' } },
  },
  {
    name: 'gpio-state',
    description: 'gpio source, a custom metric with an explicit registry unit and a state',
    seq: 8n,
    reading: {
      deviceId: 'gpio/17',
      source: 'gpio',
      received: rt('rtc'),
      metrics: [
        { name: 'state', unit: '1', value: 1 },
        { name: 'leaf_wetness', unit: '%', value: 12.5 },
      ],
      auth: { kind: 'none' },
    },
  },
  {
    name: 'nodered-empty-radio-empty-raw',
    description: 'nodered source; radio present but empty and raw present but empty (both distinct from absent)',
    seq: 9n,
    reading: {
      deviceId: 'flow@site/room-1.a_b:c',
      source: 'nodered',
      received: rt('ntp'),
      metrics: [{ name: 'co2_ppm', unit: 'ppm', value: 415 }],
      radio: {},
      raw: new Uint8Array(0),
      auth: { kind: 'http-token', tokenId: 'node-red' },
    },
  },
  {
    name: 'extreme-numbers',
    description: 'limits: seq, monoNs and counters at 2^64-1 / 2^32-1, wallMs at 2^53-1, device time 0, float64 extremes (max, subnormal min, negative, -0 written as +0)',
    seq: 0xffff_ffff_ffff_ffffn,
    reading: {
      deviceId: 'x',
      source: 'lorawan',
      received: rt('unsynchronized', 0xffff_ffff_ffff_ffffn, Number.MAX_SAFE_INTEGER),
      deviceTimeMs: 0,
      metrics: [
        { name: 'a_max', unit: '1', value: Number.MAX_VALUE },
        { name: 'b_min_subnormal', unit: '1', value: Number.MIN_VALUE },
        { name: 'c_negative', unit: '1', value: -1.5e-300 },
        { name: 'd_zero', unit: '1', value: -0 },
        { name: 'e_two_pow_53', unit: 'count', value: 2 ** 53 },
      ],
      radio: { rssi: -0, snr: -1e308 },
      auth: { kind: 'lorawan-mic', devAddr: 0xffff_ffff, fcnt: 0xffff_ffff },
    },
  },
  {
    name: 'max-device-id-seq-zero',
    description: 'a 128-byte device id using every allowed punctuation character; seq 0',
    seq: 0n,
    reading: {
      deviceId: ('dev._:@/-' + 'A1z9'.repeat(40)).slice(0, 128),
      source: 'sim',
      received: rt('gps', 0n, 0),
      metrics: [{ name: 'battery_v', unit: 'V', value: 3.3 }],
      auth: { kind: 'bthome-encryption', counter: 0 },
    },
  },
  {
    name: 'long-raw-multiblock-hash',
    description: 'a 300-byte raw payload: the canonical form exceeds one keccak block (136 bytes)',
    seq: 1_000_000n,
    reading: {
      deviceId: 'sim-raw-300',
      source: 'sim',
      received: rt('ntp'),
      metrics: [{ name: 'count', unit: 'count', value: 300 }],
      raw: LONG_RAW,
      auth: { kind: 'mqtt-credentials', username: 'u' },
    },
  },
  {
    name: 'ble-aes-ccm-mibeacon',
    description: 'ble source, encrypted MiBeacon v5 (published CGDK2 frame) decrypted with its bind key: auth ble-aes-ccm, scheme mibeacon, 32-bit counter',
    seq: 77n,
    reading: {
      deviceId: 'ble:582d34122089',
      source: 'ble',
      received: rt('ntp'),
      metrics: [{ name: 'temperature_c', unit: 'Cel', value: 22.6 }],
      radio: { adapter: 'hci0', format: 'mibeacon', mac: '58:2d:34:12:20:89', rssi: -71 },
      raw: MIBEACON_CGDK2_RAW,
      auth: { kind: 'ble-aes-ccm', scheme: 'mibeacon', counter: 0x0207 },
    },
  },
  {
    name: 'ble-aes-ccm-pvvx',
    description: 'ble source, pvvx encrypted custom format (published frame) decrypted with its bind key: auth ble-aes-ccm, scheme pvvx, 8-bit counter',
    seq: 78n,
    reading: {
      deviceId: 'ble:a4c1388d18b2',
      source: 'ble',
      received: rt('rtc'),
      metrics: [
        { name: 'temperature_c', unit: 'Cel', value: 23.45 },
        { name: 'humidity_pct', unit: '%', value: 41.73 },
        { name: 'battery_pct', unit: '%', value: 61 },
      ],
      radio: { adapter: 'hci0', format: 'atc', mac: 'a4:c1:38:8d:18:b2' },
      raw: PVVX_ENCRYPTED_RAW,
      auth: { kind: 'ble-aes-ccm', scheme: 'pvvx', counter: 17 },
    },
  },
]

// --- Invalid encodings: each must be rejected by a decoder ------------------

class Bytes {
  readonly parts: number[] = []
  u8(...v: number[]): this {
    this.parts.push(...v)
    return this
  }
  u32(v: number): this {
    return this.u8((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff)
  }
  u64(v: bigint): this {
    for (let i = 7; i >= 0; i--) this.parts.push(Number((v >> BigInt(8 * i)) & 0xffn))
    return this
  }
  f64(v: number): this {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setFloat64(0, v)
    return this.u8(...b)
  }
  raw(b: Uint8Array): this {
    return this.u8(...b)
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s)
    return this.u8(b.length, ...b)
  }
  hex(): string {
    return bytesToHex(Uint8Array.from(this.parts))
  }
}

/** magic, device id, source, receive time (ntp), no device time. */
function head(opts: { magic?: number; deviceId?: Uint8Array; source?: number; clock?: number; wallMs?: bigint; deviceTimePresence?: number } = {}): Bytes {
  const b = new Bytes().u8(opts.magic ?? CANONICAL_MAGIC)
  const id = opts.deviceId ?? new TextEncoder().encode('dev-1')
  b.u8(id.length).raw(id)
  b.u8(opts.source ?? 0)
  b.raw(hexToBytes('0x' + BOOT, 16)).u64(5n).u64(opts.wallMs ?? 1000n).u8(opts.clock ?? 1)
  b.u8(opts.deviceTimePresence ?? 0)
  return b
}
const temp = (b: Bytes, name = 'temperature_c', unit = 'Cel', value = 20): Bytes => b.str(name).str(unit).f64(value)
/** One metric, no radio, no raw, auth none. */
const valid = (): Bytes => temp(head().u8(1)).u8(0, 0, 0)

interface InvalidVector {
  readonly name: string
  readonly description: string
  readonly canonicalHex: string
  /** The field the rejection names (the decoder's message starts with it). */
  readonly field: string
}

export function invalidVectors(): InvalidVector[] {
  const f64Bits = (hi: number, lo: number): Uint8Array => {
    const b = new Uint8Array(8)
    const v = new DataView(b.buffer)
    v.setUint32(0, hi)
    v.setUint32(4, lo)
    return b
  }
  const list: InvalidVector[] = [
    { name: 'trailing-byte', description: 'a valid encoding followed by one extra byte', canonicalHex: valid().u8(0).hex(), field: 'canonical' },
    { name: 'truncated', description: 'a valid encoding without its last byte', canonicalHex: valid().hex().slice(0, -2), field: 'auth.kind' },
    { name: 'empty', description: 'no bytes at all', canonicalHex: '0x', field: 'magic' },
    { name: 'unknown-version', description: 'magic byte 0xF2 (version 2 is not defined)', canonicalHex: temp(head({ magic: 0xf2 }).u8(1)).u8(0, 0, 0).hex(), field: 'magic' },
    { name: 'empty-device-id', description: 'device id of length 0', canonicalHex: temp(head({ deviceId: new Uint8Array(0) }).u8(1)).u8(0, 0, 0).hex(), field: 'deviceId' },
    {
      name: 'unicode-device-id',
      description: 'a device id in well-formed UTF-8 outside [A-Za-z0-9._:@/-] ("温度-01")',
      canonicalHex: temp(head({ deviceId: new TextEncoder().encode('温度-01') }).u8(1)).u8(0, 0, 0).hex(),
      field: 'deviceId',
    },
    { name: 'unknown-source', description: 'source index 7 (one past the last source kind)', canonicalHex: temp(head({ source: 7 }).u8(1)).u8(0, 0, 0).hex(), field: 'source' },
    { name: 'unknown-clock', description: 'clock state index 4', canonicalHex: temp(head({ clock: 4 }).u8(1)).u8(0, 0, 0).hex(), field: 'received.clock' },
    { name: 'wall-ms-over-2^53', description: 'wallMs = 2^53 (not exactly representable as a JSON/JS number)', canonicalHex: temp(head({ wallMs: 1n << 53n }).u8(1)).u8(0, 0, 0).hex(), field: 'received.wallMs' },
    { name: 'presence-byte-2', description: 'deviceTime presence byte 0x02', canonicalHex: temp(head({ deviceTimePresence: 2 }).u8(1)).u8(0, 0, 0).hex(), field: 'deviceTimeMs' },
    {
      name: 'metrics-unsorted',
      description: 'temperature_c before humidity_pct',
      canonicalHex: temp(temp(head().u8(2)), 'humidity_pct', '%', 50).u8(0, 0, 0).hex(),
      field: 'metrics[1].name',
    },
    { name: 'metrics-duplicate', description: 'temperature_c twice', canonicalHex: temp(temp(head().u8(2))).u8(0, 0, 0).hex(), field: 'metrics[1].name' },
    { name: 'metric-negative-zero', description: 'value -0 (must be written as +0)', canonicalHex: head().u8(1).str('temperature_c').str('Cel').raw(f64Bits(0x8000_0000, 0)).u8(0, 0, 0).hex(), field: 'metrics[0].value' },
    { name: 'metric-nan', description: 'value NaN', canonicalHex: head().u8(1).str('temperature_c').str('Cel').raw(f64Bits(0x7ff8_0000, 0)).u8(0, 0, 0).hex(), field: 'metrics[0].value' },
    { name: 'metric-infinity', description: 'value +Infinity', canonicalHex: head().u8(1).str('temperature_c').str('Cel').raw(f64Bits(0x7ff0_0000, 0)).u8(0, 0, 0).hex(), field: 'metrics[0].value' },
    { name: 'metric-wrong-unit', description: 'temperature_c in % (the registry fixes Cel)', canonicalHex: temp(head().u8(1), 'temperature_c', '%').u8(0, 0, 0).hex(), field: 'metrics[0]' },
    { name: 'metric-unknown-unit', description: 'a custom metric with a unit outside the registry', canonicalHex: temp(head().u8(1), 'leaf_wetness', 'furlong').u8(0, 0, 0).hex(), field: 'metrics[0]' },
    { name: 'radio-unknown-tag', description: 'radio value tag 0x03', canonicalHex: temp(head().u8(1)).u8(1, 1).str('rssi').u8(3).u8(0, 0).hex(), field: 'radio.rssi' },
    {
      name: 'radio-keys-unsorted',
      description: 'radio keys snr before rssi',
      canonicalHex: temp(head().u8(1)).u8(1, 2).str('snr').u8(1).f64(1).str('rssi').u8(1).f64(-80).u8(0, 0).hex(),
      field: 'radio[1].key',
    },
    { name: 'raw-too-long', description: 'raw length 65537 (limit 65536)', canonicalHex: temp(head().u8(1)).u8(0, 1).u32(65537).hex(), field: 'raw' },
    { name: 'unknown-auth-kind', description: 'auth kind index 7 (one past the last auth kind)', canonicalHex: temp(head().u8(1)).u8(0, 0, 7).hex(), field: 'auth.kind' },
    {
      name: 'username-invalid-utf8',
      description: 'mqtt-credentials username 0xC3 0x28 (not UTF-8)',
      canonicalHex: temp(head().u8(1)).u8(0, 0, 4).u8(2, 0xc3, 0x28).hex(),
      field: 'auth.username',
    },
    {
      name: 'radio-string-encoded-surrogate',
      description: 'a radio string holding ED A0 80 (a UTF-16 surrogate encoded as UTF-8, which UTF-8 forbids)',
      canonicalHex: temp(head().u8(1)).u8(1, 1).str('note').u8(2).u8(3, 0xed, 0xa0, 0x80).u8(0, 0).hex(),
      field: 'radio.note',
    },
    {
      name: 'unknown-ccm-scheme',
      description: 'ble-aes-ccm auth with scheme index 2 (one past the last scheme)',
      canonicalHex: temp(head().u8(1)).u8(0, 0, 6).u8(2).u32(1).hex(),
      field: 'auth.scheme',
    },
    {
      name: 'ble-aes-ccm-truncated-counter',
      description: 'ble-aes-ccm auth (scheme mibeacon) with only 3 of the 4 counter bytes',
      canonicalHex: temp(head().u8(1)).u8(0, 0, 6).u8(0).u8(0, 0, 1).hex(),
      field: 'auth.counter',
    },
  ]
  return list
}

export interface VectorFile {
  readonly description: string
  readonly format: string
  readonly canonicalVersion: number
  readonly generator: string
  readonly sources: readonly string[]
  readonly vectors: readonly {
    readonly name: string
    readonly description: string
    readonly reading: ReadingJson
    readonly seq: string
    readonly canonicalHex: string
    readonly readingHash: string
    readonly leafHash: string
  }[]
  readonly invalid: readonly InvalidVector[]
}

export function buildVectorFile(): VectorFile {
  return {
    description: 'Canonical reading encoding vectors: each reading (JSON form) encodes to canonicalHex; readingHash = keccak256(canonical); leafHash = OpenZeppelin StandardMerkleTree leaf of [uint64 seq, bytes32 readingHash]. Every entry of "invalid" must be rejected by a decoder.',
    format: 'docs/canonical-encoding.md',
    canonicalVersion: CANONICAL_VERSION,
    generator: 'scripts/gen-vectors.ts',
    sources: [
      'Encoding: docs/canonical-encoding.md, version 1 (this repository).',
      'Leaf hash oracle: @openzeppelin/merkle-tree 1.0.8 StandardMerkleTree.leafHash with leaf encoding ["uint64", "bytes32"] (checked by gateway/src/core/canonical.test.ts).',
      'Device key: Foundry anvil default account #0 (https://book.getfoundry.sh/reference/anvil/), EIP-191 personal_sign (https://eips.ethereum.org/EIPS/eip-191).',
      'BTHome raw bytes: https://bthome.io/format/ (temperature 0x02, humidity 0x03); Cayenne LPP raw bytes: https://docs.mydevices.com/docs/lorawan/cayenne-lpp.',
      'Encrypted BLE raw bytes (ble-aes-ccm vectors): MiBeacon v5 from Bluetooth-Devices/xiaomi-ble tests/test_parser.py test_Xiaomi_CGDK2; pvvx encrypted custom format from custom-components/ble_monitor custom_components/ble_monitor/test/test_atc_parser.py test_atc_custom_encrypted.',
    ],
    vectors: INPUTS.map((v) => {
      const canonical = encodeReading(v.reading)
      return {
        name: v.name,
        description: v.description,
        reading: readingToJson(v.reading),
        seq: v.seq.toString(),
        canonicalHex: bytesToHex(canonical),
        readingHash: bytesToHex(readingHash(canonical)),
        leafHash: bytesToHex(leafHash(v.seq, canonical)),
      }
    }),
    invalid: invalidVectors(),
  }
}

export function renderVectorFile(): string {
  return JSON.stringify(buildVectorFile(), null, 2) + '\n'
}

// --- Device protocol (docs/device-protocol.md) ------------------------------------

/**
 * The device key of test/vectors/device-protocol.json: the example private
 * key of the web3.js documentation (web3.eth.accounts.privateKeyToAccount,
 * https://web3js.readthedocs.io/en/v1.10.0/web3-eth-accounts.html), address
 * 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23. Published; never use it on a device.
 */
const PROTOCOL_KEY = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'

/** The bodies signed by the vectors (the same four in both versions). */
const PROTOCOL_BODIES: readonly { readonly name: string; readonly body: Omit<SignedBody, 'version'> }[] = [
  { name: 'one metric, no time', body: { deviceId: 'node-1', counter: 1n, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 21.5 }] } },
  {
    name: 'device time and three metrics (sorted by name)',
    body: {
      deviceId: 'esp32-kitchen',
      counter: 42n,
      timeMs: 1_700_000_000_000,
      metrics: [
        { name: 'temperature_c', unit: 'Cel', value: 21.25 },
        { name: 'humidity_pct', unit: '%', value: 48.5 },
        { name: 'co2_ppm', unit: 'ppm', value: 612 },
      ],
    },
  },
  { name: 'no metrics (a heartbeat), large counter', body: { deviceId: 'lora:0011', counter: 0xffff_ffff_ffff_ffffn, metrics: [] } },
  { name: 'custom metric with a unit from the registry, negative value', body: { deviceId: 'well-3', counter: 7n, metrics: [{ name: 'water_level', unit: 'm', value: -1.75 }] } },
]

function bodyJson(b: SignedBody): Record<string, unknown> {
  return {
    ...(b.version === 2 ? { version: 2 } : {}),
    deviceId: b.deviceId,
    counter: b.counter.toString(),
    ...(b.timeMs !== undefined ? { timeMs: b.timeMs } : {}),
    metrics: b.metrics.map((m) => ({ name: m.name, unit: m.unit, value: m.value })),
  }
}

function protocolVector(name: string, body: SignedBody, key: Uint8Array) {
  const m = signBody(body, key)
  return {
    name,
    body: bodyJson(body),
    encoded: bytesToHex(m.body),
    digest: bytesToHex(signedBodyDigest(m.body)),
    signature: bytesToHex(m.signature),
    json: encodeSignedJson(m),
    binary: bytesToHex(encodeSignedBinary(m)),
  }
}

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

function withSignature(m: SignedMessage, f: (sig: Uint8Array) => void): SignedMessage {
  const signature = m.signature.slice()
  f(signature)
  return { body: m.body, signature }
}

/** Version-2 messages derived from the first valid vector, with what a verifier must decide. */
function protocolV2Variants(key: Uint8Array) {
  const body: SignedBody = { version: 2, ...(PROTOCOL_BODIES[0] as (typeof PROTOCOL_BODIES)[number]).body }
  const good = signBody(body, key)
  const flipV = (sig: Uint8Array) => {
    sig[64] = sig[64] === 27 ? 28 : 27
  }
  const highS = withSignature(good, (sig) => {
    const s = BigInt(bytesToHex(sig.subarray(32, 64)))
    sig.set(hexToBytes('0x' + (N - s).toString(16).padStart(64, '0'), 32), 32)
    flipV(sig)
  })
  // The EIP-191 signature of a version-2 body: right key, wrong digest.
  const eip191 = { body: good.body, signature: hexToBytes(signDigest(hashPersonalMessage(good.body), key), 65) }
  // A version-1 body (magic 01) carrying the SHA-256 signature of its bytes: wrong digest for its version.
  const v1Body = encodeSignedBody({ ...body, version: 1 })
  const shaSig = secp256k1.sign(sha256(v1Body), key, { lowS: true })
  const v1WithSha = { body: v1Body, signature: Uint8Array.of(...shaSig.toCompactRawBytes(), 27 + shaSig.recovery) }
  const magic3 = { body: Uint8Array.of(0x46, 0x50, 0x44, 0x03, ...good.body.subarray(4)), signature: good.signature }
  const bitflip = withSignature(good, (sig) => {
    sig[10] = (sig[10] as number) ^ 0x01
  })
  const out = (name: string, description: string, m: SignedMessage, expect: 'ok' | 'bad-signature' | 'malformed') => ({
    name,
    description,
    binary: bytesToHex(encodeSignedBinary(m)),
    expect,
  })
  return [
    out('v-flipped', 'the valid signature with the other v (27 <-> 28): v is a recovery hint in version 2, (r, s) is what the key verifies, so it is accepted, and a proof bundle holding it verifies by the other recovery id', withSignature(good, flipV), 'ok'),
    out('high-s-twin', 'the valid signature with s replaced by n - s and v flipped: a valid ECDSA signature, refused because version 2 takes low s only', highS, 'bad-signature'),
    out('v-zero', 'the valid signature with v = 0: version 2 takes v 27 or 28 only', withSignature(good, (sig) => (sig[64] = (sig[64] as number) - 27)), 'bad-signature'),
    out('eip191-over-v2-body', 'the EIP-191 (version 1) signature of a version-2 body by the right key: the wrong digest for the version', eip191, 'bad-signature'),
    out('sha256-over-v1-body', 'a version-1 body (magic 01) carrying the SHA-256 signature of its bytes by the right key: the wrong digest for the version', v1WithSha, 'bad-signature'),
    out('r-bit-flipped', 'the valid signature with one bit of r flipped', bitflip, 'bad-signature'),
    out('magic-version-3', 'the valid body with magic 46 50 44 03, an unknown version', magic3, 'malformed'),
  ]
}

/**
 * Published RFC 6979 vectors for secp256k1 with SHA-256 (low-s form): the
 * private key 1 signing SHA-256 of a message. They pin the signer a version-2
 * device uses (RFC 6979 §3.2 nonce, low s). Source: the secp256k1 RFC 6979
 * test vectors posted at https://bitcointalk.org/index.php?topic=285142.msg3150733
 * (also in trezor-crypto's tests and bitcoinjs-lib's ecdsa fixtures); the s of
 * the first is given there in its high form dbbd3162…675c, here as n − s.
 */
const RFC6979_SECP256K1_SHA256 = [
  { privateKey: '0x0000000000000000000000000000000000000000000000000000000000000001', message: 'Satoshi Nakamoto', signature: '0x934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d82442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5' },
  {
    privateKey: '0x0000000000000000000000000000000000000000000000000000000000000001',
    message: 'All those moments will be lost in time, like tears in rain. Time to die...',
    signature: '0x8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21',
  },
]

export function buildDeviceProtocolFile() {
  const key = hexToBytes(PROTOCOL_KEY, 32)
  const publicKey = secp256k1.getPublicKey(key, false)
  return {
    description:
      'Fieldproof device protocol (docs/device-protocol.md). "valid": version 1, body encoding, EIP-191 digest and secp256k1 signature (RFC 6979, low s, v = 27/28). "v2": version 2, the same bodies with magic 46 50 44 02 signed over SHA-256(body) (RFC 6979, low s, v = 27/28), messages derived from them with the decision a verifier must reach, and published RFC 6979 secp256k1/SHA-256 vectors that pin the signer. Generated by scripts/gen-vectors.ts with the reference implementation gateway/src/core/device-protocol.ts; the private key is a published test key (never use it on a device).',
    privateKey: PROTOCOL_KEY,
    publicKey: bytesToHex(publicKey),
    address: publicKeyToAddress(publicKey),
    valid: PROTOCOL_BODIES.map((v) => protocolVector(v.name, v.body, key)),
    v2: {
      magic: '0x46504402',
      digest: 'SHA-256(body) (FIPS 180-4); signature r || s || v, s ≤ n/2, v = 27 + recovery id',
      valid: PROTOCOL_BODIES.map((v) => protocolVector(v.name, { version: 2, ...v.body }, key)),
      variants: protocolV2Variants(key),
      rfc6979: RFC6979_SECP256K1_SHA256,
    },
    sources: [
      'Device key: the example private key of the web3.js documentation (web3.eth.accounts.privateKeyToAccount, https://web3js.readthedocs.io/en/v1.10.0/web3-eth-accounts.html).',
      'Version 1 digest: EIP-191 version 0x45 personal_sign (https://eips.ethereum.org/EIPS/eip-191); checked against viem hashMessage / recoverMessageAddress in gateway/src/core/device-protocol.test.ts.',
      'Version 2 digest: SHA-256 (FIPS 180-4); signatures: RFC 6979 deterministic ECDSA on secp256k1 (SEC 2 §2.4.1), low s (BIP 62, EIP-2); checked against @noble/hashes sha256 and @noble/curves secp256k1 recovery in gateway/src/core/device-protocol.test.ts.',
      'rfc6979: secp256k1 RFC 6979 test vectors, https://bitcointalk.org/index.php?topic=285142.msg3150733 (key 1; "Satoshi Nakamoto" s given there as dbbd3162d46e9f9bef7feb87c16dc13b4f6568a87f4e83f728e2443ba586675c, here in low-s form n − s).',
    ],
  }
}

export function renderDeviceProtocolFile(): string {
  return JSON.stringify(buildDeviceProtocolFile(), null, 2) + '\n'
}

if (import.meta.main) {
  const files: [string, string][] = [
    [VECTORS_PATH, renderVectorFile()],
    [DEVICE_VECTORS_PATH, renderDeviceProtocolFile()],
  ]
  let stale = false
  for (const [path, text] of files) {
    if (process.argv.includes('--check')) {
      let current = ''
      try {
        current = readFileSync(path, 'utf8')
      } catch {
        // missing file: differs
      }
      if (current !== text) {
        console.error(`${path} is out of date: run node scripts/gen-vectors.ts`)
        stale = true
      } else console.log(`${path} is up to date`)
    } else {
      writeFileSync(path, text)
      console.log(`wrote ${path}`)
    }
  }
  if (stale) process.exit(1)
}
