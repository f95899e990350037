// The decoder registry: one line per decoder. `fieldproof decode --list`
// prints these; sources route frames to them by their `match` fields.
// Adding a format: write decoders/<id>.ts, <id>.vectors.ts, <id>.test.ts and
// add one import and one entry below (CONTRIBUTING.md).

import type { Decoder, RawFrame, RegisteredDecoder } from '../core/decoder.ts'
// BLE decoders
import { createBleAdvDecoder } from './ble-adv.ts'
import { BLE_ADV_VECTORS } from './ble-adv.vectors.ts'
import { atcDecoder } from './atc.ts'
import { ATC_VECTORS } from './atc.vectors.ts'
import { bthomeDecoder } from './bthome.ts'
import { BTHOME_VECTORS } from './bthome.vectors.ts'
import { miBeaconDecoder } from './mibeacon.ts'
import { MIBEACON_VECTORS } from './mibeacon.vectors.ts'
import { ruuviDecoder } from './ruuvi.ts'
import { RUUVI_VECTORS } from './ruuvi.vectors.ts'
// LoRaWAN payload decoders
import { cayenneLpp } from './cayenne-lpp.ts'
import { CAYENNE_LPP_VECTORS } from './cayenne-lpp.vectors.ts'
import { lorawanDecoder } from './lorawan.ts'
import { LORAWAN_VECTORS } from './lorawan.vectors.ts'

// MQTT firmware formats
import { esphomeDecoder } from './esphome.ts'
import { ESPHOME_VECTORS } from './esphome.vectors.ts'
import { shellyDecoder } from './shelly.ts'
import { SHELLY_VECTORS } from './shelly.vectors.ts'
import { tasmotaDecoder } from './tasmota.ts'
import { TASMOTA_VECTORS } from './tasmota.vectors.ts'
export const DECODERS: readonly RegisteredDecoder[] = [
  // --- BLE ---
  { decoder: bthomeDecoder, vectors: BTHOME_VECTORS },
  { decoder: ruuviDecoder, vectors: RUUVI_VECTORS },
  { decoder: atcDecoder, vectors: ATC_VECTORS },
  { decoder: miBeaconDecoder, vectors: MIBEACON_VECTORS },
  // Raw advertisements (AD structures); dispatches to the entries above through the registry.
  { decoder: createBleAdvDecoder({ decodersFor: (f) => decodersFor(f), findDecoder: (id) => findDecoder(id) }), vectors: BLE_ADV_VECTORS },
  // --- LoRaWAN payloads ---
  { decoder: cayenneLpp, vectors: CAYENNE_LPP_VECTORS },
  { decoder: lorawanDecoder, vectors: LORAWAN_VECTORS },
  // --- MQTT firmware formats ---
  { decoder: tasmotaDecoder, vectors: TASMOTA_VECTORS },
  { decoder: esphomeDecoder, vectors: ESPHOME_VECTORS },
  { decoder: shellyDecoder, vectors: SHELLY_VECTORS },
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
