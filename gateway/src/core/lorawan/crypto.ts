// LoRaWAN 1.0.x cryptography: AES-128 blocks, AES-CMAC (RFC 4493), the
// message integrity codes and the payload ciphers of the LoRaWAN L2 1.0.4
// specification (the same primitives as 1.0.3):
//   §4.3.3   FRMPayload encryption: AES-128 in counter-like mode over blocks A_i
//   §4.4     MIC of data frames: AES-CMAC over B0 | msg, first 4 bytes
//   §6.2     Join-request MIC (AppKey), Join-accept MIC and encryption
//            (the network *decrypts* with AppKey so that a device only needs
//            AES encrypt), and 1.0.x session key derivation
// Pure functions; keys are 16-byte AesKey values checked once by `aesKey()`.

import { createCipheriv, createDecipheriv } from 'node:crypto'

/** A 16-byte AES-128 key. Obtain one with `aesKey()`, which checks the length. */
export type AesKey = Uint8Array & { readonly __aesKey: true }

const HEX_RE = /^[0-9a-fA-F]*$/

/** Hex (even length, no 0x) to bytes; undefined when not hex. */
export function hexToBytes(hex: string): Uint8Array | undefined {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !HEX_RE.test(hex)) return undefined
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

export function bytesToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** A checked AES-128 key from 16 bytes or 32 hex characters; undefined otherwise. */
export function aesKey(input: Uint8Array | string): AesKey | undefined {
  const b = typeof input === 'string' ? hexToBytes(input) : input
  if (!(b instanceof Uint8Array) || b.length !== 16) return undefined
  return Uint8Array.from(b) as AesKey
}

function ecb(key: AesKey, data: Uint8Array, decrypt: boolean): Uint8Array {
  // Callers pass whole blocks only (checked below); the key type guarantees 16 bytes.
  if (data.length % 16 !== 0) throw new RangeError('AES-ECB input must be whole 16-byte blocks')
  const c = decrypt ? createDecipheriv('aes-128-ecb', key, null) : createCipheriv('aes-128-ecb', key, null)
  c.setAutoPadding(false)
  const out = Buffer.concat([c.update(data), c.final()])
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** AES-128-ECB encryption of whole 16-byte blocks. */
export function aesEncrypt(key: AesKey, blocks: Uint8Array): Uint8Array {
  return ecb(key, blocks, false)
}

/** AES-128-ECB decryption of whole 16-byte blocks. */
export function aesDecrypt(key: AesKey, blocks: Uint8Array): Uint8Array {
  return ecb(key, blocks, true)
}

// RFC 4493 §2.3: subkey generation by doubling in GF(2^128) with Rb = 0x87.
function dbl(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(16)
  let carry = 0
  for (let i = 15; i >= 0; i--) {
    const v = b[i] ?? 0
    out[i] = ((v << 1) | carry) & 0xff
    carry = v >>> 7
  }
  if ((b[0] ?? 0) & 0x80) out[15] = (out[15] ?? 0) ^ 0x87
  return out
}

/** AES-CMAC (RFC 4493 §2.4) of a message of any length; returns the 16-byte tag. */
export function aesCmac(key: AesKey, message: Uint8Array): Uint8Array {
  const l = aesEncrypt(key, new Uint8Array(16))
  const k1 = dbl(l)
  const k2 = dbl(k1)
  const n = message.length === 0 ? 1 : Math.ceil(message.length / 16)
  const complete = message.length > 0 && message.length % 16 === 0
  const last = new Uint8Array(16)
  const lastStart = (n - 1) * 16
  if (complete) {
    for (let i = 0; i < 16; i++) last[i] = (message[lastStart + i] ?? 0) ^ (k1[i] ?? 0)
  } else {
    const rem = message.length - lastStart
    for (let i = 0; i < 16; i++) {
      const m = i < rem ? (message[lastStart + i] ?? 0) : i === rem ? 0x80 : 0
      last[i] = m ^ (k2[i] ?? 0)
    }
  }
  // CBC-MAC over the blocks, the last one masked with K1 or K2 (RFC 4493 §2.4 steps 5-6).
  let x: Uint8Array = new Uint8Array(16)
  const y = new Uint8Array(16)
  for (let b = 0; b < n - 1; b++) {
    for (let i = 0; i < 16; i++) y[i] = (x[i] ?? 0) ^ (message[b * 16 + i] ?? 0)
    x = aesEncrypt(key, y)
  }
  for (let i = 0; i < 16; i++) y[i] = (x[i] ?? 0) ^ (last[i] ?? 0)
  return aesEncrypt(key, y)
}

/** Constant-time comparison of two byte strings (false when the lengths differ). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0)
  return d === 0
}

/** Frame direction as it enters B0 and A_i: 0 uplink, 1 downlink (LoRaWAN 1.0.4 §4.3.3, §4.4). */
export type Direction = 'up' | 'down'

function writeU32le(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff
  b[off + 1] = (v >>> 8) & 0xff
  b[off + 2] = (v >>> 16) & 0xff
  b[off + 3] = (v >>> 24) & 0xff
}

/**
 * MIC of a data frame (LoRaWAN 1.0.4 §4.4): AES-CMAC(NwkSKey, B0 | msg)[0..3] with
 * B0 = 0x49 | 4×0x00 | Dir | DevAddr (LE) | FCnt (32-bit, LE) | 0x00 | len(msg),
 * msg = MHDR | FHDR | FPort | FRMPayload (the PHYPayload without its MIC).
 */
export function dataMic(nwkSKey: AesKey, dir: Direction, devAddr: number, fcnt32: number, msg: Uint8Array): Uint8Array {
  const b0 = new Uint8Array(16)
  b0[0] = 0x49
  b0[5] = dir === 'up' ? 0 : 1
  writeU32le(b0, 6, devAddr >>> 0)
  writeU32le(b0, 10, fcnt32 >>> 0)
  b0[15] = msg.length & 0xff
  const all = new Uint8Array(16 + msg.length)
  all.set(b0, 0)
  all.set(msg, 16)
  return aesCmac(nwkSKey, all).subarray(0, 4)
}

/**
 * FRMPayload encryption and decryption (the same operation; LoRaWAN 1.0.4 §4.3.3):
 * S = aes128_encrypt(K, A_1) | aes128_encrypt(K, A_2) | ..., A_i = 0x01 | 4×0x00 |
 * Dir | DevAddr (LE) | FCnt (LE) | 0x00 | i; the payload is XORed with S.
 * K is the AppSKey for FPort > 0 and the NwkSKey for FPort 0.
 */
export function cryptFrmPayload(key: AesKey, dir: Direction, devAddr: number, fcnt32: number, payload: Uint8Array): Uint8Array {
  const k = Math.ceil(payload.length / 16)
  if (k === 0) return new Uint8Array(0)
  const a = new Uint8Array(16 * k)
  for (let i = 0; i < k; i++) {
    const o = 16 * i
    a[o] = 0x01
    a[o + 5] = dir === 'up' ? 0 : 1
    writeU32le(a, o + 6, devAddr >>> 0)
    writeU32le(a, o + 10, fcnt32 >>> 0)
    a[o + 15] = (i + 1) & 0xff
  }
  const s = aesEncrypt(key, a)
  const out = new Uint8Array(payload.length)
  for (let i = 0; i < payload.length; i++) out[i] = (payload[i] ?? 0) ^ (s[i] ?? 0)
  return out
}

/** Join-request MIC (LoRaWAN 1.0.4 §6.2): AES-CMAC(AppKey, MHDR | JoinEUI | DevEUI | DevNonce)[0..3]. */
export function joinRequestMic(appKey: AesKey, msg: Uint8Array): Uint8Array {
  return aesCmac(appKey, msg).subarray(0, 4)
}

/**
 * Join-accept MIC for 1.0.x (LoRaWAN 1.0.4 §6.2): AES-CMAC(AppKey, MHDR | JoinNonce |
 * NetID | DevAddr | DLSettings | RxDelay | CFList)[0..3].
 */
export function joinAcceptMic(appKey: AesKey, msg: Uint8Array): Uint8Array {
  return aesCmac(appKey, msg).subarray(0, 4)
}

/**
 * Encrypt a join-accept body (everything after MHDR, MIC included: 16 or 32 bytes)
 * the way the network does: with AES *decrypt* (LoRaWAN 1.0.4 §6.2), so that a device
 * recovers it with AES encrypt alone.
 */
export function encryptJoinAcceptBody(appKey: AesKey, body: Uint8Array): Uint8Array {
  return aesDecrypt(appKey, body)
}

/** What a device does to a received join-accept body: AES encrypt (the inverse of `encryptJoinAcceptBody`). */
export function decryptJoinAcceptBody(appKey: AesKey, body: Uint8Array): Uint8Array {
  return aesEncrypt(appKey, body)
}

/** The 1.0.x session keys. */
export interface SessionKeys {
  readonly nwkSKey: AesKey
  readonly appSKey: AesKey
}

/**
 * 1.0.x session key derivation (LoRaWAN 1.0.4 §6.2):
 * NwkSKey = aes128_encrypt(AppKey, 0x01 | JoinNonce | NetID | DevNonce | pad16),
 * AppSKey = aes128_encrypt(AppKey, 0x02 | JoinNonce | NetID | DevNonce | pad16);
 * JoinNonce and NetID are 3 bytes, DevNonce 2 bytes, all little-endian.
 */
export function deriveSessionKeys10(appKey: AesKey, joinNonce: number, netId: number, devNonce: number): SessionKeys {
  const block = (tag: number): Uint8Array => {
    const b = new Uint8Array(16)
    b[0] = tag
    b[1] = joinNonce & 0xff
    b[2] = (joinNonce >>> 8) & 0xff
    b[3] = (joinNonce >>> 16) & 0xff
    b[4] = netId & 0xff
    b[5] = (netId >>> 8) & 0xff
    b[6] = (netId >>> 16) & 0xff
    b[7] = devNonce & 0xff
    b[8] = (devNonce >>> 8) & 0xff
    return b
  }
  return {
    nwkSKey: aesEncrypt(appKey, block(0x01)) as AesKey,
    appSKey: aesEncrypt(appKey, block(0x02)) as AesKey,
  }
}
