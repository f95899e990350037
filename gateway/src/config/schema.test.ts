import t from 'tap'
import { Value } from '@sinclair/typebox/value'
import type { TSchema } from '@sinclair/typebox'
import { satisfies } from './validate.ts'
import { ConfigSchema, configTables, parseListenAddress, simulationOverlay } from './schema.ts'

t.test('every key has a description and a default that validates', (t) => {
  const tables = configTables()
  t.ok(tables.length >= 9)
  for (const table of tables) {
    t.ok(table.description.length > 10, `[${table.path}] described`)
    for (const k of table.keys) {
      t.ok(k.description.length > 10, `${k.path} described`)
      t.not(k.default, undefined, `${k.path} has a default`)
      // configTables() walks the TypeBox schema itself, so TypeBox can check it.
      t.ok(Value.Check(k.schema as unknown as TSchema, k.default), `${k.path} default is valid`)
      t.ok(satisfies(k.schema, k.default), `${k.path} default is valid (validate.ts)`)
      if ('simulationDefault' in k) t.ok(Value.Check(k.schema as unknown as TSchema, k.simulationDefault), `${k.path} simulation default is valid`)
    }
  }
  t.end()
})

t.test('the JSON Schema closes every table', (t) => {
  const closed = (s: Record<string, unknown>, path: string): void => {
    if (s['type'] !== 'object') return
    t.equal(s['additionalProperties'], false, `${path || '(root)'} rejects unknown keys`)
    for (const [k, v] of Object.entries(s['properties'] as Record<string, Record<string, unknown>>)) closed(v, `${path}.${k}`)
  }
  closed(ConfigSchema as unknown as Record<string, unknown>, '')
  const json = JSON.parse(JSON.stringify(ConfigSchema)) as Record<string, unknown>
  t.equal(json['title'], 'Fieldproof configuration', 'serializes as plain JSON Schema')
  t.end()
})

t.test('the simulation overlay comes from the schema', (t) => {
  t.same(simulationOverlay(), {
    gateway: { state_dir: './.fieldproof' },
    api: { listen: '127.0.0.1:8080' },
    batch: { max_age_seconds: 10 },
    sources: { sim: { enabled: true }, mqtt: { enabled: true, listen: '127.0.0.1:1883', allow_anonymous: true } },
    discovery: { mdns: false },
  })
  t.end()
})

t.test('listen addresses', (t) => {
  const ok: [string, string, number][] = [
    ['0.0.0.0:8080', '0.0.0.0', 8080],
    ['127.0.0.1:1', '127.0.0.1', 1],
    ['127.0.0.1:0', '127.0.0.1', 0],
    ['[::1]:65535', '::1', 65535],
    ['[::]:1883', '::', 1883],
    ['[fe80::1%eth0]:80', 'fe80::1%eth0', 80],
    ['localhost:1700', 'localhost', 1700],
    ['gw-1.local:3001', 'gw-1.local', 3001],
  ]
  for (const [text, host, port] of ok) t.same(parseListenAddress(text), { ok: true, value: { host, port } }, text)
  const bad: [string, RegExp][] = [
    ['8080', /missing ":PORT"/],
    [':8080', /missing host/],
    ['0.0.0.0:', /missing port/],
    ['0.0.0.0:65536', /port 65536 is out of range 0\.\.65535/],
    ['0.0.0.0:123456', /port "123456" is not a number/],
    ['0.0.0.0:http', /port "http" is not a number/],
    ['::1:8080', /IPv6 address must be in brackets/],
    ['[::1]8080', /missing ":PORT" after "]"/],
    ['[::1:8080', /missing "]"/],
    ['[zz::1]:80', /"zz::1" is not a valid IPv6 address/],
    ['256.1.1.1:80', /"256\.1\.1\.1" is not a valid IPv4 address/],
    ['under_score:80', /not a valid IPv4 address or host name/],
    ['-bad.host:80', /not a valid/],
  ]
  for (const [text, re] of bad) {
    const r = parseListenAddress(text)
    t.equal(r.ok, false, text)
    if (!r.ok) {
      t.match(r.reason, re, text)
      t.match(r.reason, /expected HOST:PORT/)
    }
  }
  t.end()
})
