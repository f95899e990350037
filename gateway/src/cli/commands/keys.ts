import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { FieldproofError } from '../../core/errors.ts'
import type { Hex } from '../../core/types.ts'
import { addressOf, readKey, writeKey } from '../../identity/key-file.ts'
import { decryptKeystore, encryptKeystore } from '../../identity/keystore.ts'
import { askPassphrase, readPassphraseFile } from '../../identity/passphrase.ts'
import { writeFileAtomic } from '../../identity/secret-file.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command, type Io, type ParsedArgs } from '../cli.ts'

function keyFile(args: ParsedArgs, io: Io): string {
  const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
  return config.identity.key_file
}

const show: Command = {
  name: 'show',
  summary: 'print the gateway address',
  options: { ...CONFIG_OPTIONS, json: { type: 'boolean' } },
  help: `Usage: fieldproof keys show [--config PATH] [--state-dir DIR] [--json]

Print the gateway's Ethereum address (the key itself is never printed).
`,
  run(args, io) {
    const file = keyFile(args, io)
    if (!existsSync(file)) {
      throw new FieldproofError('KEY_INVALID', `no gateway key at ${file} yet: it is generated on first start (fieldproof start), or restore one with fieldproof keys import`)
    }
    const { address } = readKey(file)
    io.out(args.values['json'] ? jsonText({ address, keyFile: file }) : address)
    return 0
  },
}

const exportCmd: Command = {
  name: 'export',
  summary: 'write an encrypted keystore (Web3 Secret Storage v3) for backup',
  options: { ...CONFIG_OPTIONS, out: { type: 'string', short: 'o' }, 'passphrase-file': { type: 'string' }, 'scrypt-n': { type: 'string' }, force: { type: 'boolean' } },
  help: `Usage: fieldproof keys export --out FILE [--passphrase-file F] [--scrypt-n N] [--force]

Encrypt the gateway key into a keystore file in the Web3 Secret Storage v3
format (scrypt + AES-128-CTR) that geth, MetaMask and other wallets import.
The passphrase is asked twice on the terminal, or read from --passphrase-file.

Options:
  -o, --out FILE            where to write the keystore (mode 0600); "-" for stdout
      --passphrase-file F   read the passphrase from the first line of F
      --scrypt-n N          scrypt cost (default 262144; a power of two ≥ 1024)
      --force               overwrite an existing FILE
  -c, --config PATH / --state-dir DIR   which gateway's key
`,
  async run(args, io) {
    const out = str(args.values['out'])
    if (!out) throw new UsageError('--out FILE is required ("-" for standard output)')
    const file = keyFile(args, io)
    const { privateKey, address } = readKey(file)
    const target = out === '-' ? '-' : resolve(io.cwd, out)
    if (target !== '-' && existsSync(target) && !args.values['force']) throw new UsageError(`${target} exists; pass --force to overwrite it`)
    const nText = str(args.values['scrypt-n'])
    const scryptN = nText === undefined ? undefined : Number(nText)
    if (scryptN !== undefined && (!Number.isInteger(scryptN) || scryptN < 1024 || (scryptN & (scryptN - 1)) !== 0)) {
      throw new UsageError('--scrypt-n must be a power of two ≥ 1024')
    }
    const pf = str(args.values['passphrase-file'])
    const passphrase = pf ? readPassphraseFile(resolve(io.cwd, pf)) : await askPassphrase('Passphrase for the keystore: ', { confirm: true })
    const ks = encryptKeystore(privateKey, passphrase, scryptN === undefined ? {} : { scryptN })
    const text = JSON.stringify(ks, null, 2) + '\n'
    if (target === '-') io.out(text.trimEnd())
    else {
      writeFileAtomic(target, text, 0o600)
      io.err(`wrote the keystore of ${address} to ${target}; keep it and its passphrase apart`)
    }
    return 0
  },
}

const importCmd: Command = {
  name: 'import',
  summary: 'restore the gateway key from a keystore or a raw hex key',
  options: { ...CONFIG_OPTIONS, 'passphrase-file': { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof keys import FILE [--passphrase-file F] [--force]

Restore the gateway key onto this machine (e.g. a fresh SD card) from FILE:
a Web3 Secret Storage v3 keystore (asks for its passphrase) or a file holding
the raw key as 64 hex characters. Stop the gateway first. An existing,
different key is only replaced with --force; the replaced key is kept beside
it as <key file>.bak (mode 0600).
`,
  async run(args, io) {
    const src = args.positionals[0]
    if (!src) throw new UsageError('FILE is required')
    const text = readFileSync(resolve(io.cwd, src), 'utf8').trim()
    let privateKey: Hex
    if (text.startsWith('{')) {
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (e) {
        throw new FieldproofError('KEYSTORE_INVALID', `${src} is not valid JSON: ${(e as Error).message}`)
      }
      const pf = str(args.values['passphrase-file'])
      const passphrase = pf ? readPassphraseFile(resolve(io.cwd, pf)) : await askPassphrase('Keystore passphrase: ', { confirm: false })
      privateKey = decryptKeystore(json, passphrase)
    } else {
      const hex = text.replace(/^0x/i, '')
      if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new FieldproofError('KEY_INVALID', `${src} is neither a keystore (JSON) nor a raw key (64 hex characters)`)
      privateKey = `0x${hex.toLowerCase()}`
    }
    const file = keyFile(args, io)
    const w = writeKey(file, privateKey, { overwrite: args.values['force'] === true })
    const address = addressOf(privateKey)
    const note = !w.written ? ' (it already held this key)' : w.backupPath ? `; the previous key is in ${w.backupPath}` : ''
    io.out(args.values['json'] ? jsonText({ address, keyFile: file, written: w.written, backupPath: w.backupPath ?? null }) : `imported ${address} into ${file}${note}`)
    return 0
  },
}

export const keysCommand: Command = {
  name: 'keys',
  summary: 'show, back up and restore the gateway key',
  options: {},
  subcommands: [show, exportCmd, importCmd],
  help: `Usage: fieldproof keys <show|export|import> [options]

  show     print the gateway's Ethereum address
  export   write an encrypted keystore (Web3 Secret Storage v3) for backup
  import   restore the key from a keystore or a raw hex key

The key lives in the state directory (mode 0600) and is never printed or
logged. See docs/keys.md. Each subcommand has --help.
`,
}
