import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger, OTHER_CAUSE, RateLimitedLog } from './logger.ts'

/** An in-memory destination: one parsed object per line written. */
function memory(): { stream: Writable; lines: () => Record<string, unknown>[]; raw: () => string } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8')
      cb()
    },
  })
  return {
    stream,
    raw: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

t.test('one JSON object per line, level as its name', (t) => {
  const out = memory()
  const log = createLogger({ level: 'info', name: 'gateway', destination: out.stream })
  log.info({ seq: 12 }, 'stored')
  log.debug('not written at info')
  log.warn('careful')
  const lines = out.lines()
  t.equal(lines.length, 2)
  t.match(lines[0], { level: 'info', name: 'gateway', msg: 'stored', seq: 12, pid: process.pid })
  t.type(lines[0]?.['time'], 'number')
  t.match(lines[1], { level: 'warn', msg: 'careful' })
  t.equal(out.raw().split('\n').length, 3, 'newline-terminated lines')
  t.end()
})

t.test('secrets are redacted wherever they appear', (t) => {
  const out = memory()
  const log = createLogger({ level: 'trace', destination: out.stream })
  const secrets = {
    privateKey: '0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d',
    token: 'tok-SECRET-1',
    password: 'pw-SECRET-2',
    bindkey: '231d39c1d7cc1ab1aee224cd096db932',
    appKey: '2B7E151628AED2A6ABF7158809CF4F3C',
    nwkSKey: 'nwk-SECRET-3',
    appSKey: 'app-SECRET-4',
    authorization: 'Bearer SECRET-5',
  }
  log.info(secrets, 'top level')
  log.info({ device: { ...secrets, id: 'ble:a4c138000001' } }, 'nested')
  log.info({ req: { headers: { authorization: 'Bearer SECRET-6', host: 'gw' } } }, 'two deep')
  const raw = out.raw()
  for (const v of [...Object.values(secrets), 'SECRET-6']) t.notMatch(raw, v, `no ${v.slice(0, 12)}`)
  const [top, nested, deep] = out.lines()
  t.equal(top?.['privateKey'], '[redacted]')
  t.equal(top?.['authorization'], '[redacted]')
  t.match(nested, { device: { id: 'ble:a4c138000001', bindkey: '[redacted]', appSKey: '[redacted]' } })
  t.match(deep, { req: { headers: { authorization: '[redacted]', host: 'gw' } } })
  t.end()
})

t.test('child loggers keep the redaction', (t) => {
  const out = memory()
  const log = createLogger({ level: 'info', destination: out.stream }).child({ source: 'mqtt' })
  log.info({ password: 'hunter2' }, 'login')
  t.notMatch(out.raw(), 'hunter2')
  t.match(out.lines()[0], { source: 'mqtt', password: '[redacted]' })
  t.end()
})

t.test('RateLimitedLog: first at once, then at most once per interval per cause, exact counts', (t) => {
  const out = memory()
  let now = 1_000_000
  const log = createLogger({ level: 'info', destination: out.stream })
  const rl = new RateLimitedLog(log, { intervalMs: 60_000, now: () => now })

  rl.reject('bad-mic', { devAddr: '26011bda' })
  t.equal(out.lines().length, 1, 'the first occurrence is logged immediately')
  t.match(out.lines()[0], { level: 'warn', cause: 'bad-mic', suppressed: 0, devAddr: '26011bda' })

  for (let i = 0; i < 999; i++) {
    now += 10
    rl.reject('bad-mic', { devAddr: '26011bda' })
  }
  t.equal(out.lines().length, 1, 'a flood within the interval writes nothing more')
  rl.reject('truncated', { len: 3 })
  t.equal(out.lines().length, 2, 'another cause has its own budget')
  t.match(out.lines()[1], { cause: 'truncated', suppressed: 0 })

  now = 1_000_000 + 59_999
  rl.reject('bad-mic')
  t.equal(out.lines().length, 2, 'still within the interval of the last line')
  now = 1_000_000 + 60_000
  rl.reject('bad-mic', { devAddr: 'ffffffff' })
  t.equal(out.lines().length, 3)
  t.match(out.lines()[2], { level: 'warn', cause: 'bad-mic', suppressed: 1000, devAddr: 'ffffffff' })

  now += 1
  rl.reject('bad-mic')
  t.equal(out.lines().length, 3, 'the interval restarts from the last line')
  t.same(rl.counts(), new Map([['bad-mic', 1003], ['truncated', 1]]))
  t.end()
})

t.test('RateLimitedLog.flush writes the suppressed tail once', (t) => {
  const out = memory()
  let now = 0
  const rl = new RateLimitedLog(createLogger({ level: 'info', destination: out.stream }), { now: () => now })
  for (let i = 0; i < 5; i++) rl.reject('replay')
  rl.reject('malformed')
  rl.flush()
  const lines = out.lines()
  t.equal(lines.length, 3)
  t.match(lines[2], { cause: 'replay', suppressed: 4, total: 5 })
  rl.flush()
  t.equal(out.lines().length, 3, 'nothing left to say')
  now = 30_000
  rl.reject('replay')
  t.equal(out.lines().length, 3, 'flush counts as a line for the interval')
  t.end()
})

t.test('RateLimitedLog bounds the number of causes it tracks', (t) => {
  const out = memory()
  const rl = new RateLimitedLog(createLogger({ level: 'info', destination: out.stream }), { now: () => 0, maxCauses: 3 })
  for (let i = 0; i < 10; i++) rl.reject(`cause-${i}`)
  const counts = rl.counts()
  t.equal(counts.size, 3)
  t.equal(counts.get(OTHER_CAUSE), 8)
  t.equal([...counts.values()].reduce((a, b) => a + b, 0), 10, 'still exact in total')
  t.match(out.lines()[2], { cause: OTHER_CAUSE, originalCause: 'cause-2' })
  t.equal(out.lines().length, 3)
  t.end()
})

t.test('RateLimitedLog level and the logger level', (t) => {
  const out = memory()
  const rl = new RateLimitedLog(createLogger({ level: 'info', destination: out.stream }), { now: () => 0, level: 'debug' })
  rl.reject('x')
  t.equal(out.lines().length, 0, 'debug lines are below info')
  t.same(rl.counts(), new Map([['x', 1]]), 'but counted')
  t.end()
})
