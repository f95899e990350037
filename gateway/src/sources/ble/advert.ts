// Advertisement data as BlueZ exposes it on org.bluez.Device1
// (doc/org.bluez.Device.rst): ServiceData a{sv} keyed by 128-bit UUID
// strings, ManufacturerData a{qv} keyed by the Bluetooth SIG company id,
// RSSI and TxPower int16. This module turns those properties into the
// frames the decoder registry routes (core/decoder.ts RawFrame).
//
// 16-bit service UUIDs live in the Bluetooth Base UUID
// 0000xxxx-0000-1000-8000-00805f9b34fb (Core Specification v5.4, Vol 3,
// Part B, §2.5.1); the registry matches them as 4 lowercase hex digits.

import type { RawFrame } from '../../core/decoder.ts'

const BASE_UUID_TAIL = '-0000-1000-8000-00805f9b34fb'

/** '0000fcd2-0000-1000-8000-00805f9b34fb' → 'fcd2'; other UUIDs lowercased as they are. */
export function shortUuid(uuid: string): string {
  const u = uuid.toLowerCase()
  if (u.length === 36 && u.startsWith('0000') && u.endsWith(BASE_UUID_TAIL)) return u.slice(4, 8)
  return u
}

/** The device object path's MAC: /org/bluez/hci0/dev_A4_C1_38_00_00_01 → a4:c1:38:00:00:01. */
export function macFromPath(path: string): string | undefined {
  const m = /\/dev_([0-9A-Fa-f]{2}(?:_[0-9A-Fa-f]{2}){5})$/.exec(path)
  return m ? (m[1] as string).replace(/_/g, ':').toLowerCase() : undefined
}

/** Normalize a MAC address to lowercase, colon-separated; undefined when it is not one. */
export function normalizeMac(text: string): string | undefined {
  const hex = text.trim().replace(/[:-]/g, '').toLowerCase()
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined
  return hex.match(/../g)!.join(':')
}

/** `ble:<mac without colons, lowercase>`: the default device id. */
export function defaultDeviceId(mac: string): string {
  return `ble:${mac.replace(/:/g, '')}`
}

function toBytes(v: unknown): Uint8Array | undefined {
  if (v instanceof Uint8Array) return v
  if (Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) return Uint8Array.from(v as number[])
  return undefined
}

function unwrapValue(v: unknown): unknown {
  return v !== null && typeof v === 'object' && 'signature' in v && 'value' in v ? (v as { value: unknown }).value : v
}

/** One data element of an advertisement, as a frame for the registry. */
export interface AdvertFrame extends RawFrame {
  readonly transport: 'ble'
}

/** ServiceData / ManufacturerData (unwrapped one level from their Variant) → frames. */
export function framesFromProps(mac: string, props: Record<string, unknown>): AdvertFrame[] {
  const frames: AdvertFrame[] = []
  const sd = props['ServiceData']
  if (sd !== null && typeof sd === 'object') {
    for (const [uuid, raw] of Object.entries(sd as Record<string, unknown>)) {
      const bytes = toBytes(unwrapValue(raw))
      if (bytes) frames.push({ transport: 'ble', mac, serviceDataUuid: shortUuid(uuid), bytes })
    }
  }
  const md = props['ManufacturerData']
  if (md !== null && typeof md === 'object') {
    for (const [id, raw] of Object.entries(md as Record<string, unknown>)) {
      const bytes = toBytes(unwrapValue(raw))
      const n = Number(id)
      if (bytes && Number.isInteger(n) && n >= 0 && n <= 0xffff) frames.push({ transport: 'ble', mac, manufacturerId: n, bytes })
    }
  }
  return frames
}

/** A finite int16 from a property (RSSI, TxPower), or undefined. */
export function int16Prop(v: unknown): number | undefined {
  const n = typeof v === 'bigint' ? Number(v) : v
  return typeof n === 'number' && Number.isInteger(n) && n >= -32768 && n <= 32767 ? n : undefined
}
