import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { DB_FILE } from '../../gateway.ts'
import { Store } from '../../store/store.ts'
import { FieldproofError } from '../../core/errors.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command } from '../cli.ts'
import { devicesAddBleCommand, devicesScanCommand } from './devices-ble.ts'
import { devicesAddLorawanCommand } from './devices-lorawan.ts'

import { devicesAddMqttCommand } from './devices-mqtt.ts'
import { devicesAddHttpCommand } from './devices-http.ts'
import { devicesAddSignedCommand } from './devices-signed.ts'
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

const remove: Command = {
  name: 'remove',
  summary: 'remove a registered device',
  options: { ...CONFIG_OPTIONS, json: { type: 'boolean' } },
  help: `Usage: fieldproof devices remove DEVICE-ID [--config PATH | --state-dir DIR]

Remove a device and its credentials or keys from the registry. Its stored
readings stay (they are part of signed batches); new ones from it are refused.
`,
  run(args, io) {
    const id = args.positionals[0]
    if (!id) throw new UsageError('DEVICE-ID is required')
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const dbPath = join(config.gateway.state_dir, DB_FILE)
    if (!existsSync(dbPath)) throw new FieldproofError('NOT_FOUND', `no database at ${dbPath}`)
    const s = new Store(dbPath)
    try {
      if (!s.removeDevice(id)) throw new FieldproofError('NOT_FOUND', `no device "${id}"`)
    } finally {
      s.close()
    }
    io.out(args.values['json'] ? jsonText({ removed: id }) : `removed ${id}`)
    return 0
  },
}

/** `devices add <kind>`: one subcommand per device kind, each in its own file. */
export const DEVICE_ADD_COMMANDS: Command[] = [
  devicesAddMqttCommand,
  devicesAddHttpCommand,
  devicesAddSignedCommand,
  devicesAddBleCommand,
  devicesAddLorawanCommand,
]

const add: Command = {
  name: 'add',
  summary: 'register a device',
  options: {},
  get subcommands() {
    return DEVICE_ADD_COMMANDS
  },
  get help() {
    return `Usage: fieldproof devices add <kind> [options]

${DEVICE_ADD_COMMANDS.length ? DEVICE_ADD_COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n') : '  (no device kinds are registered in this build)'}

Credentials and keys are shown once, at creation; the gateway keeps only what
it needs to check them. Each kind has --help.
`
  },
}

export const devicesCommand: Command = {
  name: 'devices',
  summary: 'list and manage the devices registered with this gateway',
  options: {},
  subcommands: [list, add, remove, devicesScanCommand],
  help: `Usage: fieldproof devices <list|add|remove|scan> [options]

  list      list registered devices
  add       register a device (fieldproof devices add --help)
  remove    remove a registered device
  scan      list devices near the gateway that could be registered
`,
}
