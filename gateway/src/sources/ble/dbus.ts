// Small D-Bus helpers over dbus-next (the connection node-ble uses): method
// calls with a deadline, match rules, variant unpacking, and the mapping of
// D-Bus failures to what an owner must do about them.
//
// Why not dbus-next proxy objects for devices: every ProxyInterface listener
// adds a match rule, and dbus-next 0.10's match refcounting compares its
// arguments the wrong way round (`hasOwnProperty.call(match, rules)`), so
// RemoveMatch is never sent. Hundreds of passing devices would leak match
// rules in dbus-daemon (the system bus caps them per connection). This source
// adds a fixed handful of rules once per connection and reads signals from
// the bus's `message` event instead.
//
// References: D-Bus specification, "Match Rules" and "Message Bus Messages"
// (AddMatch, GetNameOwner, NameOwnerChanged);
// BlueZ doc/org.bluez.Adapter.rst and org.bluez.Device.rst.

import { Message, Variant, type MessageBus } from 'dbus-next'

export const DBUS_NAME = 'org.freedesktop.DBus'
export const DBUS_PATH = '/org/freedesktop/DBus'
export const PROPS_IFACE = 'org.freedesktop.DBus.Properties'
export const OM_IFACE = 'org.freedesktop.DBus.ObjectManager'
export const BLUEZ = 'org.bluez'
export const ADAPTER_IFACE = 'org.bluez.Adapter1'
export const DEVICE_IFACE = 'org.bluez.Device1'

/** dbus-next message type numbers (lib/constants.js). */
export const MSG_METHOD_RETURN = 2
export const MSG_ERROR = 3
export const MSG_SIGNAL = 4

/** A failed D-Bus call: the error name (`org.freedesktop.DBus.Error.AccessDenied`, ...) and text. */
export class DBusCallError extends Error {
  readonly type: string
  constructor(type: string, text: string) {
    super(`${type}: ${text}`)
    this.type = type
  }
}

export interface CallSpec {
  readonly destination: string
  readonly path: string
  readonly iface: string
  readonly member: string
  readonly signature?: string
  readonly body?: unknown[]
}

/**
 * Call a method and wait at most `timeoutMs` for the reply. dbus-next never
 * settles a call whose connection died, so every call here has a deadline.
 */
export async function call(bus: MessageBus, spec: CallSpec, timeoutMs: number): Promise<unknown[]> {
  const msg = new Message({
    destination: spec.destination,
    path: spec.path,
    interface: spec.iface,
    member: spec.member,
    ...(spec.signature !== undefined ? { signature: spec.signature, body: spec.body ?? [] } : {}),
  })
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DBusCallError('fieldproof.Timeout', `${spec.iface}.${spec.member} on ${spec.path}: no reply within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    const reply = await Promise.race([bus.call(msg), deadline])
    return (reply?.body as unknown[] | undefined) ?? []
  } catch (e) {
    if (e instanceof DBusCallError) throw e
    const err = e as { type?: unknown; text?: unknown; message?: unknown }
    if (typeof err.type === 'string') throw new DBusCallError(err.type, typeof err.text === 'string' ? err.text : String(err.message))
    throw new DBusCallError('fieldproof.CallFailed', e instanceof Error ? e.message : String(e))
  } finally {
    clearTimeout(timer)
  }
}

/** AddMatch on the bus daemon (one rule; the caller keeps the count fixed). */
export function addMatch(bus: MessageBus, rule: string, timeoutMs: number): Promise<unknown[]> {
  return call(bus, { destination: DBUS_NAME, path: DBUS_PATH, iface: DBUS_NAME, member: 'AddMatch', signature: 's', body: [rule] }, timeoutMs)
}

/** The unique name owning `name`, or undefined when nobody owns it. */
export async function nameOwner(bus: MessageBus, name: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const [owner] = await call(bus, { destination: DBUS_NAME, path: DBUS_PATH, iface: DBUS_NAME, member: 'GetNameOwner', signature: 's', body: [name] }, timeoutMs)
    return typeof owner === 'string' ? owner : undefined
  } catch (e) {
    if (e instanceof DBusCallError && e.type === 'org.freedesktop.DBus.Error.NameHasNoOwner') return undefined
    throw e
  }
}

/** Unwrap a dbus-next Variant (recursively for dictionaries of variants is not needed: callers unwrap per key). */
export function unwrap(v: unknown): unknown {
  return v instanceof Variant ? v.value : v
}

/** Property dictionary (a{sv}) as plain values. */
export function unwrapProps(dict: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (dict === null || typeof dict !== 'object') return out
  for (const [k, v] of Object.entries(dict as Record<string, unknown>)) out[k] = unwrap(v)
  return out
}

export { Variant }

/** A D-Bus failure as the owner should read it: a short state and what to do. */
export interface DiagnosedFailure {
  readonly state: 'permission-denied' | 'bus-unavailable' | 'error'
  readonly message: string
}

/**
 * Turn a connection or call failure into an actionable message. `user` is
 * the account the gateway runs as (for the group hint).
 */
export function diagnose(e: unknown, busAddress: string, user: string): DiagnosedFailure {
  const type = e instanceof DBusCallError ? e.type : ''
  const code = (e as { code?: unknown } | null)?.code
  const text = e instanceof Error ? e.message : String(e)
  if (type === 'org.freedesktop.DBus.Error.AccessDenied' || type === 'org.bluez.Error.NotPermitted' || code === 'EACCES') {
    return {
      state: 'permission-denied',
      message:
        `D-Bus refused access to BlueZ (${text.slice(0, 160)}). Add the "${user}" user to the bluetooth group ` +
        `(sudo usermod -aG bluetooth ${user}, then restart the service), or allow it in a D-Bus policy ` +
        `(/etc/dbus-1/system.d/fieldproof-bluetooth.conf: <policy user="${user}"><allow send_destination="org.bluez"/></policy>).`,
    }
  }
  if (type === 'org.bluez.Error.NotAuthorized' || type.startsWith('org.freedesktop.PolicyKit1.Error')) {
    return {
      state: 'permission-denied',
      message:
        `BlueZ refused the request (${text.slice(0, 160)}): polkit does not authorize "${user}". Add a polkit rule, e.g. ` +
        `/etc/polkit-1/rules.d/50-fieldproof-bluetooth.rules: polkit.addRule(function (action, subject) { if (action.id.indexOf("org.bluez") === 0 && subject.user === "${user}") return polkit.Result.YES; });`,
    }
  }
  if (code === 'ENOENT' || code === 'ECONNREFUSED' || type === 'fieldproof.Disconnected') {
    return {
      state: 'bus-unavailable',
      message: `cannot reach the D-Bus system bus at ${busAddress} (${text.slice(0, 120)}); is dbus running? (systemctl status dbus)`,
    }
  }
  return { state: 'error', message: text.slice(0, 300) }
}
