// One connection to BlueZ over D-Bus, through node-ble and its dbus-next
// connection. node-ble finds the adapter and reads its state; the calls it
// lacks (SetDiscoveryFilter with DuplicateData, Powered) and the signal
// stream go over the same dbus-next connection.
//
// BlueZ D-Bus API (doc/org.bluez.Adapter.rst, doc/org.bluez.Device.rst):
// - org.bluez.Adapter1 at /org/bluez/<adapter>: StartDiscovery,
//   StopDiscovery, SetDiscoveryFilter(a{sv}) with Transport "le" and
//   DuplicateData true (without it BlueZ drops repeated advertisement data
//   and raises no PropertiesChanged for it), properties Powered, Discovering.
// - org.bluez.Device1 at /org/bluez/<adapter>/dev_XX_XX_XX_XX_XX_XX:
//   Address, AddressType, Name, RSSI (n), TxPower (n), ManufacturerData
//   (a{qv}), ServiceData (a{sv}, keys are 128-bit UUID strings), announced
//   with ObjectManager.InterfacesAdded at "/", updated with
//   Properties.PropertiesChanged, dropped with InterfacesRemoved.
//
// Signals are accepted only from the unique name that currently owns
// org.bluez: any process on the bus can send a signal that looks like BlueZ.
// Exactly three match rules are added per connection, whatever the number of
// devices (see dbus.ts for why not proxy objects).

import { createRequire } from 'node:module'
import type { MessageBus, Message } from 'dbus-next'
import {
  ADAPTER_IFACE,
  addMatch,
  BLUEZ,
  call,
  DBusCallError,
  DBUS_NAME,
  DEVICE_IFACE,
  MSG_SIGNAL,
  nameOwner,
  OM_IFACE,
  PROPS_IFACE,
  unwrapProps,
  Variant,
} from './dbus.ts'

/** The parts of node-ble's API used here (node-ble ships CommonJS with its own typings). */
interface NodeBleAdapter {
  isPowered(): Promise<boolean>
  isDiscovering(): Promise<boolean>
  stopDiscovery(): Promise<void>
}
interface NodeBleBluetooth {
  adapters(): Promise<string[]>
  getAdapter(name: string): Promise<NodeBleAdapter>
}
interface NodeBle {
  createBluetooth(): { bluetooth: NodeBleBluetooth; destroy(): void }
}

const require = createRequire(import.meta.url)

/** Receives what BlueZ reports. Called synchronously from the bus's message handler. */
export interface BluezEvents {
  /** org.bluez got a new owner (bluetoothd started) or lost it (undefined: bluetoothd stopped). */
  onOwner(owner: string | undefined): void
  /** A Device1 object appeared (full properties) or changed (changed properties only). */
  onDevice(path: string, props: Record<string, unknown>, full: boolean): void
  onDeviceRemoved(path: string): void
  /** The adapter's properties changed, appeared (full) or the adapter vanished (undefined). */
  onAdapter(props: Record<string, unknown> | undefined): void
  /** The connection to the bus was lost. */
  onDisconnect(reason: string): void
}

export interface BluezClientOptions {
  /** D-Bus address (`unix:path=...`); empty: the system bus (DBUS_SYSTEM_BUS_ADDRESS or /var/run/dbus/system_bus_socket). */
  readonly busAddress: string
  /** Adapter name, e.g. hci0. */
  readonly adapter: string
  readonly callTimeoutMs: number
  readonly events: BluezEvents
}

export class BluezClient {
  readonly adapterPath: string
  readonly #o: BluezClientOptions
  readonly #devicePrefix: string
  #bus: MessageBus | undefined
  #bluetooth: NodeBleBluetooth | undefined
  #destroy: (() => void) | undefined
  #owner: string | undefined
  #closed = false

  constructor(o: BluezClientOptions) {
    this.#o = o
    this.adapterPath = `/org/bluez/${o.adapter}`
    this.#devicePrefix = `${this.adapterPath}/dev_`
  }

  /** The unique name of bluetoothd, when it is on the bus. */
  get owner(): string | undefined {
    return this.#owner
  }

  /**
   * Connect, add the match rules and learn who owns org.bluez. Rejects with
   * the connection or permission error; the caller retries with backoff.
   */
  async connect(): Promise<void> {
    const nodeBle = require('node-ble') as NodeBle
    // node-ble opens the system bus from DBUS_SYSTEM_BUS_ADDRESS, read synchronously
    // while the connection object is created; a configured address is put there for
    // that one call only.
    const configured = this.#o.busAddress
    const before = process.env['DBUS_SYSTEM_BUS_ADDRESS']
    let session: ReturnType<NodeBle['createBluetooth']>
    try {
      if (configured) process.env['DBUS_SYSTEM_BUS_ADDRESS'] = configured
      session = nodeBle.createBluetooth()
    } finally {
      if (configured) {
        if (before === undefined) delete process.env['DBUS_SYSTEM_BUS_ADDRESS']
        else process.env['DBUS_SYSTEM_BUS_ADDRESS'] = before
      }
    }
    const bus = (session.bluetooth as unknown as { dbus: MessageBus }).dbus
    this.#bus = bus
    this.#bluetooth = session.bluetooth
    this.#destroy = session.destroy
    let failed: ((e: Error) => void) | undefined
    const connectError = new Promise<never>((_, reject) => (failed = reject))
    connectError.catch(() => {})
    bus.on('error', (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e))
      if (failed) failed(err)
      else this.#lost(err.message)
    })
    // The stream's end is not forwarded by dbus-next's MessageBus; listen on the connection when it is there.
    const conn = (bus as unknown as { _connection?: { on?: (ev: string, f: () => void) => void } })._connection
    conn?.on?.('end', () => this.#lost('the bus closed the connection'))
    bus.on('message', (m: Message) => this.#onMessage(m))
    const t = this.#o.callTimeoutMs
    const setup = (async () => {
      await addMatch(bus, `type='signal',sender='${DBUS_NAME}',interface='${DBUS_NAME}',member='NameOwnerChanged',arg0='${BLUEZ}'`, t)
      await addMatch(bus, `type='signal',sender='${BLUEZ}',interface='${OM_IFACE}',path='/'`, t)
      await addMatch(bus, `type='signal',sender='${BLUEZ}',interface='${PROPS_IFACE}',member='PropertiesChanged',path_namespace='/org/bluez'`, t)
      this.#owner = await nameOwner(bus, BLUEZ, t)
    })()
    try {
      await Promise.race([setup, connectError])
    } finally {
      failed = undefined
    }
  }

  #lost(reason: string): void {
    if (this.#closed) return
    this.close()
    this.#o.events.onDisconnect(reason)
  }

  /** Disconnect and drop every listener. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const bus = this.#bus
    this.#bus = undefined
    this.#bluetooth = undefined
    if (bus) {
      bus.removeAllListeners('message')
      // Keep an error listener: a late socket error must not become an uncaught exception.
      bus.removeAllListeners('error')
      bus.on('error', () => {})
    }
    try {
      this.#destroy?.()
    } catch {
      // already closed
    }
    this.#destroy = undefined
  }

  get closed(): boolean {
    return this.#closed
  }

  #requireBus(): MessageBus {
    if (!this.#bus) throw new DBusCallError('fieldproof.Disconnected', 'not connected to D-Bus')
    return this.#bus
  }

  #onMessage(m: Message): void {
    if (m.type !== MSG_SIGNAL) return
    const ev = this.#o.events
    if (m.interface === DBUS_NAME && m.member === 'NameOwnerChanged') {
      if (m.sender !== DBUS_NAME || m.body[0] !== BLUEZ) return
      const owner = typeof m.body[2] === 'string' && m.body[2] !== '' ? m.body[2] : undefined
      this.#owner = owner
      ev.onOwner(owner)
      return
    }
    // Only the current owner of org.bluez speaks for BlueZ.
    if (this.#owner === undefined || m.sender !== this.#owner) return
    if (m.interface === PROPS_IFACE && m.member === 'PropertiesChanged') {
      const iface = m.body[0]
      if (iface === DEVICE_IFACE && m.path.startsWith(this.#devicePrefix)) ev.onDevice(m.path, unwrapProps(m.body[1]), false)
      else if (iface === ADAPTER_IFACE && m.path === this.adapterPath) ev.onAdapter(unwrapProps(m.body[1]))
      return
    }
    if (m.interface !== OM_IFACE) return
    const path = m.body[0]
    if (typeof path !== 'string') return
    if (m.member === 'InterfacesAdded') {
      const ifaces = (m.body[1] ?? {}) as Record<string, unknown>
      if (path.startsWith(this.#devicePrefix) && ifaces[DEVICE_IFACE] !== undefined) ev.onDevice(path, unwrapProps(ifaces[DEVICE_IFACE]), true)
      else if (path === this.adapterPath && ifaces[ADAPTER_IFACE] !== undefined) ev.onAdapter(unwrapProps(ifaces[ADAPTER_IFACE]))
    } else if (m.member === 'InterfacesRemoved') {
      const removed = Array.isArray(m.body[1]) ? (m.body[1] as unknown[]) : []
      if (path.startsWith(this.#devicePrefix) && removed.includes(DEVICE_IFACE)) ev.onDeviceRemoved(path)
      else if (path === this.adapterPath && removed.includes(ADAPTER_IFACE)) ev.onAdapter(undefined)
    }
  }

  /** Ask the bus again who owns org.bluez (after a reconnect, or as a liveness probe of the bus). */
  async refreshOwner(): Promise<string | undefined> {
    this.#owner = await nameOwner(this.#requireBus(), BLUEZ, this.#o.callTimeoutMs)
    return this.#owner
  }

  /** Whether the adapter exists (node-ble lists the adapters under /org/bluez). */
  async adapterPresent(): Promise<boolean> {
    const bt = this.#bluetooth
    if (!bt) throw new DBusCallError('fieldproof.Disconnected', 'not connected to D-Bus')
    return (await withTimeout(bt.adapters(), this.#o.callTimeoutMs, 'listing adapters')).includes(this.#o.adapter)
  }

  /** Adapter state through node-ble. */
  async adapterState(): Promise<{ powered: boolean; discovering: boolean }> {
    const bt = this.#bluetooth
    if (!bt) throw new DBusCallError('fieldproof.Disconnected', 'not connected to D-Bus')
    const t = this.#o.callTimeoutMs
    const a = await withTimeout(bt.getAdapter(this.#o.adapter), t, 'opening the adapter')
    const powered = await withTimeout(a.isPowered(), t, 'reading Powered')
    const discovering = await withTimeout(a.isDiscovering(), t, 'reading Discovering')
    return { powered: powered === true, discovering: discovering === true }
  }

  /** Every Device1 under the adapter with its current properties (ObjectManager.GetManagedObjects). */
  async devices(): Promise<Map<string, Record<string, unknown>>> {
    const [objects] = await call(this.#requireBus(), { destination: BLUEZ, path: '/', iface: OM_IFACE, member: 'GetManagedObjects' }, this.#o.callTimeoutMs)
    const out = new Map<string, Record<string, unknown>>()
    for (const [path, ifaces] of Object.entries((objects ?? {}) as Record<string, Record<string, unknown>>)) {
      if (path.startsWith(this.#devicePrefix) && ifaces[DEVICE_IFACE] !== undefined) out.set(path, unwrapProps(ifaces[DEVICE_IFACE]))
    }
    return out
  }

  async setPowered(on: boolean): Promise<void> {
    await call(
      this.#requireBus(),
      { destination: BLUEZ, path: this.adapterPath, iface: PROPS_IFACE, member: 'Set', signature: 'ssv', body: [ADAPTER_IFACE, 'Powered', new Variant('b', on)] },
      this.#o.callTimeoutMs,
    )
  }

  /**
   * LE discovery with every advertisement reported: SetDiscoveryFilter
   * {Transport: "le", DuplicateData: true}, then StartDiscovery. (node-ble's
   * own startDiscovery sets a filter without DuplicateData, replacing this one.)
   */
  async startDiscovery(): Promise<void> {
    const bus = this.#requireBus()
    const t = this.#o.callTimeoutMs
    const filter = { Transport: new Variant('s', 'le'), DuplicateData: new Variant('b', true) }
    await call(bus, { destination: BLUEZ, path: this.adapterPath, iface: ADAPTER_IFACE, member: 'SetDiscoveryFilter', signature: 'a{sv}', body: [filter] }, t)
    try {
      await call(bus, { destination: BLUEZ, path: this.adapterPath, iface: ADAPTER_IFACE, member: 'StartDiscovery' }, t)
    } catch (e) {
      // Already discovering for this client is fine.
      if (!(e instanceof DBusCallError && e.type === 'org.bluez.Error.InProgress')) throw e
    }
  }

  /** StopDiscovery through node-ble; "not discovering" is not an error here. */
  async stopDiscovery(): Promise<void> {
    const bt = this.#bluetooth
    if (!bt) return
    const t = this.#o.callTimeoutMs
    try {
      const a = await withTimeout(bt.getAdapter(this.#o.adapter), t, 'opening the adapter')
      await withTimeout(a.stopDiscovery(), t, 'StopDiscovery')
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e)
      if (/No discovery started|NotReady|Failed/i.test(msg)) return
      throw e
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DBusCallError('fieldproof.Timeout', `${what}: no reply within ${ms} ms`)), ms)
  })
  // A late rejection after the deadline must not surface as unhandled.
  p.catch(() => {})
  return Promise.race([p, deadline]).then(
    (v) => {
      clearTimeout(timer)
      return v
    },
    (e: unknown) => {
      clearTimeout(timer)
      const err = e as { type?: unknown; text?: unknown }
      if (!(e instanceof DBusCallError) && typeof err.type === 'string') throw new DBusCallError(err.type, typeof err.text === 'string' ? err.text : String(e))
      throw e
    },
  )
}
