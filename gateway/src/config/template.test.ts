import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'smol-toml'
import { loadConfig } from './load.ts'
import { configTables } from './schema.ts'
import { renderConfigTemplate, uncommentTemplate } from './template.ts'

t.test('the template as printed is a valid config equal to the defaults', (t) => {
  const dir = t.testdir({})
  const tpl = renderConfigTemplate()
  t.same(parse(tpl), {}, 'everything commented out')
  writeFileSync(join(dir, 'empty.toml'), '')
  writeFileSync(join(dir, 'template.toml'), tpl)
  const opts = { env: {}, defaultPath: '/nonexistent' }
  t.same(loadConfig({ ...opts, path: join(dir, 'template.toml') }), {
    ...loadConfig({ ...opts, path: join(dir, 'empty.toml') }),
    path: join(dir, 'template.toml'),
  })
  t.end()
})

t.test('the template parses back, uncommented, to a valid config with every default', (t) => {
  const dir = t.testdir({})
  const text = uncommentTemplate(renderConfigTemplate())
  const doc = parse(text) as Record<string, Record<string, unknown>>
  // Every key of the schema is present once uncommented, with its default.
  for (const table of configTables()) {
    let node: Record<string, unknown> = doc
    for (const part of table.path.split('.')) node = node[part] as Record<string, unknown>
    t.ok(node !== undefined, `[${table.path}] present`)
    for (const k of table.keys) t.same(node[k.name], k.default, `${k.path} = default`)
  }
  writeFileSync(join(dir, 'full.toml'), text)
  writeFileSync(join(dir, 'empty.toml'), '')
  const opts = { env: {}, defaultPath: '/nonexistent' }
  const full = loadConfig({ ...opts, path: join(dir, 'full.toml') })
  const empty = loadConfig({ ...opts, path: join(dir, 'empty.toml') })
  t.same(full.config, empty.config)
  t.end()
})

t.test('the template shows each description, type and simulation default', (t) => {
  const tpl = renderConfigTemplate()
  t.match(tpl, /# Type: string \(HOST:PORT\)\. Default: "0\.0\.0\.0:8080"; in simulation mode:\n# "127\.0\.0\.1:8080"\.\n#listen = "0\.0\.0\.0:8080"/)
  t.match(tpl, /#\[sinks\.http\]/)
  t.same(tpl.split('\n').filter((l) => l.length > 78), [], 'every line fits 78 columns')
  t.end()
})
