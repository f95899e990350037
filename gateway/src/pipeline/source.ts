// The source plugin shape. A source turns something from the outside world
// (radio frames, MQTT messages, HTTP bodies, simulated sensors) into
// Readings and hands them to ingest(); it acknowledges its sender only after
// ingest() resolves (invariant 1).

import type { Reading, ReceiveTime } from '../core/types.ts'
import type { Logger } from 'pino'
import type { MetricsRegistry } from './metrics.ts'
import type { ReadingBus } from './bus.ts'

export interface SourceContext {
  /** Durable ingest: resolves with the sequence numbers once committed. */
  ingest(readings: readonly Reading[]): Promise<bigint[]>
  /** Receive time for a reading arriving now. */
  now(): ReceiveTime
  readonly log: Logger
  readonly metrics: MetricsRegistry
  readonly bus: ReadingBus
}

export interface Source {
  /** Stable id: config section, logs, metrics labels. */
  readonly id: string
  /** Run until `signal` aborts. Resolves when stopped; rejects only on a fatal setup error. */
  start(ctx: SourceContext, signal: AbortSignal): Promise<void>
  /** Status for /api/v1/status (optional). */
  status?(): Record<string, unknown>
}
