// Every registered decoder with its published vectors (decoders/<id>.vectors.ts):
// what the conformance tests and `fieldproof decode --list` use. Kept apart
// from the registry (index.ts) so the running gateway never loads them.

import type { DecoderVector, RegisteredDecoder } from '../core/decoder.ts'
import { ATC_VECTORS } from './atc.vectors.ts'
import { BLE_ADV_VECTORS } from './ble-adv.vectors.ts'
import { BTHOME_VECTORS } from './bthome.vectors.ts'
import { CAYENNE_LPP_VECTORS } from './cayenne-lpp.vectors.ts'
import { ESPHOME_VECTORS } from './esphome.vectors.ts'
import { DECODERS } from './index.ts'
import { LORAWAN_VECTORS } from './lorawan.vectors.ts'
import { MIBEACON_VECTORS } from './mibeacon.vectors.ts'
import { RUUVI_VECTORS } from './ruuvi.vectors.ts'
import { SHELLY_VECTORS } from './shelly.vectors.ts'
import { TASMOTA_VECTORS } from './tasmota.vectors.ts'

const BY_ID: Readonly<Record<string, readonly DecoderVector[]>> = {
  bthome: BTHOME_VECTORS,
  ruuvi: RUUVI_VECTORS,
  atc: ATC_VECTORS,
  mibeacon: MIBEACON_VECTORS,
  ble: BLE_ADV_VECTORS,
  'cayenne-lpp': CAYENNE_LPP_VECTORS,
  lorawan: LORAWAN_VECTORS,
  tasmota: TASMOTA_VECTORS,
  esphome: ESPHOME_VECTORS,
  shelly: SHELLY_VECTORS,
}

/** The registry in its order, each decoder with its vectors (none: the conformance test fails). */
export const DECODER_VECTORS: readonly RegisteredDecoder[] = DECODERS.map(({ decoder }) => ({ decoder, vectors: BY_ID[decoder.id] ?? [] }))
