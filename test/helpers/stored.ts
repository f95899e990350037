// What a gateway left in its database, read back for crash tests: every
// reading in seq order with its `count` metric (the load generators number
// their readings with it) and its leaf, the gaps in the sequence, and the
// leaves stored with the batches that do not match their reading.

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
  /** Leaves stored with a batch that are not leafHash(seq, canonical) of its reading. */
  readonly badLeaves: number
  /** Leaves stored with the batches, compared with their readings' (a test sees that some were). */
  readonly batchLeaves: number
}

/** Walk the readings table of `db` (opened with defaultSafeIntegers(true)). */
export function storedReadings(db: Database.Database): StoredReadings {
  const raw = db.prepare('SELECT seq, canonical FROM readings ORDER BY seq').all() as { seq: bigint; canonical: Buffer }[]
  const rows: { seq: bigint; leaf: Uint8Array; count: number | undefined }[] = []
  const leafOf = new Map<bigint, string>()
  let expected = 1n
  let gaps = 0
  for (const r of raw) {
    if (r.seq !== expected) gaps++
    expected = r.seq + 1n
    const leaf = leafHash(r.seq, new Uint8Array(r.canonical))
    leafOf.set(r.seq, bytesToHex(leaf))
    const count = decodeReading(new Uint8Array(r.canonical)).metrics.find((m) => m.name === 'count')?.value
    rows.push({ seq: r.seq, leaf, count: typeof count === 'number' ? count : undefined })
  }
  let badLeaves = 0
  let batchLeaves = 0
  for (const b of db.prepare('SELECT first_seq, count, leaves FROM batches WHERE leaves IS NOT NULL').all() as { first_seq: bigint; count: bigint; leaves: Buffer }[]) {
    if (b.leaves.length !== 32 * Number(b.count)) badLeaves++
    for (let i = 0; i < b.leaves.length / 32; i++) {
      batchLeaves++
      if (leafOf.get(b.first_seq + BigInt(i)) !== bytesToHex(new Uint8Array(b.leaves.subarray(32 * i, 32 * i + 32)))) badLeaves++
    }
  }
  return { rows, lastSeq: expected - 1n, gaps, badLeaves, batchLeaves }
}
