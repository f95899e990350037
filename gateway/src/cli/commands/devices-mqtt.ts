// `fieldproof devices add mqtt`: a WiFi sensor that logs in to the embedded
// MQTT broker (docs/mqtt.md). Prints the generated user name and password
// once; the gateway keeps a salted scrypt hash.

import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { DEVICE_ID_RE } from '../../core/canonical.ts'
import { FieldproofError } from '../../core/errors.ts'
import { DB_FILE } from '../../gateway.ts'
import { devicePrefixes, isValidPrefix, MQTT_FORMATS, type MqttDeviceConfig, type MqttFormat } from '../../sources/mqtt/acl.ts'
import { generatePassword, hashPassword } from '../../sources/mqtt/credentials.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command } from '../cli.ts'

export const devicesAddMqttCommand: Command = {
  name: 'mqtt',
  summary: 'register a WiFi sensor for the MQTT broker (Tasmota, ESPHome, Shelly, JSON); prints its password once',
  options: {
    ...CONFIG_OPTIONS,
    id: { type: 'string' },
    prefix: { type: 'string', multiple: true },
    format: { type: 'string' },
    name: { type: 'string' },
    json: { type: 'boolean' },
  },
  help: `Usage: fieldproof devices add mqtt --id ID [--prefix TOPIC-PREFIX]... [--format tasmota|esphome|shelly|json]
                                 [--name N] [--config PATH | --state-dir DIR] [--json]

Register a device that publishes to the gateway's MQTT broker. Its MQTT user
name is its id; a random password is generated and printed ONCE (only a salted
scrypt hash is stored). The device may publish and subscribe only under its
prefixes and fieldproof/<id>/.

Options:
      --id ID        device id and MQTT user name (required)
      --prefix P     a topic prefix the device owns (repeatable), e.g.
                     tele/kitchen (Tasmota: stat/kitchen and cmnd/kitchen follow),
                     livingroom (ESPHome topic_prefix), shellyplus1-a8032ab12345
      --format F     how its payloads are decoded: tasmota, esphome, shelly, or json
                     ({"metrics": {...}}, any topic under its prefixes); default json
      --name N       a name for lists and the status page
  -c, --config PATH  config file (for the state directory)
      --state-dir DIR  the gateway's state directory
      --json         print the result as JSON
  -h, --help         this help

Example:
  fieldproof devices add mqtt --id kitchen-plug --prefix tele/kitchen --format tasmota
`,
  run(args, io) {
    const id = str(args.values['id'])
    if (!id) throw new UsageError('--id is required')
    if (!DEVICE_ID_RE.test(id) || id.includes('/') || id.includes('+') || id.includes('#')) throw new UsageError(`--id ${id}: 1 to 128 of A-Z a-z 0-9 . _ : @ - (no /)`)
    const format = (str(args.values['format']) ?? 'json') as MqttFormat
    if (!(MQTT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${MQTT_FORMATS.join(', ')}`)
    const raw = args.values['prefix']
    const prefixes = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map(String)
    for (const p of prefixes) if (!isValidPrefix(p)) throw new UsageError(`--prefix ${p}: a topic without wildcards, without a leading $ or /, no empty levels`)
    if (format !== 'json' && prefixes.length === 0) throw new UsageError(`--prefix is required for --format ${format}`)
    const cfg: MqttDeviceConfig = { format, prefixes }
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const s = new Store(join(config.gateway.state_dir, DB_FILE))
    const password = generatePassword()
    try {
      if (s.device(id)) throw new FieldproofError('USAGE', `device "${id}" exists; remove it first (fieldproof devices remove ${id})`)
      s.upsertDevice({ id, kind: 'mqtt', name: str(args.values['name']) ?? null, config: JSON.stringify(cfg), secret: JSON.stringify(hashPassword(password)) })
    } finally {
      s.close()
    }
    const topics = devicePrefixes(id, cfg).map((p) => `${p}/#`)
    if (args.values['json']) io.out(jsonText({ id, kind: 'mqtt', format, username: id, password, topics }))
    else {
      io.out(`registered MQTT device ${id} (${format})`)
      io.out(`  username: ${id}`)
      io.out(`  password: ${password}`)
      io.out(`  topics:   ${topics.join(' ')}`)
      io.out('The password is shown only now; the gateway keeps a hash of it.')
    }
    return 0
  },
}
