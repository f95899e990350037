// The `fieldproof` command: `fieldproof <command> [options]`.

import { VERSION } from '../gateway.ts'
import { runCommand, type Command, type Io } from './cli.ts'
import { configCommand } from './commands/config.ts'
import { decodeCommand } from './commands/decode.ts'
import { devicesCommand } from './commands/devices.ts'
import { exportCommand } from './commands/export.ts'
import { keysCommand } from './commands/keys.ts'
import { receiveCommand } from './commands/receive.ts'
import { firstbootCommand } from './commands/firstboot.ts'
import { updateCommand } from './commands/update.ts'
import { diagnosticsCommand } from './commands/diagnostics.ts'
import { startCommand } from './commands/start.ts'
import { statusCommand } from './commands/status.ts'
import { verifyCommand } from './commands/verify.ts'

export const COMMANDS: readonly Command[] = [startCommand, statusCommand, keysCommand, verifyCommand, exportCommand, decodeCommand, devicesCommand, configCommand, receiveCommand, firstbootCommand, updateCommand, diagnosticsCommand]

export const rootCommand: Command = {
  name: '',
  summary: 'Fieldproof gateway',
  options: {},
  subcommands: COMMANDS,
  help: `Usage: fieldproof <command> [options]

Fieldproof ${VERSION}: an edge gateway that makes sensor readings durable,
sequenced and provable (signed Merkle batches), and forwards them upstream.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n')}

Run \`fieldproof <command> --help\` for a command's options.
Docs: README.md and docs/ in the repository.
`,
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.out(VERSION)
    return 0
  }
  return runCommand(rootCommand, argv, io, 'fieldproof')
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
