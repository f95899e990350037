// Build the production form of the gateway: the TypeScript sources with
// their types stripped (node:module stripTypeScriptTypes, the same
// transformation Node applies at load time) into dist/, relative imports
// rewritten from .ts to .js. Running JavaScript saves the ~25 MB that
// loading the type stripper costs at run time — on a 512 MB Pi Zero 2 W that
// matters. Tests still run the sources; a test runs the built CLI.
//
//   bash scripts/run-node scripts/build-dist.ts [--out DIR] [--link-modules]

import { stripTypeScriptTypes } from 'node:module'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'

const root = resolve(import.meta.dirname, '..')
const { values } = parseArgs({ options: { out: { type: 'string', default: join(root, 'dist') }, 'link-modules': { type: 'boolean' } } })
const out = resolve(values.out)
const src = join(root, 'gateway/src')

/** Rewrite relative `.ts` specifiers in static and dynamic imports and re-exports. */
export function rewriteImports(js: string): string {
  return js.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"\n]+)\.ts\2/g, '$1$2$3.js$2')
}

function build(): number {
  rmSync(out, { recursive: true, force: true })
  let files = 0
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) {
        const code = stripTypeScriptTypes(readFileSync(p, 'utf8'), { mode: 'strip' })
        const target = join(out, 'gateway/src', relative(src, p)).replace(/\.ts$/, '.js')
        mkdirSync(dirname(target), { recursive: true })
        writeFileSync(target, rewriteImports(code))
        files++
      }
    }
  }
  walk(src)
  cpSync(join(root, 'gateway/package.json'), join(out, 'gateway/package.json'))
  mkdirSync(join(out, 'gateway/bin'), { recursive: true })
  writeFileSync(
    join(out, 'gateway/bin/fieldproof'),
    `#!/bin/sh\n# The fieldproof command (built form): Node.js >= 24 from $FIELDPROOF_NODE or PATH.\nhere=$(cd "$(dirname "$0")/.." && pwd -P)\nexec "\${FIELDPROOF_NODE:-node}" "$here/src/cli/main.js" "$@"\n`,
    { mode: 0o755 },
  )
  // For running the built form in place (benchmarks, tests): resolve packages from this checkout.
  if (values['link-modules'] && existsSync(join(root, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'))
  return files
}

if (import.meta.main) {
  process.removeAllListeners('warning')
  const n = build()
  console.log(`built ${n} modules into ${relative(process.cwd(), out) || '.'}`)
}
