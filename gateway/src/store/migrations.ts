// Versioned schema migrations. PRAGMA user_version holds the version; each
// migration runs in its own transaction. Never edit a released migration:
// add the next one.

import type Database from 'better-sqlite3'
import { decodeReading } from '../core/canonical.ts'

export interface Migration {
  readonly version: number
  readonly description: string
  readonly sql: string
  /** Runs after `sql`, in the same transaction. */
  readonly run?: (db: Database.Database) => void
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'readings, batches, sink cursors, devices, meta',
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;

      -- One row per sequenced reading. seq is assigned by the sequencer, never reused.
      -- A batch covers a contiguous seq range, so batch membership needs no column.
      CREATE TABLE readings (
        seq         INTEGER PRIMARY KEY,
        device_id   TEXT    NOT NULL,
        source      TEXT    NOT NULL,
        received_ms INTEGER NOT NULL,
        canonical   BLOB    NOT NULL,
        leaf        BLOB    NOT NULL
      );
      CREATE INDEX readings_device ON readings (device_id, seq);

      CREATE TABLE batches (
        id           INTEGER PRIMARY KEY,
        first_seq    INTEGER NOT NULL,
        last_seq     INTEGER NOT NULL,
        count        INTEGER NOT NULL,
        merkle_root  BLOB    NOT NULL,
        prev_hash    BLOB    NOT NULL,
        hash         BLOB    NOT NULL UNIQUE,
        signature    BLOB    NOT NULL,
        gateway      TEXT    NOT NULL,
        sealed_at_ms INTEGER NOT NULL,
        bytes        INTEGER NOT NULL
      );

      -- Each sink's durable cursor: the highest batch id it acknowledged.
      CREATE TABLE sink_cursors (
        sink_id        TEXT PRIMARY KEY,
        acked_batch_id INTEGER NOT NULL DEFAULT 0,
        updated_ms     INTEGER NOT NULL,
        state          TEXT    NOT NULL DEFAULT 'ok',
        last_error     TEXT,
        data           TEXT
      ) WITHOUT ROWID;

      -- Registered devices. secret holds key material (never returned by the API).
      CREATE TABLE devices (
        id           TEXT PRIMARY KEY,
        kind         TEXT NOT NULL,
        name         TEXT,
        config       TEXT NOT NULL DEFAULT '{}',
        secret       TEXT,
        created_ms   INTEGER NOT NULL,
        last_seen_ms INTEGER,
        accepted     INTEGER NOT NULL DEFAULT 0,
        rejected     INTEGER NOT NULL DEFAULT 0,
        state        TEXT NOT NULL DEFAULT '{}'
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'sink rejections: batches an upstream refused for good (parked, counted as handled)',
    sql: `
      CREATE TABLE sink_rejections (
        sink_id  TEXT    NOT NULL,
        batch_id INTEGER NOT NULL,
        reason   TEXT    NOT NULL,
        at_ms    INTEGER NOT NULL,
        PRIMARY KEY (sink_id, batch_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    description: 'anchor sink: batch roots queued for anchoring, and each anchor range with its transaction (docs/anchor-sink.md)',
    sql: `
      CREATE TABLE anchor_batches (
        batch_id    INTEGER PRIMARY KEY,
        merkle_root BLOB    NOT NULL,
        queued_ms   INTEGER NOT NULL
      );
      CREATE TABLE anchor_ranges (
        chain_id       INTEGER NOT NULL,
        contract       TEXT    NOT NULL,
        first_batch_id INTEGER NOT NULL,
        last_batch_id  INTEGER NOT NULL,
        anchor_root    BLOB    NOT NULL,
        state          TEXT    NOT NULL,
        tx_hash        TEXT,
        nonce          INTEGER,
        raw_tx         TEXT,
        anchor_id      INTEGER,
        block_number   INTEGER,
        sent_ms        INTEGER NOT NULL,
        confirmed_ms   INTEGER,
        PRIMARY KEY (chain_id, contract, first_batch_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 4,
    description: 'device counters written with each signed reading; no per-device index on readings (fewer pages per commit)',
    sql: `
      CREATE TABLE device_counters (
        device_id TEXT    PRIMARY KEY,
        counter   TEXT    NOT NULL,
        seq       INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
    // The newest device-signed reading of each signed device, found through
    // the index this migration then drops (the way the registry found it).
    run(db) {
      const newest = db.prepare<[string], { seq: bigint; canonical: Buffer }>('SELECT seq, canonical FROM readings WHERE device_id = ? ORDER BY seq DESC LIMIT 200').safeIntegers(true)
      const insert = db.prepare<[string, string, bigint]>('INSERT INTO device_counters (device_id, counter, seq) VALUES (?, ?, ?)')
      for (const { id } of db.prepare<[], { id: string }>("SELECT id FROM devices WHERE kind = 'signed'").all()) {
        for (const r of newest.all(id)) {
          let auth
          try {
            auth = decodeReading(new Uint8Array(r.canonical)).auth
          } catch {
            continue
          }
          if (auth.kind !== 'device-signature') continue
          insert.run(id, auth.counter.toString(), r.seq)
          break
        }
      }
      db.exec('DROP INDEX readings_device')
    },
  },
  {
    version: 5,
    description: 'leaves stored once per batch (batches.leaves) instead of once per reading: no hashing and 32 bytes less per row in the group commit',
    // Batches stored before this keep leaves NULL: Store.batchLeaves hashes their readings.
    sql: `
      ALTER TABLE batches ADD COLUMN leaves BLOB;
      ALTER TABLE readings DROP COLUMN leaf;
    `,
  },
]

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0
