// mDNS / DNS-SD announcement. The record and answer logic is tested as data;
// the wire behaviour is tested on the loopback interface of a private network
// namespace: this file re-runs itself under `unshare --net` (root), brings lo
// up and turns its MULTICAST flag on (`ip link set lo up multicast on`: lo
// has no multicast flag by default, so the kernel would not route
// 224.0.0.251 through it), and runs real multicast-dns peers and a real
// gateway there. Nothing outside the namespace sees the packets.

import t from 'tap'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import type { NetworkInterfaceInfo } from 'node:os'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import makeMdns from 'multicast-dns'
import dnsPacket, { type Packet } from 'dns-packet'
import { MDNS_GROUP, MdnsAnnouncer, answersFor, chooseInterface, gatewayServices, questionClass, serviceRecords, type MdnsRecord } from './mdns.ts'
import { freePort } from '../../../test/helpers/ports.ts'

const NS_ENV = 'FIELDPROOF_TEST_NET_NS'
const ADDRESS = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'

const services = [
  { type: '_fieldproof._tcp', port: 8080, txt: { address: ADDRESS, version: '0.1.0', path: '/api/v1' } },
  { type: '_mqtt._tcp', port: 1883 },
]

t.test('records: PTR, SRV, TXT, A with RFC 6762 TTLs; goodbye has TTL 0', async (t) => {
  const r = serviceRecords({ instance: 'barn.gw', host: 'Barn_GW', services }, ['192.168.1.20'])
  const by = (name: string, type: string) => r.find((x) => x.name === name && x.type === type)
  t.match(by('_services._dns-sd._udp.local', 'PTR'), { data: '_fieldproof._tcp.local', ttl: 4500 })
  t.match(by('_fieldproof._tcp.local', 'PTR'), { data: 'barn-gw._fieldproof._tcp.local', ttl: 4500 }, 'a dot in the name would split the label')
  t.match(by('barn-gw._fieldproof._tcp.local', 'SRV'), { ttl: 120, flush: true, data: { port: 8080, target: 'barn-gw.local' } })
  t.match(by('barn-gw._fieldproof._tcp.local', 'TXT'), { ttl: 4500, data: [`address=${ADDRESS}`, 'version=0.1.0', 'path=/api/v1'] })
  t.match(by('barn-gw._mqtt._tcp.local', 'SRV'), { data: { port: 1883 } })
  t.match(by('barn-gw.local', 'A'), { data: '192.168.1.20', ttl: 120 })
  t.ok(serviceRecords({ instance: 'a', host: 'a', services }, ['10.0.0.1'], true).every((x) => x.ttl === 0))
  // Every record encodes (dns-packet is the wire format multicast-dns sends).
  t.ok(dnsPacket.encode({ type: 'response', answers: r }).length > 100)
})

t.test('answers: by name and type, with the additionals of RFC 6763 §12, minus known answers', async (t) => {
  const r = serviceRecords({ instance: 'gw', host: 'gw', services }, ['10.0.0.7'])
  const ptr = answersFor(r, [{ name: '_FieldProof._tcp.local', type: 'PTR' }])
  t.same(ptr.answers.map((a) => a.type), ['PTR'], 'names are case-insensitive')
  t.same(ptr.additionals.map((a) => a.type).sort(), ['A', 'SRV', 'TXT'])
  t.same(answersFor(r, [{ name: 'gw.local', type: 'A' }]).answers.map((a) => a.data), ['10.0.0.7'])
  t.equal(answersFor(r, [{ name: 'gw._mqtt._tcp.local', type: 'ANY' as 'A' }]).answers.length, 2, 'ANY: SRV and TXT')
  t.same(answersFor(r, [{ name: '_services._dns-sd._udp.local', type: 'PTR' }]).answers.map((a) => a.data), ['_fieldproof._tcp.local', '_mqtt._tcp.local'])
  t.equal(answersFor(r, [{ name: 'other.local', type: 'A' }]).answers.length, 0)
  const known: MdnsRecord[] = [{ name: '_fieldproof._tcp.local', type: 'PTR', ttl: 4000, data: 'gw._fieldproof._tcp.local' }]
  t.equal(answersFor(r, [{ name: '_fieldproof._tcp.local', type: 'PTR' }], known).answers.length, 0, 'known answer suppressed')
  const stale: MdnsRecord[] = [{ name: '_fieldproof._tcp.local', type: 'PTR', ttl: 100, data: 'gw._fieldproof._tcp.local' }]
  t.equal(answersFor(r, [{ name: '_fieldproof._tcp.local', type: 'PTR' }], stale).answers.length, 1, 'a known answer at less than half its TTL is repeated')
  t.same(questionClass({ name: 'x', type: 'A', class: 'UNKNOWN_32769' as 'IN' }), { cls: 'IN', unicast: true }, 'QU bit')
  t.same(questionClass({ name: 'x', type: 'A', class: 'IN' }), { cls: 'IN', unicast: false })
})

t.test('interface choice', async (t) => {
  const ifaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '255.0.0.0', mac: '', cidr: null }],
    wlan0: [
      { address: 'fe80::1', family: 'IPv6', internal: false, netmask: '', mac: '', cidr: null, scopeid: 2 },
      { address: '192.168.1.20', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '', cidr: null },
    ],
  } as unknown as NodeJS.Dict<NetworkInterfaceInfo[]>
  t.same(chooseInterface('', ifaces), { ok: true, addresses: ['192.168.1.20'] }, 'every non-loopback IPv4 address')
  t.same(chooseInterface('wlan0', ifaces), { ok: true, addresses: ['192.168.1.20'], join: '192.168.1.20' })
  t.same(chooseInterface('127.0.0.1', ifaces), { ok: true, addresses: ['127.0.0.1'], join: '127.0.0.1' })
  t.match(chooseInterface('eth0', ifaces), { ok: false, reason: /eth0/ })
  t.match(chooseInterface('', { lo: ifaces['lo'] } as typeof ifaces), { ok: false })
})

t.test('services from the config: MQTT only when enabled with a fixed port', async (t) => {
  t.same(gatewayServices({ sources: {} }, 8080, ADDRESS, '1.2.3').map((s) => s.type), ['_fieldproof._tcp'])
  t.same(gatewayServices({ sources: { mqtt: { enabled: true, listen: '0.0.0.0:1883' } } }, 8080, ADDRESS, '1.2.3')[1], { type: '_mqtt._tcp', port: 1883 })
  t.equal(gatewayServices({ sources: { mqtt: { enabled: false, listen: '0.0.0.0:1883' } } }, 8080, ADDRESS, '1').length, 1)
  t.equal(gatewayServices({ sources: { mqtt: { enabled: true, listen: '127.0.0.1:0' } } }, 8080, ADDRESS, '1').length, 1)
})

if (process.env[NS_ENV] !== '1') {
  const file = fileURLToPath(import.meta.url)
  await t.spawn(
    'unshare',
    ['--net', 'sh', '-c', 'ip link set lo up && ip link set lo multicast on && exec "$0" "$@"', process.execPath, ...process.execArgv, file],
    { env: { ...process.env, [NS_ENV]: '1' } },
    'on loopback multicast, in a private network namespace',
  )
} else {
  const log = pino({ level: 'silent' })
  /** A second mDNS peer on lo, recording every response. */
  function peer(): { mdns: ReturnType<typeof makeMdns>; responses: Packet[] } {
    const mdns = makeMdns({ interface: '127.0.0.1', bind: '0.0.0.0' })
    const responses: Packet[] = []
    mdns.on('response', (p: Packet) => responses.push(p))
    return { mdns, responses }
  }
  const records = (ps: Packet[]) => ps.flatMap((p) => [...(p.answers ?? []), ...(p.additionals ?? [])]) as MdnsRecord[]

  t.test('announces at start, answers a query, says goodbye at stop', async (t) => {
    const p = peer()
    await once(p.mdns, 'ready')
    t.teardown(() => p.mdns.destroy())
    const a = new MdnsAnnouncer({ instance: 'barn', host: 'barn', services, interface: 'lo', log, announceAtMs: [0, 150] })
    await a.start()
    await waitFor(() => p.responses.length >= 2)
    const ann = records(p.responses.slice(0, 2))
    t.ok(ann.some((r) => r.type === 'SRV' && r.name === 'barn._fieldproof._tcp.local' && r.data.port === 8080), 'unsolicited announcement, twice')
    t.ok(ann.some((r) => r.type === 'A' && r.name === 'barn.local' && r.data === '127.0.0.1'))

    const before = p.responses.length
    p.mdns.query([{ name: '_fieldproof._tcp.local', type: 'PTR' }])
    await waitFor(() => p.responses.length > before)
    const got = records(p.responses.slice(before))
    t.match(got.find((r) => r.type === 'PTR'), { name: '_fieldproof._tcp.local', data: 'barn._fieldproof._tcp.local' })
    t.match(got.find((r) => r.type === 'SRV'), { data: { port: 8080, target: 'barn.local' } })
    const txt = got.find((r) => r.type === 'TXT')
    t.same((txt?.data as Buffer[]).map((b) => b.toString()), [`address=${ADDRESS}`, 'version=0.1.0', 'path=/api/v1'])
    t.match(got.find((r) => r.type === 'A'), { data: '127.0.0.1' })

    const mq = p.responses.length
    p.mdns.query([{ name: '_mqtt._tcp.local', type: 'PTR' }])
    await waitFor(() => p.responses.length > mq)
    t.match(records(p.responses.slice(mq)).find((r) => r.type === 'SRV'), { name: 'barn._mqtt._tcp.local', data: { port: 1883 } })

    const bye = p.responses.length
    await a.stop()
    await waitFor(() => p.responses.length > bye)
    const goodbye = records(p.responses.slice(bye))
    t.ok(goodbye.length >= 5 && goodbye.every((r) => r.ttl === 0), 'goodbye: every record with TTL 0')
  })

  t.test('legacy unicast query (RFC 6762 §6.7) gets a unicast answer with its id', async (t) => {
    const a = new MdnsAnnouncer({ instance: 'barn', host: 'barn', services, interface: '127.0.0.1', log, announceAtMs: [] })
    await a.start()
    t.teardown(() => a.stop())
    const sock = createSocket('udp4')
    sock.bind(0, '127.0.0.1')
    await once(sock, 'listening')
    t.teardown(() => sock.close())
    sock.setMulticastInterface('127.0.0.1')
    const q = dnsPacket.encode({ type: 'query', id: 4242, questions: [{ name: 'barn._fieldproof._tcp.local', type: 'SRV' }] })
    const reply = once(sock, 'message')
    sock.send(q, 5353, MDNS_GROUP)
    const [msg] = (await Promise.race([reply, sleep(3000).then(() => [undefined])])) as [Buffer | undefined]
    t.ok(msg, 'a reply to our ephemeral port')
    if (!msg) return
    const p = dnsPacket.decode(msg)
    t.equal(p.id, 4242)
    t.same(p.questions?.map((x) => x.name), ['barn._fieldproof._tcp.local'], 'question echoed')
    const srv = p.answers?.find((r) => r.type === 'SRV') as MdnsRecord | undefined
    t.match(srv, { data: { port: 8080 } })
    t.ok(srv && (srv.ttl ?? 99) <= 10, 'TTL at most 10 s')
  })

  t.test('a started gateway announces its API port and address, and the MQTT port', async (t) => {
    const { startGateway } = await import('../../../test/helpers/gateway-process.ts')
    const mqttPort = await freePort()
    const dir = t.testdir()
    const p = peer()
    await once(p.mdns, 'ready')
    t.teardown(() => p.mdns.destroy())
    const gw = await startGateway({
      stateDir: `${dir}/state`,
      config: `[gateway]\nname = "shed"\n[clock]\nsync_check = "none"\n[discovery]\nmdns = true\ninterface = "lo"\n[sources.mqtt]\nenabled = true\nlisten = "127.0.0.1:${mqttPort}"\nallow_anonymous = true\n`,
    })
    t.teardown(() => gw.stop())
    const apiPort = Number(new URL(gw.url).port)
    const before = p.responses.length
    p.mdns.query([{ name: '_fieldproof._tcp.local', type: 'PTR' }, { name: '_mqtt._tcp.local', type: 'PTR' }])
    await waitFor(() => records(p.responses.slice(before)).filter((r) => r.type === 'SRV').length >= 2)
    const got = records(p.responses.slice(before))
    t.match(got.find((r) => r.type === 'SRV' && r.name === 'shed._fieldproof._tcp.local'), { data: { port: apiPort, target: 'shed.local' } })
    t.match(got.find((r) => r.type === 'SRV' && r.name === 'shed._mqtt._tcp.local'), { data: { port: mqttPort } })
    const txt = got.find((r) => r.type === 'TXT' && r.name === 'shed._fieldproof._tcp.local')
    t.ok((txt?.data as Buffer[]).map(String).includes(`address=${gw.address}`), 'TXT address is the gateway address')
    const bye = p.responses.length
    t.equal(await gw.stop(), 0)
    await waitFor(() => records(p.responses.slice(bye)).some((r) => r.ttl === 0))
    t.pass('goodbye on SIGTERM')
  })
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time')
    await sleep(10)
  }
}
