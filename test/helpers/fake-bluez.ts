// A private dbus-daemon and a BlueZ-shaped service on it, for tests and the
// BLE benchmark. The service speaks the parts of the BlueZ D-Bus API the BLE
// source and node-ble use (BlueZ doc/org.bluez.Adapter.rst,
// doc/org.bluez.Device.rst; the same shape as python-dbusmock's bluez5
// template): org.bluez owned on the bus, ObjectManager at "/" with
// GetManagedObjects / InterfacesAdded / InterfacesRemoved, Introspectable
// (node-ble walks the tree with it), Properties (Get, GetAll, Set,
// PropertiesChanged), org.bluez.Adapter1 at /org/bluez/<adapter>
// (StartDiscovery, StopDiscovery, SetDiscoveryFilter, RemoveDevice, Powered,
// Discovering, ...) and org.bluez.Device1 objects under it.

import { spawn, type ChildProcess } from 'node:child_process'
import { createCipheriv } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Message, Variant, sessionBus, type MessageBus } from 'dbus-next'

const require = createRequire(import.meta.url)

// dbus-next 0.10 marshals dictionary keys from Object.keys(), i.e. strings, and then
// refuses a string for an integer key type: a{qv} (ManufacturerData) cannot be sent.
// Coerce numeric strings for integer types (test side only; BlueZ is C).
const marshallers = require('dbus-next/lib/marshallers.js') as { MakeSimpleMarshaller: (t: string) => { marshall: (ps: unknown, d: unknown) => void } }
if (!(marshallers as { __fpPatched?: boolean }).__fpPatched) {
  const orig = marshallers.MakeSimpleMarshaller
  marshallers.MakeSimpleMarshaller = (t: string) => {
    const m = orig(t)
    if ('ynqiuxt'.includes(t)) {
      const inner = m.marshall.bind(m)
      m.marshall = (ps, d) => inner(ps, typeof d === 'string' && /^-?\d+$/.test(d) ? Number(d) : d)
    }
    return m
  }
  ;(marshallers as { __fpPatched?: boolean }).__fpPatched = true
}

export interface DbusDaemon {
  readonly address: string
  readonly dir: string
  stop(): Promise<void>
}

/**
 * Start a private dbus-daemon on a unix socket in a fresh temp dir. `policy`
 * is extra XML inside <policy context="default"> (after allow-everything),
 * e.g. a deny rule to test permission errors.
 */
export async function startDbusDaemon(policy = ''): Promise<DbusDaemon> {
  // Short path: unix socket paths are limited to 107 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'fp-dbus-'))
  const socket = join(dir, 'bus')
  const conf = join(dir, 'bus.conf')
  writeFileSync(
    conf,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    ${policy}
  </policy>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
`,
  )
  const proc: ChildProcess = spawn('/usr/bin/dbus-daemon', [`--config-file=${conf}`, '--nofork', '--print-address'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const address = await new Promise<string>((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`dbus-daemon did not start: ${err}`)), 10_000)
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n')[0]
      if (out.includes('\n') && line) {
        clearTimeout(timer)
        resolve(line.trim())
      }
    })
    proc.stderr?.on('data', (d: Buffer) => (err += d.toString()))
    proc.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`dbus-daemon exited with ${code}: ${err}`))
    })
  })
  return {
    address,
    dir,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

const PROPS = 'org.freedesktop.DBus.Properties'
const OM = 'org.freedesktop.DBus.ObjectManager'
const INTRO = 'org.freedesktop.DBus.Introspectable'
const ADAPTER = 'org.bluez.Adapter1'
const DEVICE = 'org.bluez.Device1'
const SIG_METHOD_CALL = 1

export interface AdvertisementData {
  /** 16-bit UUID (e.g. 'fcd2') → service data bytes after the UUID. */
  readonly serviceData?: Readonly<Record<string, Uint8Array>>
  /** Company id → manufacturer data bytes after the company id. */
  readonly manufacturerData?: Readonly<Record<number, Uint8Array>>
  readonly rssi?: number
  readonly txPower?: number
  readonly name?: string
}

interface FakeDevice {
  mac: string
  path: string
  props: Record<string, Variant>
}

const XML_PROPS = `<interface name="${PROPS}"><method name="Get"><arg direction="in" type="s"/><arg direction="in" type="s"/><arg direction="out" type="v"/></method><method name="GetAll"><arg direction="in" type="s"/><arg direction="out" type="a{sv}"/></method><method name="Set"><arg direction="in" type="s"/><arg direction="in" type="s"/><arg direction="in" type="v"/></method><signal name="PropertiesChanged"><arg type="s"/><arg type="a{sv}"/><arg type="as"/></signal></interface>`
const XML_INTRO = `<interface name="${INTRO}"><method name="Introspect"><arg direction="out" type="s"/></method></interface>`
const XML_ADAPTER = `<interface name="${ADAPTER}"><method name="StartDiscovery"/><method name="StopDiscovery"/><method name="SetDiscoveryFilter"><arg direction="in" type="a{sv}"/></method><method name="RemoveDevice"><arg direction="in" type="o"/></method><property name="Address" type="s" access="read"/><property name="Powered" type="b" access="readwrite"/><property name="Discovering" type="b" access="read"/></interface>`
const XML_DEVICE = `<interface name="${DEVICE}"><property name="Address" type="s" access="read"/><property name="RSSI" type="n" access="read"/></interface>`

/** The BlueZ-shaped service. */
export class FakeBluez {
  readonly adapter: string
  readonly adapterPath: string
  bus: MessageBus | undefined
  adapterPresent = true
  powered = true
  discovering = false
  /** Set Powered=true fails with org.bluez.Error.Failed (an rfkill-blocked adapter). */
  powerBlocked = false
  /** Adapter1 method calls fail with this error name (e.g. org.bluez.Error.NotAuthorized). */
  failAdapterCalls: string | undefined
  lastFilter: Record<string, unknown> | undefined
  readonly calls: string[] = []
  readonly devices = new Map<string, FakeDevice>()

  constructor(adapter = 'hci0') {
    this.adapter = adapter
    this.adapterPath = `/org/bluez/${adapter}`
  }

  /** Connect and own org.bluez (bluetoothd starting). */
  async start(address: string): Promise<void> {
    const bus = sessionBus({ busAddress: address })
    bus.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      bus.once('connect', () => resolve())
      bus.once('error', reject)
    })
    bus.addMethodHandler((msg: Message) => this.#handle(msg))
    this.bus = bus
    await bus.requestName('org.bluez', 0)
  }

  /** Drop org.bluez and the connection (bluetoothd stopping). Devices are forgotten, as bluetoothd's cache is. */
  async stop(): Promise<void> {
    const bus = this.bus
    this.bus = undefined
    this.discovering = false
    this.devices.clear()
    if (!bus) return
    await bus.releaseName('org.bluez').catch(() => {})
    bus.disconnect()
  }

  #adapterProps(): Record<string, Variant> {
    return {
      Address: new Variant('s', '00:1A:7D:DA:71:13'),
      Name: new Variant('s', 'fake'),
      Alias: new Variant('s', 'fake'),
      Powered: new Variant('b', this.powered),
      Discovering: new Variant('b', this.discovering),
      Discoverable: new Variant('b', false),
      UUIDs: new Variant('as', []),
    }
  }

  #reply(msg: Message, signature?: string, body?: unknown[]): true {
    this.bus?.send(Message.newMethodReturn(msg, signature ?? '', body ?? []))
    return true
  }

  #error(msg: Message, name: string, text: string): true {
    this.bus?.send(Message.newError(msg as unknown as string, name, text))
    return true
  }

  #introspect(path: string): string | undefined {
    const nodes = (names: string[]) => names.map((n) => `<node name="${n}"/>`).join('')
    if (path === '/') return `<node>${XML_INTRO}<interface name="${OM}"><method name="GetManagedObjects"><arg direction="out" type="a{oa{sa{sv}}}"/></method></interface>${nodes(['org'])}</node>`
    if (path === '/org') return `<node>${XML_INTRO}${nodes(['bluez'])}</node>`
    if (path === '/org/bluez') return `<node>${XML_INTRO}<interface name="org.bluez.AgentManager1"><method name="RegisterAgent"><arg direction="in" type="o"/><arg direction="in" type="s"/></method></interface>${nodes(this.adapterPresent ? [this.adapter] : [])}</node>`
    if (path === this.adapterPath && this.adapterPresent) return `<node>${XML_INTRO}${XML_PROPS}${XML_ADAPTER}${nodes([...this.devices.values()].map((d) => d.path.slice(this.adapterPath.length + 1)))}</node>`
    const d = [...this.devices.values()].find((x) => x.path === path)
    if (d) return `<node>${XML_INTRO}${XML_PROPS}${XML_DEVICE}</node>`
    return undefined
  }

  #handle(msg: Message): boolean {
    if (msg.type !== SIG_METHOD_CALL) return false
    const path = msg.path
    this.calls.push(`${msg.interface}.${msg.member}`)
    if (this.calls.length > 1000) this.calls.splice(0, 500)
    if (msg.interface === INTRO && msg.member === 'Introspect') {
      const xml = this.#introspect(path)
      return xml === undefined ? this.#error(msg, 'org.freedesktop.DBus.Error.UnknownObject', `no object ${path}`) : this.#reply(msg, 's', [xml])
    }
    if (msg.interface === OM && msg.member === 'GetManagedObjects' && path === '/') {
      const out: Record<string, Record<string, Record<string, Variant>>> = {}
      if (this.adapterPresent) out[this.adapterPath] = { [ADAPTER]: this.#adapterProps() }
      for (const d of this.devices.values()) out[d.path] = { [DEVICE]: d.props }
      return this.#reply(msg, 'a{oa{sa{sv}}}', [out])
    }
    const isAdapter = path === this.adapterPath && this.adapterPresent
    if (msg.interface === PROPS) {
      const [iface, name, value] = msg.body as [string, string, Variant | undefined]
      let props: Record<string, Variant> | undefined
      if (isAdapter && iface === ADAPTER) props = this.#adapterProps()
      const dev = [...this.devices.values()].find((x) => x.path === path)
      if (dev && iface === DEVICE) props = dev.props
      if (!props) return this.#error(msg, 'org.freedesktop.DBus.Error.UnknownObject', `no ${iface} at ${path}`)
      if (msg.member === 'GetAll') return this.#reply(msg, 'a{sv}', [props])
      if (msg.member === 'Get') {
        const v = props[name]
        return v ? this.#reply(msg, 'v', [v]) : this.#error(msg, 'org.freedesktop.DBus.Error.InvalidArgs', `no property ${name}`)
      }
      if (msg.member === 'Set' && isAdapter && name === 'Powered' && value) {
        if (this.failAdapterCalls) return this.#error(msg, this.failAdapterCalls, 'not allowed')
        const on = Boolean(value.value)
        if (on && this.powerBlocked) return this.#error(msg, 'org.bluez.Error.Failed', 'Blocked through rfkill')
        this.powered = on
        if (!on && this.discovering) this.discovering = false
        this.#reply(msg)
        this.#propsChanged(this.adapterPath, ADAPTER, { Powered: new Variant('b', on), ...(on ? {} : { Discovering: new Variant('b', false) }) })
        return true
      }
      return this.#error(msg, 'org.freedesktop.DBus.Error.PropertyReadOnly', `cannot set ${name}`)
    }
    if (msg.interface === ADAPTER) {
      if (!isAdapter) return this.#error(msg, 'org.freedesktop.DBus.Error.UnknownObject', `no adapter at ${path}`)
      if (this.failAdapterCalls) return this.#error(msg, this.failAdapterCalls, 'not allowed')
      switch (msg.member) {
        case 'SetDiscoveryFilter': {
          const f = msg.body[0] as Record<string, Variant>
          this.lastFilter = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.value]))
          return this.#reply(msg)
        }
        case 'StartDiscovery':
          if (!this.powered) return this.#error(msg, 'org.bluez.Error.NotReady', 'Resource Not Ready')
          this.#reply(msg)
          if (!this.discovering) {
            this.discovering = true
            this.#propsChanged(this.adapterPath, ADAPTER, { Discovering: new Variant('b', true) })
          }
          return true
        case 'StopDiscovery':
          if (!this.discovering) return this.#error(msg, 'org.bluez.Error.Failed', 'No discovery started')
          this.discovering = false
          this.#reply(msg)
          this.#propsChanged(this.adapterPath, ADAPTER, { Discovering: new Variant('b', false) })
          return true
        case 'RemoveDevice':
          this.removeDevice(String(msg.body[0]).slice(-17).replace(/_/g, ':'))
          return this.#reply(msg)
      }
      return this.#error(msg, 'org.freedesktop.DBus.Error.UnknownMethod', `no method ${msg.member}`)
    }
    return false
  }

  #signal(path: string, iface: string, member: string, signature: string, body: unknown[]): void {
    this.bus?.send(Message.newSignal(path, iface, member, signature, body))
  }

  #propsChanged(path: string, iface: string, changed: Record<string, Variant>): void {
    this.#signal(path, PROPS, 'PropertiesChanged', 'sa{sv}as', [iface, changed, []])
  }

  /** The adapter appears (plugged in) or vanishes. */
  setAdapterPresent(present: boolean): void {
    if (present === this.adapterPresent) return
    this.adapterPresent = present
    if (present) this.#signal('/', OM, 'InterfacesAdded', 'oa{sa{sv}}', [this.adapterPath, { [ADAPTER]: this.#adapterProps() }])
    else {
      this.discovering = false
      for (const d of this.devices.values()) this.#signal('/', OM, 'InterfacesRemoved', 'oas', [d.path, [DEVICE]])
      this.devices.clear()
      this.#signal('/', OM, 'InterfacesRemoved', 'oas', [this.adapterPath, [ADAPTER]])
    }
  }

  /**
   * One advertisement heard (when discovering and powered): a new device
   * object (InterfacesAdded) or PropertiesChanged on the known one. Returns
   * whether it was emitted.
   */
  advertise(mac: string, data: AdvertisementData): boolean {
    if (!this.bus || !this.discovering || !this.powered || !this.adapterPresent) return false
    const MAC = mac.toUpperCase()
    const changed: Record<string, Variant> = {}
    if (data.rssi !== undefined) changed['RSSI'] = new Variant('n', data.rssi)
    if (data.txPower !== undefined) changed['TxPower'] = new Variant('n', data.txPower)
    if (data.serviceData) {
      changed['ServiceData'] = new Variant(
        'a{sv}',
        Object.fromEntries(Object.entries(data.serviceData).map(([u, b]) => [`0000${u}-0000-1000-8000-00805f9b34fb`, new Variant('ay', Buffer.from(b))])),
      )
    }
    if (data.manufacturerData) {
      changed['ManufacturerData'] = new Variant('a{qv}', Object.fromEntries(Object.entries(data.manufacturerData).map(([id, b]) => [id, new Variant('ay', Buffer.from(b))])))
    }
    let d = this.devices.get(MAC)
    if (!d) {
      d = {
        mac: MAC,
        path: `${this.adapterPath}/dev_${MAC.replace(/:/g, '_')}`,
        props: {
          Address: new Variant('s', MAC),
          AddressType: new Variant('s', 'public'),
          Adapter: new Variant('o', this.adapterPath),
          Paired: new Variant('b', false),
          Connected: new Variant('b', false),
          ...(data.name ? { Name: new Variant('s', data.name), Alias: new Variant('s', data.name) } : {}),
          ...changed,
        },
      }
      this.devices.set(MAC, d)
      this.#signal('/', OM, 'InterfacesAdded', 'oa{sa{sv}}', [d.path, { [DEVICE]: d.props }])
      return true
    }
    Object.assign(d.props, changed)
    this.#propsChanged(d.path, DEVICE, changed)
    return true
  }

  /** BlueZ dropped a device from its cache (InterfacesRemoved). */
  removeDevice(mac: string): void {
    const d = this.devices.get(mac.toUpperCase())
    if (!d) return
    this.devices.delete(d.mac)
    this.#signal('/', OM, 'InterfacesRemoved', 'oas', [d.path, [DEVICE]])
  }
}

// ---------------------------------------------------------------------------
// Frame builders

/** BTHome v2 unencrypted service data: device info 0x40 then objects. */
export function bthomePlain(objects: Uint8Array): Uint8Array {
  return Uint8Array.from([0x40, ...objects])
}

/**
 * BTHome v2 encrypted service data (bthome.io/encryption): AES-128-CCM, nonce
 * = MAC ‖ UUID d2fc ‖ device info ‖ counter (LE), 4-byte MIC.
 */
export function bthomeEncrypted(mac: string, keyHex: string, counter: number, objects: Uint8Array): Uint8Array {
  const info = 0x41
  const macBytes = Buffer.from(mac.replace(/:/g, ''), 'hex')
  const ctr = Buffer.alloc(4)
  ctr.writeUInt32LE(counter >>> 0)
  const nonce = Buffer.concat([macBytes, Buffer.from([0xd2, 0xfc, info]), ctr])
  const c = createCipheriv('aes-128-ccm', Buffer.from(keyHex, 'hex'), nonce, { authTagLength: 4 })
  const ct = Buffer.concat([c.update(objects), c.final()])
  return Uint8Array.from([info, ...ct, ...ctr, ...c.getAuthTag()])
}

/** BTHome objects: packet id, temperature 0.01 °C, humidity 0.01 %. */
export function bthomeObjects(packetId: number, tempC: number, humPct: number): Uint8Array {
  const t = Math.round(tempC * 100)
  const h = Math.round(humPct * 100)
  return Uint8Array.from([0x00, packetId & 0xff, 0x02, t & 0xff, (t >> 8) & 0xff, 0x03, h & 0xff, (h >> 8) & 0xff])
}

/** Ruuvi data format 5 (24 bytes after company id 0x0499) with a measurement sequence. */
export function ruuviDf5(mac: string, sequence: number, tempC: number): Uint8Array {
  const b = Buffer.alloc(24)
  b[0] = 5
  b.writeInt16BE(Math.round(tempC / 0.005), 1)
  b.writeUInt16BE(Math.round(45 / 0.0025), 3)
  b.writeUInt16BE(101325 - 50000, 5)
  b.writeInt16BE(0, 7)
  b.writeInt16BE(0, 9)
  b.writeInt16BE(1000, 11)
  b.writeUInt16BE(((3000 - 1600) << 5) | 10, 13)
  b[15] = 1
  b.writeUInt16BE(sequence & 0xffff, 16)
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(b, 18)
  return new Uint8Array(b)
}
