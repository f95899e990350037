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
import { ArchiveSink } from './sinks/archive/archive.ts'
import { HttpSink } from './sinks/http/http.ts'
import { MqttSink } from './sinks/mqtt/mqtt.ts'
import { W3bstreamSink } from './sinks/w3bstream/w3bstream.ts'
import type { Store } from './store/store.ts'
import { SimSource } from './sources/sim/sim.ts'
import type { DeviceRegistry } from './pipeline/devices.ts'
import { MqttSource } from './sources/mqtt/broker.ts'
import { LorawanSource } from './sources/lorawan/server.ts'
import { BleSource } from './sources/ble/source.ts'
import { GpioSource } from './sources/gpio/source.ts'
import type { GatewayHealth } from './sources/gpio/status-led.ts'

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
  /** The source this config enables, or undefined when it is off. */
  create(ctx: PluginContext): Source | undefined
}

export const SOURCE_PLUGINS: readonly SourcePlugin[] = [
  {
    id: 'sim',
    create: ({ config: { sources: { sim } } }) =>
      sim.enabled ? new SimSource({ sensors: sim.sensors, intervalMs: sim.interval_ms, kinds: sim.kinds }) : undefined,
  },
  {
    id: 'mqtt',
    create: ({ config: { sources: { mqtt } }, store, metrics, rejects, log, devices }) =>
      mqtt.enabled && devices ? new MqttSource({ config: mqtt, store, devices, metrics, rejects, log }) : undefined,
  },
  // The HTTP source is POST /api/v1/readings, served by the API (api/server.ts).
  {
    id: 'lorawan',
    create: ({ config: { sources: { lorawan } }, store, metrics, log, clock, rejects }) =>
      lorawan.enabled ? new LorawanSource({ config: lorawan, store, metrics, log, clock, rejects }) : undefined,
  },
  { id: 'ble', create: ({ config: { sources: { ble } }, store, rejects }) => (ble.enabled ? new BleSource({ config: ble, store, rejects }) : undefined) },
  {
    id: 'gpio',
    create: ({ config: { sources: { gpio } }, store, rejects, health }) =>
      gpio.enabled ? new GpioSource({ config: gpio, store, rejects, ...(health ? { health } : {}) }) : undefined,
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
  /** The sink this config enables with its delivery settings, or undefined when it is off. */
  create(ctx: SinkPluginContext): SinkInstance | undefined
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
    create: (ctx) => {
      const c = ctx.config.sinks.http
      if (!c.enabled) return undefined
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
    create: (ctx) => {
      const c = ctx.config.sinks.w3bstream
      if (!c.enabled) return undefined
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
    create: (ctx) => {
      const c = ctx.config.sinks.mqtt
      if (!c.enabled) return undefined
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
    create: (ctx) => {
      const c = ctx.config.sinks.archive
      if (!c.enabled) return undefined
      return { sink: new ArchiveSink({ dir: sinkPath(ctx, c.dir) as string }), settings: delivery(c) }
    },
  },
]
