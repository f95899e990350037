// BTHome v2 BLE advertisements (service data UUID 0xFCD2).
// Spec: https://bthome.io/format/ (BTHome Data format, Supported data types,
// Binary sensor data, Events incl. Commands 0x3B, Device information, Misc
// data) and https://bthome.io/encryption/ (AES-CCM, 4-byte MIC).
//
// Input: the service data after the 16-bit UUID: one device information byte
// (bit 0 encryption, bit 1 MAC included (6 bytes, reversed, follow the byte;
// used by bthome-ble), bit 2 trigger based, bits 5-7 version = 2), then
// objects: one id byte followed by a value whose length the id fixes (text
// 0x53, raw 0x54 and command 0x3B carry their own length byte).
//
// Choices:
// - Numbers: little endian, scaled by the spec factor and rounded to the
//   factor's decimals, e.g. BTHome v2 object 0x02: sint16 x 0.01 degC.
// - Binary sensors become metrics with unit '1' named after what 1 means
//   (door_open, motion_detected, ...); any non-zero byte counts as 1.
// - Events: button (0x3A) -> metric button_event = the event id, dimmer
//   (0x3C) -> dimmer_event = event id and dimmer_steps = steps (signed, as the
//   reference receiver bthome-ble reads it), command (0x3B) -> command_event
//   = opcode. The event name (press, rotate_left, toggle, ...) goes in meta
//   under the metric's name; command arguments in meta `<name>_args` as hex.
//   Event id 0 ("none") is kept so a device's n-th button stays button_event_n.
// - Repeats of a kind get _2, _3, ... (temperature_c, temperature_c_2), in
//   the order the objects appear, whichever object id carried them.
// - Text (0x53) and raw (0x54) go in meta (text, raw as hex); packet id (0x00)
//   in meta.packetId (for de-duplication); timestamp (0x50) in deviceTimeMs;
//   device type id (0xF0) and firmware version (0xF1, 0xF2) in meta.
// - Objects must come in ascending id order; out-of-order objects are still
//   parsed and meta.outOfOrder is set.
// - An unknown object id ends parsing: its length cannot be known, so the
//   whole advertisement is rejected as 'unsupported' naming the id.
// - Encrypted advertisements need options.bindkey (32 hex) and the MAC
//   (frame.mac, options.mac, or the MAC carried in the payload). The decoder is
//   pure: it returns meta.counter (the 32-bit counter); the BLE source must
//   reject a counter <= the last one it accepted for that device (replay).
// - A plaintext advertisement while a bind key is configured is refused
//   ('bad-mic'): accepting it would let anyone downgrade the device.

import { createDecipheriv } from 'node:crypto'
import type { DecodeOptions, DecodeResult, Decoder, RawFrame } from '../core/decoder.ts'
import { reject } from '../core/decoder.ts'
import type { Metric } from '../core/types.ts'
import { metricInfo } from '../core/units.ts'

// ---------------------------------------------------------------------------
// Small BLE helpers shared by the BLE decoders of this folder.

/** Unit of a registered metric name; throws at module load for a name missing from units.ts. */
export function unitOf(name: string): string {
  const info = metricInfo(name)
  if (!info) throw new Error(`metric ${name} is not registered in core/units.ts`)
  return info.unit
}

/** Parse a MAC address ("a4:c1:38:8d:18:b2", dashes, or 12 hex digits) into 6 bytes. */
export function parseMac(text: string | undefined): Uint8Array | undefined {
  if (text === undefined) return undefined
  const hex = text.replace(/[:-]/g, '')
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) return undefined
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

/** 6 bytes as a lowercase, colon-separated MAC address. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':')
}

/** A 16-byte AES key from 32 hex digits, or undefined. */
export function parseKey(text: string | undefined): Uint8Array | undefined {
  if (text === undefined || !/^[0-9a-fA-F]{32}$/.test(text)) return undefined
  return Uint8Array.from(Buffer.from(text, 'hex'))
}

/** Lowercase hex of bytes, no prefix. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/**
 * AES-128-CCM decryption with a MIC check. Returns the plaintext, or
 * undefined when the MIC does not match (or the inputs are unusable).
 */
export function aesCcmOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  mic: Uint8Array,
  aad?: Uint8Array,
): Uint8Array | undefined {
  if (ciphertext.length === 0) return undefined
  try {
    const decipher = createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: mic.length })
    decipher.setAuthTag(mic)
    if (aad) decipher.setAAD(aad, { plaintextLength: ciphertext.length })
    const out = decipher.update(ciphertext)
    decipher.final()
    return new Uint8Array(out)
  } catch {
    return undefined
  }
}

/** Rounds to `decimals` places, removing binary floating-point noise from scaled integers. */
export function roundTo(value: number, decimals: number): number {
  return Number(value.toFixed(decimals))
}

/** Names repeated metrics name, name_2, name_3 ... (at most _99, the registry's limit). */
export class MetricNamer {
  private readonly seen = new Map<string, number>()
  next(base: string): string | undefined {
    const n = (this.seen.get(base) ?? 0) + 1
    this.seen.set(base, n)
    if (n > 99) return undefined
    return n === 1 ? base : `${base}_${n}`
  }
}

// ---------------------------------------------------------------------------
// BTHome object table (bthome.io/format, "Supported data types").

interface NumberObj {
  readonly kind: 'number'
  readonly metric: string
  readonly len: 1 | 2 | 3 | 4
  readonly signed: boolean
  readonly factor: number
  readonly decimals: number
}
interface BinaryObj {
  readonly kind: 'binary'
  readonly metric: string
}
interface OtherObj {
  readonly kind: 'packet-id' | 'button' | 'dimmer' | 'command' | 'text' | 'raw' | 'timestamp' | 'device-type' | 'fw4' | 'fw3'
}
type ObjDef = NumberObj | BinaryObj | OtherObj

const num = (metric: string, len: 1 | 2 | 3 | 4, signed: boolean, factor: number, decimals: number): NumberObj => ({
  kind: 'number',
  metric,
  len,
  signed,
  factor,
  decimals,
})
const bin = (metric: string): BinaryObj => ({ kind: 'binary', metric })

/** Every object id of the BTHome v2 format table. */
export const BTHOME_OBJECTS: ReadonlyMap<number, ObjDef> = new Map<number, ObjDef>([
  [0x00, { kind: 'packet-id' }],
  [0x01, num('battery_pct', 1, false, 1, 0)],
  [0x02, num('temperature_c', 2, true, 0.01, 2)],
  [0x03, num('humidity_pct', 2, false, 0.01, 2)],
  [0x04, num('pressure_hpa', 3, false, 0.01, 2)],
  [0x05, num('illuminance_lx', 3, false, 0.01, 2)],
  [0x06, num('mass_kg', 2, false, 0.01, 2)],
  [0x07, num('mass_lb', 2, false, 0.01, 2)],
  [0x08, num('dewpoint_c', 2, true, 0.01, 2)],
  [0x09, num('count', 1, false, 1, 0)],
  [0x0a, num('energy_kwh', 3, false, 0.001, 3)],
  [0x0b, num('power_w', 3, false, 0.01, 2)],
  [0x0c, num('voltage_v', 2, false, 0.001, 3)],
  [0x0d, num('pm2_5_ugm3', 2, false, 1, 0)],
  [0x0e, num('pm10_ugm3', 2, false, 1, 0)],
  [0x0f, bin('state')],
  [0x10, bin('power_on')],
  [0x11, bin('opening')],
  [0x12, num('co2_ppm', 2, false, 1, 0)],
  [0x13, num('voc_ugm3', 2, false, 1, 0)],
  [0x14, num('moisture_pct', 2, false, 0.01, 2)],
  [0x15, bin('battery_low')],
  [0x16, bin('battery_charging')],
  [0x17, bin('co_detected')],
  [0x18, bin('cold')],
  [0x19, bin('connected')],
  [0x1a, bin('door_open')],
  [0x1b, bin('garage_door_open')],
  [0x1c, bin('gas_detected')],
  [0x1d, bin('hot')],
  [0x1e, bin('light_detected')],
  [0x1f, bin('unlocked')],
  [0x20, bin('moisture_detected')],
  [0x21, bin('motion_detected')],
  [0x22, bin('moving')],
  [0x23, bin('occupancy_detected')],
  [0x24, bin('plugged_in')],
  [0x25, bin('present')],
  [0x26, bin('problem')],
  [0x27, bin('running')],
  [0x28, bin('safe')],
  [0x29, bin('smoke_detected')],
  [0x2a, bin('sound_detected')],
  [0x2b, bin('tampered')],
  [0x2c, bin('vibration_detected')],
  [0x2d, bin('window_open')],
  [0x2e, num('humidity_pct', 1, false, 1, 0)],
  [0x2f, num('moisture_pct', 1, false, 1, 0)],
  [0x3a, { kind: 'button' }],
  [0x3b, { kind: 'command' }],
  [0x3c, { kind: 'dimmer' }],
  [0x3d, num('count', 2, false, 1, 0)],
  [0x3e, num('count', 4, false, 1, 0)],
  [0x3f, num('rotation_deg', 2, true, 0.1, 1)],
  [0x40, num('distance_mm', 2, false, 1, 0)],
  [0x41, num('distance_m', 2, false, 0.1, 1)],
  [0x42, num('duration_s', 3, false, 0.001, 3)],
  [0x43, num('current_a', 2, false, 0.001, 3)],
  [0x44, num('speed_ms', 2, false, 0.01, 2)],
  [0x45, num('temperature_c', 2, true, 0.1, 1)],
  [0x46, num('uv_index', 1, false, 0.1, 1)],
  [0x47, num('volume_l', 2, false, 0.1, 1)],
  [0x48, num('volume_ml', 2, false, 1, 0)],
  [0x49, num('flow_rate_m3h', 2, false, 0.001, 3)],
  [0x4a, num('voltage_v', 2, false, 0.1, 1)],
  [0x4b, num('gas_m3', 3, false, 0.001, 3)],
  [0x4c, num('gas_m3', 4, false, 0.001, 3)],
  [0x4d, num('energy_kwh', 4, false, 0.001, 3)],
  [0x4e, num('volume_l', 4, false, 0.001, 3)],
  [0x4f, num('water_l', 4, false, 0.001, 3)],
  [0x50, { kind: 'timestamp' }],
  [0x51, num('acceleration_ms2', 2, false, 0.001, 3)],
  [0x52, num('gyroscope_dps', 2, false, 0.001, 3)],
  [0x53, { kind: 'text' }],
  [0x54, { kind: 'raw' }],
  [0x55, num('volume_storage_l', 4, false, 0.001, 3)],
  [0x56, num('conductivity_uscm', 2, false, 1, 0)],
  [0x57, num('temperature_c', 1, true, 1, 0)],
  [0x58, num('temperature_c', 1, true, 0.35, 2)],
  [0x59, num('count', 1, true, 1, 0)],
  [0x5a, num('count', 2, true, 1, 0)],
  [0x5b, num('count', 4, true, 1, 0)],
  [0x5c, num('power_w', 4, true, 0.01, 2)],
  [0x5d, num('current_a', 2, true, 0.001, 3)],
  [0x5e, num('direction_deg', 2, false, 0.01, 2)],
  [0x5f, num('rain_mm', 2, false, 0.1, 1)],
  [0x60, num('channel', 1, false, 1, 0)],
  // 0x61 rotational speed is sent in rpm; the registry has no rpm unit, so rev/s (Hz).
  [0x61, num('rotational_speed_hz', 2, false, 1 / 60, 6)],
  [0x62, num('speed_ms', 4, true, 0.000001, 6)],
  [0x63, num('acceleration_ms2', 4, true, 0.000001, 6)],
  [0x64, num('light_level', 1, false, 1, 0)],
  [0xf0, { kind: 'device-type' }],
  [0xf1, { kind: 'fw4' }],
  [0xf2, { kind: 'fw3' }],
])

/** Value lengths of the fixed-size kinds that are not plain numbers. */
const FIXED_LEN: Readonly<Record<string, number>> = {
  'packet-id': 1,
  button: 1,
  dimmer: 2,
  timestamp: 4,
  'device-type': 2,
  fw4: 4,
  fw3: 3,
}

export const BUTTON_EVENTS: Readonly<Record<number, string>> = {
  0x00: 'none',
  0x01: 'press',
  0x02: 'double_press',
  0x03: 'triple_press',
  0x04: 'long_press',
  0x05: 'long_double_press',
  0x06: 'long_triple_press',
  0x80: 'hold_press',
}
export const DIMMER_EVENTS: Readonly<Record<number, string>> = { 0x00: 'none', 0x01: 'rotate_left', 0x02: 'rotate_right' }
export const COMMAND_OPCODES: Readonly<Record<number, string>> = {
  0x00: 'off',
  0x01: 'on',
  0x02: 'toggle',
  0x03: 'step_up',
  0x04: 'step_down',
}

// Resolve every unit once: a metric missing from the registry fails at load, not on air data.
const UNITS = new Map<string, string>()
for (const def of BTHOME_OBJECTS.values()) {
  if (def.kind === 'number' || def.kind === 'binary') UNITS.set(def.metric, unitOf(def.metric))
}
for (const name of ['button_event', 'dimmer_event', 'dimmer_steps', 'command_event']) UNITS.set(name, unitOf(name))

function readUint(b: Uint8Array, off: number, len: number): number {
  let v = 0
  for (let i = len - 1; i >= 0; i--) v = v * 256 + (b[off + i] as number)
  return v
}

function readInt(b: Uint8Array, off: number, len: number): number {
  const u = readUint(b, off, len)
  const half = 2 ** (8 * len - 1)
  return u >= half ? u - 2 * half : u
}

const UUID_LE = Uint8Array.of(0xd2, 0xfc)
const utf8 = new TextDecoder('utf-8', { fatal: true })

type Meta = Record<string, number | string | boolean>

/** Parse decrypted or plaintext BTHome objects. */
function parseObjects(p: Uint8Array, meta: Meta): DecodeResult | { metrics: Metric[]; deviceTimeMs?: number } {
  const metrics: Metric[] = []
  const namer = new MetricNamer()
  const metaNamer = new MetricNamer()
  let deviceTimeMs: number | undefined
  let prevId = -1
  let off = 0
  const push = (base: string, value: number): string | undefined => {
    const name = namer.next(base)
    if (name === undefined) return undefined
    metrics.push({ name, unit: UNITS.get(base) as string, value })
    return name
  }
  while (off < p.length) {
    const at = off
    const id = p[off] as number
    const def = BTHOME_OBJECTS.get(id)
    const idHex = `0x${id.toString(16).padStart(2, '0')}`
    if (!def) {
      return reject('unsupported', `unknown BTHome object id ${idHex} at offset ${at}: its length is unknown, parsing stops`)
    }
    if (id < prevId) meta['outOfOrder'] = true
    prevId = id
    off += 1
    if (def.kind === 'text' || def.kind === 'raw' || def.kind === 'command') {
      if (off >= p.length) return reject('truncated', `object ${idHex} at offset ${at}: missing length byte`)
      const lenByte = p[off] as number
      off += 1
      if (def.kind === 'command') {
        const argLen = lenByte & 0x1f
        if (off + 1 + argLen > p.length) return reject('truncated', `command object at offset ${at} needs ${2 + argLen} bytes`)
        const opcode = p[off] as number
        const args = p.subarray(off + 1, off + 1 + argLen)
        off += 1 + argLen
        const name = push('command_event', opcode)
        if (name === undefined) return reject('malformed', 'more than 99 command objects')
        meta[name] = COMMAND_OPCODES[opcode] ?? 'unknown'
        if (argLen > 0) meta[`${name}_args`] = toHex(args)
        continue
      }
      if (off + lenByte > p.length) return reject('truncated', `${def.kind} object at offset ${at} declares ${lenByte} bytes, ${p.length - off} left`)
      const body = p.subarray(off, off + lenByte)
      off += lenByte
      const key = metaNamer.next(def.kind)
      if (key === undefined) return reject('malformed', `more than 99 ${def.kind} objects`)
      if (def.kind === 'raw') {
        meta[key] = toHex(body)
      } else {
        try {
          meta[key] = utf8.decode(body)
        } catch {
          return reject('malformed', `text object at offset ${at} is not valid UTF-8`)
        }
      }
      continue
    }
    const len = def.kind === 'number' ? def.len : def.kind === 'binary' ? 1 : (FIXED_LEN[def.kind] as number)
    if (off + len > p.length) return reject('truncated', `object ${idHex} at offset ${at} needs ${len} value bytes, ${p.length - off} left`)
    switch (def.kind) {
      case 'number': {
        const raw = def.signed ? readInt(p, off, len) : readUint(p, off, len)
        if (push(def.metric, roundTo(raw * def.factor, def.decimals)) === undefined) return reject('malformed', `more than 99 ${def.metric} values`)
        break
      }
      case 'binary':
        if (push(def.metric, p[off] === 0 ? 0 : 1) === undefined) return reject('malformed', `more than 99 ${def.metric} values`)
        break
      case 'packet-id':
        if (meta['packetId'] === undefined) meta['packetId'] = p[off] as number
        break
      case 'button': {
        const code = p[off] as number
        const name = push('button_event', code)
        if (name === undefined) return reject('malformed', 'more than 99 button objects')
        meta[name] = BUTTON_EVENTS[code] ?? 'unknown'
        break
      }
      case 'dimmer': {
        const code = p[off] as number
        const name = push('dimmer_event', code)
        const steps = push('dimmer_steps', readInt(p, off + 1, 1))
        if (name === undefined || steps === undefined) return reject('malformed', 'more than 99 dimmer objects')
        meta[name] = DIMMER_EVENTS[code] ?? 'unknown'
        break
      }
      case 'timestamp':
        deviceTimeMs ??= readUint(p, off, 4) * 1000
        break
      case 'device-type':
        meta['deviceTypeId'] = readUint(p, off, 2)
        break
      case 'fw4':
        meta['firmwareVersion'] = `${p[off + 3]}.${p[off + 2]}.${p[off + 1]}.${p[off]}`
        break
      case 'fw3':
        meta['firmwareVersion'] = `${p[off + 2]}.${p[off + 1]}.${p[off]}`
        break
    }
    off += len
  }
  return deviceTimeMs === undefined ? { metrics } : { metrics, deviceTimeMs }
}

/** Decode one BTHome v2 service-data payload (the bytes after UUID 0xFCD2). */
export function decodeBthome(frame: RawFrame, options?: DecodeOptions): DecodeResult {
  const b = frame.bytes
  if (b.length < 1) return reject('truncated', 'empty BTHome payload: no device information byte')
  const info = b[0] as number
  const version = info >> 5
  if (version !== 2) return reject('unsupported', `BTHome version ${version} in device information byte 0x${info.toString(16).padStart(2, '0')}: only version 2 is supported`)
  const encrypted = (info & 0x01) !== 0
  const macIncluded = (info & 0x02) !== 0
  const meta: Meta = { encrypted, triggerBased: (info & 0x04) !== 0 }
  let off = 1
  let payloadMac: Uint8Array | undefined
  if (macIncluded) {
    if (b.length < 7) return reject('truncated', 'device information says a MAC follows, but fewer than 6 bytes remain')
    payloadMac = b.slice(1, 7).reverse()
    meta['mac'] = formatMac(payloadMac)
    off = 7
  }
  let payload: Uint8Array
  if (encrypted) {
    const rest = b.subarray(off)
    // ciphertext (at least one 2-byte object) + counter (4) + MIC (4), as bthome-ble requires.
    if (rest.length < 10) return reject('truncated', `encrypted BTHome payload of ${rest.length} bytes after the header: needs ciphertext, 4-byte counter and 4-byte MIC`)
    if (options?.['bindkey'] === undefined) return reject('missing-key', 'encrypted BTHome advertisement and no bindkey option')
    const key = parseKey(options['bindkey'])
    if (!key) return reject('missing-key', 'bindkey must be 32 hex characters (16 bytes)')
    const mac = payloadMac ?? parseMac(frame.mac ?? options['mac'])
    if (!mac) return reject('missing-key', 'encrypted BTHome needs the device MAC (frame.mac or the mac option) for the nonce')
    const ciphertext = rest.subarray(0, rest.length - 8)
    const counterBytes = rest.subarray(rest.length - 8, rest.length - 4)
    const mic = rest.subarray(rest.length - 4)
    const nonce = new Uint8Array(13)
    nonce.set(mac, 0)
    nonce.set(UUID_LE, 6)
    nonce[8] = info
    nonce.set(counterBytes, 9)
    const plain = aesCcmOpen(key, nonce, ciphertext, mic)
    if (!plain) return reject('bad-mic', 'BTHome MIC check failed (wrong bind key, wrong MAC or altered data)')
    meta['counter'] = readUint(counterBytes, 0, 4)
    payload = plain
  } else {
    if (options?.['bindkey'] !== undefined) {
      return reject('bad-mic', 'plaintext BTHome advertisement from a device configured with a bind key (downgrade refused)')
    }
    payload = b.subarray(off)
  }
  const parsed = parseObjects(payload, meta)
  if ('ok' in parsed) return parsed
  return parsed.deviceTimeMs === undefined
    ? { ok: true, metrics: parsed.metrics, meta }
    : { ok: true, metrics: parsed.metrics, meta, deviceTimeMs: parsed.deviceTimeMs }
}

/** BTHome v2 decoder: every object of the v2 format, AES-CCM encrypted advertisements with a bind key. */
export const bthomeDecoder: Decoder = {
  id: 'bthome',
  description: 'BTHome v2 BLE advertisements (service data 0xFCD2), plain or AES-CCM encrypted (bindkey option)',
  match: { transport: 'ble', serviceDataUuid: 'fcd2' },
  input: 'bytes',
  decode: decodeBthome,
}
