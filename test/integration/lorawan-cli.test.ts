// `fieldproof devices add lorawan` and `fieldproof decode lorawan` through the
// real CLI: keys stored but never printed; bad input is a usage error.
import t from 'tap'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { Store } from '../../gateway/src/store/store.ts'
import { runCli, startGateway } from '../helpers/gateway-process.ts'
import { PacketForwarder } from '../helpers/packet-forwarder.ts'

const APP_KEY = '2b7e151628aed2a6abf7158809cf4f3c'
const NWK = '44024241ed4ce9a68c6a8bc055233fd3'
const APP = 'ec925802ae430ca77fd3dd73cb2cc588'

t.test('devices add lorawan (OTAA, ABP with a JS codec); keys never printed', async (t) => {
  const dir = t.testdir()
  const state = join(dir, 'state')
  const otaa = await runCli(['devices', 'add', 'lorawan', '--state-dir', state, '--id', 'field-1', '--dev-eui', '00-04-A3-0B-00-1C-05-30', '--app-key', APP_KEY, '--lorawan-version', '1.0.3', '--json'])
  t.equal(otaa.code, 0, otaa.stderr)
  const out = JSON.parse(otaa.stdout) as Record<string, unknown>
  t.equal(out['devEui'], '0004a30b001c0530')
  t.equal(out['activation'], 'otaa')
  t.equal(out['trust'], 'session')
  t.notMatch(otaa.stdout + otaa.stderr, new RegExp(APP_KEY, 'i'), 'AppKey not printed')
  const codec = join(dir, 'codec.js')
  writeFileSync(codec, 'function decodeUplink(i) { return { data: { level: i.bytes[0] } } }')
  const abp = await runCli(['devices', 'add', 'lorawan', '--state-dir', state, '--id', 'tank-1', '--dev-addr', '26011BDA', '--nwk-s-key', NWK, '--app-s-key', APP, '--codec', 'js', '--codec-file', codec, '--field', 'level=volume_storage_l'])
  t.equal(abp.code, 0, abp.stderr)
  t.notMatch(abp.stdout + abp.stderr, new RegExp(`${NWK}|${APP}`, 'i'), 'session keys not printed')
  const s = new Store(join(state, 'fieldproof.db'), { readonly: true })
  const rows = s.devices('lorawan')
  s.close()
  t.same(rows.map((r) => r.id), ['field-1', 'tank-1'])
  t.same(JSON.parse(rows[0]?.secret ?? '{}'), { appKey: APP_KEY })
  t.notMatch(rows[0]?.config ?? '', new RegExp(APP_KEY, 'i'), 'keys only in the secret column')
  const cfg = JSON.parse(rows[1]?.config ?? '{}') as Record<string, unknown>
  t.equal(cfg['devAddr'], '26011bda')
  t.match(String(cfg['codecSource']), /decodeUplink/)
  t.same(cfg['fields'], { level: { name: 'volume_storage_l' } })
  const list = await runCli(['devices', 'list', '--state-dir', state, '--json'])
  t.notMatch(list.stdout, new RegExp(`${APP_KEY}|${NWK}|${APP}`, 'i'), 'devices list shows no keys')
  const bad = await runCli(['devices', 'add', 'lorawan', '--state-dir', state, '--id', 'x', '--dev-eui', '0004a30b001c0531', '--app-key', 'abcd'])
  t.equal(bad.code, 2, 'a short key is a usage error')
  const both = await runCli(['devices', 'add', 'lorawan', '--state-dir', state, '--id', 'y', '--dev-eui', '0004a30b001c0531', '--app-key', APP_KEY, '--dev-addr', '26011bdb'])
  t.equal(both.code, 2, 'OTAA and ABP at once is a usage error')
})

t.test('decode lorawan prints fields, MIC validity and the decrypted payload', async (t) => {
  const r = await runCli(['decode', 'lorawan', '40f17dbe4900020001954378762b11ff0d', '--nwkskey', NWK, '--appskey', APP])
  t.equal(r.code, 0, r.stderr)
  const j = JSON.parse(r.stdout) as { ok: boolean; meta: Record<string, unknown> }
  t.equal(j.meta['mic_valid'], true)
  t.equal(Buffer.from(String(j.meta['payload']), 'hex').toString(), 'test')
  t.equal(j.meta['dev_addr'], '49be7df1')
  const wrong = await runCli(['decode', 'lorawan', 'QPF9vkkAAgABlUN4disR/w0=', '--nwkskey', APP])
  t.equal(JSON.parse(wrong.stdout).meta.mic_valid, false, 'base64 input; a wrong key gives mic_valid false')
  const join_ = await runCli(['decode', 'lorawan', '2088f36ae3b21314bc284e314e99257328', '--appkey', '98929b92c49edba9676d646d3b612456'])
  t.equal(JSON.parse(join_.stdout).meta.dev_addr, '012ccde7', 'join-accept opened with the AppKey')
})

t.test('fieldproof start with [sources.lorawan]: status, metrics, a forwarder served', async (t) => {
  const dir = t.testdir()
  const state = join(dir, 'gw')
  const add = await runCli(['devices', 'add', 'lorawan', '--state-dir', state, '--id', 'abp-1', '--dev-addr', '26011bda', '--nwk-s-key', NWK, '--app-s-key', APP])
  t.equal(add.code, 0, add.stderr)
  const g = await startGateway({ stateDir: state, config: '[sources.lorawan]\nenabled = true\nlisten = "127.0.0.1:0"\n' })
  t.teardown(() => g.stop())
  const status = (await (await fetch(`${g.url}/api/v1/status`, { headers: { authorization: `Bearer ${g.token}` } })).json()) as { sources: { lorawan: { listen: string; devices: { id: string; trust: string }[] } } }
  const lw = status.sources.lorawan
  t.same(lw.devices.map((d) => [d.id, d.trust]), [['abp-1', 'session']])
  t.notMatch(JSON.stringify(status), new RegExp(`${NWK}|${APP}`, 'i'), 'no keys in the status')
  const port = Number(lw.listen.split(':').pop())
  const pf = await PacketForwarder.open('aa555a0000000001', { host: '127.0.0.1', port })
  t.teardown(() => pf.close())
  t.ok(await pf.pull(), 'PULL_ACK from the running gateway')
  const metrics = await (await fetch(`${g.url}/metrics`, { headers: { authorization: `Bearer ${g.token}` } })).text()
  t.match(metrics, /fieldproof_lorawan_datagrams_total\{type="PULL_DATA"\} 1/)
  t.match(metrics, /fieldproof_lorawan_sessions 1/)
})
