// Domain types shared by every layer. No I/O, no imports of adapters.

/** Where a reading entered the gateway. Stable ids: stored, logged, encoded. */
export const SOURCE_KINDS = ['sim', 'http', 'mqtt', 'lorawan', 'ble', 'gpio', 'nodered'] as const
export type SourceKind = (typeof SOURCE_KINDS)[number]

/**
 * State of the wall clock when a reading arrived (invariant 7). The Pi has
 * no RTC: order comes from the sequence, the wall time is evidence only.
 */
export const CLOCK_STATES = ['unsynchronized', 'ntp', 'gps', 'rtc'] as const
export type ClockState = (typeof CLOCK_STATES)[number]

/** When the gateway received a reading: boot id + monotonic time + wall time + clock state. */
export interface ReceiveTime {
  /** This boot's id (16 bytes, hex without 0x; /proc/sys/kernel/random/boot_id without dashes). */
  readonly bootId: string
  /** Monotonic nanoseconds since boot (process.hrtime.bigint() or CLOCK_BOOTTIME). */
  readonly monoNs: bigint
  /** Wall clock, ms since the Unix epoch, as the gateway saw it. */
  readonly wallMs: number
  readonly clock: ClockState
}

/** One measured value. `name` and `unit` come from the registry in units.ts. */
export interface Metric {
  readonly name: string
  readonly unit: string
  readonly value: number
}

/** Radio metadata (rssi, snr, frequency, gateway EUI, ...): flat, scalar values only. */
export type RadioMeta = Readonly<Record<string, number | string>>

/**
 * How a reading was authenticated (invariant 9). A verifier reads this to
 * know what the gateway could and could not check.
 */
export type ReadingAuth =
  | { readonly kind: 'none' }
  /** The device signed `raw` with its secp256k1 key; `signature` is 65 bytes r||s||v (hex). */
  | {
      readonly kind: 'device-signature'
      readonly address: `0x${string}`
      readonly counter: bigint
      readonly signature: `0x${string}`
    }
  /** A LoRaWAN frame whose MIC this gateway checked with keys it holds ("session" trust mode). */
  | { readonly kind: 'lorawan-mic'; readonly devAddr: number; readonly fcnt: number }
  /** An encrypted BTHome advertisement decrypted (AES-CCM, MIC checked) with the device's bind key. */
  | { readonly kind: 'bthome-encryption'; readonly counter: number }
  /** A client that logged in to our MQTT broker with its own credentials. */
  | { readonly kind: 'mqtt-credentials'; readonly username: string }
  /** An HTTP client holding a bearer token; `tokenId` names the token, never its secret. */
  | { readonly kind: 'http-token'; readonly tokenId: string }
  /**
   * A BLE advertisement (other than BTHome, which has its own kind) decrypted
   * with the device's bind key, its AES-CCM tag verified: `scheme` names the
   * format (MiBeacon v4/v5, pvvx encrypted custom format) and `counter` is the
   * frame's replay counter (MiBeacon: 32 bits, extended counter << 8 | frame
   * counter; pvvx: 8 bits).
   */
  | { readonly kind: 'ble-aes-ccm'; readonly scheme: BleCcmScheme; readonly counter: number }

/** Encrypted BLE formats covered by auth kind `ble-aes-ccm` (encoded as a u8 index: append only). */
export const BLE_CCM_SCHEMES = ['mibeacon', 'pvvx'] as const
export type BleCcmScheme = (typeof BLE_CCM_SCHEMES)[number]

export type AuthKind = ReadingAuth['kind']
export const AUTH_KINDS: readonly AuthKind[] = [
  'none',
  'device-signature',
  'lorawan-mic',
  'bthome-encryption',
  'mqtt-credentials',
  'http-token',
  'ble-aes-ccm',
]

/** A reading before it is sequenced: what sources and decoders produce. */
export interface Reading {
  /** Stable device id, `[A-Za-z0-9._:@/-]{1,128}` (e.g. `sim-th-01`, `ble:a4c138000001`). */
  readonly deviceId: string
  readonly source: SourceKind
  readonly received: ReceiveTime
  /** The device's own timestamp, ms since the epoch, when it sent one. */
  readonly deviceTimeMs?: number
  /** Measured values; names unique within a reading. May be empty (a radio witness). */
  readonly metrics: readonly Metric[]
  readonly radio?: RadioMeta
  /** The bytes as received (air payload, MQTT payload, ...), when kept. */
  readonly raw?: Uint8Array
  readonly auth: ReadingAuth
}

/** A reading after the sequencer: durable, numbered, hashed. */
export interface StoredReading {
  readonly seq: bigint
  readonly reading: Reading
  /** Canonical encoding (docs/canonical-encoding.md). */
  readonly canonical: Uint8Array
  /** Merkle leaf: OpenZeppelin StandardMerkleTree leaf of (uint64 seq, bytes32 keccak256(canonical)). */
  readonly leaf: Uint8Array
  readonly batchId: bigint | null
}

export type Hex = `0x${string}`

/** The header every batch carries; signed as EIP-712 typed data by the gateway key. */
export interface BatchHeader {
  /** Gateway address (EIP-55). */
  readonly gateway: Hex
  /** 1, 2, 3, ... per gateway. */
  readonly batchId: bigint
  readonly firstSeq: bigint
  readonly lastSeq: bigint
  readonly count: number
  /** Root of the OpenZeppelin-compatible Merkle tree over the batch's leaves. */
  readonly merkleRoot: Hex
  /** EIP-712 hash of the previous batch header; 32 zero bytes for batch 1. */
  readonly prevBatchHash: Hex
  /** Wall clock when sealed, ms since the epoch (evidence only; order comes from ids). */
  readonly sealedAtMs: bigint
}

export interface SignedBatch {
  readonly header: BatchHeader
  /** EIP-712 hash of the header: what the next batch links to. */
  readonly hash: Hex
  /** 65-byte secp256k1 signature over `hash`. */
  readonly signature: Hex
}
