// The decoder registry: one line per decoder. `fieldproof decode --list`
// prints these; sources route frames to them by their `match` fields.
// Adding a format: write decoders/<id>.ts, <id>.vectors.ts, <id>.test.ts,
// add one import and one entry below, and its vectors to vectors.ts
// (CONTRIBUTING.md). The vectors are not imported here: the running gateway
// has no use for them (memory on a 512 MB Pi Zero 2 W).

import type { Decoder, RawFrame } from '../core/decoder.ts'
// BLE decoders
import { createBleAdvDecoder } from './ble-adv.ts'
import { atcDecoder } from './atc.ts'
import { bthomeDecoder } from './bthome.ts'
import { miBeaconDecoder } from './mibeacon.ts'
import { ruuviDecoder } from './ruuvi.ts'
// LoRaWAN payload decoders
import { cayenneLpp } from './cayenne-lpp.ts'
import { lorawanDecoder } from './lorawan.ts'

// MQTT firmware formats
import { esphomeDecoder } from './esphome.ts'
import { shellyDecoder } from './shelly.ts'
import { tasmotaDecoder } from './tasmota.ts'
/** A registered decoder (its vectors: vectors.ts). */
export interface DecoderEntry {
  readonly decoder: Decoder
}

export const DECODERS: readonly DecoderEntry[] = [
  // --- BLE ---
  { decoder: bthomeDecoder },
  { decoder: ruuviDecoder },
  { decoder: atcDecoder },
  { decoder: miBeaconDecoder },
  // Raw advertisements (AD structures); dispatches to the entries above through the registry.
  { decoder: createBleAdvDecoder({ decodersFor: (f) => decodersFor(f), findDecoder: (id) => findDecoder(id) }) },
  // --- LoRaWAN payloads ---
  { decoder: cayenneLpp },
  { decoder: lorawanDecoder },
  // --- MQTT firmware formats ---
  { decoder: tasmotaDecoder },
  { decoder: esphomeDecoder },
  { decoder: shellyDecoder },
]

export function findDecoder(id: string): Decoder | undefined {
  return DECODERS.find((d) => d.decoder.id === id)?.decoder
}

function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('/')
  const t = topic.split('/')
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true
    if (i >= t.length) return false
    if (p[i] !== '+' && p[i] !== t[i]) return false
  }
  return p.length === t.length
}

/** The decoders whose match fields fit a frame, most specific first. */
export function decodersFor(frame: Omit<RawFrame, 'bytes'>): Decoder[] {
  return DECODERS.map((d) => d.decoder).filter((d) => {
    const m = d.match
    if (m.transport !== frame.transport) return false
    if (m.serviceDataUuid !== undefined && m.serviceDataUuid !== frame.serviceDataUuid) return false
    if (m.manufacturerId !== undefined && m.manufacturerId !== frame.manufacturerId) return false
    if (m.topic !== undefined && (frame.topic === undefined || !topicMatches(m.topic, frame.topic))) return false
    return true
  })
}
