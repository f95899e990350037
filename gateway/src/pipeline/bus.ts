// The reading bus: subscribers (API event stream, Node-RED bridge, tests)
// receive every reading once it is durable, filtered by device or source.
// A subscriber that throws is isolated and counted; it never stalls ingest.

import type { Reading, SignedBatch } from '../core/types.ts'

export interface BusReading {
  readonly seq: bigint
  readonly reading: Reading
  readonly canonical: Uint8Array
}

export interface ReadingFilter {
  readonly deviceId?: string
  readonly source?: string
}

export interface GatewayEvents {
  reading: BusReading
  batch: SignedBatch
}

type Handler<T> = (event: T) => void

export class ReadingBus {
  readonly #readers = new Set<{ filter: ReadingFilter; fn: Handler<BusReading> }>()
  readonly #batchers = new Set<Handler<SignedBatch>>()
  /** Subscriber errors caught (a misbehaving subscriber never reaches the pipeline). */
  errors = 0

  /** Subscribe to durable readings; returns the unsubscribe function. */
  subscribe(filter: ReadingFilter, fn: Handler<BusReading>): () => void {
    const entry = { filter, fn }
    this.#readers.add(entry)
    return () => this.#readers.delete(entry)
  }

  onBatch(fn: Handler<SignedBatch>): () => void {
    this.#batchers.add(fn)
    return () => this.#batchers.delete(fn)
  }

  get subscribers(): number {
    return this.#readers.size + this.#batchers.size
  }

  publishReading(e: BusReading): void {
    for (const { filter, fn } of this.#readers) {
      if (filter.deviceId !== undefined && filter.deviceId !== e.reading.deviceId) continue
      if (filter.source !== undefined && filter.source !== e.reading.source) continue
      try {
        fn(e)
      } catch {
        this.errors++
      }
    }
  }

  publishBatch(b: SignedBatch): void {
    for (const fn of this.#batchers) {
      try {
        fn(b)
      } catch {
        this.errors++
      }
    }
  }
}
