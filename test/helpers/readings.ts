// Readings and pipelines for tests: real SQLite files in t.testdir(), a real key.

import { join } from 'node:path'
import { signBatchHeader } from '../../gateway/src/core/batch.ts'
import type { Hex, Reading } from '../../gateway/src/core/types.ts'
import { addressOf } from '../../gateway/src/identity/key-file.ts'
import { MetricsRegistry } from '../../gateway/src/pipeline/metrics.ts'
import { Pipeline, type PipelineOptions } from '../../gateway/src/pipeline/pipeline.ts'
import { Store } from '../../gateway/src/store/store.ts'

export const TEST_KEY = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318' as Hex
export const TEST_ADDRESS = addressOf(TEST_KEY)

let mono = 1_000_000_000n

export function reading(i: number, over: Partial<Reading> = {}): Reading {
  mono += 1000n
  return {
    deviceId: `dev-${i % 7}`,
    source: 'http',
    received: { bootId: '0123456789abcdef0123456789abcdef', monoNs: mono, wallMs: 1_764_000_000_000 + i, clock: 'ntp' },
    metrics: [
      { name: 'temperature_c', unit: 'Cel', value: 20 + (i % 100) / 10 },
      { name: 'count', unit: 'count', value: i },
    ],
    auth: { kind: 'none' },
    ...over,
  }
}

export function openPipeline(dir: string, o: Partial<PipelineOptions> = {}): { store: Store; pipeline: Pipeline; metrics: MetricsRegistry } {
  const store = o.store ?? new Store(join(dir, 'fieldproof.db'))
  const metrics = o.metrics ?? new MetricsRegistry()
  const pipeline = new Pipeline({
    store,
    metrics,
    signer: { address: TEST_ADDRESS, sign: (h) => signBatchHeader(h, TEST_KEY) },
    batchMaxReadings: 100,
    batchMaxAgeMs: 60_000,
    maxPending: 10_000,
    commitMaxReadings: 2000,
    retentionMs: 3_600_000,
    maxBytes: 1 << 30,
    ...o,
  })
  return { store, pipeline, metrics }
}
