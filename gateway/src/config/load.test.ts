import t, { type Test } from 'tap'
import { join } from 'node:path'
import { isFieldproofError, type FieldproofError } from '../core/errors.ts'
import { CONFIG_ENV, loadConfig, type ConfigIssue, type LoadConfigOptions } from './load.ts'

const NO_DEFAULT = '/nonexistent/fieldproof/fieldproof.toml'

/** Load with an isolated environment: no FIELDPROOF_CONFIG, no /etc file. */
function load(opts: LoadConfigOptions) {
  return loadConfig({ env: {}, defaultPath: NO_DEFAULT, ...opts })
}

function configError(t: Test, fn: () => unknown, code: 'CONFIG_INVALID' | 'CONFIG_NOT_FOUND'): FieldproofError {
  try {
    fn()
  } catch (e) {
    t.ok(isFieldproofError(e, code), `throws ${code}`)
    return e as FieldproofError
  }
  t.fail(`expected ${code}`)
  throw new Error('unreachable')
}

function issues(e: FieldproofError): ConfigIssue[] {
  return e.details['issues'] as ConfigIssue[]
}

t.test('an empty file is a complete device config with every default', (t) => {
  const dir = t.testdir({ 'fieldproof.toml': '' })
  const file = join(dir, 'fieldproof.toml')
  const { config, simulation, path } = load({ path: file })
  t.equal(simulation, false)
  t.equal(path, file)
  const { sources, sinks, discovery, ...core } = config
  t.same(core, {
    gateway: { name: 'fieldproof', state_dir: '/var/lib/fieldproof', log_level: 'info' },
    identity: { key_file: '/var/lib/fieldproof/gateway.key' },
    api: {
      listen: '0.0.0.0:8080',
      token_file: '/var/lib/fieldproof/api-token',
      max_body_bytes: 1048576,
      max_readings_per_request: 1000,
    },
    store: { retention_hours: 168, max_bytes: 1073741824, max_pending: 20000, commit_max_readings: 2000, commit_worker: false },
    batch: { max_readings: 1000, max_age_seconds: 60 },
    clock: { sync_check: 'timedatectl' },
  })
  t.same(sources.sim, { enabled: false, sensors: 6, interval_ms: 2000, kinds: ['th', 'aq', 'power'] })
  t.same(sources.http, { enabled: true })
  // Every other source and every sink is present with its defaults, and off until configured.
  for (const [id, section] of Object.entries(sources)) if (id !== 'http') t.equal((section as { enabled: boolean }).enabled, false, `sources.${id} off by default`)
  for (const [id, section] of Object.entries(sinks)) t.equal((section as { enabled: boolean }).enabled, false, `sinks.${id} off by default`)
  t.equal(discovery.mdns, true, 'mDNS announces on a device')
  t.same(Object.keys(config).slice(0, 8), ['gateway', 'identity', 'api', 'store', 'batch', 'clock', 'sources', 'sinks'], 'keys in schema order')
  t.end()
})

t.test('values in the file replace defaults; the rest stay default', (t) => {
  const dir = t.testdir({
    'fieldproof.toml': `
[gateway]
name = "pi-barn-2"
log_level = "debug"

[api]
listen = "[::1]:9090"

[sources.sim]
enabled = true
kinds = ["power"]
`,
  })
  const { config } = load({ path: join(dir, 'fieldproof.toml') })
  t.equal(config.gateway.name, 'pi-barn-2')
  t.equal(config.gateway.log_level, 'debug')
  t.equal(config.api.listen, '[::1]:9090')
  t.equal(config.api.max_body_bytes, 1048576)
  t.same(config.sources.sim, { enabled: true, sensors: 6, interval_ms: 2000, kinds: ['power'] })
  t.end()
})

t.test('no file at all: simulation mode', (t) => {
  const cwd = t.testdir({})
  const { config, simulation, path } = load({ cwd })
  t.equal(simulation, true)
  t.equal(path, null)
  t.equal(config.gateway.state_dir, join(cwd, '.fieldproof'), 'state in ./.fieldproof of the current directory')
  t.equal(config.identity.key_file, join(cwd, '.fieldproof', 'gateway.key'))
  t.equal(config.api.token_file, join(cwd, '.fieldproof', 'api-token'))
  t.equal(config.api.listen, '127.0.0.1:8080', 'listeners on loopback only')
  t.equal(config.sources.sim.enabled, true, 'simulated sensors on')
  t.equal(config.batch.max_age_seconds, 10)
  t.equal(config.sources.http.enabled, true)
  t.end()
})

t.test('the default path is used when it exists, FIELDPROOF_CONFIG overrides it', (t) => {
  const dir = t.testdir({
    'etc.toml': '[gateway]\nname = "from-default"\n',
    'env.toml': '[gateway]\nname = "from-env"\n',
  })
  const a = loadConfig({ env: {}, defaultPath: join(dir, 'etc.toml') })
  t.equal(a.simulation, false)
  t.equal(a.config.gateway.name, 'from-default')
  const b = loadConfig({ env: { [CONFIG_ENV]: join(dir, 'env.toml') }, defaultPath: join(dir, 'etc.toml') })
  t.equal(b.config.gateway.name, 'from-env')
  t.equal(b.path, join(dir, 'env.toml'))
  const c = loadConfig({ path: join(dir, 'etc.toml'), env: { [CONFIG_ENV]: join(dir, 'env.toml') } })
  t.equal(c.config.gateway.name, 'from-default', '--config wins over the environment')
  t.end()
})

t.test('a named file that does not exist is an error, not simulation mode', (t) => {
  const dir = t.testdir({})
  const missing = join(dir, 'nope.toml')
  const e = configError(t, () => load({ path: missing }), 'CONFIG_NOT_FOUND')
  t.match(e.message, missing)
  const e2 = configError(t, () => loadConfig({ env: { [CONFIG_ENV]: missing }, defaultPath: NO_DEFAULT }), 'CONFIG_NOT_FOUND')
  t.match(e2.message, /FIELDPROOF_CONFIG/)
  t.end()
})

t.test('unknown keys are rejected, naming the file and the key', (t) => {
  const dir = t.testdir({
    'top.toml': 'colour = "blue"\n',
    'nested.toml': '[sources.sim]\nintervl_ms = 500\n',
    'table.toml': '[sources.zigbee]\nenabled = true\n',
    'sink.toml': '[sinks.evm]\nrpc = "http://127.0.0.1:8545"\n',
  })
  const top = configError(t, () => load({ path: join(dir, 'top.toml') }), 'CONFIG_INVALID')
  t.match(top.message, new RegExp(`^${join(dir, 'top.toml')}: colour: unknown key`))
  const nested = configError(t, () => load({ path: join(dir, 'nested.toml') }), 'CONFIG_INVALID')
  t.equal(nested.message, `${join(dir, 'nested.toml')}: sources.sim.intervl_ms: unknown key (did you mean "interval_ms"?)`)
  const table = configError(t, () => load({ path: join(dir, 'table.toml') }), 'CONFIG_INVALID')
  t.match(table.message, `${join(dir, 'table.toml')}: sources.zigbee: unknown key (known keys: sim, http`)
  const sink = configError(t, () => load({ path: join(dir, 'sink.toml') }), 'CONFIG_INVALID')
  t.match(sink.message, `${join(dir, 'sink.toml')}: sinks.evm: unknown key`)
  t.end()
})

t.test('wrong types name the expected type', (t) => {
  const dir = t.testdir({
    'a.toml': `
gateway = 5
[api]
max_body_bytes = "1MB"
[store]
retention_hours = 1.5
[sources.http]
enabled = "yes"
[sources.sim]
kinds = "th"
`,
  })
  const file = join(dir, 'a.toml')
  const e = configError(t, () => load({ path: file }), 'CONFIG_INVALID')
  const lines = e.message.split('\n')
  t.same(lines, [
    `${file}: api.max_body_bytes: expected integer (1024..67108864), got string "1MB"`,
    `${file}: gateway: expected a table, got integer`,
    `${file}: sources.http.enabled: expected boolean, got string "yes"`,
    `${file}: sources.sim.kinds: expected array of ("th" | "aq" | "power"), got string "th"`,
    `${file}: store.retention_hours: expected integer (1..87600), got float 1.5`,
  ])
  t.end()
})

t.test('values out of range and bad enumerations', (t) => {
  const dir = t.testdir({
    'a.toml': `
[gateway]
log_level = "verbose"
name = "my gateway"
state_dir = ""
[store]
max_pending = 0
[sources.sim]
kinds = ["th", "zz", "th"]
interval_ms = 100000000000
[clock]
sync_check = "ntpd"
`,
  })
  const file = join(dir, 'a.toml')
  const e = configError(t, () => load({ path: file }), 'CONFIG_INVALID')
  const got = issues(e).map((i) => `${i.path}: ${i.message}`)
  t.same(got, [
    'clock.sync_check: expected "timedatectl" | "none", got "ntpd"',
    'gateway.log_level: expected "trace" | "debug" | "info" | "warn" | "error" | "fatal", got "verbose"',
    'gateway.name: "my gateway" is not allowed: use 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit',
    'gateway.state_dir: must not be empty',
    'sources.sim.interval_ms: must be at most 86400000, got 100000000000',
    'sources.sim.kinds: must not repeat an item',
    'sources.sim.kinds[1]: expected "th" | "aq" | "power", got "zz"',
    'store.max_pending: must be at least 1, got 0',
  ])
  t.ok(issues(e).every((i) => i.file === file))
  t.end()
})

t.test('listen addresses are checked with a clear message', (t) => {
  const dir = t.testdir({ 'a.toml': '[api]\nlisten = "0.0.0.0:70000"\n', 'b.toml': '[api]\nlisten = "8080"\n' })
  const a = configError(t, () => load({ path: join(dir, 'a.toml') }), 'CONFIG_INVALID')
  t.match(a.message, /api\.listen: invalid listen address "0\.0\.0\.0:70000": port 70000 is out of range 0\.\.65535; expected HOST:PORT/)
  const b = configError(t, () => load({ path: join(dir, 'b.toml') }), 'CONFIG_INVALID')
  t.match(b.message, /api\.listen: invalid listen address "8080": missing ":PORT"/)
  t.end()
})

t.test('TOML syntax errors give line and column', (t) => {
  const dir = t.testdir({
    'bad.toml': '[gateway]\nname = "x\n',
    'dup.toml': '[api]\nlisten = "127.0.0.1:1"\nlisten = "127.0.0.1:2"\n',
  })
  const bad = configError(t, () => load({ path: join(dir, 'bad.toml') }), 'CONFIG_INVALID')
  t.match(bad.message, new RegExp(`^${join(dir, 'bad.toml')}: line 2, column \\d+: invalid TOML: `))
  t.equal(bad.message.split('\n').length, 1, 'one line, no code frame')
  const dup = configError(t, () => load({ path: join(dir, 'dup.toml') }), 'CONFIG_INVALID')
  t.match(dup.message, /: line 3, column 1: invalid TOML: .*redefine/)
  t.end()
})

t.test('every error is reported at once', (t) => {
  const dir = t.testdir({
    'a.toml': `
[gateway]
nmae = "x"
[api]
max_readings_per_request = -1
listen = "localhost"
[batch]
max_age_seconds = "10s"
[sinks.nope]
url = "https://example.org"
`,
  })
  const file = join(dir, 'a.toml')
  const e = configError(t, () => load({ path: file }), 'CONFIG_INVALID')
  const lines = e.message.split('\n')
  t.equal(lines.length, 5, e.message)
  t.equal(issues(e).length, 5)
  for (const l of lines) t.ok(l.startsWith(`${file}: `), l)
  t.same(
    issues(e).map((i) => i.path),
    ['api.listen', 'api.max_readings_per_request', 'batch.max_age_seconds', 'gateway.nmae', 'sinks.nope'],
  )
  t.end()
})

t.test('a byte-order mark and CRLF line ends are accepted', (t) => {
  const dir = t.testdir({ 'a.toml': '\uFEFF[gateway]\r\nname = "bom"\r\n' })
  t.equal(load({ path: join(dir, 'a.toml') }).config.gateway.name, 'bom')
  t.end()
})

t.test('paths: state_dir against the file, key and token files against state_dir', (t) => {
  const dir = t.testdir({
    'rel.toml': '[gateway]\nstate_dir = "state"\n[identity]\nkey_file = "keys/gw.key"\n[api]\ntoken_file = "/run/secrets/token"\n',
  })
  const { config } = load({ path: join(dir, 'rel.toml'), cwd: '/' })
  t.equal(config.gateway.state_dir, join(dir, 'state'))
  t.equal(config.identity.key_file, join(dir, 'state', 'keys', 'gw.key'))
  t.equal(config.api.token_file, '/run/secrets/token')
  t.end()
})

t.test('command-line overrides lay over the file and are validated the same way', (t) => {
  const cwd = t.testdir({ 'a.toml': '[gateway]\nstate_dir = "/var/lib/x"\n[api]\nlisten = "0.0.0.0:8080"\n' })
  const file = join(cwd, 'a.toml')
  const { config } = load({ path: file, cwd, overrides: { stateDir: 'gw2', listen: { http: '127.0.0.1:8081' } } })
  t.equal(config.gateway.state_dir, join(cwd, 'gw2'), '--state-dir relative to the current directory')
  t.equal(config.identity.key_file, join(cwd, 'gw2', 'gateway.key'), 'default key file follows the state dir')
  t.equal(config.api.listen, '127.0.0.1:8081')
  const st = load({ path: file, cwd, overrides: { listen: { 'lorawan-station': '127.0.0.1:3101', lorawan: '127.0.0.1:1701' } } })
  t.equal(st.config.sources.lorawan.station.listen, '127.0.0.1:3101', '--lorawan-station-listen')
  t.equal(st.config.sources.lorawan.listen, '127.0.0.1:1701', '--lorawan-listen')
  const es = configError(t, () => load({ path: file, overrides: { listen: { 'lorawan-station': 'nowhere' } } }), 'CONFIG_INVALID')
  t.match(es.message, /^--lorawan-station-listen: sources\.lorawan\.station\.listen: invalid listen address "nowhere"/)

  const sim = load({ cwd, overrides: { stateDir: '/tmp/gw3', listen: { http: undefined } } })
  t.equal(sim.simulation, true)
  t.equal(sim.config.gateway.state_dir, '/tmp/gw3')
  t.equal(sim.config.api.listen, '127.0.0.1:8080', 'an undefined override changes nothing')

  const e = configError(t, () => load({ path: file, overrides: { listen: { http: 'localhost:65536' } } }), 'CONFIG_INVALID')
  t.match(e.message, /^--http-listen: api\.listen: invalid listen address "localhost:65536": port 65536 is out of range/)

  const both = t.testdir({ 'b.toml': '[gateway]\nlog_level = 3\n' })
  const e2 = configError(
    t,
    () => load({ path: join(both, 'b.toml'), overrides: { listen: { http: '[::1]8080' } } }),
    'CONFIG_INVALID',
  )
  t.same(
    issues(e2).map((i) => `${i.file} ${i.path}`),
    ['--http-listen api.listen', `${join(both, 'b.toml')} gateway.log_level`],
    'file and flag errors together, each named by its origin',
  )
  t.end()
})

t.test('the returned config is independent of the schema defaults', (t) => {
  const dir = t.testdir({ 'a.toml': '' })
  const a = load({ path: join(dir, 'a.toml') })
  a.config.sources.sim.kinds.push('th')
  const b = load({ path: join(dir, 'a.toml') })
  t.same(b.config.sources.sim.kinds, ['th', 'aq', 'power'])
  t.end()
})
