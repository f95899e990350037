// Where plugins are listed: a source or a sink is added by adding its folder
// and one line here (CONTRIBUTING.md). The composition root (gateway.ts)
// creates what the config enables and runs it.

import type { Logger } from 'pino'
import type { Config } from './config/schema.ts'
import type { Hex } from './core/types.ts'
import type { RateLimitedLog } from './log/logger.ts'
import type { ReadingBus } from './pipeline/bus.ts'
import type { Clock } from './pipeline/clock.ts'
import type { MetricsRegistry } from './pipeline/metrics.ts'
import type { Source } from './pipeline/source.ts'
import type { SinkInstance, SinkRunnerSettings } from './pipeline/sink.ts'
import { FieldproofError } from './core/errors.ts'
import { readFileSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import type { Store } from './store/store.ts'
import type { DeviceRegistry } from './pipeline/devices.ts'
import type { GatewayHealth } from './sources/gpio/status-led.ts'

// Plugin modules are imported only when their config enables them: a source or
// sink that is off costs no memory (aedes, node-ble's D-Bus client, the MQTT
// client, LoRaWAN's codecs... are megabytes of heap each on a 512 MB Pi Zero 2 W).

/** What a plugin factory may use. Factories create; they start nothing. */
export interface PluginContext {
  readonly config: Config
  readonly simulation: boolean
  readonly store: Store
  readonly metrics: MetricsRegistry
  readonly log: Logger
  readonly clock: Clock
  readonly bus: ReadingBus
  readonly rejects: RateLimitedLog
  readonly gatewayAddress: Hex
  /** Device keys, counters, tokens and activity (pipeline/devices.ts), shared with the API. */
  readonly devices?: DeviceRegistry
  /** The gateway's state for the status LED (starting, healthy, upstream-down, error, stopped). */
  readonly health?: () => GatewayHealth
}

export interface SourcePlugin {
  readonly id: string
  /** The source this config enables, or undefined when it is off. Its module is imported only when it is on. */
  create(ctx: PluginContext): Promise<Source | undefined>
}

export const SOURCE_PLUGINS: readonly SourcePlugin[] = [
  {
    id: 'sim',
    create: async ({ config: { sources: { sim } } }) => {
      if (!sim.enabled) return undefined
      const { SimSource } = await import('./sources/sim/sim.ts')
      return new SimSource({ sensors: sim.sensors, intervalMs: sim.interval_ms, kinds: sim.kinds })
    },
  },
  {
    id: 'mqtt',
    create: async ({ config: { sources: { mqtt } }, store, metrics, rejects, log, devices }) => {
      if (!mqtt.enabled || !devices) return undefined
      const { MqttSource } = await import('./sources/mqtt/broker.ts')
      return new MqttSource({ config: mqtt, store, devices, metrics, rejects, log })
    },
  },
  // The HTTP source is POST /api/v1/readings, served by the API (api/server.ts).
  {
    id: 'lorawan',
    create: async ({ config: { sources: { lorawan } }, store, metrics, log, clock, rejects }) => {
      if (!lorawan.enabled) return undefined
      const { LorawanSource } = await import('./sources/lorawan/server.ts')
      return new LorawanSource({ config: lorawan, store, metrics, log, clock, rejects })
    },
  },
  {
    id: 'ble',
    create: async ({ config: { sources: { ble } }, store, rejects }) => {
      if (!ble.enabled) return undefined
      const { BleSource } = await import('./sources/ble/source.ts')
      return new BleSource({ config: ble, store, rejects })
    },
  },
  {
    id: 'gpio',
    create: async ({ config: { sources: { gpio } }, store, rejects, health }) => {
      if (!gpio.enabled) return undefined
      const { GpioSource } = await import('./sources/gpio/source.ts')
      return new GpioSource({ config: gpio, store, rejects, ...(health ? { health } : {}) })
    },
  },
]

/** What a sink factory may use: the plugin context plus signing with the gateway key (W3bstream signs its messages). */
export interface SinkPluginContext extends PluginContext {
  /** Sign a 32-byte digest with the gateway key: 65 bytes r || s || v (v 27/28). */
  readonly signDigest: (digest: Uint8Array) => Hex
}

export interface SinkPlugin {
  /** Also the sink id: cursor row, metrics label, `[sinks.<id>]`. */
  readonly id: string
  /** The sink this config enables with its delivery settings, or undefined when it is off. Its module is imported only when it is on. */
  create(ctx: SinkPluginContext): Promise<SinkInstance | undefined>
}

/** Delivery keys of a [sinks.*] table. */
const delivery = (c: { timeout_ms: number; backoff_base_ms: number; backoff_max_ms: number; stuck_after_failures: number }): SinkRunnerSettings => ({
  timeoutMs: c.timeout_ms,
  backoffBaseMs: c.backoff_base_ms,
  backoffMaxMs: Math.max(c.backoff_max_ms, c.backoff_base_ms),
  stuckAfterFailures: c.stuck_after_failures,
})

/** A path of a [sinks.*] key, relative to state_dir; undefined when empty. */
const sinkPath = (ctx: PluginContext, p: string): string | undefined => (p === '' ? undefined : resolvePath(ctx.config.gateway.state_dir, p))

/** The trimmed content of a secret file named by a [sinks.*] key. */
function sinkSecret(ctx: PluginContext, key: string, p: string): string | undefined {
  const path = sinkPath(ctx, p)
  if (path === undefined) return undefined
  try {
    return readFileSync(path, 'utf8').trim()
  } catch (e) {
    throw new FieldproofError('CONFIG_INVALID', `${key}: cannot read ${path}: ${(e as Error).message}`)
  }
}

function required(key: string, v: string): string {
  if (v === '') throw new FieldproofError('CONFIG_INVALID', `${key}: required when the sink is enabled`)
  return v
}

export const SINK_PLUGINS: readonly SinkPlugin[] = [
  {
    id: 'http',
    create: async (ctx) => {
      const c = ctx.config.sinks.http
      if (!c.enabled) return undefined
      const { HttpSink } = await import('./sinks/http/http.ts')
      const value = sinkSecret(ctx, 'sinks.http.auth_value_file', c.auth_value_file) ?? c.auth_value
      const ca = sinkPath(ctx, c.ca_file)
      const sink = new HttpSink({
        url: required('sinks.http.url', c.url),
        format: c.format,
        payload: c.payload,
        auth: { header: c.auth_header, value },
        ...(ca !== undefined ? { ca: sinkSecret(ctx, 'sinks.http.ca_file', c.ca_file) as string } : {}),
      })
      return { sink, settings: delivery(c) }
    },
  },
  {
    id: 'w3bstream',
    create: async (ctx) => {
      const c = ctx.config.sinks.w3bstream
      if (!c.enabled) return undefined
      const { W3bstreamSink } = await import('./sinks/w3bstream/w3bstream.ts')
      const token = sinkSecret(ctx, 'sinks.w3bstream.auth_value_file', c.auth_value_file)
      const sink = new W3bstreamSink({
        url: required('sinks.w3bstream.url', c.url),
        projectId: c.project_id,
        projectVersion: c.project_version,
        payload: c.payload,
        signDigest: ctx.signDigest,
        ...(token !== undefined ? { token } : {}),
      })
      return { sink, settings: delivery(c) }
    },
  },
  {
    id: 'mqtt',
    create: async (ctx) => {
      const c = ctx.config.sinks.mqtt
      if (!c.enabled) return undefined
      const { MqttSink } = await import('./sinks/mqtt/mqtt.ts')
      const password = sinkSecret(ctx, 'sinks.mqtt.password_file', c.password_file)
      const files = { caFile: sinkPath(ctx, c.ca_file), certFile: sinkPath(ctx, c.cert_file), keyFile: sinkPath(ctx, c.key_file) }
      const sink = new MqttSink({
        url: required('sinks.mqtt.url', c.url),
        topic: c.topic,
        clientId: c.client_id || `fieldproof-${ctx.gatewayAddress.toLowerCase()}`,
        format: c.format,
        payload: c.payload,
        ...(c.username !== '' ? { username: c.username } : {}),
        ...(password !== undefined ? { password } : {}),
        ...Object.fromEntries(Object.entries(files).filter(([, v]) => v !== undefined)),
      })
      return { sink, settings: delivery(c) }
    },
  },
  {
    id: 'archive',
    create: async (ctx) => {
      const c = ctx.config.sinks.archive
      if (!c.enabled) return undefined
      const { ArchiveSink } = await import('./sinks/archive/archive.ts')
      return { sink: new ArchiveSink({ dir: sinkPath(ctx, c.dir) as string }), settings: delivery(c) }
    },
  },
  {
    id: 'anchor',
    create: async (ctx) => {
      const c = ctx.config.sinks.anchor
      if (!c.enabled) return undefined
      const { createAnchorSink } = await import('./sinks/anchor/plugin.ts')
      return { sink: createAnchorSink(ctx, c), settings: delivery(c) }
    },
  },
]
