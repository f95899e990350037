// `fieldproof devices add lorawan`: register a LoRaWAN device whose keys this
// gateway holds ("session" trust mode, docs/lorawan.md): OTAA (DevEUI, JoinEUI,
// AppKey) or ABP (DevAddr, NwkSKey, AppSKey), LoRaWAN 1.0.3 or 1.0.4, and its
// payload codec. Keys go into the devices table's secret column and are never
// printed; the running gateway picks the device up within seconds.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { FieldproofError } from '../../core/errors.ts'
import { aesKey } from '../../core/lorawan/crypto.ts'
import { checkMetric } from '../../core/units.ts'
import { DB_FILE } from '../../gateway.ts'
import { CODEC_IDS } from '../../sources/lorawan/codecs.ts'
import { checkDeviceConfig, LORAWAN_DEVICE_KIND } from '../../sources/lorawan/sessions.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command } from '../cli.ts'

const ID_RE = /^[A-Za-z0-9._:@/-]{1,128}$/
/** Largest JavaScript codec accepted (bytes). */
const MAX_CODEC_BYTES = 256 * 1024

function key(args: Record<string, unknown>, flag: string): string | undefined {
  const v = str(args[flag] as string | undefined)
  if (v === undefined) return undefined
  const clean = v.replace(/^0x/i, '').replace(/[\s:-]/g, '')
  if (!aesKey(clean)) throw new UsageError(`--${flag} must be 32 hex digits (16 bytes)`)
  return clean.toLowerCase()
}

export const devicesAddLorawanCommand: Command = {
  name: 'lorawan',
  summary: 'register a LoRaWAN device whose keys this gateway holds (OTAA or ABP)',
  options: {
    ...CONFIG_OPTIONS,
    id: { type: 'string' },
    name: { type: 'string' },
    'dev-eui': { type: 'string' },
    'join-eui': { type: 'string' },
    'app-key': { type: 'string' },
    'dev-addr': { type: 'string' },
    'nwk-s-key': { type: 'string' },
    'app-s-key': { type: 'string' },
    codec: { type: 'string' },
    'codec-file': { type: 'string' },
    field: { type: 'string', multiple: true },
    'lorawan-version': { type: 'string' },
    json: { type: 'boolean' },
  },
  help: `Usage: fieldproof devices add lorawan --id ID --dev-eui EUI --app-key KEY [--join-eui EUI]
       fieldproof devices add lorawan --id ID --dev-addr ADDR --nwk-s-key KEY --app-s-key KEY
           [--codec cayenne-lpp|raw|js --codec-file FILE] [--field PATH=METRIC[:UNIT] ...]
           [--lorawan-version 1.0.3|1.0.4] [--name N] [--config PATH | --state-dir DIR] [--json]

Register a LoRaWAN device with this gateway ("session" trust mode): its frames
are MIC-checked, replays refused, payloads decrypted and decoded; readings carry
auth lorawan-mic. Over-the-air activation (OTAA) needs --dev-eui and --app-key
(JoinEUI defaults to 0000000000000000); activation by personalization (ABP)
needs --dev-addr, --nwk-s-key and --app-s-key. Keys are stored in the gateway's
database and never printed. A running gateway picks the device up within 5 s.
Registering an existing id again updates it; new keys start a new session.

Options:
      --id ID               device id for readings (required)
      --dev-eui EUI         OTAA: DevEUI, 16 hex digits
      --join-eui EUI        OTAA: JoinEUI (AppEUI), 16 hex digits
      --app-key KEY         OTAA: AppKey, 32 hex digits
      --dev-addr ADDR       ABP: DevAddr, 8 hex digits
      --nwk-s-key KEY       ABP: NwkSKey, 32 hex digits
      --app-s-key KEY       ABP: AppSKey, 32 hex digits
      --codec C             payload codec: ${CODEC_IDS.join(', ')} (default cayenne-lpp)
      --codec-file FILE     JavaScript codec (The Things Stack form:
                            function decodeUplink({ bytes, fPort, recvTime }) { return { data } })
      --field P=M[:U]       map decoded field P to metric M (unit U unless M is well known),
                            e.g. --field level=volume_storage_l --field t2=soil_temp_c:Cel
      --lorawan-version V   1.0.3 (random DevNonce) or 1.0.4 (counter DevNonce); default 1.0.4
      --name N              a name for lists and the status page
  -c, --config PATH         config file (for the state directory)
      --state-dir DIR       the gateway's state directory
      --json                print the result as JSON (never the keys)
  -h, --help                this help

Example:
  fieldproof devices add lorawan --id field-1 --dev-eui 0004a30b001c0530 \\
      --app-key 2b7e151628aed2a6abf7158809cf4f3c --codec cayenne-lpp
`,
  run(args, io) {
    const v = args.values
    const id = str(v['id'])
    if (!id) throw new UsageError('--id is required')
    if (!ID_RE.test(id) || id.startsWith('lorawan-witness:')) throw new UsageError(`--id ${id}: 1 to 128 of A-Z a-z 0-9 . _ : @ / -, not starting with lorawan-witness:`)
    const appKey = key(v, 'app-key')
    const nwkSKey = key(v, 'nwk-s-key')
    const appSKey = key(v, 'app-s-key')
    const devAddr = str(v['dev-addr'])
    const otaa = appKey !== undefined || str(v['dev-eui']) !== undefined
    const abp = devAddr !== undefined || nwkSKey !== undefined || appSKey !== undefined
    if (otaa === abp) throw new UsageError('give either OTAA (--dev-eui, --app-key) or ABP (--dev-addr, --nwk-s-key, --app-s-key)')
    if (otaa && (appKey === undefined || str(v['dev-eui']) === undefined)) throw new UsageError('OTAA needs --dev-eui and --app-key')
    if (abp && (devAddr === undefined || nwkSKey === undefined || appSKey === undefined)) throw new UsageError('ABP needs --dev-addr, --nwk-s-key and --app-s-key')
    const codec = str(v['codec']) ?? (str(v['codec-file']) !== undefined ? 'js' : 'cayenne-lpp')
    let codecSource: string | undefined
    const file = str(v['codec-file'])
    if (codec === 'js') {
      if (!file) throw new UsageError('--codec js needs --codec-file FILE')
      try {
        codecSource = readFileSync(file, 'utf8')
      } catch (e) {
        throw new UsageError(`--codec-file ${file}: ${(e as Error).message}`)
      }
      if (Buffer.byteLength(codecSource) > MAX_CODEC_BYTES) throw new UsageError(`--codec-file is larger than ${MAX_CODEC_BYTES} bytes`)
    } else if (file) throw new UsageError('--codec-file goes with --codec js')
    const fields: Record<string, { name: string; unit?: string }> = {}
    for (const f of (v['field'] as string[] | undefined) ?? []) {
      const m = /^([^=]+)=([a-z][a-z0-9_]{0,63})(?::(.+))?$/.exec(f)
      if (!m) throw new UsageError(`--field ${f}: expected PATH=METRIC or PATH=METRIC:UNIT`)
      const c = checkMetric(m[2] as string, m[3], 0)
      if (!c.ok) throw new UsageError(`--field ${f}: ${c.reason}`)
      fields[m[1] as string] = m[3] !== undefined ? { name: m[2] as string, unit: m[3] } : { name: m[2] as string }
    }
    const raw: Record<string, unknown> = {
      activation: otaa ? 'otaa' : 'abp',
      lorawanVersion: str(v['lorawan-version']) ?? '1.0.4',
      codec,
      ...(otaa ? { devEui: str(v['dev-eui']), joinEui: str(v['join-eui']) ?? '0000000000000000' } : { devAddr }),
      ...(codecSource !== undefined ? { codecSource } : {}),
      ...(Object.keys(fields).length > 0 ? { fields } : {}),
    }
    const checked = checkDeviceConfig(raw)
    if (!checked.ok) throw new UsageError(checked.reason)
    const secret = JSON.stringify(otaa ? { appKey } : { nwkSKey, appSKey })
    const { config } = loadConfig({ path: str(v['config']), overrides: { stateDir: str(v['state-dir']) }, env: io.env, cwd: io.cwd })
    const s = new Store(join(config.gateway.state_dir, DB_FILE))
    let created: boolean
    let newSession: boolean
    try {
      const existing = s.device(id)
      if (existing && existing.kind !== LORAWAN_DEVICE_KIND) throw new FieldproofError('USAGE', `device ${id} exists with kind ${existing.kind}`)
      const clash = s.devices(LORAWAN_DEVICE_KIND).find((d) => {
        if (d.id === id) return false
        try {
          const c = JSON.parse(d.config) as Record<string, unknown>
          return checked.config.devEui !== undefined ? c['devEui'] === checked.config.devEui && c['joinEui'] === checked.config.joinEui : false
        } catch {
          return false
        }
      })
      if (clash) throw new FieldproofError('USAGE', `DevEUI ${checked.config.devEui} is already registered as ${clash.id}; remove it first (fieldproof devices remove ${clash.id})`)
      let prevSecret: Record<string, unknown> = {}
      try {
        prevSecret = JSON.parse(existing?.secret ?? '{}') as Record<string, unknown>
      } catch {
        prevSecret = {}
      }
      // Same keys (the gateway adds an OTAA device's session keys to its secret): keep the live session.
      const sameKeys = otaa ? prevSecret['appKey'] === appKey : prevSecret['nwkSKey'] === nwkSKey && prevSecret['appSKey'] === appSKey
      newSession = !existing || !sameKeys
      s.db.transaction(() => {
        s.upsertDevice({ id, kind: LORAWAN_DEVICE_KIND, name: str(v['name']) ?? existing?.name ?? null, config: JSON.stringify(checked.config), secret: newSession ? secret : null })
        if (existing && newSession) {
          // New keys: a new session. The DevNonce/JoinNonce history of an OTAA device stays (same DevEUI).
          let prev: Record<string, unknown> = {}
          try {
            prev = JSON.parse(existing.state) as Record<string, unknown>
          } catch {
            prev = {}
          }
          const keep = otaa ? { usedDevNonces: prev['usedDevNonces'], lastDevNonce: prev['lastDevNonce'], lastJoinNonce: prev['lastJoinNonce'] } : {}
          s.touchDevice(id, { state: JSON.stringify({ ...keep, fcntUp: null, fcntDown: null }) })
        }
      })()
      created = !existing
    } finally {
      s.close()
    }
    const out = {
      id,
      kind: LORAWAN_DEVICE_KIND,
      trust: 'session',
      activation: checked.config.activation,
      lorawanVersion: checked.config.lorawanVersion,
      devEui: checked.config.devEui ?? null,
      joinEui: checked.config.joinEui ?? null,
      devAddr: checked.config.devAddr ?? null,
      codec,
      fields: Object.keys(fields),
      created,
      newSession,
    }
    if (v['json']) io.out(jsonText(out))
    else {
      io.out(
        `${created ? 'registered' : 'updated'} LoRaWAN device ${id} (${out.activation.toUpperCase()}, ${out.lorawanVersion}, ${out.devEui ? `DevEUI ${out.devEui}` : `DevAddr ${out.devAddr}`}, codec ${codec})` +
          `${newSession && !created ? '; new keys: a new session' : ''}. Keys stored, not shown. A running gateway picks it up within 5 s.`,
      )
    }
    return 0
  },
}
