// Join server logic for LoRaWAN 1.0.3 and 1.0.4 over-the-air activation
// (LoRaWAN L2 1.0.4 §6.2: Join-request, Join-accept, session keys; 1.0.3 §6.2.4
// for DevNonce). Pure functions over explicit state: nothing here stores or
// sends; the caller persists what the result says, in one transaction,
// before the join-accept goes on air.
//
// DevNonce rules:
//   1.0.3  DevNonce is random; the server refuses any value it has seen from
//          this device (it keeps the used values: at most 65536 of them).
//   1.0.4  DevNonce is a counter from 0 that the device never reuses; the
//          server ignores a join-request whose DevNonce is not greater than
//          the last one accepted (strictly increasing).
// JoinNonce (AppNonce) is a 24-bit counter per device for both versions
// (required by 1.0.4, allowed by 1.0.3): last + 1, never reused.

import { type AesKey, aesKey, deriveSessionKeys10 } from '../../core/lorawan/crypto.ts'
import { type JoinRequestFrame, buildJoinAccept, normalizeEui, parsePhyPayload, verifyJoinRequestMic } from '../../core/lorawan/phy.ts'

/** What the registry holds about a device for joins. */
export interface JoinDevice {
  readonly devEui: string
  readonly joinEui: string
  /** 16 bytes or 32 hex digits. */
  readonly appKey: AesKey | Uint8Array | string
  readonly lorawanVersion: '1.0.3' | '1.0.4'
  /** 1.0.3: every DevNonce accepted so far. For 1.0.4 its maximum is used if `lastDevNonce` is absent. */
  readonly usedDevNonces?: readonly number[]
  /** 1.0.4: the last DevNonce accepted, null before the first join. */
  readonly lastDevNonce?: number | null
  /** The last JoinNonce sent, null before the first join. */
  readonly lastJoinNonce?: number | null
}

/** Network-side parameters of a join. */
export interface JoinContext {
  /** 24-bit NetID (0x000000 and 0x000001 are the experimental/private ones). */
  readonly netId: number
  /** Called once, only when the join is accepted, for the new session's DevAddr. */
  readonly allocateDevAddr: () => number
  /** DLSettings.RX1DROffset (default 0). */
  readonly rx1DrOffset?: number
  /** DLSettings.RX2DataRate (default: the region's RX2 data rate, passed by the caller; 0 when omitted). */
  readonly rx2DataRate?: number
  /** RxDelay in seconds (default 1, RECEIVE_DELAY1). */
  readonly rxDelayS?: number
  /** CFList (16 bytes), e.g. `encodeCfListFrequencies(EU868_CFLIST_FREQS_HZ)`. */
  readonly cfList?: Uint8Array
}

export type JoinRejectCode =
  | 'malformed'
  | 'not-join-request'
  | 'eui-mismatch'
  | 'bad-key'
  | 'bad-mic'
  | 'devnonce-replay'
  | 'joinnonce-exhausted'
  | 'bad-devaddr'
  | 'bad-context'

export interface JoinAccepted {
  readonly ok: true
  readonly devAddr: number
  readonly nwkSKey: AesKey
  readonly appSKey: AesKey
  /** The encrypted join-accept PHYPayload, ready for a txpk at JOIN_ACCEPT_DELAY1/2. */
  readonly joinAccept: Uint8Array
  readonly devNonce: number
  readonly joinNonce: number
  /** State to persist: the new DevNonce history (1.0.3) or last value (1.0.4), and the JoinNonce. */
  readonly nextState: {
    readonly usedDevNonces?: readonly number[]
    readonly lastDevNonce: number
    readonly lastJoinNonce: number
  }
  /** The new session starts with both frame counters unset (first uplink FCnt is taken as sent). */
  readonly rx1DrOffset: number
  readonly rx2DataRate: number
  readonly rxDelayS: number
}

export type JoinResult = JoinAccepted | { readonly ok: false; readonly code: JoinRejectCode; readonly reason: string }

function reject(code: JoinRejectCode, reason: string): JoinResult {
  return { ok: false, code, reason }
}

/**
 * Handle a join-request for a known device. `frame` is the raw PHYPayload or an
 * already parsed join-request. Checks, in order: frame shape, EUIs, MIC (AppKey),
 * DevNonce freshness; then derives the session keys and builds the join-accept.
 * A bad MIC is checked before the DevNonce so a forged frame cannot probe the history.
 */
export function handleJoinRequest(device: JoinDevice, frame: Uint8Array | JoinRequestFrame, ctx: JoinContext): JoinResult {
  let jr: JoinRequestFrame
  if (frame instanceof Uint8Array) {
    const p = parsePhyPayload(frame)
    if (!p.ok) return reject('malformed', `${p.code}: ${p.reason}`)
    if (p.frame.kind !== 'join-request') return reject('not-join-request', `frame is ${p.frame.kind}`)
    jr = p.frame
  } else {
    jr = frame
  }
  const devEui = normalizeEui(device.devEui)
  const joinEui = normalizeEui(device.joinEui)
  if (devEui === undefined || joinEui === undefined) return reject('bad-context', 'device EUIs must be 16 hex digits')
  if (jr.devEui !== devEui || jr.joinEui !== joinEui) return reject('eui-mismatch', `join-request is for DevEUI ${jr.devEui} JoinEUI ${jr.joinEui}`)
  const appKey = aesKey(device.appKey)
  if (!appKey) return reject('bad-key', 'AppKey must be 16 bytes')
  if (!verifyJoinRequestMic(jr, appKey)) return reject('bad-mic', 'join-request MIC does not match the AppKey')

  const devNonce = jr.devNonce
  const used = device.usedDevNonces ?? []
  let nextUsed: number[] | undefined
  if (device.lorawanVersion === '1.0.4') {
    const last = device.lastDevNonce ?? (used.length > 0 ? Math.max(...used) : null)
    if (last !== null && devNonce <= last) return reject('devnonce-replay', `DevNonce ${devNonce} is not greater than the last accepted ${last}`)
  } else {
    if (used.includes(devNonce)) return reject('devnonce-replay', `DevNonce ${devNonce} was already used`)
    nextUsed = [...used, devNonce]
  }

  const lastJoinNonce = device.lastJoinNonce ?? null
  const joinNonce = lastJoinNonce === null ? 0 : lastJoinNonce + 1
  if (!Number.isInteger(joinNonce) || joinNonce < 0 || joinNonce > 0xffffff) return reject('joinnonce-exhausted', 'the 24-bit JoinNonce is exhausted')
  if (!Number.isInteger(ctx.netId) || ctx.netId < 0 || ctx.netId > 0xffffff) return reject('bad-context', 'netId must be 24 bits')

  const rx1DrOffset = ctx.rx1DrOffset ?? 0
  const rx2DataRate = ctx.rx2DataRate ?? 0
  const rxDelayS = ctx.rxDelayS ?? 1
  let devAddr: number
  try {
    devAddr = ctx.allocateDevAddr()
  } catch (e) {
    return reject('bad-devaddr', `DevAddr allocation failed: ${e instanceof Error ? e.message.slice(0, 120) : 'error'}`)
  }
  if (!Number.isInteger(devAddr) || devAddr < 0 || devAddr > 0xffffffff) return reject('bad-devaddr', 'allocated DevAddr is not a uint32')

  const built = buildJoinAccept(
    { joinNonce, netId: ctx.netId, devAddr, rx1DrOffset, rx2DataRate, rxDelayS, ...(ctx.cfList ? { cfList: ctx.cfList } : {}) },
    appKey,
  )
  if (!built.ok) return reject('bad-context', built.reason)
  const keys = deriveSessionKeys10(appKey, joinNonce, ctx.netId, devNonce)
  return {
    ok: true,
    devAddr,
    nwkSKey: keys.nwkSKey,
    appSKey: keys.appSKey,
    joinAccept: built.bytes,
    devNonce,
    joinNonce,
    nextState: { ...(nextUsed ? { usedDevNonces: nextUsed } : {}), lastDevNonce: devNonce, lastJoinNonce: joinNonce },
    rx1DrOffset,
    rx2DataRate,
    rxDelayS,
  }
}

/**
 * A DevAddr for a type 0 NetID (LoRaWAN Backend Interfaces TS002, DevAddr assignment):
 * prefix bit 0, the 6-bit NwkID (the NetID's 6 low bits), then a 25-bit NwkAddr.
 * Undefined when the NetID is not type 0 or NwkAddr does not fit 25 bits.
 */
export function devAddrForNetIdType0(netId: number, nwkAddr: number): number | undefined {
  if (!Number.isInteger(netId) || netId < 0 || netId > 0xffffff || netId >>> 21 !== 0) return undefined
  if (!Number.isInteger(nwkAddr) || nwkAddr < 0 || nwkAddr > 0x1ffffff) return undefined
  return (((netId & 0x3f) << 25) | nwkAddr) >>> 0
}
