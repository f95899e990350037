// `fieldproof config print`: a fully commented TOML template rendered from the
// live schema (CONVENTIONS.md, "One config schema"), in the manner of
// ChirpStack's `configfile` command. Every setting appears commented out with
// its description, type and default, so the template is always in step with
// the code: uncommenting any line yields a valid file.
//
// Comment style (as in sshd_config): `# text` is prose, `#key = value` and
// `#[table]` are settings; uncomment a setting by deleting its `#`.

import { stringify } from 'smol-toml'
import { configTables, type ConfigKeyInfo } from './schema.ts'

const WIDTH = 78

/** Wrap prose into `# `-prefixed lines of at most {@link WIDTH} columns. */
export function commentLines(text: string, prefix = '# '): string[] {
  const out: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && prefix.length + line.length + 1 + word.length > WIDTH) {
      out.push(prefix + line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') out.push(prefix + line)
  return out
}

/** A value as TOML source text (`"0.0.0.0:8080"`, `1000`, `["th", "aq"]`). */
export function tomlValue(value: unknown): string {
  const text = stringify({ v: value }).trim()
  return text.replace(/^v\s*=\s*/, '')
}

function keyLines(k: ConfigKeyInfo): string[] {
  let def = `Type: ${k.type}. Default: ${tomlValue(k.default)}`
  if ('simulationDefault' in k) def += `; in simulation mode: ${tomlValue(k.simulationDefault)}`
  return [...commentLines(k.description), ...commentLines(`${def}.`), `#${k.name} = ${tomlValue(k.default)}`]
}

/**
 * The commented TOML template of the whole configuration.
 *
 * @example process.stdout.write(renderConfigTemplate())  // fieldproof config print > fieldproof.toml
 */
export function renderConfigTemplate(): string {
  const out: string[] = [
    '# Fieldproof configuration (TOML, https://toml.io/en/v1.0.0).',
    '#',
    ...commentLines(
      'Every setting is shown commented out with its default: delete the "#" in front of a setting (and of its [table] line) to change it. Unknown keys are errors. On the device this file is /etc/fieldproof/fieldproof.toml; elsewhere pass --config PATH or set FIELDPROOF_CONFIG. Without any config file the gateway runs in simulation mode. Reference: docs/configuration.md.',
    ),
  ]
  for (const t of configTables()) {
    out.push('', '')
    out.push(...commentLines(`[${t.path}] ${t.description}`))
    // A table holding only sub-tables needs no header of its own.
    if (t.keys.length === 0 && t.hasSubTables) continue
    out.push(`#[${t.path}]`)
    for (const k of t.keys) out.push('', ...keyLines(k))
  }
  return `${out.join('\n')}\n`
}

/** Uncomment every setting of a template (`#key = v` → `key = v`, `#[t]` → `[t]`); prose stays. */
export function uncommentTemplate(template: string): string {
  return template
    .split('\n')
    .map((l) => (/^#(\[[a-z0-9_.]+\]$|\[\[[a-z0-9_.]+\]\]$|[a-z0-9_]+ = )/.test(l) ? l.slice(1) : l))
    .join('\n')
}
