// [sources.ble]: passive BLE sensor collection through BlueZ (docs/ble.md).

import { Type } from '@sinclair/typebox'

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const

/** Formats (decoder ids) that `accept_all` may name. */
export const BLE_FORMATS = ['bthome', 'ruuvi', 'atc', 'mibeacon'] as const

export const BleSourceSection = Type.Object(
  {
    enabled: Type.Boolean({
      description:
        'Listen for BLE sensor advertisements through BlueZ (bluetoothd) on D-Bus. Only registered devices (fieldproof devices add ble) and the formats in accept_all become readings.',
      default: false,
    }),
    adapter: Type.String({ description: 'BlueZ adapter name (see `bluetoothctl list` / `hciconfig`).', default: 'hci0', pattern: '^hci[0-9]{1,3}$' }),
    bus_address: Type.String({
      description:
        'D-Bus address of the bus BlueZ is on, e.g. "unix:path=/run/dbus/system_bus_socket". Empty means the system bus (DBUS_SYSTEM_BUS_ADDRESS, else /var/run/dbus/system_bus_socket).',
      default: '',
    }),
    accept_all: Type.Array(Type.Union(BLE_FORMATS.map((f) => Type.Literal(f))), {
      description:
        'Formats whose unregistered devices also become readings (device id ble:<mac>), e.g. ["bthome", "ruuvi"]. Empty: registered devices only. Phones and other undecodable advertisers are never recorded.',
      default: [],
      uniqueItems: true,
    }),
    min_interval_seconds: Type.Number({
      description:
        'Least time between two stored readings of one device; advertisements in between are counted and dropped (button and other event frames excepted). A registered device may override it (--min-interval).',
      default: 10,
      minimum: 0,
      maximum: 86_400,
    }),
    repeat_window_seconds: Type.Number({
      description: 'For formats without a packet id, sequence or counter: identical data within this window is one measurement repeated.',
      default: 30,
      minimum: 0,
      maximum: 86_400,
    }),
    stall_seconds: Type.Integer({
      description:
        'Liveness: when no advertisement at all arrives for this long while discovery should be on, report ble_stalled and restart discovery (with backoff). Set it to a few times the slowest advertising interval you expect around the gateway.',
      default: 120,
      minimum: 5,
      maximum: 86_400,
    }),
    power_cycle_on_stall: Type.Boolean({
      description: 'When restarting discovery did not end a stall, power the adapter off and on (Powered property) on every third attempt.',
      default: true,
    }),
    power_on: Type.Boolean({ description: 'Power the adapter on when it is off (Powered = true), as `bluetoothctl power on` does.', default: true }),
    backoff_max_seconds: Type.Integer({
      description: 'Longest wait between two attempts to reach BlueZ, find the adapter or restart discovery (the wait doubles from 1 s).',
      default: 60,
      minimum: 1,
      maximum: 3600,
    }),
    nearby_max: Type.Integer({ description: 'Most sensors kept in the discovery view (GET /api/v1/ble/nearby); memory only.', default: 256, minimum: 1, maximum: 10_000 }),
    nearby_ttl_seconds: Type.Integer({ description: 'Seconds a sensor stays in the discovery view after it was last heard.', default: 300, minimum: 5, maximum: 86_400 }),
    max_tracked_devices: Type.Integer({
      description: 'Most advertisers (BlueZ device objects, unregistered devices under accept_all) kept in memory; the least recently heard are forgotten first.',
      default: 2048,
      minimum: 16,
      maximum: 100_000,
    }),
    device_reload_seconds: Type.Integer({ description: 'How often the list of registered BLE devices is re-read from the database.', default: 10, minimum: 1, maximum: 3600 }),
  },
  table('BLE sensors (BTHome, Ruuvi, ATC/pvvx, Xiaomi MiBeacon) heard through BlueZ. See docs/ble.md.'),
)
