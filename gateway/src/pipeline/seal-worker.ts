// Builds and signs full batches on a worker thread (seal-thread.ts), so that
// under a high ingest rate the event loop does not spend ~0.8 ms per 1,000
// readings on the Merkle tree and the signature. The pipeline keeps one
// batch in flight, stores the answer itself (in the transaction of its next
// group commit), and seals on the event loop as before whenever the thread
// cannot answer: a dead thread, a failed job, a stop, a seal by age.
//
// Cost: one more V8 isolate (~10 MB), started at the first job: the
// pipeline sends none until full batches are sealed less than 250 ms apart
// (PipelineOptions.sealThreadWithinMs).

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads'
import type { BatchHeader, Hex } from '../core/types.ts'
import type { SealAnswer, SealJob, SealThreadData } from './seal-thread.ts'

// The same extension as this module: .ts from the sources, .js in the built form (scripts/build-dist.ts).
const THREAD_URL = new URL(`./seal-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

/** A batch's leaves (32 bytes per reading), root, hash and signature, as the thread computed them. */
export type SealOutcome =
  | { readonly ok: true; readonly leaves: Uint8Array; readonly root: Uint8Array; readonly hash: Hex; readonly signature: Hex }
  | { readonly ok: false; readonly message: string }

interface Thread {
  readonly worker: Worker
  readonly port: MessagePort
  dead: boolean
}

/**
 * Owner of the seal thread (started at the first job). Each job's callback
 * runs once, on the event loop; a thread that dies answers every job in
 * flight with ok: false and is replaced at the next job.
 *
 * @example
 * const w = new SealWorker(privateKey)
 * w.seal(headerWithoutRoot, canonicals, (o) => { if (o.ok) store(o) else sealHere() })
 * await w.close()
 */
export class SealWorker {
  readonly #privateKey: Hex
  readonly #onError: ((err: unknown) => void) | undefined
  #thread: Thread | undefined
  readonly #inFlight = new Map<number, (o: SealOutcome) => void>()
  #nextId = 1
  #closed = false
  #answered = 0

  constructor(privateKey: Hex, onError?: (err: unknown) => void) {
    this.#privateKey = privateKey
    this.#onError = onError
  }

  /** Jobs waiting for their answer. */
  get pending(): number {
    return this.#inFlight.size
  }

  /** Jobs the thread has built and signed (diagnostics and tests). */
  get answered(): number {
    return this.#answered
  }

  /** True once a thread is running (diagnostics and tests). */
  get started(): boolean {
    return this.#thread !== undefined && !this.#thread.dead
  }

  #spawn(): Thread {
    const { port1, port2 } = new MessageChannel()
    const data: SealThreadData = { port: port2, privateKey: this.#privateKey }
    // One job at a time, each a few tens of KB: a small young generation keeps the thread's memory small.
    const worker = new Worker(THREAD_URL, { workerData: data, transferList: [port2], stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } })
    // Referenced only while a job is owed, so that its death is still heard of.
    worker.unref()
    const thread: Thread = { worker, port: port1, dead: false }
    port1.on('message', (a: SealAnswer) => {
      const done = this.#inFlight.get(a.id)
      if (!done) return
      this.#inFlight.delete(a.id)
      if (this.#inFlight.size === 0) {
        port1.unref()
        worker.unref()
      }
      if (a.ok) this.#answered++
      done(a.ok ? { ok: true, leaves: a.leaves, root: a.root, hash: a.hash, signature: a.signature } : { ok: false, message: a.message })
    })
    port1.unref()
    const onDeath = (err: unknown) => {
      if (thread.dead) return
      thread.dead = true
      port1.close()
      if (this.#thread === thread) this.#thread = undefined
      const owed = [...this.#inFlight.values()]
      this.#inFlight.clear()
      if (!this.#closed) this.#onError?.(err)
      const message = `the seal thread stopped: ${(err as Error).message ?? String(err)}`
      for (const done of owed) done({ ok: false, message })
    }
    worker.on('error', onDeath)
    worker.on('exit', (code) => onDeath(new Error(`seal thread exited with code ${code}`)))
    return thread
  }

  /**
   * Hash the leaves of `canonicals` (the readings header.firstSeq …
   * header.lastSeq, in order), build their tree and sign `header` with its
   * root. The readings are copied into one transferred buffer. `done` runs
   * once, on the event loop.
   */
  seal(header: BatchHeader, canonicals: readonly Uint8Array[], done: (o: SealOutcome) => void): void {
    if (this.#closed) {
      done({ ok: false, message: 'the seal thread is closed' })
      return
    }
    const thread = this.#thread && !this.#thread.dead ? this.#thread : (this.#thread = this.#spawn())
    const ends = new Uint32Array(canonicals.length)
    let size = 0
    for (let i = 0; i < canonicals.length; i++) ends[i] = size += (canonicals[i] as Uint8Array).length
    const readings = new Uint8Array(size)
    for (let i = 0, at = 0; i < canonicals.length; i++) {
      readings.set(canonicals[i] as Uint8Array, at)
      at = ends[i] as number
    }
    const job: SealJob = { id: this.#nextId++, header, readings, ends }
    this.#inFlight.set(job.id, done)
    thread.port.ref()
    thread.worker.ref()
    thread.port.postMessage(job, [readings.buffer, ends.buffer])
  }

  /** Stop the thread, as a crash would: jobs in flight are answered ok: false. For tests. */
  async terminate(): Promise<void> {
    const t = this.#thread
    if (!t || t.dead) return
    await t.worker.terminate()
  }

  /** Stop the thread; jobs in flight are answered ok: false and no more are taken. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const t = this.#thread
    this.#thread = undefined
    const owed = [...this.#inFlight.values()]
    this.#inFlight.clear()
    for (const done of owed) done({ ok: false, message: 'the seal thread is closed' })
    if (!t || t.dead) return
    t.dead = true
    const exited = new Promise<void>((resolve) => t.worker.once('exit', () => resolve()))
    // The thread closes its end of the channel and exits.
    t.port.postMessage({ close: true })
    const timer = setTimeout(() => void t.worker.terminate(), 5000)
    await exited
    clearTimeout(timer)
  }
}
