// The device-signature check used by the signature pool's threads
// (docs/device-protocol.md, "The signature"): the same decision as
// core/device-protocol.ts's DeviceVerifier, by the body's protocol version.
//
// Version 2 (magic 46 50 44 02): one OpenSSL ECDSA verification of (r, s)
// over SHA-256(body) with the registered key, imported once per thread as a
// KeyObject and cached (core's DeviceKeyCache and verifyV2WithKey: low s,
// v 27/28, v a recovery hint as core/proof.ts treats it).
//
// Version 1: true exactly when the 65-byte r || s || v is the EIP-191
// signature of the body by the registered key AND its v recovers that key,
// as core/proof.ts checks later — with the curve arithmetic around the
// OpenSSL verification made cheaper:
//
// - R_v (the point with x = r and y parity v) is decompressed by OpenSSL
//   (ECDH.convertKey), not by a square root in JS;
// - Q + c·G uses a per-thread table of j·256^i·G in affine coordinates
//   (32 windows × 255 points, built once, ~1 MB): at most 33 mixed
//   Jacobian–affine additions in plain BigInt arithmetic and one field
//   inversion, instead of noble's constant-time wNAF multiplication and two
//   inversions (about a third of the time). The time depends on how many
//   bytes of c are zero; c is a blinded value, not a key;
// - R_v + Z is one mixed addition;
// - the three scalar inversions share one (Montgomery's trick);
// - parsed public keys are cached per thread;
// - the EIP-191 digest uses the WebAssembly Keccak (core/hex.ts).
//
// The derivation (DeviceVerifier's comment in core/device-protocol.ts):
// pick a secret random z (Z = z·G), T = R_v + Z, r2 = x(T) mod n,
// s2 = r2·s/r, c = ((u1 + z)·s2 − e')/r2, Q' = Q + c·G with e' = SHA-256 of
// the empty string; OpenSSL accepts (r2, s2) under Q' iff P + Z = ±(R_v + Z)
// where P = u1·G + u2·Q, i.e. iff P = R_v (or P = −R_v − 2Z, which needs z).
// z is replaced every ROTATE_EVERY checks.

import { createHash, createPublicKey, ECDH, randomBytes, verify as cryptoVerify } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DeviceKeyCache, signedBodyVersion, verifyV2WithKey } from '../core/device-protocol.ts'
import { keccak256 } from '../core/hex.ts'

const N = secp256k1.CURVE.n
const Point = secp256k1.ProjectivePoint
type P = InstanceType<typeof Point>
const EMPTY = new Uint8Array(0)
const E_EMPTY = BigInt('0x' + createHash('sha256').update(EMPTY).digest('hex')) % N
const ROTATE_EVERY = 4096
/** DER SubjectPublicKeyInfo prefix for an uncompressed secp256k1 point (RFC 5480 §2, OID 1.3.132.0.10). */
const SPKI_PREFIX = Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex')
const KEY_CACHE = 4096
const utf8 = new TextEncoder()

/** keccak256("\x19Ethereum Signed Message:\n" + decimal(len) + body): core/proof.ts's hashPersonalMessage. */
function personalDigest(body: Uint8Array): Uint8Array {
  const prefix = utf8.encode(`\x19Ethereum Signed Message:\n${body.length}`)
  const buf = new Uint8Array(prefix.length + body.length)
  buf.set(prefix, 0)
  buf.set(body, prefix.length)
  return keccak256(buf)
}

const FP = secp256k1.CURVE.Fp.ORDER

/** Affine coordinates of j·256^i·G at [i·256 + j] (j = 0 unused), built once per thread. */
let tableX: bigint[] | undefined
let tableY: bigint[] = []

function baseTable(): bigint[] {
  if (tableX) return tableX
  const xs: bigint[] = []
  const ys: bigint[] = []
  let base = Point.BASE
  for (let i = 0; i < 32; i++) {
    const row: P[] = []
    let acc = Point.ZERO
    for (let j = 1; j < 256; j++) {
      acc = acc.add(base)
      row.push(acc)
    }
    xs.push(0n)
    ys.push(0n)
    for (const pt of Point.normalizeZ(row)) {
      const a = pt.toAffine()
      xs.push(a.x)
      ys.push(a.y)
    }
    base = acc.add(base)
  }
  tableY = ys
  tableX = xs
  return xs
}

/** Jacobian coordinates (x = X/Z², y = Y/Z³); never the point at infinity here. */
interface Jac {
  x: bigint
  y: bigint
  z: bigint
}

const fmod = (a: bigint): bigint => {
  const r = a % FP
  return r < 0n ? r + FP : r
}

/**
 * a += (x2, y2) affine (madd-2007-bl without the doubling case). Returns
 * false when the two points share x (equal or opposite): the caller falls
 * back to noble's arithmetic for that rare case.
 */
function addAffine(a: Jac, x2: bigint, y2: bigint): boolean {
  const z1z1 = (a.z * a.z) % FP
  const u2 = (x2 * z1z1) % FP
  const s2 = (((y2 * a.z) % FP) * z1z1) % FP
  const h = fmod(u2 - a.x)
  if (h === 0n) return false
  const r = fmod(s2 - a.y)
  const hh = (h * h) % FP
  const hhh = (h * hh) % FP
  const v = (a.x * hh) % FP
  const x3 = fmod(r * r - hhh - 2n * v)
  a.y = fmod(r * (v - x3) - a.y * hhh)
  a.x = x3
  a.z = (a.z * h) % FP
  return true
}

/** k·G + (ax, ay) as an affine point, or undefined for the point at infinity. */
function mulBaseAdd(k: bigint, add: { x: bigint; y: bigint } | undefined): { x: bigint; y: bigint } | undefined {
  const tx = baseTable()
  const ty = tableY
  let acc: Jac | undefined
  let ok = true
  for (let i = 0; i < 32 && ok; i++) {
    const j = Number((k >> BigInt(8 * i)) & 0xffn)
    if (j === 0) continue
    const at = i * 256 + j
    if (!acc) acc = { x: tx[at] as bigint, y: ty[at] as bigint, z: 1n }
    else ok = addAffine(acc, tx[at] as bigint, ty[at] as bigint)
  }
  if (ok && add) {
    if (!acc) return add
    ok = addAffine(acc, add.x, add.y)
  }
  if (!ok) {
    // Two partial sums with the same x: let noble's complete formulas decide.
    const kk = k % N
    let pt = kk === 0n ? Point.ZERO : Point.BASE.multiply(kk)
    if (add) pt = pt.add(Point.fromAffine(add))
    return pt.equals(Point.ZERO) ? undefined : pt.toAffine()
  }
  if (!acc) return undefined
  const zi = invert(acc.z, FP)
  const zi2 = (zi * zi) % FP
  return { x: (acc.x * zi2) % FP, y: (((acc.y * zi2) % FP) * zi) % FP }
}

/** k·G for 0 ≤ k < 2^256 (the point at infinity for k ≡ 0 mod n). */
export function multiplyBase(k: bigint): P {
  const a = mulBaseAdd(k, undefined)
  return a ? Point.fromAffine(a) : Point.ZERO
}

function mod(a: bigint, m = N): bigint {
  const r = a % m
  return r >= 0n ? r : r + m
}

function invert(a: bigint, m = N): bigint {
  let old = mod(a, m)
  let cur = m
  let x = 1n
  let y = 0n
  while (cur !== 0n) {
    const q = old / cur
    const nc = old - q * cur
    old = cur
    cur = nc
    const ny = x - q * y
    x = y
    y = ny
  }
  return mod(x, m)
}

const hex32 = (b: Uint8Array, at: number): bigint => BigInt('0x' + Buffer.from(b.buffer, b.byteOffset + at, 32).toString('hex'))

function put32(out: Buffer, at: number, v: bigint): void {
  out.write(v.toString(16).padStart(64, '0'), at, 'hex')
}

/**
 * Checks device signatures against registered public keys through
 * node:crypto (one instance per thread). Same decisions as
 * core/device-protocol.ts's DeviceVerifier, faster.
 */
export class FastDeviceVerifier {
  #z = 0n
  #Z: { x: bigint; y: bigint } = { x: 0n, y: 0n }
  #uses = ROTATE_EVERY
  readonly #keys = new Map<string, { x: bigint; y: bigint }>()
  readonly #keyObjects = new DeviceKeyCache(KEY_CACHE)

  #rotate(): void {
    for (;;) {
      const z = mod(BigInt('0x' + randomBytes(32).toString('hex')), N - 1n) + 1n
      const Z = mulBaseAdd(z, undefined)
      if (!Z) continue
      this.#z = z
      this.#Z = Z
      this.#uses = 0
      return
    }
  }

  #point(publicKey: Uint8Array): { x: bigint; y: bigint } {
    const k = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1')
    let q = this.#keys.get(k)
    if (!q) {
      q = Point.fromHex(publicKey).toAffine() // checks that it is on the curve
      if (this.#keys.size >= KEY_CACHE) this.#keys.clear()
      this.#keys.set(k, q)
    }
    return q
  }

  /**
   * True when `signature` is `publicKey`'s (65 bytes uncompressed) signature
   * of `body` under the body's protocol version: version 2, (r, s) over
   * SHA-256(body) with low s and v 27/28; version 1 (any other bytes), the
   * EIP-191 signature whose v recovers that key. Never throws.
   */
  verify(body: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
    if (signedBodyVersion(body) === 2) {
      const key = this.#keyObjects.get(publicKey)
      return key !== undefined && verifyV2WithKey(body, signature, key)
    }
    return this.verifyDigest(personalDigest(body), signature, publicKey)
  }

  /** verify() of version 1 for an EIP-191 digest already computed. Never throws. */
  verifyDigest(digest: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
    try {
      if (signature.length !== 65 || digest.length !== 32 || publicKey.length !== 65 || publicKey[0] !== 4) return false
      const v = signature[64] as number
      const parity = v === 27 || v === 28 ? v - 27 : v === 0 || v === 1 ? v : -1
      if (parity < 0) return false
      const r = hex32(signature, 0)
      const s = hex32(signature, 32)
      if (r <= 0n || r >= N || s <= 0n || s >= N) return false
      if (this.#uses++ >= ROTATE_EVERY) this.#rotate()
      const compressed = Buffer.allocUnsafe(33)
      compressed[0] = 2 + parity
      put32(compressed, 1, r)
      let rv: Buffer
      try {
        rv = ECDH.convertKey(compressed, 'secp256k1', undefined, undefined, 'uncompressed') as Buffer
      } catch {
        return false // r is not the x of any curve point
      }
      // T = R_v + Z, affine.
      const ry = hex32(rv, 33)
      const T: Jac = { x: r, y: ry, z: 1n }
      let tx: bigint
      if (addAffine(T, this.#Z.x, this.#Z.y)) {
        const tzi = invert(T.z, FP)
        tx = (T.x * ((tzi * tzi) % FP)) % FP
      } else {
        // R_v = ±Z (negligible unless z is known): noble's complete formulas.
        const t = Point.fromAffine({ x: r, y: ry }).add(Point.fromAffine(this.#Z))
        if (t.equals(Point.ZERO)) return false
        tx = t.toAffine().x
      }
      const r2 = mod(tx)
      if (r2 === 0n) return false
      // One inversion for 1/s, 1/r, 1/r2.
      const sr = mod(s * r)
      const inv = invert(mod(sr * r2))
      const invS = mod(inv * mod(r * r2))
      const invR = mod(inv * mod(s * r2))
      const invR2 = mod(inv * sr)
      const u1 = mod(mod(digestScalar(digest)) * invS)
      const s2 = mod(mod(r2 * s) * invR)
      if (s2 === 0n) return false
      const c = mod((mod(u1 + this.#z) * s2 - E_EMPTY) * invR2)
      const a = mulBaseAdd(c, this.#point(publicKey)) // Q' = Q + c·G
      if (!a) return false
      const der = Buffer.allocUnsafe(SPKI_PREFIX.length + 65)
      SPKI_PREFIX.copy(der, 0)
      der[SPKI_PREFIX.length] = 4
      put32(der, SPKI_PREFIX.length + 1, a.x)
      put32(der, SPKI_PREFIX.length + 33, a.y)
      const key = createPublicKey({ key: der, format: 'der', type: 'spki' })
      const sig2 = Buffer.allocUnsafe(64)
      put32(sig2, 0, r2)
      put32(sig2, 32, s2)
      return cryptoVerify('sha256', EMPTY, { key, dsaEncoding: 'ieee-p1363' }, sig2)
    } catch {
      return false
    }
  }
}

const digestScalar = (d: Uint8Array): bigint => hex32(d, 0)
