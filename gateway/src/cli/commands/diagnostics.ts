// `fieldproof diagnostics`: a signed file for support (docs/diagnostics.md).

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { VERSION } from '../../gateway.ts'
import { writeFileAtomic } from '../../fs/atomic.ts'
import { collectDiagnostics, signDiagnostics, verifyDiagnostics } from '../../service/diagnostics.ts'
import { CONFIG_OPTIONS, jsonText, str, type Command } from '../cli.ts'

export const diagnosticsCommand: Command = {
  name: 'diagnostics',
  summary: 'write a signed diagnostics file for support (no secrets), or --verify one',
  options: { ...CONFIG_OPTIONS, out: { type: 'string', short: 'o' }, verify: { type: 'string' }, address: { type: 'string' }, full: { type: 'boolean' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof diagnostics [--out FILE] [--full] [--config PATH] [--state-dir DIR]
       fieldproof diagnostics --verify FILE [--address 0x...] [--json]

Write one file with what support needs: versions (gateway, release, Node, OS),
the config with secrets redacted, the gateway's status, recent logs
(journalctl -u fieldproof -n 2000), storage health (SQLite quick_check, or
integrity_check with --full; file sizes; free space). Tokens, keys, passwords
and sink credentials never appear in it. The file is signed with the gateway
key (EIP-191), so support can check which gateway made it and that nothing
changed: --verify prints the signer and exits 1 when the check fails.

Options:
  -o, --out FILE       where to write (default fieldproof-diagnostics-<name>-<time>.json; "-" for stdout)
      --full           PRAGMA integrity_check instead of quick_check (slower)
      --verify FILE    check a diagnostics file instead of writing one
      --address 0x...  with --verify: also require this signer
      --json           with --verify: print the result as JSON
  -c, --config PATH / --state-dir DIR   which gateway

See docs/diagnostics.md.
`,
  async run(args, io) {
    const verify = str(args.values['verify'])
    if (verify !== undefined) {
      const r = await verifyDiagnostics(readFileSync(resolve(io.cwd, verify)), str(args.values['address']))
      if (args.values['json']) io.out(jsonText(r))
      else io.out(r.ok ? `ok: signed by gateway ${r.name} ${r.address} at ${r.createdAt}` : `NOT VALID: ${r.reason}`)
      return r.ok ? 0 : 1
    }
    const loaded = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const { archive, privateKey } = await collectDiagnostics({ loaded, version: VERSION, fullCheck: args.values['full'] === true })
    const bytes = await signDiagnostics(archive, privateKey)
    const out = str(args.values['out']) ?? `fieldproof-diagnostics-${archive.gateway.name}-${archive.createdAt.replace(/[:.]/g, '-')}.json`
    if (out === '-') io.out(bytes.toString('utf8').trimEnd())
    else {
      const file = resolve(io.cwd, out)
      writeFileAtomic(file, bytes, 0o600)
      io.err(`wrote ${file} (${bytes.length} bytes), signed by ${archive.gateway.address}; check it with: fieldproof diagnostics --verify ${out}`)
    }
    return 0
  },
}
