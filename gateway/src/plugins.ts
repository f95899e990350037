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
import type { Store } from './store/store.ts'
import { SimSource } from './sources/sim/sim.ts'

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
  // The HTTP source is POST /api/v1/readings, served by the API (api/server.ts).
]
