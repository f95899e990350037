// The MQTT topic ACL on its own (test/integration/mqtt.test.ts checks it
// through the broker with real clients): a prefix owns itself and what lies
// below it, never a sibling that merely starts with the same characters.

import t from 'tap'
import { devicePrefixes, mayPublish, maySubscribe, type ClientGrant } from './acl.ts'

const grant = (prefixes: string[], extra: Partial<ClientGrant> = {}): ClientGrant => ({ deviceId: 'plug-1', prefixes, subscribe: true, ...extra })

t.test('mayPublish: the prefix itself and the levels below it', async (t) => {
  const g = grant(['tele/plug1', 'fieldproof/plug-1'])
  t.ok(mayPublish(g, 'tele/plug1'))
  t.ok(mayPublish(g, 'tele/plug1/SENSOR'))
  t.ok(mayPublish(g, 'tele/plug1/a/b/c'))
  t.ok(mayPublish(g, 'fieldproof/plug-1/up'))
  t.notOk(mayPublish(g, 'tele/plug10/SENSOR'), 'a sibling sharing the first characters')
  t.notOk(mayPublish(g, 'tele/plug1x'), 'a longer level')
  t.notOk(mayPublish(g, 'tele/plug'), 'a shorter level')
  t.notOk(mayPublish(g, 'tele'), 'the parent')
  t.notOk(mayPublish(g, 'stat/plug1/RESULT'), 'another prefix not granted')
  t.notOk(mayPublish(g, '$SYS/broker'), 'system topics')
})

t.test('mayPublish: publish-only grants are exact topics', async (t) => {
  const g = grant(['fieldproof/dev'], { publishOnly: ['fieldproof/dev/up'], subscribe: false })
  t.ok(mayPublish(g, 'fieldproof/dev/up'))
  t.notOk(mayPublish(g, 'fieldproof/dev'))
  t.notOk(mayPublish(g, 'fieldproof/dev/up/more'))
})

t.test('maySubscribe: literal levels of a prefix first, wildcards only below', async (t) => {
  const g = grant(['tele/plug1'])
  t.ok(maySubscribe(g, 'tele/plug1/#'))
  t.ok(maySubscribe(g, 'tele/plug1/+'))
  t.notOk(maySubscribe(g, 'tele/#'))
  t.notOk(maySubscribe(g, 'tele/+/SENSOR'))
  t.notOk(maySubscribe(g, 'tele/plug10/#'))
  t.notOk(maySubscribe({ ...g, subscribe: false }, 'tele/plug1/#'), 'a grant without subscribe')
})

t.test('devicePrefixes: a Tasmota tele/ prefix also grants stat/ and cmnd/, and every device its fieldproof/ prefix', async (t) => {
  t.same(devicePrefixes('plug-1', { format: 'tasmota', prefixes: ['tele/plug1'] }).sort(), ['cmnd/plug1', 'fieldproof/plug-1', 'stat/plug1', 'tele/plug1'])
  t.same(devicePrefixes('s-1', { format: 'shelly', prefixes: ['shelly1'] }).sort(), ['fieldproof/s-1', 'shelly1'])
})
