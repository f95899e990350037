// Loading the configuration (ARCHITECTURE.md, "Config"): one TOML file (TOML
// v1.0.0, parsed by smol-toml), validated against schema.ts, defaults
// applied, every error reported at once as `<file>: <dotted.key.path>: <message>`.
//
// Which file:
//   1. `path` when given (`--config PATH`): it must exist;
//   2. else $FIELDPROOF_CONFIG when set: it must exist;
//   3. else /etc/fieldproof/fieldproof.toml when it exists;
//   4. else none: simulation mode (simulated sensors, every listener on
//      127.0.0.1, state in ./.fieldproof).
// Command-line overrides (`--state-dir DIR`, `--http-listen HOST:PORT`) are
// laid over the file before validation, and their errors name the flag.

import { existsSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse, TomlError } from 'smol-toml'
import { FieldproofError } from '../core/errors.ts'
import { DEFAULT_CONFIG_PATH, DEFAULT_KEY_FILE_NAME, DEFAULT_TOKEN_FILE_NAME, LISTEN_FORMAT, parseListenAddress } from './common.ts'
import { CONFIG_SCHEMA } from './schema.generated.ts'
import type { Config } from './schema.ts'
import { describeType, simulationOverlay } from './tables.ts'
import { applyDefaults, schemaErrors, type JsonSchema, type SchemaError } from './validate.ts'

/**
 * Listeners that a command-line flag can move, by name: `--<name>-listen HOST:PORT`
 * sets the config key at `path`. A new listener is one row here.
 */
export const LISTEN_OVERRIDES = {
  http: { flag: '--http-listen', path: ['api', 'listen'] },
  lorawan: { flag: '--lorawan-listen', path: ['sources', 'lorawan', 'listen'] },
  'lorawan-station': { flag: '--lorawan-station-listen', path: ['sources', 'lorawan', 'station', 'listen'] },
  mqtt: { flag: '--mqtt-listen', path: ['sources', 'mqtt', 'listen'] },
} as const satisfies Record<string, { flag: string; path: readonly string[] }>

export type ListenerName = keyof typeof LISTEN_OVERRIDES

/** Values from the command line, laid over the file (or the simulation defaults). */
export interface ConfigOverrides {
  /** `--state-dir DIR`; a relative path is resolved against the current directory. */
  readonly stateDir?: string | undefined
  /** `--http-listen HOST:PORT` and the other listeners of {@link LISTEN_OVERRIDES}. */
  readonly listen?: { readonly [K in ListenerName]?: string | undefined } | undefined
}

export interface LoadConfigOptions {
  /** `--config PATH`: this file must exist. */
  readonly path?: string | undefined
  readonly overrides?: ConfigOverrides | undefined
  /** Environment read for FIELDPROOF_CONFIG (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Directory relative paths are resolved against (default: process.cwd()). */
  readonly cwd?: string
  /** The file tried when none is named (default: /etc/fieldproof/fieldproof.toml). */
  readonly defaultPath?: string
}

/**
 * The result of {@link loadConfig}.
 *
 * @example
 * const { config, simulation } = loadConfig({ path: args.config, overrides: { stateDir: args.stateDir } })
 * if (simulation) log.info('no config file: simulation mode')
 */
export interface LoadedConfig {
  /**
   * The validated config with every default applied. `gateway.state_dir`,
   * `identity.key_file` and `api.token_file` are absolute paths.
   */
  readonly config: Config
  /** True when no config file was found: simulated sensors, listeners on 127.0.0.1. */
  readonly simulation: boolean
  /** Absolute path of the file read, or null in simulation mode. */
  readonly path: string | null
}

/** One validation problem; the CONFIG_INVALID error carries them all in `details.issues`. */
export interface ConfigIssue {
  /** The file, the command-line flag, or `(defaults)`, the value came from. */
  readonly file: string
  /** Dotted key path (`sources.sim.kinds[1]`), or `line L, column C` for TOML syntax errors. */
  readonly path: string
  readonly message: string
}

/** Environment variable naming the config file when `--config` is not given. */
export const CONFIG_ENV = 'FIELDPROOF_CONFIG'

/**
 * Find, read, validate and complete the configuration.
 *
 * @throws FieldproofError `CONFIG_NOT_FOUND` when a named file does not exist;
 *   `CONFIG_INVALID` with one line per problem otherwise.
 */
export function loadConfig(opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()
  const named = nonEmpty(opts.path) ?? nonEmpty(env[CONFIG_ENV])
  let file: string | null
  if (named !== undefined) {
    file = resolve(cwd, named)
    if (!existsSync(file)) {
      const via = nonEmpty(opts.path) !== undefined ? '' : ` (from $${CONFIG_ENV})`
      throw new FieldproofError(
        'CONFIG_NOT_FOUND',
        `config file not found: ${file}${via}. Run "fieldproof config print > ${named}" to start one, or name no file to run in simulation mode.`,
        { details: { path: file } },
      )
    }
  } else {
    const candidate = resolve(cwd, opts.defaultPath ?? DEFAULT_CONFIG_PATH)
    file = existsSync(candidate) ? candidate : null
  }

  const simulation = file === null
  const source = file ?? '(defaults)'
  const raw: Record<string, unknown> = file === null ? simulationOverlay(CONFIG_SCHEMA) : readToml(file)

  // Overrides: remember which paths came from which flag so errors name it.
  const origins = new Map<string, string>()
  const ov = opts.overrides
  if (ov?.stateDir !== undefined) {
    setPath(raw, ['gateway', 'state_dir'], resolve(cwd, ov.stateDir))
    origins.set('gateway.state_dir', '--state-dir')
  }
  for (const [name, value] of Object.entries(ov?.listen ?? {})) {
    if (value === undefined) continue
    const spec = LISTEN_OVERRIDES[name as ListenerName] as (typeof LISTEN_OVERRIDES)[ListenerName] | undefined
    if (spec === undefined) {
      throw invalid([{ file: `--${name}-listen`, path: name, message: 'unknown listener' }])
    }
    setPath(raw, spec.path, value)
    origins.set(spec.path.join('.'), spec.flag)
  }

  const withDefaults = applyDefaults(CONFIG_SCHEMA, raw)
  const issues = collectIssues(CONFIG_SCHEMA, withDefaults, (path) => originOf(path, origins) ?? source)
  if (issues.length > 0) throw invalid(issues)
  const config = inSchemaOrder(CONFIG_SCHEMA, withDefaults) as Config

  // Paths: state_dir against the file's directory (cwd in simulation mode;
  // overrides are already absolute); key and token files against state_dir.
  const base = file === null ? cwd : dirname(file)
  const stateDir = resolve(base, config.gateway.state_dir)
  config.gateway.state_dir = stateDir
  config.identity.key_file = resolveInState(stateDir, config.identity.key_file, DEFAULT_KEY_FILE_NAME)
  config.api.token_file = resolveInState(stateDir, config.api.token_file, DEFAULT_TOKEN_FILE_NAME)

  return { config, simulation, path: file }
}

/** The complete default config of a device (file present but empty), paths not yet resolved. */
export function defaultConfig(): Config {
  return applyDefaults(CONFIG_SCHEMA, {}) as Config
}

/** A copy of a validated value with table keys in declaration order (stable output for `config show`). */
function inSchemaOrder(schema: JsonSchema, value: unknown): unknown {
  const props = schema['properties'] as Record<string, JsonSchema> | undefined
  if (props === undefined || typeof value !== 'object' || value === null) return value
  const v = value as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, s] of Object.entries(props)) if (k in v) out[k] = inSchemaOrder(s, v[k])
  return out
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s
}

function resolveInState(stateDir: string, value: string, defaultName: string): string {
  if (value === '') return resolve(stateDir, defaultName)
  return isAbsolute(value) ? value : resolve(stateDir, value)
}

function invalid(issues: readonly ConfigIssue[]): FieldproofError {
  return new FieldproofError('CONFIG_INVALID', issues.map((i) => `${i.file}: ${i.path}: ${i.message}`).join('\n'), {
    details: { issues },
  })
}

function readToml(file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error'
    const why = code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message
    throw invalid([{ file, path: '(file)', message: `cannot read: ${why}` }])
  }
  // A byte-order mark, as some editors on the boot partition write, is not TOML.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  try {
    return parse(text) as Record<string, unknown>
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.split('\n')[0] ?? e.message
      const message = first.replace(/^Invalid TOML document:\s*/, '')
      throw invalid([{ file, path: `line ${e.line}, column ${e.column}`, message: `invalid TOML: ${message}` }])
    }
    throw invalid([{ file, path: '(file)', message: `invalid TOML: ${(e as Error).message}` }])
  }
}

function setPath(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = root
  for (const part of path.slice(0, -1)) {
    const next = node[part]
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      // A non-table here is reported by validation; the override replaces it.
      node[part] = {}
    }
    node = node[part] as Record<string, unknown>
  }
  node[path[path.length - 1] as string] = value
}

function originOf(path: string, origins: ReadonlyMap<string, string>): string | undefined {
  for (const [p, flag] of origins) if (path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`)) return flag
  return undefined
}

// ---------------------------------------------------------------------------
// Error messages

/** `/sources/sim/kinds/1` → `sources.sim.kinds[1]`. */
function dotted(pointer: string): string {
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (/^[0-9]+$/.test(part)) out += `[${part}]`
    else out += out === '' ? keyText(part) : `.${keyText(part)}`
  }
  return out === '' ? '(root)' : out
}

function keyText(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k)
}

function typeOfValue(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (v instanceof Date) return 'date-time'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float'
  if (typeof v === 'object') return 'table'
  return typeof v
}

function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return typeOfValue(v)
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length] as number
}

function unknownKeyMessage(parent: JsonSchema, key: string): string {
  const known = Object.keys((parent['properties'] as Record<string, JsonSchema> | undefined) ?? {})
  if (known.length === 0) return 'unknown key (this table takes no keys yet)'
  const close = known.filter((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2)
  if (close.length > 0) return `unknown key (did you mean ${close.map((k) => `"${k}"`).join(' or ')}?)`
  return `unknown key (known keys: ${known.join(', ')})`
}

function messageFor(e: SchemaError): string {
  const s = e.schema
  const got = `got ${shown(e.value)}`
  switch (e.kind) {
    case 'additional-property': {
      const key = e.path.split('/').pop() ?? ''
      return unknownKeyMessage(s, key.replace(/~1/g, '/').replace(/~0/g, '~'))
    }
    case 'object':
      return `expected a table, got ${typeOfValue(e.value)}`
    case 'required':
      return `missing (expected ${describeType(s)})`
    case 'union':
      return `expected ${describeType(s)}, ${got}`
    case 'type':
      return `expected ${describeType(s)}, got ${typeOfValue(e.value)}${typeof e.value === 'object' ? '' : ` ${shown(e.value)}`}`
    case 'minimum':
      return `must be at least ${s['minimum'] as number}, ${got}`
    case 'maximum':
      return `must be at most ${s['maximum'] as number}, ${got}`
    case 'min-length':
      return 'must not be empty'
    case 'max-length':
      return `must be at most ${s['maxLength'] as number} characters long`
    case 'pattern':
      return `${shown(e.value)} is not allowed: ${String(s['patternHint'] ?? `must match ${String(s['pattern'])}`)}`
    case 'format':
      if (s['format'] === LISTEN_FORMAT && typeof e.value === 'string') {
        const r = parseListenAddress(e.value)
        if (!r.ok) return `invalid listen address ${shown(e.value)}: ${r.reason}`
      }
      return `${shown(e.value)} is not a valid ${String(s['format'])}`
    case 'unknown-format':
      return `cannot be checked: unknown format ${String(s['format'])}`
    case 'min-items':
      return `must have at least ${s['minItems'] as number} item(s)`
    case 'max-items':
      return `must have at most ${s['maxItems'] as number} item(s)`
    case 'unique-items':
      return 'must not repeat an item'
  }
}

/** Every problem of `value` against `schema`, in path order, one per key. */
export function collectIssues(schema: JsonSchema, value: unknown, fileOf: (dottedPath: string) => string): ConfigIssue[] {
  const seen = new Set<string>()
  const issues: ConfigIssue[] = []
  for (const e of schemaErrors(schema, value)) {
    const path = dotted(e.path)
    // One message per key: a wrong type would also fail its range checks.
    if (seen.has(path)) continue
    seen.add(path)
    issues.push({ file: fileOf(path), path, message: messageFor(e) })
  }
  return issues.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
