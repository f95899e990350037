// `fieldproof devices add http`: a device that POSTs readings to
// /api/v1/readings with its own bearer token (docs/http-api.md). The token is
// printed once; the gateway keeps its SHA-256 digest (a 256-bit random token
// needs no slow hash). Its readings are recorded with auth http-token and
// tokenId = the device id, and may only be for that device.

import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { DEVICE_ID_RE } from '../../core/canonical.ts'
import { FieldproofError } from '../../core/errors.ts'
import { DB_FILE } from '../../gateway.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command } from '../cli.ts'

export const devicesAddHttpCommand: Command = {
  name: 'http',
  summary: 'register a device that posts readings over HTTP with its own token; prints the token once',
  options: { ...CONFIG_OPTIONS, id: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof devices add http --id ID [--name N] [--config PATH | --state-dir DIR] [--json]

Register a device that posts to POST /api/v1/readings with its own bearer
token (Authorization: Bearer <token>). The token is printed ONCE; the gateway
keeps only its SHA-256 digest. The token may submit readings of this device only.

Options:
      --id ID        device id (required)
      --name N       a name for lists and the status page
  -c, --config PATH  config file (for the state directory)
      --state-dir DIR  the gateway's state directory
      --json         print the result as JSON
  -h, --help         this help
`,
  run(args, io) {
    const id = str(args.values['id'])
    if (!id) throw new UsageError('--id is required')
    if (!DEVICE_ID_RE.test(id)) throw new UsageError(`--id ${id}: 1 to 128 of A-Z a-z 0-9 . _ : @ / -`)
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const token = `fpd_${randomBytes(32).toString('base64url')}`
    const s = new Store(join(config.gateway.state_dir, DB_FILE))
    try {
      if (s.device(id)) throw new FieldproofError('USAGE', `device "${id}" exists; remove it first (fieldproof devices remove ${id})`)
      s.upsertDevice({ id, kind: 'http', name: str(args.values['name']) ?? null, config: '{}', secret: JSON.stringify({ tokenSha256: createHash('sha256').update(token).digest('hex') }) })
    } finally {
      s.close()
    }
    if (args.values['json']) io.out(jsonText({ id, kind: 'http', token }))
    else {
      io.out(`registered HTTP device ${id}`)
      io.out(`  token: ${token}`)
      io.out('The token is shown only now; the gateway keeps a digest of it.')
    }
    return 0
  },
}
