// A small command framework over node:util parseArgs: every command has a
// summary, a usage text, typed options, `--help`, and (where it prints
// results) `--json`. Exit codes: 0 success, 1 failure (e.g. a proof that does
// not verify), 2 usage error.

import { parseArgs, type ParseArgsConfig } from 'node:util'
import { FieldproofError, isFieldproofError } from '../core/errors.ts'

export type OptionSpec = NonNullable<ParseArgsConfig['options']>

export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly env: Readonly<Record<string, string | undefined>>
  readonly cwd: string
}

export interface ParsedArgs {
  readonly values: Record<string, string | boolean | string[] | boolean[] | undefined>
  readonly positionals: string[]
}

export interface Command {
  readonly name: string
  readonly summary: string
  /** Full help text shown by --help (usage line, options, examples). */
  readonly help: string
  readonly options: OptionSpec
  /** Sub-commands (keys show|export|import, config print|check, ...). */
  readonly subcommands?: readonly Command[]
  run?(args: ParsedArgs, io: Io): Promise<number> | number
}

export class UsageError extends FieldproofError {
  constructor(message: string) {
    super('USAGE', message)
  }
}

export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec

export const CONFIG_OPTIONS = {
  config: { type: 'string', short: 'c' },
  'state-dir': { type: 'string' },
} as const satisfies OptionSpec

export function str(v: ParsedArgs['values'][string]): string | undefined {
  return typeof v === 'string' ? v : undefined
}

export async function runCommand(cmd: Command, argv: readonly string[], io: Io, prefix = 'fieldproof'): Promise<number> {
  const full = `${prefix} ${cmd.name}`.trim()
  if (cmd.subcommands && cmd.subcommands.length > 0) {
    const [first, ...rest] = argv
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      io.out(cmd.help)
      return first === undefined ? 2 : 0
    }
    const sub = cmd.subcommands.find((s) => s.name === first)
    if (!sub) {
      io.err(`${full}: unknown subcommand "${first}"; one of: ${cmd.subcommands.map((s) => s.name).join(', ')} (see ${full} --help)`)
      return 2
    }
    return runCommand(sub, rest, io, full)
  }
  let parsed: ParsedArgs
  try {
    const r = parseArgs({ args: [...argv], options: { ...COMMON_OPTIONS, ...cmd.options }, allowPositionals: true, strict: true })
    parsed = { values: r.values as ParsedArgs['values'], positionals: r.positionals }
  } catch (e) {
    io.err(`${full}: ${(e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '')}\nSee ${full} --help`)
    return 2
  }
  if (parsed.values['help']) {
    io.out(cmd.help)
    return 0
  }
  if (!cmd.run) {
    io.out(cmd.help)
    return 2
  }
  try {
    return await cmd.run(parsed, io)
  } catch (e) {
    if (e instanceof UsageError || isFieldproofError(e, 'USAGE')) {
      io.err(`${full}: ${(e as Error).message}\nSee ${full} --help`)
      return 2
    }
    if (isFieldproofError(e)) {
      io.err(`${full}: ${e.message}`)
      return 1
    }
    io.err(`${full}: ${(e as Error)?.stack ?? String(e)}`)
    return 1
  }
}

export const jsonText = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? '0x' + Buffer.from(x).toString('hex') : x), 2)
