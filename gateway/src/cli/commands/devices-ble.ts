// `fieldproof devices add ble` (register a BLE sensor: MAC, bind key) and
// `fieldproof devices scan ble` (list decodable sensors the running gateway
// hears, from GET /api/v1/ble/nearby). docs/ble.md.

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { FieldproofError } from '../../core/errors.ts'
import { DB_FILE } from '../../gateway.ts'
import { defaultDeviceId, normalizeMac } from '../../sources/ble/advert.ts'
import { registeredFromRow } from '../../sources/ble/source.ts'
import type { BleNearbyView } from '../../sources/ble/nearby.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command } from '../cli.ts'
import { apiUrl } from './status.ts'

const ID_RE = /^[A-Za-z0-9._:@/-]{1,128}$/

export const devicesAddBleCommand: Command = {
  name: 'ble',
  summary: 'register a BLE sensor by MAC address (bind key for encrypted BTHome, MiBeacon, pvvx)',
  options: {
    ...CONFIG_OPTIONS,
    mac: { type: 'string' },
    bindkey: { type: 'string' },
    name: { type: 'string' },
    id: { type: 'string' },
    'min-interval': { type: 'string' },
    'reset-counter': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  help: `Usage: fieldproof devices add ble --mac AA:BB:CC:DD:EE:FF [--bindkey HEX] [--name N]
                                [--id ID] [--min-interval SECONDS] [--reset-counter]
                                [--config PATH | --state-dir DIR] [--json]

Register a BLE sensor: its advertisements become readings (device id
ble:<mac without colons> unless --id is given). Find sensors near the gateway
with \`fieldproof devices scan ble\`. The running gateway picks the change up
within [sources.ble] device_reload_seconds.

Options:
      --mac MAC             the sensor's Bluetooth address (required)
      --bindkey HEX         32 hex digits: the encryption key of an encrypted
                            BTHome, Xiaomi MiBeacon or pvvx sensor; then only
                            encrypted advertisements with a rising counter are accepted
      --name N              a name for lists and the status page
      --id ID               device id (default ble:<mac without colons, lowercase>)
      --min-interval S      least seconds between two stored readings of this
                            sensor (default: [sources.ble] min_interval_seconds)
      --reset-counter       accept the next encryption counter even if it is
                            lower (after the sensor's battery was changed); the
                            gateway refuses counter drops until this is given
  -c, --config PATH         config file (for the state directory)
      --state-dir DIR       the gateway's state directory
      --json                print the result as JSON
  -h, --help                this help

Example:
  fieldproof devices add ble --mac 54:48:E6:8F:80:A5 --bindkey 231d39c1d7cc1ab1aee224cd096db932 --name kitchen
`,
  run(args, io) {
    const macText = str(args.values['mac'])
    if (!macText) throw new UsageError('--mac is required')
    const mac = normalizeMac(macText)
    if (!mac) throw new UsageError(`--mac ${macText}: expected a MAC address such as AA:BB:CC:DD:EE:FF`)
    const bindkey = str(args.values['bindkey'])
    if (bindkey !== undefined && !/^[0-9a-fA-F]{32}$/.test(bindkey)) throw new UsageError('--bindkey must be 32 hex digits (16 bytes)')
    const id = str(args.values['id']) ?? defaultDeviceId(mac)
    if (!ID_RE.test(id)) throw new UsageError(`--id ${id}: 1 to 128 of A-Z a-z 0-9 . _ : @ / -`)
    const minText = str(args.values['min-interval'])
    let minInterval: number | undefined
    if (minText !== undefined) {
      minInterval = Number(minText)
      if (!/^\d+(\.\d+)?$/.test(minText) || minInterval > 86_400) throw new UsageError('--min-interval must be 0 to 86400 seconds')
    }
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const s = new Store(join(config.gateway.state_dir, DB_FILE))
    let created: boolean
    let name: string | null
    let hasKey: boolean
    try {
      const clash = s.devices('ble').find((d) => {
        const r = registeredFromRow(d)
        return typeof r !== 'string' && r.mac === mac && d.id !== id
      })
      if (clash) throw new FieldproofError('USAGE', `${mac} is already registered as ${clash.id}; remove it first (fieldproof devices remove ${clash.id})`)
      const existing = s.device(id)
      if (existing && existing.kind !== 'ble') throw new FieldproofError('USAGE', `device ${id} exists with kind ${existing.kind}`)
      let prev: Record<string, unknown> = {}
      if (existing) {
        try {
          prev = JSON.parse(existing.config) as Record<string, unknown>
        } catch {
          prev = {}
        }
      }
      const cfg: Record<string, unknown> = { ...prev, mac }
      if (minInterval !== undefined) cfg['min_interval_seconds'] = minInterval
      if (args.values['reset-counter']) cfg['counterResetMs'] = Date.now()
      name = str(args.values['name']) ?? existing?.name ?? null
      hasKey = bindkey !== undefined || (existing?.secret ?? null) !== null
      s.upsertDevice({ id, kind: 'ble', name, config: JSON.stringify(cfg), secret: bindkey !== undefined ? JSON.stringify({ bindkey: bindkey.toLowerCase() }) : null })
      created = !existing
    } finally {
      s.close()
    }
    const out = { id, kind: 'ble', mac, name, encrypted: hasKey, created, resetCounter: Boolean(args.values['reset-counter']) }
    if (args.values['json']) io.out(jsonText(out))
    else {
      io.out(
        `${created ? 'registered' : 'updated'} BLE device ${id} (${mac})${bindkey !== undefined ? ', bind key stored' : ''}${out.resetCounter ? ', next counter accepted once' : ''}. ` +
          'A running gateway picks it up within [sources.ble] device_reload_seconds.',
      )
    }
    return 0
  },
}

/** The API token: FIELDPROOF_TOKEN, else the config's api.token_file. */
function readToken(env: Readonly<Record<string, string | undefined>>, tokenFile: string): string {
  const fromEnv = env['FIELDPROOF_TOKEN']
  if (fromEnv) return fromEnv.trim()
  if (!existsSync(tokenFile)) throw new FieldproofError('NOT_FOUND', `no API token at ${tokenFile}; run this as the gateway's user, or set FIELDPROOF_TOKEN`)
  try {
    return readFileSync(tokenFile, 'utf8').trim()
  } catch (e) {
    throw new FieldproofError('NOT_FOUND', `cannot read the API token ${tokenFile} (${(e as Error).message}); run this as the gateway's user (sudo -u fieldproof ...) or set FIELDPROOF_TOKEN`)
  }
}

export const devicesScanBleCommand: Command = {
  name: 'ble',
  summary: 'list BLE sensors the running gateway hears, with their latest values',
  options: { ...CONFIG_OPTIONS, seconds: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof devices scan ble [--seconds N] [--url URL] [--config PATH] [--json]

Ask the running gateway (GET /api/v1/ble/nearby, with the API token) which
decodable BLE sensors it hears: MAC, format, signal, latest values, and
whether each is registered. Phones and other advertisers are not listed.
Register one with \`fieldproof devices add ble --mac MAC\`.

Options:
      --seconds N     listen for N seconds and list what was heard in that
                      time (default 10; 0: everything the gateway heard recently)
      --url URL       the gateway's API (default: from the config's [api] listen)
  -c, --config PATH   config file
      --json          print the nearby document as JSON
  -h, --help          this help

The token is read from FIELDPROOF_TOKEN or the config's api.token_file.
`,
  async run(args, io) {
    const secText = str(args.values['seconds']) ?? '10'
    if (!/^\d{1,5}$/.test(secText)) throw new UsageError('--seconds must be a whole number of seconds')
    const seconds = Number(secText)
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const base = str(args.values['url']) ?? apiUrl(config.api.listen)
    const token = readToken(io.env, config.api.token_file)
    const started = Date.now()
    if (seconds > 0) {
      if (!args.values['json']) io.err(`listening for ${seconds} s ...`)
      await new Promise((r) => setTimeout(r, seconds * 1000))
    }
    let res: Response
    try {
      res = await fetch(new URL('/api/v1/ble/nearby', base), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) })
    } catch (e) {
      throw new FieldproofError('NOT_FOUND', `the gateway at ${base} does not answer (${(e as Error).message}); is it running?`)
    }
    const body = (await res.json().catch(() => ({}))) as BleNearbyView & { error?: { message?: string } }
    if (!res.ok) throw new FieldproofError('NOT_FOUND', `the gateway answered ${res.status}: ${body.error?.message ?? 'no BLE view'}`)
    const devices = seconds > 0 ? body.devices.filter((d) => d.lastSeenMs >= started - 1000) : body.devices
    const view = { ...body, devices }
    if (args.values['json']) {
      io.out(jsonText(view))
      return 0
    }
    io.out(`adapter ${view.adapter}: ${view.state}`)
    if (devices.length === 0) io.out('no decodable BLE sensors heard' + (seconds > 0 ? ` in ${seconds} s` : ''))
    for (const d of devices) {
      const values = d.metrics.map((m) => `${m.name}=${m.value}${m.unit === '1' ? '' : ' ' + m.unit}`).join(', ')
      const tag = d.registered ? `registered as ${d.registered}` : d.accepted ? 'accepted (accept_all)' : d.needsKey ? 'encrypted: add with --bindkey' : 'not registered'
      io.out(`${d.mac}  ${d.format.padEnd(8)} ${String(d.rssi ?? '?').padStart(4)} dBm  ${tag}${d.name ? `  "${d.name}"` : ''}${values ? `  ${values}` : ''}`)
    }
    return 0
  },
}

/** `devices scan <kind>`: one subcommand per kind that can be discovered. */
export const devicesScanCommand: Command = {
  name: 'scan',
  summary: 'list devices near the gateway that could be registered',
  options: {},
  subcommands: [devicesScanBleCommand],
  help: `Usage: fieldproof devices scan <kind> [options]

  ble       BLE sensors the running gateway hears (fieldproof devices scan ble --help)
`,
}
