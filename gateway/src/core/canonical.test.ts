// Canonical reading encoding: vectors (test/vectors/canonical.json), the
// OpenZeppelin leaf oracle, strict decoding, validation messages, fuzzing.

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import t, { type Test } from 'tap'
import { encodeAbiParameters, keccak256 as viemKeccak, verifyMessage } from 'viem'
import {
  CANONICAL_MAGIC,
  decodeReading,
  encodeReading,
  leafHash,
  leafHashOf,
  readingFromJson,
  readingHash,
  readingToJson,
  type ReadingJson,
} from './canonical.ts'
import { FieldproofError } from './errors.ts'
import { bytesToHex, hexToBytes } from './hex.ts'
import type { Reading } from './types.ts'
import { rng } from '../../../test/helpers/fuzz.ts'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const file = JSON.parse(readFileSync(`${root}test/vectors/canonical.json`, 'utf8')) as {
  canonicalVersion: number
  vectors: { name: string; reading: ReadingJson; seq: string; canonicalHex: string; readingHash: string; leafHash: string }[]
  invalid: { name: string; canonicalHex: string; field: string }[]
}

const base: Reading = {
  deviceId: 'sim-th-01',
  source: 'sim',
  received: { bootId: '00112233445566778899aabbccddeeff', monoNs: 123_456_789_012n, wallMs: 1_700_000_000_000, clock: 'ntp' },
  metrics: [
    { name: 'humidity_pct', unit: '%', value: 45.2 },
    { name: 'pressure_hpa', unit: 'hPa', value: 1013.25 },
    { name: 'temperature_c', unit: 'Cel', value: 21.5 },
  ],
  auth: { kind: 'none' },
}

function rejects(t: Test, fn: () => unknown, field: string, msg: string): void {
  try {
    fn()
    t.fail(`${msg}: accepted`)
  } catch (e) {
    t.ok(e instanceof FieldproofError && e.code === 'READING_INVALID', `${msg}: READING_INVALID`)
    t.ok(e instanceof Error && e.message.startsWith(`${field}:`), `${msg}: names ${field} (${e instanceof Error ? e.message : String(e)})`)
  }
}

t.test('vector file', async (t) => {
  t.equal(file.canonicalVersion, 1)
  t.ok(file.vectors.length >= 12, 'at least 12 vectors')
  const kinds = new Set(file.vectors.map((v) => v.reading.source))
  for (const k of ['sim', 'http', 'mqtt', 'lorawan', 'ble', 'gpio', 'nodered']) t.ok(kinds.has(k as never), `covers source ${k}`)
  const auths = new Set(file.vectors.map((v) => v.reading.auth.kind))
  for (const k of ['none', 'device-signature', 'lorawan-mic', 'bthome-encryption', 'mqtt-credentials', 'http-token', 'ble-aes-ccm']) t.ok(auths.has(k as never), `covers auth ${k}`)
  const clocks = new Set(file.vectors.map((v) => v.reading.received.clock))
  for (const k of ['unsynchronized', 'ntp', 'gps', 'rtc']) t.ok(clocks.has(k as never), `covers clock ${k}`)

  const out = execFileSync(process.execPath, [`${root}scripts/gen-vectors.ts`, '--check'], { encoding: 'utf8' })
  t.match(out, /up to date/, 'committed file equals what scripts/gen-vectors.ts generates')
})

t.test('every vector re-encodes, hashes and matches the OpenZeppelin leaf', async (t) => {
  for (const v of file.vectors) {
    const r = readingFromJson(v.reading)
    const bytes = encodeReading(r)
    t.equal(bytesToHex(bytes), v.canonicalHex, `${v.name}: canonical`)
    t.equal(bytesToHex(readingHash(bytes)), v.readingHash, `${v.name}: readingHash`)
    t.equal(bytesToHex(readingHash(bytes)), viemKeccak(bytes), `${v.name}: readingHash = viem keccak256`)
    const seq = BigInt(v.seq)
    t.equal(bytesToHex(leafHash(seq, bytes)), v.leafHash, `${v.name}: leafHash`)
    const oz = StandardMerkleTree.of([[v.seq, v.readingHash]], ['uint64', 'bytes32'])
    t.equal(oz.leafHash([v.seq, v.readingHash]), v.leafHash, `${v.name}: OpenZeppelin StandardMerkleTree leaf`)
    t.equal(bytesToHex(leafHashOf(seq, hexToBytes(v.readingHash))), v.leafHash, `${v.name}: leafHashOf`)
    // Decoding gives the same reading (metrics and radio in canonical order).
    const back = decodeReading(bytes)
    t.equal(bytesToHex(encodeReading(back)), v.canonicalHex, `${v.name}: decode round-trips`)
    const sorted = { ...v.reading, metrics: [...v.reading.metrics].sort((a, b) => (a.name < b.name ? -1 : 1)).map((m) => ({ ...m, value: m.value === 0 ? 0 : m.value })) }
    t.same(readingToJson(back), sorted, `${v.name}: decoded reading equals the input`)
    if (v.reading.auth.kind === 'device-signature') {
      const ok = await verifyMessage({ address: v.reading.auth.address, message: { raw: hexToBytes(v.reading.raw as string) }, signature: v.reading.auth.signature })
      t.ok(ok, `${v.name}: viem verifyMessage accepts the device signature`)
    }
  }
})

t.test('every invalid vector is rejected, naming the field', async (t) => {
  t.ok(file.invalid.length >= 15)
  for (const v of file.invalid) rejects(t, () => decodeReading(hexToBytes(v.canonicalHex)), v.field, v.name)
})

t.test('layout of a minimal encoding, byte by byte', async (t) => {
  const r: Reading = { deviceId: 'ab', source: 'http', received: { bootId: '0f'.repeat(16), monoNs: 258n, wallMs: 0x1_0000_0001, clock: 'gps' }, metrics: [], auth: { kind: 'bthome-encryption', counter: 0x01020304 } }
  const hex = bytesToHex(encodeReading(r))
  t.equal(
    hex,
    '0x' +
      'f1' + // magic
      '02' + '6162' + // deviceId
      '01' + // source http
      '0f'.repeat(16) + // bootId
      '0000000000000102' + // monoNs
      '0000000100000001' + // wallMs
      '02' + // clock gps
      '00' + // no device time
      '00' + // no metrics
      '00' + // no radio
      '00' + // no raw
      '03' + '01020304', // bthome-encryption counter
  )
})

t.test('input order does not matter; -0 encodes as +0', async (t) => {
  const a = encodeReading(base)
  const reversed: Reading = { ...base, metrics: [...base.metrics].reverse() }
  t.same(encodeReading(reversed), a, 'metric order')
  const r1: Reading = { ...base, radio: { rssi: -70, snr: 3.5, gw: 'x', 'ä': 1, '\u{1F600}': 2, '\uFFFD': 3 } }
  const r2: Reading = { ...base, radio: { '\uFFFD': 3, '\u{1F600}': 2, 'ä': 1, gw: 'x', snr: 3.5, rssi: -70 } }
  t.same(encodeReading(r1), encodeReading(r2), 'radio key order')
  // Bytewise order puts U+FFFD (EF BF BD) before U+1F600 (F0 9F 98 80), though UTF-16 order is the reverse.
  const keys = Object.keys(decodeReading(encodeReading(r1)).radio ?? {})
  t.same(keys, ['gw', 'rssi', 'snr', 'ä', '\uFFFD', '\u{1F600}'])
  const z1 = encodeReading({ ...base, metrics: [{ name: 'temperature_c', unit: 'Cel', value: -0 }], radio: { rssi: -0 } })
  const z2 = encodeReading({ ...base, metrics: [{ name: 'temperature_c', unit: 'Cel', value: 0 }], radio: { rssi: 0 } })
  t.same(z1, z2, '-0 and +0 give equal bytes')
  t.ok(Object.is(decodeReading(z1).metrics[0]?.value, 0), 'decodes as +0')
})

t.test('encodings are independent: views of shared slabs never overlap or change, large ones stand alone', async (t) => {
  const rand = rng(11)
  const made: { bytes: Uint8Array; copy: string }[] = []
  for (let i = 0; i < 3000; i++) {
    const raw = new Uint8Array(Math.floor(rand() * (i % 50 === 0 ? 3000 : 200))).map(() => Math.floor(rand() * 256))
    const bytes = encodeReading({ ...base, received: { ...base.received, wallMs: i }, raw })
    made.push({ bytes, copy: bytesToHex(bytes) })
  }
  let changed = 0
  let overlaps = 0
  const byBuffer = new Map<ArrayBufferLike, [number, number][]>()
  for (const m of made) {
    if (bytesToHex(m.bytes) !== m.copy) changed++
    const spans = byBuffer.get(m.bytes.buffer) ?? []
    for (const [a, b] of spans) if (m.bytes.byteOffset < b && a < m.bytes.byteOffset + m.bytes.length) overlaps++
    spans.push([m.bytes.byteOffset, m.bytes.byteOffset + m.bytes.length])
    byBuffer.set(m.bytes.buffer, spans)
  }
  t.equal(changed, 0, 'every encoding keeps its bytes while later ones are made')
  t.equal(overlaps, 0, 'no two encodings share a byte')
  t.ok(byBuffer.size > 1 && byBuffer.size < made.length, `${made.length} encodings in ${byBuffer.size} buffers`)
  const large = made.filter((m) => m.bytes.length > 1024)
  t.ok(large.length > 0 && large.every((m) => m.bytes.byteOffset === 0 && m.bytes.buffer.byteLength === m.bytes.length), 'encodings over 1 KiB have a buffer of their own')
  // Many metrics in shuffled order encode as in sorted order.
  const metrics = Array.from({ length: 12 }, (_, i) => ({ name: `x_${String.fromCharCode(97 + i)}`, unit: 'Cel', value: i }))
  const shuffled = [...metrics].sort(() => rand() - 0.5)
  t.same(encodeReading({ ...base, metrics: shuffled }), encodeReading({ ...base, metrics }))
})

t.test('absent and empty optional fields are distinct and round-trip', async (t) => {
  const variants: Reading[] = [
    base,
    { ...base, raw: new Uint8Array(0) },
    { ...base, radio: {} },
    { ...base, deviceTimeMs: 0 },
    { ...base, raw: Uint8Array.of(1, 2, 3) },
  ]
  const encoded = variants.map((r) => bytesToHex(encodeReading(r)))
  t.equal(new Set(encoded).size, variants.length, 'all different')
  for (const r of variants) t.same(decodeReading(encodeReading(r)), r, 'decode(encode(r)) equals r')
})

t.test('encoder rejections name the field', async (t) => {
  const m = (value: number, name = 'temperature_c', unit = 'Cel'): Reading => ({ ...base, metrics: [{ name, unit, value }] })
  rejects(t, () => encodeReading(m(Number.NaN)), 'metrics[0].value', 'NaN')
  rejects(t, () => encodeReading(m(Number.POSITIVE_INFINITY)), 'metrics[0].value', 'Infinity')
  rejects(t, () => encodeReading(m(1, 'temperature_c', '%')), 'metrics[0]', 'wrong unit for a well-known name')
  rejects(t, () => encodeReading(m(1, 'leaf_wetness', 'bogus')), 'metrics[0]', 'unknown unit')
  rejects(t, () => encodeReading(m(1, 'Temperature')), 'metrics[0]', 'bad metric name')
  rejects(t, () => encodeReading({ ...base, metrics: [...base.metrics, { name: 'humidity_pct', unit: '%', value: 1 }] }), 'metrics', 'duplicate names')
  rejects(t, () => encodeReading({ ...base, metrics: Array.from({ length: 65 }, (_, i) => ({ name: `m${i}`, unit: '1', value: i })) }), 'metrics', '65 metrics')
  t.doesNotThrow(() => encodeReading({ ...base, metrics: Array.from({ length: 64 }, (_, i) => ({ name: `m${String(i).padStart(2, '0')}`, unit: '1', value: i })) }), '64 metrics')
  rejects(t, () => encodeReading({ ...base, deviceId: '' }), 'deviceId', 'empty device id')
  rejects(t, () => encodeReading({ ...base, deviceId: 'a'.repeat(129) }), 'deviceId', '129-byte device id')
  rejects(t, () => encodeReading({ ...base, deviceId: 'température' }), 'deviceId', 'unicode device id')
  rejects(t, () => encodeReading({ ...base, deviceId: 'a b' }), 'deviceId', 'space in device id')
  rejects(t, () => encodeReading({ ...base, source: 'zigbee' as never }), 'source', 'unknown source')
  rejects(t, () => encodeReading({ ...base, received: { ...base.received, bootId: 'xyz' } }), 'received.bootId', 'bad boot id')
  rejects(t, () => encodeReading({ ...base, received: { ...base.received, monoNs: -1n } }), 'received.monoNs', 'negative monoNs')
  rejects(t, () => encodeReading({ ...base, received: { ...base.received, monoNs: 1n << 64n } }), 'received.monoNs', 'monoNs 2^64')
  rejects(t, () => encodeReading({ ...base, received: { ...base.received, monoNs: 5 as never } }), 'received.monoNs', 'monoNs as number')
  rejects(t, () => encodeReading({ ...base, received: { ...base.received, wallMs: 1.5 } }), 'received.wallMs', 'fractional wallMs')
  rejects(t, () => encodeReading({ ...base, received: { ...base.received, clock: 'sundial' as never } }), 'received.clock', 'unknown clock')
  rejects(t, () => encodeReading({ ...base, deviceTimeMs: -1 }), 'deviceTimeMs', 'negative device time')
  rejects(t, () => encodeReading({ ...base, radio: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])) }), 'radio', '33 radio keys')
  rejects(t, () => encodeReading({ ...base, radio: { rssi: Number.NaN } }), 'radio.rssi', 'NaN radio value')
  rejects(t, () => encodeReading({ ...base, radio: { ok: true as never } }), 'radio.ok', 'boolean radio value')
  rejects(t, () => encodeReading({ ...base, radio: { s: 'x'.repeat(256) } }), 'radio.s', '256-byte radio string')
  rejects(t, () => encodeReading({ ...base, radio: { s: '\uD800' } }), 'radio.s', 'lone surrogate')
  rejects(t, () => encodeReading({ ...base, radio: { '': 1 } }), 'radio.', 'empty radio key')
  rejects(t, () => encodeReading({ ...base, raw: new Uint8Array(65537) }), 'raw', 'raw over 64 KiB')
  t.doesNotThrow(() => encodeReading({ ...base, raw: new Uint8Array(65536) }), 'raw of exactly 64 KiB')
  rejects(t, () => encodeReading({ ...base, auth: { kind: 'magic' } as never }), 'auth.kind', 'unknown auth kind')
  const sig = ('0x' + '11'.repeat(64) + '1b') as `0x${string}`
  const ds = (address: string, signature = sig, counter = 1n): Reading => ({ ...base, auth: { kind: 'device-signature', address: address as `0x${string}`, counter, signature } })
  t.doesNotThrow(() => encodeReading(ds('0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266')), 'lowercase address')
  t.doesNotThrow(() => encodeReading(ds('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')), 'checksummed address')
  rejects(t, () => encodeReading(ds('0xF39fd6e51aad88F6F4ce6aB8827279cffFb92266')), 'auth.address', 'bad checksum')
  rejects(t, () => encodeReading(ds('0x1234')), 'auth.address', 'short address')
  rejects(t, () => encodeReading(ds('0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266', '0x1234')), 'auth.signature', 'short signature')
  rejects(t, () => encodeReading(ds('0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266', sig, -1n)), 'auth.counter', 'negative counter')
  rejects(t, () => encodeReading({ ...base, auth: { kind: 'lorawan-mic', devAddr: 2 ** 32, fcnt: 0 } }), 'auth.devAddr', 'devAddr 2^32')
  rejects(t, () => encodeReading({ ...base, auth: { kind: 'lorawan-mic', devAddr: 1, fcnt: -1 } }), 'auth.fcnt', 'negative fcnt')
  rejects(t, () => encodeReading({ ...base, auth: { kind: 'bthome-encryption', counter: 1.5 } }), 'auth.counter', 'fractional counter')
  rejects(t, () => encodeReading({ ...base, auth: { kind: 'mqtt-credentials', username: '' } }), 'auth.username', 'empty username')
  rejects(t, () => encodeReading({ ...base, auth: { kind: 'http-token', tokenId: 'é'.repeat(128) } }), 'auth.tokenId', '256-byte token id')
  rejects(t, () => encodeReading(null as never), 'reading', 'null')
})

t.test('JSON form', async (t) => {
  const full: Reading = {
    ...base,
    deviceTimeMs: 1_699_999_999_000,
    radio: { rssi: -80, gw: 'eui-1' },
    raw: Uint8Array.of(0xde, 0xad),
    auth: { kind: 'device-signature', address: '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266', counter: 18_446_744_073_709_551_615n, signature: `0x${'ab'.repeat(65)}` },
  }
  const j = readingToJson(full)
  t.equal(j.received.monoNs, '123456789012')
  t.equal(j.raw, '0xdead')
  t.same(j.auth, { kind: 'device-signature', address: full.auth.kind === 'device-signature' ? full.auth.address : '', counter: '18446744073709551615', signature: `0x${'ab'.repeat(65)}` })
  const text = JSON.stringify(j)
  t.same(readingFromJson(JSON.parse(text)), full, 'JSON text round-trips')

  const bad = (mut: (o: Record<string, unknown>) => void, field: string, msg: string): void => {
    const o = JSON.parse(text) as Record<string, unknown>
    mut(o)
    rejects(t, () => readingFromJson(o), field, msg)
  }
  bad((o) => (o.extra = 1), 'reading.extra', 'unknown top-level key')
  bad((o) => ((o.received as Record<string, unknown>).monoNs = 5), 'received.monoNs', 'monoNs as a number')
  bad((o) => ((o.received as Record<string, unknown>).monoNs = '007'), 'received.monoNs', 'leading zeros')
  bad((o) => ((o.received as Record<string, unknown>).tz = 'UTC'), 'received.tz', 'unknown received key')
  bad((o) => (o.raw = '0xabc'), 'raw', 'odd hex')
  bad((o) => (o.raw = 'dead'), 'raw', 'hex without 0x')
  bad((o) => ((o.auth as Record<string, unknown>).counter = 5), 'auth.counter', 'counter as a number')
  bad((o) => ((o.auth as Record<string, unknown>).extra = 5), 'auth.extra', 'unknown auth key')
  bad((o) => ((o.metrics as Record<string, unknown>[])[0] = { name: 'humidity_pct', unit: '%', value: '45' }), 'metrics[0].value', 'value as string')
  bad((o) => ((o.metrics as Record<string, unknown>[])[0] = { name: 'humidity_pct', unit: '%', value: 1, ts: 0 }), 'metrics[0].ts', 'unknown metric key')
  bad((o) => (o.metrics = {}), 'metrics', 'metrics not an array')
  rejects(t, () => readingFromJson('text'), 'reading', 'not an object')
  rejects(t, () => readingFromJson([]), 'reading', 'an array')
})

t.test('leaf hash: abi.encode by hand equals viem encodeAbiParameters', async (t) => {
  const rnd = rng(7)
  for (let i = 0; i < 50; i++) {
    const seq = BigInt(Math.floor(rnd() * 2 ** 32)) * BigInt(Math.floor(rnd() * 2 ** 32))
    const bytes = encodeReading({ ...base, received: { ...base.received, monoNs: BigInt(i) } })
    const h = viemKeccak(bytes)
    const inner = viemKeccak(encodeAbiParameters([{ type: 'uint64' }, { type: 'bytes32' }], [seq, h]))
    t.equal(bytesToHex(leafHash(seq, bytes)), viemKeccak(inner), `seq ${seq}`)
  }
  rejects(t, () => leafHash(-1n, new Uint8Array(1)), 'seq', 'negative seq')
  rejects(t, () => leafHash(1n << 64n, new Uint8Array(1)), 'seq', 'seq 2^64')
})

t.test('decodeReading: only FieldproofError escapes, accepted input re-encodes identically', async (t) => {
  const seed = 20240611
  const rnd = rng(seed)
  t.comment(`fuzz seed ${seed}`)
  const byte = (): number => Math.floor(rnd() * 256)
  let foreign = 0
  let accepted = 0
  const probe = (bytes: Uint8Array): void => {
    try {
      const r = decodeReading(bytes)
      accepted++
      const again = encodeReading(r)
      if (bytesToHex(again) !== bytesToHex(bytes)) t.fail(`accepted ${bytesToHex(bytes)} but re-encodes differently`)
    } catch (e) {
      if (!(e instanceof FieldproofError) || e.code !== 'READING_INVALID') {
        foreign++
        t.fail(`non-FieldproofError for ${bytesToHex(bytes)}: ${String(e)}`)
      }
    }
  }
  // 10,000 random byte strings; half start with the magic byte to get past it.
  for (let i = 0; i < 10_000; i++) {
    const b = Uint8Array.from({ length: Math.floor(rnd() * 200) }, byte)
    if (i % 2 === 0 && b.length > 0) b[0] = CANONICAL_MAGIC
    probe(b)
  }
  // 10,000 single-byte mutations of valid encodings.
  const valid = file.vectors.map((v) => hexToBytes(v.canonicalHex))
  valid.push(encodeReading(base))
  let changedAccepted = 0
  for (let i = 0; i < 10_000; i++) {
    const src = valid[i % valid.length] as Uint8Array
    const b = src.slice()
    const at = Math.floor(rnd() * b.length)
    let v = byte()
    if (v === b[at]) v = (v + 1) & 0xff
    b[at] = v
    const before = accepted
    probe(b)
    if (accepted > before) changedAccepted++
  }
  t.equal(foreign, 0, 'no foreign exceptions')
  t.comment(`mutations accepted as other valid readings: ${changedAccepted} (e.g. a changed metric value byte)`)
  // Truncations of every valid encoding at every length are rejected.
  let truncAccepted = 0
  for (const v of valid) for (let n = 0; n < v.length; n++) {
    try {
      decodeReading(v.subarray(0, n))
      truncAccepted++
    } catch (e) {
      if (!(e instanceof FieldproofError)) t.fail(`truncation threw ${String(e)}`)
    }
  }
  t.equal(truncAccepted, 0, 'no proper prefix of a valid encoding is accepted')
  rejects(t, () => decodeReading('f1' as never), 'canonical', 'a string instead of bytes')
})

t.test('encode speed (informational)', async (t) => {
  const n = 20_000
  for (let i = 0; i < 2000; i++) encodeReading(base)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) encodeReading(base)
  const us = ((performance.now() - t0) * 1000) / n
  t.comment(`encodeReading, 3 metrics: ${us.toFixed(2)} µs`)
  t.pass()
})
