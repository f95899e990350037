// Release bundles (docs/updates.md): one file holding a gateway release (a
// slot directory) and an Ed25519 signature (RFC 8032, via node:crypto) over
// its manifest, which lists the SHA-256 of every file.
//
// Layout, all integers big-endian:
//
//   magic      8 bytes  "FPRELv1\n"
//   mlen       u32      length of the manifest
//   manifest   mlen     UTF-8 JSON, see ReleaseManifest
//   slen       u16      length of the signature (64)
//   signature  slen     Ed25519 over SIGNING_CONTEXT ‖ manifest bytes
//   payload             the files' bytes, concatenated in manifest order
//
// The manifest names each entry's path (relative, "/"-separated, no "." or
// ".." parts), kind (file or symlink), mode (0644 or 0755), size and sha256,
// or a symlink's target (relative, staying inside the slot). The payload
// must be exactly the sum of the sizes. Verifying a bundle = the signature
// with a trusted key, then every file's hash, all before anything is
// written.

import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, writeSync } from 'node:fs'
import { join, posix, relative, sep } from 'node:path'

export const BUNDLE_MAGIC = Buffer.from('FPRELv1\n', 'latin1')
/** Domain separation: a signature over a manifest cannot be replayed as any other signed message. */
export const SIGNING_CONTEXT = Buffer.from('fieldproof-release-manifest-v1\0', 'latin1')
export const MANIFEST_FORMAT = 'fieldproof-release/1'
const MAX_MANIFEST = 64 * 1024 * 1024
const CHUNK = 1024 * 1024

/** One entry of a release. */
export type ManifestEntry =
  | { readonly path: string; readonly kind: 'file'; readonly mode: 0o644 | 0o755; readonly size: number; readonly sha256: string }
  | { readonly path: string; readonly kind: 'symlink'; readonly target: string }

/** The signed description of a release. */
export interface ReleaseManifest {
  readonly format: typeof MANIFEST_FORMAT
  /** RELEASE.json's version (the gateway's package version). */
  readonly version: string
  readonly commit: string
  readonly builtAt: string
  readonly entries: readonly ManifestEntry[]
}

/** A bundle whose header parsed; its files not yet checked. */
export interface OpenedBundle {
  readonly manifest: ReleaseManifest
  readonly manifestBytes: Buffer
  readonly signature: Buffer
  /** Offset of the payload in the file. */
  readonly payloadOffset: number
  readonly fileSize: number
}

/** A refusal, with the reason a person can act on. */
export class BundleError extends Error {
  override readonly name = 'BundleError'
}

/** A path inside the slot: relative, normalized, "/"-separated. */
export function safeRelativePath(p: string): boolean {
  if (p === '' || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return false
  return p.split('/').every((part) => part !== '' && part !== '.' && part !== '..')
}

/** A symlink target that stays inside the slot when resolved from the link's directory. */
export function safeLinkTarget(linkPath: string, target: string): boolean {
  if (target === '' || target.startsWith('/') || target.includes('\0')) return false
  const resolved = posix.normalize(posix.join(posix.dirname(linkPath), target))
  return resolved !== '..' && !resolved.startsWith('../') && !resolved.startsWith('/')
}

function validateManifest(m: unknown): ReleaseManifest {
  const bad = (why: string): never => {
    throw new BundleError(`invalid manifest: ${why}`)
  }
  if (typeof m !== 'object' || m === null) bad('not an object')
  const o = m as Record<string, unknown>
  if (o['format'] !== MANIFEST_FORMAT) bad(`format is ${JSON.stringify(o['format'])}, expected "${MANIFEST_FORMAT}"`)
  for (const k of ['version', 'commit', 'builtAt']) if (typeof o[k] !== 'string' || o[k] === '') bad(`${k} missing`)
  if (!/^[0-9A-Za-z.+-]{1,64}$/.test(o['version'] as string)) bad('version has unexpected characters')
  if (!Array.isArray(o['entries'])) bad('entries missing')
  const seen = new Set<string>()
  for (const e of o['entries'] as unknown[]) {
    const x = e as Record<string, unknown>
    const path = x['path']
    if (typeof path !== 'string' || !safeRelativePath(path)) bad(`unsafe path ${JSON.stringify(path)}`)
    if (seen.has(path as string)) bad(`duplicate path ${path as string}`)
    seen.add(path as string)
    if (x['kind'] === 'file') {
      if (x['mode'] !== 0o644 && x['mode'] !== 0o755) bad(`${path as string}: mode must be 0644 or 0755`)
      if (typeof x['size'] !== 'number' || !Number.isSafeInteger(x['size']) || x['size'] < 0) bad(`${path as string}: bad size`)
      if (typeof x['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(x['sha256'])) bad(`${path as string}: bad sha256`)
    } else if (x['kind'] === 'symlink') {
      if (typeof x['target'] !== 'string' || !safeLinkTarget(path as string, x['target'])) bad(`${path as string}: symlink leaves the slot`)
    } else bad(`${path as string}: unknown kind`)
  }
  // A file below a symlink would be written through it.
  const links = [...(o['entries'] as ManifestEntry[])].filter((e) => e.kind === 'symlink').map((e) => e.path + '/')
  for (const e of o['entries'] as ManifestEntry[]) if (links.some((l) => e.path.startsWith(l))) bad(`${e.path} is below a symlink`)
  return m as ReleaseManifest
}

function readExactly(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len)
  let off = 0
  while (off < len) {
    const n = readSync(fd, b, off, len - off, pos + off)
    if (n === 0) throw new BundleError('truncated bundle')
    off += n
  }
  return b
}

/** Read and check a bundle's header (magic, manifest, signature length). */
export function openBundle(path: string): OpenedBundle {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    if (size < BUNDLE_MAGIC.length + 6) throw new BundleError('not a release bundle (too short)')
    if (!readExactly(fd, BUNDLE_MAGIC.length, 0).equals(BUNDLE_MAGIC)) throw new BundleError('not a release bundle (bad magic)')
    let pos = BUNDLE_MAGIC.length
    const mlen = readExactly(fd, 4, pos).readUInt32BE(0)
    pos += 4
    if (mlen === 0 || mlen > MAX_MANIFEST || pos + mlen + 2 > size) throw new BundleError('not a release bundle (bad manifest length)')
    const manifestBytes = readExactly(fd, mlen, pos)
    pos += mlen
    const slen = readExactly(fd, 2, pos).readUInt16BE(0)
    pos += 2
    if (slen !== 64 || pos + slen > size) throw new BundleError('not a release bundle (bad signature length)')
    const signature = readExactly(fd, slen, pos)
    pos += slen
    let manifest: unknown
    try {
      manifest = JSON.parse(manifestBytes.toString('utf8'))
    } catch (e) {
      throw new BundleError(`invalid manifest: ${(e as Error).message}`)
    }
    return { manifest: manifest as ReleaseManifest, manifestBytes, signature, payloadOffset: pos, fileSize: size }
  } finally {
    closeSync(fd)
  }
}

/** Load an Ed25519 public key (PEM, SPKI). */
export function loadPublicKey(pem: string): KeyObject {
  const k = createPublicKey(pem)
  if (k.asymmetricKeyType !== 'ed25519') throw new BundleError(`not an Ed25519 public key (${String(k.asymmetricKeyType)})`)
  return k
}

/**
 * Check the signature with the trusted keys, then the manifest, then every
 * file's size and SHA-256, reading the bundle only. Returns the manifest
 * and the name of the key that signed it.
 *
 * @throws BundleError naming what failed.
 */
export function verifyBundle(path: string, keys: readonly { name: string; key: KeyObject }[]): { bundle: OpenedBundle; manifest: ReleaseManifest; keyName: string } {
  const b = openBundle(path)
  if (keys.length === 0) throw new BundleError('no trusted release key to check the signature with')
  const signed = Buffer.concat([SIGNING_CONTEXT, b.manifestBytes])
  const by = keys.find((k) => verify(null, signed, k.key, b.signature))
  if (!by) throw new BundleError(`the signature does not verify with any trusted release key (${keys.map((k) => k.name).join(', ')})`)
  const manifest = validateManifest(b.manifest)
  const total = manifest.entries.reduce((s, e) => s + (e.kind === 'file' ? e.size : 0), 0)
  if (b.payloadOffset + total !== b.fileSize) throw new BundleError(`payload is ${b.fileSize - b.payloadOffset} bytes, the manifest lists ${total}`)
  readPayload(path, b, manifest, (e, read) => {
    const h = createHash('sha256')
    read((chunk) => h.update(chunk))
    if (h.digest('hex') !== e.sha256) throw new BundleError(`${e.path}: content does not match its SHA-256 in the signed manifest`)
  })
  return { bundle: b, manifest, keyName: by.name }
}

/** Call `write(entry, chunk)` with each file's bytes in order (after verifyBundle). */
export function readPayload(path: string, b: OpenedBundle, manifest: ReleaseManifest, onFile: (e: Extract<ManifestEntry, { kind: 'file' }>, read: (sink: (chunk: Buffer) => void) => void) => void): void {
  const fd = openSync(path, 'r')
  try {
    let pos = b.payloadOffset
    const buf = Buffer.alloc(CHUNK)
    for (const e of manifest.entries) {
      if (e.kind !== 'file') continue
      const start = pos
      onFile(e, (sink) => {
        let p = start
        let left = e.size
        while (left > 0) {
          const n = readSync(fd, buf, 0, Math.min(CHUNK, left), p)
          if (n === 0) throw new BundleError('truncated bundle')
          sink(buf.subarray(0, n))
          p += n
          left -= n
        }
      })
      pos += e.size
    }
  } finally {
    closeSync(fd)
  }
}

/** Entries of a slot directory, sorted, with hashes (the build side). */
export function scanSlot(dir: string): ManifestEntry[] {
  const out: ManifestEntry[] = []
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name)
      const rel = relative(dir, p).split(sep).join('/')
      const st = lstatSync(p)
      if (st.isDirectory()) walk(p)
      else if (st.isSymbolicLink()) out.push({ path: rel, kind: 'symlink', target: readlinkSync(p) })
      else if (st.isFile()) {
        const h = createHash('sha256')
        const fd = openSync(p, 'r')
        try {
          const buf = Buffer.alloc(CHUNK)
          let n: number
          let pos = 0
          while ((n = readSync(fd, buf, 0, CHUNK, pos)) > 0) {
            h.update(buf.subarray(0, n))
            pos += n
          }
        } finally {
          closeSync(fd)
        }
        out.push({ path: rel, kind: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, size: st.size, sha256: h.digest('hex') })
      } else throw new BundleError(`${rel}: not a regular file, directory or symlink`)
    }
  }
  walk(dir)
  return out
}

/** Write a signed bundle of `slotDir` to `outPath` (the build side: scripts/build-release.ts). */
export function writeBundle(slotDir: string, outPath: string, meta: { version: string; commit: string; builtAt: string }, privateKeyPem: string): ReleaseManifest {
  const key = createPrivateKey(privateKeyPem)
  if (key.asymmetricKeyType !== 'ed25519') throw new BundleError(`not an Ed25519 private key (${String(key.asymmetricKeyType)})`)
  const manifest = validateManifest({ format: MANIFEST_FORMAT, ...meta, entries: scanSlot(slotDir) })
  const manifestBytes = Buffer.from(JSON.stringify(manifest), 'utf8')
  const signature = sign(null, Buffer.concat([SIGNING_CONTEXT, manifestBytes]), key)
  const fd = openSync(outPath, 'w', 0o644)
  try {
    const head = Buffer.alloc(4)
    head.writeUInt32BE(manifestBytes.length, 0)
    const slen = Buffer.alloc(2)
    slen.writeUInt16BE(signature.length, 0)
    for (const part of [BUNDLE_MAGIC, head, manifestBytes, slen, signature]) writeSync(fd, part)
    const buf = Buffer.alloc(CHUNK)
    for (const e of manifest.entries) {
      if (e.kind !== 'file') continue
      const src = openSync(join(slotDir, ...e.path.split('/')), 'r')
      try {
        let pos = 0
        let n: number
        while ((n = readSync(src, buf, 0, CHUNK, pos)) > 0) {
          writeSync(fd, buf, 0, n)
          pos += n
        }
        if (pos !== e.size) throw new BundleError(`${e.path} changed while packing`)
      } finally {
        closeSync(src)
      }
    }
  } finally {
    closeSync(fd)
  }
  return manifest
}
