import t from 'tap'
import { readFileSync } from 'node:fs'
import { CONFIG_DOCS_PATH, GENERATED_SCHEMA_PATH, renderConfigDocs, renderGeneratedSchema } from '../../../scripts/gen-config-docs.ts'
import { configTables } from './schema.ts'

t.test('docs/configuration.md is generated from the current schema', (t) => {
  const current = readFileSync(CONFIG_DOCS_PATH, 'utf8')
  const fresh = renderConfigDocs()
  t.ok(current === fresh, 'docs/configuration.md is up to date (run: npm run docs:config)')
  t.ok(readFileSync(GENERATED_SCHEMA_PATH, 'utf8') === renderGeneratedSchema(), 'schema.generated.ts is up to date (run: npm run docs:config)')
  t.end()
})

t.test('the docs cover every table and key', (t) => {
  const md = renderConfigDocs()
  for (const table of configTables()) {
    t.match(md, `## [${table.path}]`)
    for (const k of table.keys) t.match(md, `- **\`${k.name}\`**`, k.path)
  }
  t.match(md, /## Simulation mode/)
  t.match(md, /<file>: <dotted\.key\.path>: <message>/)
  t.end()
})
