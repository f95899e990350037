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

import { isIPv4, isIPv6 } from 'node:net'
import { FormatRegistry, Type, type Static, type TSchema } from '@sinclair/typebox'
import { LorawanSourceSection } from './sections/lorawan.ts'
import { ArchiveSinkSection, HttpSinkSection, MqttSinkSection, W3bstreamSinkSection } from './sections/sinks.ts'
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

/** Where the gateway looks for its config file when none is named. `FIELDPROOF_CONFIG` overrides it. */
export const DEFAULT_CONFIG_PATH = '/etc/fieldproof/fieldproof.toml'

/** File names inside the state directory used when `key_file` / `token_file` are empty. */
export const DEFAULT_KEY_FILE_NAME = 'gateway.key'
export const DEFAULT_TOKEN_FILE_NAME = 'api-token'

// ---------------------------------------------------------------------------
// HOST:PORT listen addresses

/** A parsed listen address. `host` is without brackets (`::1`, not `[::1]`). */
export interface ListenAddress {
  readonly host: string
  readonly port: number
}

export type ParseListenResult = { readonly ok: true; readonly value: ListenAddress } | { readonly ok: false; readonly reason: string }

const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

function checkHostname(host: string): string | null {
  if (host.length > 253) return 'host name longer than 253 characters'
  if (/^[0-9.]+$/.test(host)) return `"${host}" is not a valid IPv4 address`
  for (const label of host.split('.')) {
    if (!HOSTNAME_LABEL.test(label)) return `"${host}" is not a valid IPv4 address or host name`
  }
  return null
}

/**
 * Parse a listen address: `HOST:PORT` with an IPv4 address, a bracketed IPv6
 * address (`[::1]:8080`) or a host name, and a port from 0 to 65535 (0: the
 * kernel picks a free port).
 *
 * @example parseListenAddress('127.0.0.1:8080') // { ok: true, value: { host: '127.0.0.1', port: 8080 } }
 */
export function parseListenAddress(text: string): ParseListenResult {
  const fail = (reason: string): ParseListenResult => ({
    ok: false,
    reason: `${reason}; expected HOST:PORT, e.g. "0.0.0.0:8080", "127.0.0.1:8080" or "[::1]:8080"`,
  })
  let host: string
  let portText: string
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return fail('missing "]" after the IPv6 address')
    host = text.slice(1, close)
    if (text[close + 1] !== ':') return fail('missing ":PORT" after "]"')
    portText = text.slice(close + 2)
    if (!isIPv6(host)) return fail(`"${host}" is not a valid IPv6 address`)
  } else {
    const colon = text.lastIndexOf(':')
    if (colon < 0) return fail('missing ":PORT"')
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host === '') return fail('missing host (use 0.0.0.0 for every interface, 127.0.0.1 for this machine only)')
    if (host.includes(':')) return fail('an IPv6 address must be in brackets')
    if (!isIPv4(host)) {
      const reason = checkHostname(host)
      if (reason !== null) return fail(reason)
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return fail(portText === '' ? 'missing port' : `port "${portText}" is not a number`)
  const port = Number(portText)
  // Port 0 asks the kernel for a free port (tests, several gateways side by side); the chosen port is logged.
  if (port > 65535) return fail(`port ${port} is out of range 0..65535`)
  return { ok: true, value: { host, port } }
}

/** The JSON Schema `format` name of listen addresses. */
export const LISTEN_FORMAT = 'host-port'
if (!FormatRegistry.Has(LISTEN_FORMAT)) FormatRegistry.Set(LISTEN_FORMAT, (v) => parseListenAddress(v).ok)

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
  { http: HttpSinkSection, w3bstream: W3bstreamSinkSection, mqtt: MqttSinkSection, archive: ArchiveSinkSection },
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
// Schema walking, shared by the template, the docs and the loader

/** One key of a table, as the template and the docs show it. */
export interface ConfigKeyInfo {
  /** Dotted path, e.g. `api.listen`. */
  readonly path: string
  readonly name: string
  /** Human-readable type, e.g. `integer (1..65535)`, `"info" | "warn"`. */
  readonly type: string
  readonly description: string
  readonly default: unknown
  /** Present when simulation mode uses another default. */
  readonly simulationDefault?: unknown
  readonly schema: TSchema
}

/** One table (`[gateway]`, `[sources.sim]`, ...) and its scalar keys. */
export interface ConfigTableInfo {
  /** Dotted path, e.g. `sources.sim`. */
  readonly path: string
  readonly description: string
  readonly keys: readonly ConfigKeyInfo[]
  /** Whether it has sub-tables. */
  readonly hasSubTables: boolean
}

function isTable(s: TSchema): boolean {
  return s['type'] === 'object' && s['properties'] !== undefined
}

function literalValues(s: TSchema): unknown[] | null {
  const anyOf = s['anyOf'] as TSchema[] | undefined
  if (anyOf === undefined || !anyOf.every((m) => m['const'] !== undefined)) return null
  return anyOf.map((m) => m['const'])
}

/** A human-readable name of a schema's type, as used in docs and error messages. */
export function describeType(s: TSchema): string {
  const literals = literalValues(s)
  if (literals !== null) return literals.map((v) => JSON.stringify(v)).join(' | ')
  const t = s['type']
  if (t === 'array') {
    const items = s['items'] as TSchema
    const inner = describeType(items)
    return `array of ${literalValues(items) !== null ? `(${inner})` : inner}`
  }
  if (t === 'integer' || t === 'number') {
    const min = s['minimum'] as number | undefined
    const max = s['maximum'] as number | undefined
    if (min !== undefined && max !== undefined) return `${t} (${min}..${max})`
    if (min !== undefined) return `${t} (>= ${min})`
    if (max !== undefined) return `${t} (<= ${max})`
    return t
  }
  if (t === 'string' && s['format'] === LISTEN_FORMAT) return 'string (HOST:PORT)'
  if (t === 'object') return 'table'
  return String(t)
}

/** Every table of the schema, depth first, in declaration order. */
export function configTables(schema: TSchema = ConfigSchema): ConfigTableInfo[] {
  const out: ConfigTableInfo[] = []
  const visit = (s: TSchema, path: string[]): void => {
    const props = s['properties'] as Record<string, TSchema>
    const keys: ConfigKeyInfo[] = []
    const subs: [string, TSchema][] = []
    for (const [name, child] of Object.entries(props)) {
      if (isTable(child)) {
        subs.push([name, child])
        continue
      }
      const info: ConfigKeyInfo = {
        path: [...path, name].join('.'),
        name,
        type: describeType(child),
        description: String(child['description'] ?? ''),
        default: child['default'],
        schema: child,
        ...('simulationDefault' in child ? { simulationDefault: child['simulationDefault'] } : {}),
      }
      keys.push(info)
    }
    if (path.length > 0) {
      out.push({ path: path.join('.'), description: String(s['description'] ?? ''), keys, hasSubTables: subs.length > 0 })
    }
    for (const [name, child] of subs) visit(child, [...path, name])
  }
  visit(schema, [])
  return out
}

/** The keys whose default differs in simulation mode, as a partial config to lay under the defaults. */
export function simulationOverlay(schema: TSchema = ConfigSchema): Record<string, unknown> {
  const overlay: Record<string, unknown> = {}
  for (const t of configTables(schema)) {
    for (const k of t.keys) {
      if (!('simulationDefault' in k)) continue
      let node = overlay
      for (const part of t.path.split('.')) {
        const next = (node[part] ??= {}) as Record<string, unknown>
        node = next
      }
      node[k.name] = structuredClone(k.simulationDefault)
    }
  }
  return overlay
}
