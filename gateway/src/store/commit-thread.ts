// Worker thread that owns the write transaction for readings (commit-worker.ts
// is the main-thread side). Each job is one group commit: insert the rows,
// COMMIT with synchronous=FULL (invariant 8), answer. While this thread
// waits for the fsync the event loop keeps parsing the next readings;
// nothing is acknowledged before the answer arrives
// (invariant 1).
//
// Wire format (one message per job, the byte buffer transferred):
//   { id, firstSeq, deviceIds[], sources[], receivedMs: Float64Array,
//     bytes: Uint8Array (canonical encodings back to back), ends: Uint32Array,
//     counters: [row index, device counter][] (device-signed rows only) }
// Answer: { id, ok: true } or
//         { id, ok: false, message, code, full }.
// After posting an answer the thread bumps the shared counter and notifies,
// so the main thread can wait for it synchronously during shutdown.

import { workerData, type MessagePort } from 'node:worker_threads'
import { Store, type NewReadingRow } from './store.ts'

/** One group commit sent to the commit thread. */
export interface CommitJob {
  readonly id: number
  readonly firstSeq: bigint
  readonly deviceIds: readonly string[]
  readonly sources: readonly string[]
  readonly receivedMs: Float64Array
  /** Canonical encodings back to back; row i is bytes[ends[i-1] ?? 0, ends[i]). */
  readonly bytes: Uint8Array
  readonly ends: Uint32Array
  /** [row index, device counter] of the device-signed rows. */
  readonly counters: readonly (readonly [number, bigint])[]
}

/** The commit thread's answer to one job. */
export type CommitAnswer =
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly code: string; readonly full: boolean }

/** What the thread is started with. */
export interface CommitThreadData {
  readonly path: string
  readonly port: MessagePort
  /** Int32Array over a SharedArrayBuffer: [answers posted]. */
  readonly signal: Int32Array
}

const data = workerData as CommitThreadData
const port = data.port
let store: Store | undefined
let openError: { message: string; code: string } | undefined
try {
  store = new Store(data.path)
} catch (e) {
  openError = { message: `commit thread cannot open the database: ${(e as Error).message}`, code: String((e as { code?: unknown }).code ?? 'STORE_CORRUPT') }
}

function answer(a: CommitAnswer, transfer: ArrayBuffer[] = []): void {
  port.postMessage(a, transfer)
  Atomics.add(data.signal, 0, 1)
  Atomics.notify(data.signal, 0)
}

function commit(job: CommitJob): void {
  if (!store) {
    answer({ id: job.id, ok: false, message: openError?.message ?? 'commit thread has no database', code: openError?.code ?? 'INTERNAL', full: false })
    return
  }
  const n = job.deviceIds.length
  const rows: NewReadingRow[] = new Array<NewReadingRow>(n)
  try {
    let start = 0
    for (let i = 0; i < n; i++) {
      const end = job.ends[i] as number
      const canonical = job.bytes.subarray(start, end)
      rows[i] = { seq: job.firstSeq + BigInt(i), deviceId: job.deviceIds[i] as string, source: job.sources[i] as string, receivedMs: job.receivedMs[i] as number, canonical }
      start = end
    }
    for (const [i, counter] of job.counters) rows[i] = { ...(rows[i] as NewReadingRow), counter }
    store.insertReadings(rows)
  } catch (e) {
    const message = String((e as Error).message)
    const code = String((e as { code?: unknown }).code ?? 'INTERNAL')
    answer({ id: job.id, ok: false, message, code, full: code === 'SQLITE_FULL' || /SQLITE_FULL|database or disk is full/i.test(message) })
    return
  }
  answer({ id: job.id, ok: true })
}

port.on('message', (m: CommitJob | { close: true }) => {
  if ('close' in m) {
    // The owner checkpoints and closes its own connection; this one only closes.
    if (store && !store.closed) store.db.close()
    port.close()
    return
  }
  commit(m)
})
