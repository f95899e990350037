// The `fieldproof` command: `fieldproof <command> [options]`.

import { VERSION } from '../gateway.ts'
import { runCommand, type Command, type Io } from './cli.ts'

/**
 * A command as the root help lists it; its module is imported only when the
 * command runs. The running gateway (`start`) then never loads what the other
 * commands need (the BLE D-Bus client, the reference receiver, key export...),
 * which is memory a 512 MB Pi Zero 2 W keeps for readings.
 * cli.test.ts checks each summary against the loaded command's own.
 */
export interface CommandEntry {
  readonly name: string
  readonly summary: string
  load(): Promise<Command>
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'start', summary: 'run the gateway (simulation mode when there is no config file)', load: async () => (await import('./commands/start.ts')).startCommand },
  { name: 'status', summary: "show the running gateway's status", load: async () => (await import('./commands/status.ts')).statusCommand },
  { name: 'keys', summary: 'show, back up and restore the gateway key', load: async () => (await import('./commands/keys.ts')).keysCommand },
  { name: 'verify', summary: 'check a proof bundle offline (signature, Merkle path, batch link), and on chain with --rpc', load: async () => (await import('./commands/verify.ts')).verifyCommand },
  { name: 'export', summary: 'write readings with their proofs as NDJSON', load: async () => (await import('./commands/export.ts')).exportCommand },
  { name: 'decode', summary: 'run a payload decoder on bytes or JSON text', load: async () => (await import('./commands/decode.ts')).decodeCommand },
  { name: 'devices', summary: 'list and manage the devices registered with this gateway', load: async () => (await import('./commands/devices.ts')).devicesCommand },
  { name: 'config', summary: 'print a config template or check a config file', load: async () => (await import('./commands/config.ts')).configCommand },
  { name: 'chain', summary: 'deploy the anchor contract, register the gateway, show its anchors on chain', load: async () => (await import('./commands/chain.ts')).chainCommand },
  { name: 'receive', summary: 'run the reference receiver for the HTTP sink (verifies and stores batches)', load: async () => (await import('./commands/receive.ts')).receiveCommand },
  { name: 'firstboot', summary: 'apply fieldproof.toml from the boot partition (run once at first boot)', load: async () => (await import('./commands/firstboot.ts')).firstbootCommand },
  { name: 'update', summary: 'install a signed release bundle (A/B slots, automatic rollback)', load: async () => (await import('./commands/update.ts')).updateCommand },
  { name: 'diagnostics', summary: 'write a signed diagnostics file for support (no secrets), or --verify one', load: async () => (await import('./commands/diagnostics.ts')).diagnosticsCommand },
]

export const ROOT_HELP = `Usage: fieldproof <command> [options]

Fieldproof ${VERSION}: an edge gateway that makes sensor readings durable,
sequenced and provable (signed Merkle batches), and forwards them upstream.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(11)} ${c.summary}`).join('\n')}

Run \`fieldproof <command> --help\` for a command's options.
Docs: README.md and docs/ in the repository.
`

export async function main(argv: readonly string[], io: Io): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.out(VERSION)
    return 0
  }
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.out(ROOT_HELP)
    return first === undefined ? 2 : 0
  }
  const entry = COMMANDS.find((c) => c.name === first)
  if (!entry) {
    io.err(`fieldproof: unknown subcommand "${first}"; one of: ${COMMANDS.map((c) => c.name).join(', ')} (see fieldproof --help)`)
    return 2
  }
  return runCommand(await entry.load(), rest, io, 'fieldproof')
}

if (import.meta.main) {
  const io: Io = {
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
    env: process.env,
    cwd: process.cwd(),
  }
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code
    },
    (e: unknown) => {
      process.stderr.write(`fieldproof: ${(e as Error)?.stack ?? String(e)}\n`)
      process.exitCode = 1
    },
  )
}
