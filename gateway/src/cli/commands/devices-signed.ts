// `fieldproof devices add signed`: a device that signs its readings with its
// own secp256k1 key (docs/device-protocol.md, versions 1 and 2). Registered by public key (checks
// start at once) or by address (the key is learned from the first message that
// recovers to it).

import { join } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { DEVICE_ID_RE } from '../../core/canonical.ts'
import { parseDevicePublicKey } from '../../core/device-protocol.ts'
import { FieldproofError } from '../../core/errors.ts'
import { bytesToHex, parseAddress, toChecksumAddress } from '../../core/hex.ts'
import { DB_FILE } from '../../gateway.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command } from '../cli.ts'

export const devicesAddSignedCommand: Command = {
  name: 'signed',
  summary: 'register a device that signs its readings (secp256k1 address or public key)',
  options: { ...CONFIG_OPTIONS, id: { type: 'string' }, address: { type: 'string' }, 'public-key': { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof devices add signed --id ID (--address 0x... | --public-key 0x...)
                                   [--name N] [--config PATH | --state-dir DIR] [--json]

Register a device that signs its readings with its own secp256k1 key
(docs/device-protocol.md). Its signed messages are accepted over MQTT
(topic fieldproof/<id>/up; it may log in with user name <id> and no password)
and HTTP (POST /api/v1/devices/<id>/readings, no token). Each message must
carry a counter above every counter accepted before, and its signature travels
into the reading's proof bundle.

Both protocol versions are accepted from the same registration:
  version 2 (body magic 46 50 44 02): ECDSA over SHA-256(body), low s,
            v 27/28 — recommended for new firmware (fastest checks);
  version 1 (body magic 46 50 44 01): EIP-191 personal_sign of the body —
            for tools that only have personal_sign / eth_sign.

Options:
      --id ID           device id (required; the id the device signs)
      --public-key HEX  its public key, 33 or 65 bytes hex (preferred: fastest checks)
      --address 0x...   its Ethereum address; the key is learned from its first valid message
      --name N          a name for lists and the status page
  -c, --config PATH     config file (for the state directory)
      --state-dir DIR   the gateway's state directory
      --json            print the result as JSON
  -h, --help            this help
`,
  run(args, io) {
    const id = str(args.values['id'])
    if (!id) throw new UsageError('--id is required')
    if (!DEVICE_ID_RE.test(id)) throw new UsageError(`--id ${id}: 1 to 128 of A-Z a-z 0-9 . _ : @ / -`)
    const pkText = str(args.values['public-key'])
    const addrText = str(args.values['address'])
    if ((pkText === undefined) === (addrText === undefined)) throw new UsageError('give exactly one of --address and --public-key')
    let address: string
    let publicKey: string | undefined
    if (pkText !== undefined) {
      const k = parseDevicePublicKey(pkText)
      if (!k) throw new UsageError('--public-key: not a secp256k1 public key (33 or 65 bytes of 0x-hex)')
      address = k.address
      publicKey = bytesToHex(k.publicKey)
    } else {
      const a = parseAddress(addrText)
      if (!a) throw new UsageError('--address: not a 20-byte 0x address (or a bad EIP-55 checksum)')
      address = toChecksumAddress(a)
    }
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const s = new Store(join(config.gateway.state_dir, DB_FILE))
    try {
      if (s.device(id)) throw new FieldproofError('USAGE', `device "${id}" exists; remove it first (fieldproof devices remove ${id})`)
      s.upsertDevice({ id, kind: 'signed', name: str(args.values['name']) ?? null, config: JSON.stringify({ address, ...(publicKey ? { publicKey } : {}) }) })
    } finally {
      s.close()
    }
    if (args.values['json']) io.out(jsonText({ id, kind: 'signed', address, ...(publicKey ? { publicKey } : {}) }))
    else io.out(`registered signed device ${id} (${address}${publicKey ? '' : '; its public key is learned from its first valid message'})`)
    return 0
  },
}
