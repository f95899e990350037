// The archive sink (docs/upstream-protocol.md, "Archive"): long-term storage
// before retention prunes. Each batch becomes one file named by the SHA-256
// of its content, `<sha256 hex>.json`, written atomically (fs/atomic.ts):
//
//   { "type": "fieldproof.archive", "version": 1,
//     "gateway": "0x…", "batchId": "17",
//     "batch": { header, hash, signature }, "prevBatch": { … } (when stored),
//     "proofs": [ ProofBundle, … ] }      // one per reading, in seq order
//
// and one line per batch is appended to `index.ndjson` (fsync'd):
//   {"batchId":"17","file":"<sha256>.json","sha256":"<sha256>","hash":"0x…",
//    "firstSeq":"…","lastSeq":"…","count":N,"gateway":"0x…"}
// Every proof verifies offline with `fieldproof verify`; a file's name
// proves its content was not altered. Writing the same batch again gives the
// same bytes, the same name, and no second index line (idempotent retries).

import { createHash } from 'node:crypto'
import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { signedBatchToJson } from '../../core/batch.ts'
import type { Sink, SinkAck, SinkBatch } from '../../pipeline/sink.ts'
import { fsyncDir, writeFileAtomic } from '../../fs/atomic.ts'

export const ARCHIVE_TYPE = 'fieldproof.archive'
export const INDEX_FILE = 'index.ndjson'

/** One line of index.ndjson. */
export interface ArchiveIndexEntry {
  readonly batchId: string
  readonly file: string
  readonly sha256: string
  readonly hash: string
  readonly firstSeq: string
  readonly lastSeq: string
  readonly count: number
  readonly gateway: string
}

/** The archive document of one batch, as bytes, and its content hash. */
export function archiveDocument(b: SinkBatch): { bytes: Uint8Array; sha256: string } {
  const prev = b.prev()
  const doc = {
    type: ARCHIVE_TYPE,
    version: 1,
    gateway: b.gateway,
    batchId: b.id.toString(),
    batch: signedBatchToJson(b.signed),
    ...(prev ? { prevBatch: signedBatchToJson(prev) } : {}),
    proofs: b.proofs(),
  }
  const bytes = new TextEncoder().encode(JSON.stringify(doc) + '\n')
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') }
}

/** Writes archive files and the index into one directory. */
export class ArchiveWriter {
  readonly dir: string
  #indexed: Set<string> | undefined

  constructor(dir: string) {
    this.dir = dir
  }

  /** Batch ids already in the index (read once; a torn last line from a crash is cut off). */
  #index(): Set<string> {
    if (this.#indexed) return this.#indexed
    mkdirSync(this.dir, { recursive: true, mode: 0o755 })
    const path = join(this.dir, INDEX_FILE)
    const set = new Set<string>()
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8')
      const end = text.lastIndexOf('\n') + 1
      if (end < text.length) truncateSync(path, Buffer.byteLength(text.slice(0, end)))
      for (const line of text.slice(0, end).split('\n')) {
        if (!line) continue
        try {
          const e = JSON.parse(line) as Partial<ArchiveIndexEntry>
          if (typeof e.batchId === 'string') set.add(`${e.gateway?.toLowerCase() ?? ''}:${e.batchId}`)
        } catch {
          // a damaged line is skipped; its file is still there and listed again if re-sent
        }
      }
    }
    this.#indexed = set
    return set
  }

  /** Write one batch (idempotent). Returns the index entry. */
  write(b: SinkBatch): ArchiveIndexEntry {
    const { bytes, sha256 } = archiveDocument(b)
    const file = `${sha256}.json`
    const index = this.#index()
    const path = join(this.dir, file)
    if (!existsSync(path) || statSync(path).size !== bytes.length) writeFileAtomic(path, bytes, 0o644)
    const h = b.signed.header
    const entry: ArchiveIndexEntry = {
      batchId: b.id.toString(),
      file,
      sha256,
      hash: b.signed.hash,
      firstSeq: h.firstSeq.toString(),
      lastSeq: h.lastSeq.toString(),
      count: h.count,
      gateway: b.gateway,
    }
    const key = `${b.gateway.toLowerCase()}:${entry.batchId}`
    if (!index.has(key)) {
      const indexPath = join(this.dir, INDEX_FILE)
      const created = !existsSync(indexPath)
      const fd = openSync(indexPath, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o644)
      try {
        const line = Buffer.from(JSON.stringify(entry) + '\n')
        let off = 0
        while (off < line.length) off += writeSync(fd, line, off, line.length - off)
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      if (created) fsyncDir(this.dir)
      index.add(key)
    }
    return entry
  }
}

export class ArchiveSink implements Sink {
  readonly id: string
  readonly writer: ArchiveWriter
  #files = 0

  constructor(o: { dir: string; id?: string }) {
    this.id = o.id ?? 'archive'
    this.writer = new ArchiveWriter(o.dir)
  }

  async send(batch: SinkBatch): Promise<SinkAck> {
    // Synchronous file I/O of one batch: a few ms on an SD card, off the ingest path.
    this.writer.write(batch)
    this.#files++
    return { ok: true }
  }

  status(): Record<string, unknown> {
    return { dir: this.writer.dir, written: this.#files }
  }
}
