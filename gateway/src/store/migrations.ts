// Versioned schema migrations. PRAGMA user_version holds the version; each
// migration runs in its own transaction. Never edit a released migration:
// add the next one.

export interface Migration {
  readonly version: number
  readonly description: string
  readonly sql: string
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
]

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0
