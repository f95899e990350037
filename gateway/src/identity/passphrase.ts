// Passphrases for `fieldproof keys export` / `keys import`: typed on the
// terminal with echo off, or read from a file for scripts (--passphrase-file).
// The prompt goes to stderr so that stdout can be redirected to a file.

import { readFileSync } from 'node:fs'
import { FieldproofError } from '../core/errors.ts'

/** The terminal streams {@link askPassphrase} uses; injectable for tests. */
export interface PassphraseTerminal {
  readonly input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown }
  readonly output: NodeJS.WritableStream
}

export interface AskPassphraseOptions {
  /** Ask twice and require both answers to match (when choosing a new passphrase). */
  readonly confirm: boolean
  /** Defaults to process.stdin / process.stderr. */
  readonly terminal?: PassphraseTerminal
}

const CTRL_C = '\u0003'
const CTRL_D = '\u0004'
const CTRL_U = '\u0015'
const BACKSPACE = '\u0008'
const DEL = '\u007f'
const ESC = '\u001b'

function cancelled(): FieldproofError {
  return new FieldproofError('USAGE', 'passphrase entry cancelled', { details: { cancelled: true } })
}

/** Read one line from a raw-mode TTY without echo. */
function readHidden(term: PassphraseTerminal, prompt: string): Promise<string> {
  const { input, output } = term
  return new Promise<string>((resolve, reject) => {
    let value = ''
    // Escape sequences (arrow keys, F-keys) are swallowed: ESC, then "[" or "O", then parameters up to a final byte.
    let escape: 'none' | 'start' | 'body' = 'none'
    const finish = (err: Error | null): void => {
      input.removeListener('data', onData)
      input.removeListener('end', onEnd)
      input.removeListener('error', onError)
      input.setRawMode?.(false)
      input.pause()
      output.write('\n')
      if (err !== null) reject(err)
      else resolve(value)
    }
    const onEnd = (): void => finish(cancelled())
    const onError = (e: Error): void => finish(e)
    const onData = (chunk: string | Buffer): void => {
      const chars = Array.from(typeof chunk === 'string' ? chunk : chunk.toString('utf8'))
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i] as string
        if (escape === 'start') {
          escape = ch === '[' || ch === 'O' ? 'body' : 'none'
          continue
        }
        if (escape === 'body') {
          if (ch >= '@' && ch <= '~') escape = 'none'
          continue
        }
        switch (ch) {
          case '\r':
          case '\n': {
            // Typed ahead (the confirmation, say): leave it for the next read.
            let rest = chars.slice(i + 1).join('')
            if (ch === '\r' && rest.startsWith('\n')) rest = rest.slice(1)
            finish(null)
            if (rest !== '') input.unshift(rest)
            return
          }
          case CTRL_C:
            finish(cancelled())
            return
          case CTRL_D:
            if (value === '') {
              finish(cancelled())
              return
            }
            break
          case BACKSPACE:
          case DEL:
            value = Array.from(value).slice(0, -1).join('')
            break
          case CTRL_U:
            value = ''
            break
          case ESC:
            escape = 'start'
            break
          default:
            if (ch >= ' ') value += ch
        }
      }
    }
    output.write(prompt)
    input.setRawMode?.(true)
    if ('setEncoding' in input && typeof input.setEncoding === 'function') input.setEncoding('utf8')
    input.on('data', onData)
    input.on('end', onEnd)
    input.on('error', onError)
    input.resume()
  })
}

/**
 * Ask for a passphrase on the terminal with echo off. Backspace deletes a
 * character, Ctrl-U the line, Ctrl-C (or Ctrl-D on an empty line) cancels.
 *
 * @example const pass = await askPassphrase('Passphrase for the keystore: ', { confirm: true })
 * @throws FieldproofError `USAGE` when stdin is not a terminal (use --passphrase-file),
 *   when entry is cancelled, the passphrase is empty, or the two entries differ.
 */
export async function askPassphrase(prompt: string, opts: AskPassphraseOptions): Promise<string> {
  const term: PassphraseTerminal = opts.terminal ?? { input: process.stdin, output: process.stderr }
  if (term.input.isTTY !== true || typeof term.input.setRawMode !== 'function') {
    throw new FieldproofError(
      'USAGE',
      'cannot ask for a passphrase: standard input is not a terminal. Pass --passphrase-file FILE (the passphrase on its first line).',
    )
  }
  const first = await readHidden(term, prompt)
  if (first === '') throw new FieldproofError('USAGE', 'empty passphrase refused')
  if (opts.confirm) {
    const again = await readHidden(term, 'Repeat the passphrase: ')
    if (again !== first) throw new FieldproofError('USAGE', 'the two passphrases do not match')
  }
  return first
}

/**
 * Read a passphrase from the first line of a file (`--passphrase-file`),
 * without its line ending. Other whitespace is part of the passphrase.
 *
 * @throws FieldproofError `USAGE` when the file cannot be read or its first line is empty.
 */
export function readPassphraseFile(path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error'
    throw new FieldproofError('USAGE', `cannot read passphrase file ${path}: ${code}`, { details: { path }, cause: e })
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  const nl = text.indexOf('\n')
  let line = nl < 0 ? text : text.slice(0, nl)
  if (line.endsWith('\r')) line = line.slice(0, -1)
  if (line === '') throw new FieldproofError('USAGE', `passphrase file ${path} has an empty first line; an empty passphrase is refused`, { details: { path } })
  return line
}
