// Topic access for MQTT clients (docs/mqtt.md, "Access control"), as data:
// a device publishes and subscribes only under its own namespaces, the
// pattern mosquitto writes as `pattern readwrite fieldproof/%u/#`.

/** The MQTT firmware formats a device can be registered with. */
export const MQTT_FORMATS = ['tasmota', 'esphome', 'shelly', 'json'] as const
export type MqttFormat = (typeof MQTT_FORMATS)[number]

/** devices.config of an MQTT device. */
export interface MqttDeviceConfig {
  readonly format: MqttFormat
  /** Topic prefixes the device owns (no wildcards, no leading or trailing '/'). */
  readonly prefixes: readonly string[]
}

/** What one authenticated client may touch. */
export interface ClientGrant {
  readonly deviceId: string
  /** Prefixes it may publish and subscribe under (each means `<prefix>/#` and `<prefix>` itself). */
  readonly prefixes: readonly string[]
  readonly subscribe: boolean
  /** Only publishes to these exact topics (signed devices: fieldproof/<id>/up). */
  readonly publishOnly?: readonly string[]
}

const TASMOTA_PREFIXES = ['tele', 'stat', 'cmnd']

/** Valid topic prefix: non-empty levels, no wildcards, no '$' start, ≤ 200 bytes. */
export function isValidPrefix(p: string): boolean {
  return p.length > 0 && p.length <= 200 && !/[+#\0]/.test(p) && !p.startsWith('$') && !p.startsWith('/') && !p.endsWith('/') && !p.split('/').some((l) => l === '')
}

/**
 * The prefixes a device owns: its registered prefixes (a Tasmota prefix
 * `tele/<topic>` also grants `stat/<topic>` and `cmnd/<topic>`, which the
 * firmware uses beside it) and always `fieldproof/<device>`.
 */
export function devicePrefixes(deviceId: string, cfg: MqttDeviceConfig): string[] {
  const out = new Set<string>([`fieldproof/${deviceId}`])
  for (const p of cfg.prefixes) {
    out.add(p)
    if (cfg.format === 'tasmota') {
      const [first, ...rest] = p.split('/')
      if (first !== undefined && TASMOTA_PREFIXES.includes(first) && rest.length > 0) for (const t of TASMOTA_PREFIXES) out.add([t, ...rest].join('/'))
    }
  }
  return [...out]
}

function under(prefix: string, topic: string): boolean {
  // topic === prefix or starts with prefix + '/', without building that string for every message.
  if (!topic.startsWith(prefix)) return false
  return topic.length === prefix.length || topic.charCodeAt(prefix.length) === 0x2f
}

/** May this client publish to `topic`? */
export function mayPublish(g: ClientGrant, topic: string): boolean {
  if (topic.startsWith('$')) return false
  if (g.publishOnly) return g.publishOnly.includes(topic)
  return g.prefixes.some((p) => under(p, topic))
}

/**
 * May this client subscribe to `filter`? Only when every topic the filter
 * can match lies under one of its prefixes: the literal levels of the
 * prefix must come first, wildcards only after them.
 */
export function maySubscribe(g: ClientGrant, filter: string): boolean {
  if (!g.subscribe || filter.startsWith('$') || filter.startsWith('$share/')) return false
  const f = filter.split('/')
  return g.prefixes.some((p) => {
    const pl = p.split('/')
    if (f.length < pl.length) return false
    for (let i = 0; i < pl.length; i++) if (f[i] !== pl[i]) return false
    return true
  })
}
