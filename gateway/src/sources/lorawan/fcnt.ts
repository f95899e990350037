// Uplink frame counter: rebuild the 32-bit FCnt from the 16 bits on air and
// refuse replays (LoRaWAN L2 1.0.4 §4.3.1.5; MAX_FCNT_GAP = 16384 as in the
// 1.0.x specifications up to 1.0.3, kept here as the acceptance window).
//
// The network keeps the last accepted 32-bit counter per session. A frame is
// new when its counter is ahead of that by 1..MAX_FCNT_GAP, counting across
// the 16-bit rollover (0xFFFF → 0x0000 adds 0x10000 to the high half).
// Usage: reconstruct → verify the MIC with the candidate → persist the
// candidate as the new last counter in the same transaction as the reading.

/** The largest forward jump accepted between two uplinks of one session. */
export const MAX_FCNT_GAP = 16384

export type FCntRejectCode = 'replay' | 'regression' | 'gap-too-large' | 'exhausted' | 'bad-input'

export type FCntResult =
  | {
      readonly ok: true
      /** The reconstructed 32-bit counter: what the MIC and cipher use, and what to persist. */
      readonly fcnt32: number
      /** Frames lost in between (0 for consecutive frames). */
      readonly missed: number
    }
  | { readonly ok: false; readonly code: FCntRejectCode; readonly reason: string }

/**
 * Reconstruct the 32-bit uplink FCnt.
 * @param fcnt16 the FCnt field of the frame (0..65535)
 * @param last the last accepted 32-bit counter of this session, or null when none was accepted yet
 *   (then the frame's 16 bits are taken as they are: a session starts at 0)
 * @example reconstructFCnt(0x0002, 0x1fffe) → { ok: true, fcnt32: 0x20002, missed: 3 }
 */
export function reconstructFCnt(fcnt16: number, last: number | null): FCntResult {
  if (!Number.isInteger(fcnt16) || fcnt16 < 0 || fcnt16 > 0xffff) return { ok: false, code: 'bad-input', reason: 'fcnt16 must be 0..65535' }
  if (last === null) return { ok: true, fcnt32: fcnt16, missed: fcnt16 }
  if (!Number.isInteger(last) || last < 0 || last > 0xffffffff) return { ok: false, code: 'bad-input', reason: 'last must be a uint32 or null' }
  const last16 = last & 0xffff
  const forward = (fcnt16 - last16 + 0x10000) % 0x10000
  if (forward === 0) return { ok: false, code: 'replay', reason: `FCnt ${last} was already accepted` }
  if (forward > MAX_FCNT_GAP) {
    const backward = 0x10000 - forward
    if (backward <= 0x8000) {
      return { ok: false, code: 'regression', reason: `FCnt ${fcnt16} is ${backward} behind the last accepted ${last16} (16-bit)` }
    }
    return { ok: false, code: 'gap-too-large', reason: `FCnt jumps ${forward} ahead, more than MAX_FCNT_GAP ${MAX_FCNT_GAP}` }
  }
  const fcnt32 = last + forward
  if (fcnt32 > 0xffffffff) return { ok: false, code: 'exhausted', reason: 'the 32-bit frame counter is exhausted: the device must rejoin' }
  return { ok: true, fcnt32, missed: forward - 1 }
}

/**
 * The next downlink counter (NFCntDown/AFCntDown in 1.0.x is one FCntDown):
 * last + 1, or 0 for a fresh session; undefined when exhausted.
 */
export function nextDownlinkFCnt(last: number | null): number | undefined {
  if (last === null) return 0
  if (!Number.isInteger(last) || last < 0 || last >= 0xffffffff) return undefined
  return last + 1
}
