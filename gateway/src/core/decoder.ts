// The decoder plugin shape. A decoder turns the bytes (or JSON text) of one
// frame into metrics with units. Pure and synchronous; it never throws on air
// data: every rejection is a value with a stable code and a reason.

import type { Metric } from './types.ts'

/**
 * Strict UTF-8 for payloads (malformed bytes throw; a leading BOM is
 * dropped). Made once: a TextDecoder per message costs more than decoding
 * a short payload. decode() without { stream } keeps no state between calls.
 */
export const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export type Transport = 'ble' | 'lorawan' | 'mqtt' | 'http'

/** What a decoder is routed by. The registry matches frames on these fields, never on vendor names in code. */
export interface FrameMatch {
  readonly transport: Transport
  /** BLE: 16-bit service data UUID, lowercase hex (e.g. 'fcd2' for BTHome). */
  readonly serviceDataUuid?: string
  /** BLE: Bluetooth SIG company id in manufacturer data (e.g. 0x0499 Ruuvi). */
  readonly manufacturerId?: number
  /** MQTT: topic pattern with + and # wildcards (e.g. 'tele/+/SENSOR'). */
  readonly topic?: string
}

/** One frame as a source hands it to a decoder. */
export interface RawFrame {
  readonly transport: Transport
  readonly bytes: Uint8Array
  /** MQTT topic the payload arrived on. */
  readonly topic?: string
  /** BLE MAC address, lowercase, colon-separated. */
  readonly mac?: string
  readonly serviceDataUuid?: string
  readonly manufacturerId?: number
  /** LoRaWAN FPort. */
  readonly fPort?: number
}

/** Per-call options: keys and hints (bind key, AppKey, ...). Never logged. */
export type DecodeOptions = Readonly<Record<string, string | undefined>>

export interface Decoded {
  readonly metrics: readonly Metric[]
  /** Format details worth keeping: packet id, counter, firmware flags, ... */
  readonly meta?: Readonly<Record<string, number | string | boolean>>
  /** The device's own timestamp, ms since the epoch, when the frame carries one. */
  readonly deviceTimeMs?: number
}

/** Stable, machine-readable causes of rejection; counted in /metrics per decoder and cause. */
export type DecodeFailureCode =
  | 'truncated'
  | 'malformed'
  | 'unsupported'
  | 'bad-mic'
  | 'replay'
  | 'missing-key'
  | 'out-of-range'
  | 'not-matched'

export type DecodeResult =
  | ({ readonly ok: true } & Decoded)
  | { readonly ok: false; readonly code: DecodeFailureCode; readonly reason: string }

export interface Decoder {
  /** Stable id: config, database rows, logs, `fieldproof decode <id>`. Lowercase, kebab-case. */
  readonly id: string
  readonly description: string
  readonly match: FrameMatch
  /** What input the CLI expects: bytes (hex/base64) or JSON text (MQTT formats, with --topic). */
  readonly input: 'bytes' | 'json'
  decode(frame: RawFrame, options?: DecodeOptions): DecodeResult
}

export function reject(code: DecodeFailureCode, reason: string): DecodeResult {
  return { ok: false, code, reason }
}

/**
 * Run a decoder so that nothing escapes: a throw is turned into a
 * `malformed` rejection. Sources call decoders through this.
 */
export function safeDecode(decoder: Decoder, frame: RawFrame, options?: DecodeOptions): DecodeResult {
  try {
    return decoder.decode(frame, options)
  } catch (e) {
    return reject('malformed', `decoder ${decoder.id} threw: ${e instanceof Error ? e.message : String(e)}`.slice(0, 300))
  }
}

/**
 * A published test vector for a decoder. `source` cites where it comes from
 * (spec section, another implementation's test file at a commit, a doc URL).
 */
export interface DecoderVector {
  readonly name: string
  readonly source: string
  /** Bytes as hex (for input: 'bytes') or the JSON text (for input: 'json'). */
  readonly input: string
  readonly frame?: Omit<Partial<RawFrame>, 'bytes'>
  readonly options?: DecodeOptions
  /** Expected metrics (compared with a small float tolerance) or the expected rejection code. */
  readonly expect:
    | { readonly ok: true; readonly metrics: readonly Metric[]; readonly meta?: Readonly<Record<string, number | string | boolean>> }
    | { readonly ok: false; readonly code: DecodeFailureCode }
}

/** A decoder with its vectors, as listed in the registry. */
export interface RegisteredDecoder {
  readonly decoder: Decoder
  readonly vectors: readonly DecoderVector[]
}
