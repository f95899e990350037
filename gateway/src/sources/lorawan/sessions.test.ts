// Device sessions and their group-committed state, on a real SQLite file.
import t from 'tap'
import { join } from 'node:path'
import { Store } from '../../store/store.ts'
import { aesKey } from '../../core/lorawan/crypto.ts'
import { sessionFromRow, StateWriter } from './sessions.ts'

const APP_KEY = '2b7e151628aed2a6abf7158809cf4f3c'

function setup(dir: string): { store: Store; writer: StateWriter } {
  const store = new Store(join(dir, 'fieldproof.db'))
  store.upsertDevice({
    id: 'node-1',
    kind: 'lorawan',
    config: JSON.stringify({ activation: 'otaa', lorawanVersion: '1.0.4', devEui: '0004a30b001c0530', joinEui: '70b3d57ed0000000', codec: 'raw' }),
    secret: JSON.stringify({ appKey: APP_KEY }),
  })
  return { store, writer: new StateWriter(store) }
}

t.test('a session says the row holds its new secret only once the transaction has committed', async (t) => {
  const { store, writer } = setup(t.testdir())
  t.teardown(() => store.close())
  const row = store.device('node-1')
  if (!row) throw new Error('no row')
  const p = sessionFromRow(row)
  if (!p.ok) throw new Error(p.reason)
  const s = p.session
  const before = s.secretText
  t.equal(before, row.secret)

  // A join: new session keys and DevNonce in memory, the write queued.
  s.nwkSKey = aesKey('00112233445566778899aabbccddeeff')
  s.appSKey = aesKey('ffeeddccbbaa99887766554433221100')
  s.devAddr = 0x26011bda
  s.lastDevNonce = 7
  s.lastJoinNonce = 0
  const durable = writer.write(s, { secret: true })

  // Before the commit the row still holds the old secret, and the session must say so:
  // a registry refresh compares the two to notice changes made from outside (the CLI).
  t.equal(store.device('node-1')?.secret, before, 'row unchanged before the commit')
  t.equal(s.secretText, before, 'the session does not claim the uncommitted secret')

  await durable
  const after = store.device('node-1')
  t.not(after?.secret, before, 'the row holds the new secret')
  t.equal(s.secretText, after?.secret, 'the session now matches the row')
  t.match(after?.secret ?? '', /00112233445566778899aabbccddeeff/, 'with the new NwkSKey')
  t.equal((JSON.parse(after?.state ?? '{}') as Record<string, unknown>)['lastDevNonce'], 7)
  t.equal(writer.transactions, 1)
})

t.test('writes queued in one tick share one transaction; a closed store rejects every waiter', async (t) => {
  const { store, writer } = setup(t.testdir())
  const row = store.device('node-1')
  if (!row) throw new Error('no row')
  const p = sessionFromRow(row)
  if (!p.ok) throw new Error(p.reason)
  const s = p.session
  s.fcntUp = 1
  const a = writer.write(s, { accepted: 1 })
  s.fcntUp = 2
  const b = writer.write(s, { accepted: 1 })
  await Promise.all([a, b])
  t.equal(writer.transactions, 1, 'one transaction')
  t.equal((JSON.parse(store.device('node-1')?.state ?? '{}') as Record<string, unknown>)['fcntUp'], 2, 'the latest state wins')
  const secretBefore = s.secretText
  store.close()
  s.lastDevNonce = 9
  await t.rejects(writer.write(s, { secret: true }), /closed/)
  t.equal(s.secretText, secretBefore, 'a failed write leaves the session matching the row')
})
