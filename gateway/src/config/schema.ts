// The one configuration schema (ARCHITECTURE.md, "Config"; CONVENTIONS.md,
// "One config schema, one source of truth"). Declared once with TypeBox: it is
// the JSON Schema the loader validates against, the static `Config` type, and
// the source of `fieldproof config print` (template.ts) and of
// docs/configuration.md (scripts/gen-config-docs.ts).
//
// Every key carries a `description` and a `default`. A key whose default
// differs in simulation mode (no config file at all) also carries
// `simulationDefault`. Every table is closed (`additionalProperties: false`)
// so a misspelt key is an error, never silently ignored.
//
// Adding a section: declare its schema below, then add it as a property of
// the table it belongs to. A plugin that may be absent (a sink, say) is an
// `Type.Optional(...)` property: its absence means "not configured", and
// any name not declared is still rejected as an unknown key.

import { FormatRegistry, Type, type Static } from '@sinclair/typebox'
import { DEFAULT_CONFIG_PATH, DEFAULT_KEY_FILE_NAME, DEFAULT_TOKEN_FILE_NAME, LISTEN_FORMAT, parseListenAddress, type ListenAddress, type ParseListenResult } from './common.ts'
import { configTables as tablesOf, describeType, simulationOverlay as overlayOf, type ConfigKeyInfo, type ConfigTableInfo, type JsonSchema } from './tables.ts'
import { LorawanSourceSection } from './sections/lorawan.ts'
import { AnchorSinkSection, ArchiveSinkSection, HttpSinkSection, MqttSinkSection, W3bstreamSinkSection } from './sections/sinks.ts'
import { BleSourceSection } from './sections/ble.ts'
import { MqttSourceSection } from './sections/mqtt.ts'
import { GpioSourceSection } from './sections/gpio.ts'
import { DiscoverySection } from './sections/discovery.ts'

/** pino's levels, lowest first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Kinds of simulated sensor: temperature/humidity, air quality, power meter. */
export const SIM_SENSOR_KINDS = ['th', 'aq', 'power'] as const
export type SimSensorKind = (typeof SIM_SENSOR_KINDS)[number]

/** How the gateway learns whether the wall clock is synchronized (invariant 7). */
export const CLOCK_SYNC_CHECKS = ['timedatectl', 'none'] as const
export type ClockSyncCheck = (typeof CLOCK_SYNC_CHECKS)[number]

if (!FormatRegistry.Has(LISTEN_FORMAT)) FormatRegistry.Set(LISTEN_FORMAT, (v) => parseListenAddress(v).ok)
export { DEFAULT_CONFIG_PATH, DEFAULT_KEY_FILE_NAME, DEFAULT_TOKEN_FILE_NAME, LISTEN_FORMAT, parseListenAddress, type ListenAddress, type ParseListenResult }

/** Gateway names: safe in file names, metric labels and URLs. */
const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'

// ---------------------------------------------------------------------------
// Sections

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const

function listen(description: string, deviceDefault: string, simulationDefault: string) {
  return Type.String({ description, default: deviceDefault, simulationDefault, format: LISTEN_FORMAT })
}

export const GatewaySection = Type.Object(
  {
    name: Type.String({
      description:
        'Name of this gateway, shown on the status page, in logs and in metrics. 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit.',
      default: 'fieldproof',
      pattern: NAME_PATTERN,
      patternHint: 'use 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit',
    }),
    state_dir: Type.String({
      description:
        'Directory holding the database, the gateway key and the API token; it must survive reboots (not a tmpfs). A relative path is resolved against the directory of the config file (against the current directory for --state-dir and in simulation mode).',
      default: '/var/lib/fieldproof',
      simulationDefault: './.fieldproof',
      minLength: 1,
    }),
    log_level: Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { description: 'Lowest level written to the log (JSON lines on stderr).', default: 'info' },
    ),
  },
  table('The gateway itself: its name, where it keeps its state, how much it logs.'),
)

export const IdentitySection = Type.Object(
  {
    key_file: Type.String({
      description: `File holding the gateway's secp256k1 key (64 hex characters, mode 0600), created on first start. Empty means <state_dir>/${DEFAULT_KEY_FILE_NAME}; a relative path is resolved against state_dir. See docs/keys.md.`,
      default: '',
    }),
  },
  table('The gateway key that signs every batch.'),
)

export const ApiSection = Type.Object(
  {
    listen: listen(
      'Address of the HTTP API and status page, HOST:PORT. 0.0.0.0 listens on every interface, 127.0.0.1 on this machine only.',
      '0.0.0.0:8080',
      '127.0.0.1:8080',
    ),
    token_file: Type.String({
      description: `File holding the API bearer token (generated on first start, mode 0600). Empty means <state_dir>/${DEFAULT_TOKEN_FILE_NAME}; a relative path is resolved against state_dir.`,
      default: '',
    }),
    max_body_bytes: Type.Integer({
      description: 'Largest request body accepted, in bytes; larger requests get 413.',
      default: 1_048_576,
      minimum: 1024,
      maximum: 67_108_864,
    }),
    max_readings_per_request: Type.Integer({
      description: 'Most readings accepted in one ingest request; more get 413.',
      default: 1000,
      minimum: 1,
      maximum: 100_000,
    }),
  },
  table('The local HTTP API (/api/v1/...), status page and /metrics.'),
)

export const StoreSection = Type.Object(
  {
    retention_hours: Type.Integer({
      description:
        'Hours a reading is kept after every enabled sink has acknowledged its batch. Nothing unacknowledged is ever pruned.',
      default: 168,
      minimum: 1,
      maximum: 87_600,
    }),
    max_bytes: Type.Integer({
      description:
        'Size cap of the database, in bytes (1073741824 = 1 GiB). When reached the gateway refuses new readings loudly rather than drop stored ones.',
      default: 1_073_741_824,
      minimum: 1_048_576,
    }),
    max_pending: Type.Integer({
      description:
        'Readings waiting to be committed before ingest is refused as backpressure (HTTP 503, MQTT no PUBACK).',
      default: 20_000,
      minimum: 1,
      maximum: 10_000_000,
    }),
    commit_max_readings: Type.Integer({
      description: 'Most readings written in one SQLite transaction (group commit).',
      default: 2000,
      minimum: 1,
      maximum: 100_000,
    }),
    commit_worker: Type.Boolean({
      description:
        'Write and fsync each group commit on a worker thread that owns the write transaction, so the event loop keeps serving sensors while the storage syncs (acknowledgements still wait for the commit). Costs about 20 MB of memory and some CPU for the hand-off; worth it where fsync is slow (SD cards) and a core is free. false commits on the event loop (docs/mqtt.md).',
      default: false,
    }),
  },
  table('The SQLite store: retention window, size cap, group commit.'),
)

export const BatchSection = Type.Object(
  {
    max_readings: Type.Integer({
      description: 'Seal a batch once it holds this many readings (or once max_age_seconds is reached, whichever comes first).',
      default: 1000,
      minimum: 1,
      maximum: 1_000_000,
    }),
    max_age_seconds: Type.Integer({
      description: 'Seal a batch once its oldest reading is this many seconds old (or once max_readings is reached, whichever comes first).',
      default: 60,
      simulationDefault: 10,
      minimum: 1,
      maximum: 86_400,
    }),
  },
  table('Batch sealing: every batch gets a Merkle root and the gateway signature.'),
)

export const ClockSection = Type.Object(
  {
    sync_check: Type.Union(
      CLOCK_SYNC_CHECKS.map((c) => Type.Literal(c)),
      {
        description:
          'How the gateway learns whether the wall clock is synchronized: "timedatectl" asks systemd-timedated (NTP), "none" records every reading as unsynchronized.',
        default: 'timedatectl',
      },
    ),
  },
  table('The wall clock. Order comes from the sequence; each reading records whether the clock was synchronized.'),
)

export const SimSourceSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Run simulated sensors.', default: false, simulationDefault: true }),
    sensors: Type.Integer({ description: 'Number of simulated sensors.', default: 6, minimum: 1, maximum: 10_000 }),
    interval_ms: Type.Integer({
      description: 'Milliseconds between two readings of one simulated sensor.',
      default: 2000,
      minimum: 10,
      maximum: 86_400_000,
    }),
    kinds: Type.Array(
      Type.Union(SIM_SENSOR_KINDS.map((k) => Type.Literal(k))),
      {
        description:
          'Kinds of simulated sensor, assigned in turn: "th" temperature/humidity, "aq" air quality, "power" power meter.',
        default: [...SIM_SENSOR_KINDS],
        minItems: 1,
        uniqueItems: true,
      },
    ),
  },
  table('Simulated sensors, for trying the gateway without hardware.'),
)

export const HttpSourceSection = Type.Object(
  {
    enabled: Type.Boolean({
      description: 'Accept readings by POST /api/v1/readings (bearer token required).',
      default: true,
    }),
  },
  table('Readings posted over HTTP to the local API.'),
)

export const SourcesSection = Type.Object(
  {
    sim: SimSourceSection,
    http: HttpSourceSection,
    lorawan: LorawanSourceSection,
    ble: BleSourceSection,
    mqtt: MqttSourceSection,
    gpio: GpioSourceSection,
  },
  table('Where readings come from. One sub-table per source.'),
)

// Sinks: one optional sub-table per sink, e.g.
//
//   export const HttpSinkSection = Type.Object(
//     { url: Type.String({ description: 'Endpoint batches are POSTed to.', default: '', format: 'uri' }) },
//     table('Forward sealed batches to an HTTP endpoint.'),
//   )
//   export const SinksSection = Type.Object({ http: Type.Optional(HttpSinkSection) }, table('...'))
//
// `[sinks.http]` in the file then enables the sink; a name not declared here
// is still rejected as an unknown key.
export const SinksSection = Type.Object(
  { http: HttpSinkSection, w3bstream: W3bstreamSinkSection, mqtt: MqttSinkSection, archive: ArchiveSinkSection, anchor: AnchorSinkSection },
  table('Where sealed batches go. One sub-table per sink; enabled = true turns it on. Each has its own cursor, retries and status.'),
)

export const ConfigSchema = Type.Object(
  {
    gateway: GatewaySection,
    identity: IdentitySection,
    api: ApiSection,
    store: StoreSection,
    batch: BatchSection,
    clock: ClockSection,
    sources: SourcesSection,
    sinks: SinksSection,
    discovery: DiscoverySection,
  },
  { $id: 'https://fieldproof.dev/schema/config.json', title: 'Fieldproof configuration', additionalProperties: false },
)

/** The validated configuration, defaults applied, paths absolute (see load.ts). */
export type Config = Static<typeof ConfigSchema>

// ---------------------------------------------------------------------------
// Reading the schema (tables.ts): here bound to ConfigSchema.

export { describeType, type ConfigKeyInfo, type ConfigTableInfo }

/** Every table of the schema, depth first, in declaration order. */
export function configTables(schema: JsonSchema = ConfigSchema): ConfigTableInfo[] {
  return tablesOf(schema)
}

/** The keys whose default differs in simulation mode, as a partial config to lay under the defaults. */
export function simulationOverlay(schema: JsonSchema = ConfigSchema): Record<string, unknown> {
  return overlayOf(schema)
}
