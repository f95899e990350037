import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { DB_FILE } from '../../gateway.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, type Command } from '../cli.ts'

const list: Command = {
  name: 'list',
  summary: 'list registered devices',
  options: { ...CONFIG_OPTIONS, json: { type: 'boolean' } },
  help: `Usage: fieldproof devices list [--config PATH | --state-dir DIR] [--json]

List the devices registered with this gateway: id, kind, last seen, accepted
and rejected counts. Key material is never shown.
`,
  run(args, io) {
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const dbPath = join(config.gateway.state_dir, DB_FILE)
    const rows = existsSync(dbPath)
      ? (() => {
          const s = new Store(dbPath, { readonly: true })
          try {
            return s.devices()
          } finally {
            s.close()
          }
        })()
      : []
    const out = rows.map((d) => ({ id: d.id, kind: d.kind, name: d.name, lastSeenMs: d.lastSeenMs, accepted: d.accepted, rejected: d.rejected }))
    if (args.values['json']) io.out(jsonText(out))
    else if (out.length === 0) io.out('no devices registered')
    else for (const d of out) io.out(`${d.id.padEnd(32)} ${d.kind.padEnd(10)} last seen ${d.lastSeenMs ? new Date(d.lastSeenMs).toISOString() : 'never'}  accepted ${d.accepted}  rejected ${d.rejected}`)
    return 0
  },
}

export const devicesCommand: Command = {
  name: 'devices',
  summary: 'list and manage the devices registered with this gateway',
  options: {},
  subcommands: [list],
  help: `Usage: fieldproof devices <list> [options]

  list    list registered devices
`,
}
