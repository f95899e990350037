import t from 'tap'
import { PassThrough } from 'node:stream'
import { join } from 'node:path'
import { isFieldproofError } from '../core/errors.ts'
import { askPassphrase, readPassphraseFile, type PassphraseTerminal } from './passphrase.ts'

interface FakeTerminal extends PassphraseTerminal {
  readonly input: PassThrough & { isTTY: boolean; setRawMode: (mode: boolean) => void }
  readonly rawModes: boolean[]
  written(): string
}

function fakeTerminal(isTTY = true): FakeTerminal {
  const rawModes: boolean[] = []
  const input = Object.assign(new PassThrough(), {
    isTTY,
    setRawMode: (mode: boolean) => {
      rawModes.push(mode)
    },
  })
  const output = new PassThrough()
  let text = ''
  output.on('data', (d: Buffer) => {
    text += d.toString('utf8')
  })
  return { input, output, rawModes, written: () => text }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected a rejection')
}

t.test('reads a line with echo off, in raw mode, restoring the terminal', async (t) => {
  const term = fakeTerminal()
  const p = askPassphrase('Passphrase: ', { confirm: false, terminal: term })
  term.input.write('hunter2\r')
  t.equal(await p, 'hunter2')
  t.same(term.rawModes, [true, false])
  t.equal(term.written(), 'Passphrase: \n', 'the prompt, and nothing typed is echoed')
})

t.test('line editing: backspace, DEL, Ctrl-U, arrow keys', async (t) => {
  const cases: [string, string][] = [
    ['abcd\x7f\x7fef\r', 'abef'],
    ['abc\bd\n', 'abd'],
    ['wrong\x15right\r', 'right'],
    ['ab\x1b[Dc\x1bOA\r', 'abc'],
    ['p\u00e4\u{1F511}\x7f\x7f\r', 'p'],
    ['\x7fx\r', 'x'],
  ]
  for (const [typed, want] of cases) {
    const term = fakeTerminal()
    const p = askPassphrase('> ', { confirm: false, terminal: term })
    // One key at a time, as a terminal delivers them.
    for (const ch of typed) term.input.write(ch)
    t.equal(await p, want, JSON.stringify(typed))
  }
})

t.test('Ctrl-C and Ctrl-D on an empty line cancel, restoring the terminal', async (t) => {
  for (const key of ['sec\x03', '\x04']) {
    const term = fakeTerminal()
    const p = askPassphrase('> ', { confirm: false, terminal: term })
    term.input.write(key)
    const e = await rejection(p)
    t.ok(isFieldproofError(e, 'USAGE'))
    t.match((e as Error).message, /cancelled/)
    t.same(term.rawModes, [true, false])
  }
})

t.test('confirm: asks twice, compares', async (t) => {
  const ok = fakeTerminal()
  const p = askPassphrase('New passphrase: ', { confirm: true, terminal: ok })
  ok.input.write('same one\r\nsame one\r')
  t.equal(await p, 'same one', 'typed ahead in one chunk')
  t.match(ok.written(), /New passphrase: \nRepeat the passphrase: \n/)

  const bad = fakeTerminal()
  const q = askPassphrase('New passphrase: ', { confirm: true, terminal: bad })
  bad.input.write('alpha-1\r')
  setImmediate(() => bad.input.write('bravo-2\r'))
  const e = await rejection(q)
  t.ok(isFieldproofError(e, 'USAGE'))
  t.match((e as Error).message, /do not match/)
  t.notMatch((e as Error).message, /alpha-1|bravo-2/, 'never echoes them')
})

t.test('an empty passphrase is refused', async (t) => {
  const term = fakeTerminal()
  const p = askPassphrase('> ', { confirm: false, terminal: term })
  term.input.write('\r')
  t.ok(isFieldproofError(await rejection(p), 'USAGE'))
})

t.test('not a terminal: a clear error naming --passphrase-file', async (t) => {
  const e = await rejection(askPassphrase('> ', { confirm: false, terminal: fakeTerminal(false) }))
  t.ok(isFieldproofError(e, 'USAGE'))
  t.match((e as Error).message, /not a terminal/)
  t.match((e as Error).message, /--passphrase-file/)
})

t.test('readPassphraseFile: first line, line ending stripped, empty refused', (t) => {
  const dir = t.testdir({
    a: 'secret\n',
    b: 'secret\r\nsecond line\n',
    c: '  spaced out  \n',
    d: 'no newline',
    empty: '',
    blank: '\nsecret\n',
  })
  t.equal(readPassphraseFile(join(dir, 'a')), 'secret')
  t.equal(readPassphraseFile(join(dir, 'b')), 'secret')
  t.equal(readPassphraseFile(join(dir, 'c')), '  spaced out  ', 'other whitespace is kept')
  t.equal(readPassphraseFile(join(dir, 'd')), 'no newline')
  for (const f of ['empty', 'blank', 'missing']) {
    let e: unknown
    try {
      readPassphraseFile(join(dir, f))
    } catch (err) {
      e = err
    }
    t.ok(isFieldproofError(e, 'USAGE'), f)
  }
  t.end()
})
