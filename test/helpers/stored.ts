// What a gateway left in its database, read back for crash tests: every
// reading in seq order with its `count` metric (the load generators number
// their readings with it), the gaps in the sequence and the leaves that do
// not match their reading.

import type Database from 'better-sqlite3'
import { decodeReading, leafHash } from '../../gateway/src/core/canonical.ts'
import { bytesToHex } from '../../gateway/src/core/hex.ts'

export interface StoredReadings {
  /** In seq order; `count` is the reading's `count` metric, if it has one. */
  readonly rows: readonly { readonly seq: bigint; readonly leaf: Uint8Array; readonly count: number | undefined }[]
  /** The highest seq stored (0 when none). */
  readonly lastSeq: bigint
  /** Places where a seq is not the previous one + 1 (the first must be 1). */
  readonly gaps: number
  /** Rows whose leaf is not leafHash(seq, canonical). */
  readonly badLeaves: number
}

/** Walk the readings table of `db` (opened with defaultSafeIntegers(true)). */
export function storedReadings(db: Database.Database): StoredReadings {
  const raw = db.prepare('SELECT seq, canonical, leaf FROM readings ORDER BY seq').all() as { seq: bigint; canonical: Buffer; leaf: Buffer }[]
  const rows: { seq: bigint; leaf: Uint8Array; count: number | undefined }[] = []
  let expected = 1n
  let gaps = 0
  let badLeaves = 0
  for (const r of raw) {
    if (r.seq !== expected) gaps++
    expected = r.seq + 1n
    if (bytesToHex(leafHash(r.seq, new Uint8Array(r.canonical))) !== bytesToHex(new Uint8Array(r.leaf))) badLeaves++
    const count = decodeReading(new Uint8Array(r.canonical)).metrics.find((m) => m.name === 'count')?.value
    rows.push({ seq: r.seq, leaf: new Uint8Array(r.leaf), count: typeof count === 'number' ? count : undefined })
  }
  return { rows, lastSeq: expected - 1n, gaps, badLeaves }
}
