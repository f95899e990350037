// Group commits of readings in a worker thread (commit-thread.ts) that owns
// the write transaction, so the event loop is not stalled while SQLite
// writes and fsyncs (WAL, synchronous=FULL: invariant 8). The pipeline sends
// one job at a time and acknowledges its senders only when the answer says
// committed (invariant 1). The main thread's own connection keeps serving
// reads and the rare other writes (WAL: readers never wait for the writer).
// Jobs may be queued behind one another (answered in order), so the thread
// starts the next transaction as soon as the previous one is on disk.
//
// Failure modes:
//   - the commit fails (disk full, constraint, I/O error): the thread rolls
//     back and answers ok: false; nothing of the job is stored;
//   - the thread dies (crash, terminate): every job in flight is answered
//     `crashed`; their rows may or may not be committed, so the caller
//     re-reads the store's last seq. A new thread starts with the next job.
//
// Cost: one more V8 isolate with its own SQLite connection (docs/mqtt.md,
// [store] commit_worker).

import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads'
import type { CommitAnswer, CommitJob, CommitThreadData } from './commit-thread.ts'

// The same extension as this module: .ts from the sources, .js in the built form (scripts/build-dist.ts).
const THREAD_URL = new URL(`./commit-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)

/** One reading to commit: everything the row needs except its seq. */
export interface CommitRow {
  readonly deviceId: string
  readonly source: string
  readonly receivedMs: number
  readonly canonical: Uint8Array
  /** The device counter of a device-signed reading (Store.insertReadings). */
  readonly counter?: bigint | undefined
}

/** The outcome of one group commit. */
export type CommitOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly message: string; readonly code: string; readonly full: boolean; readonly crashed: boolean }

export interface CommitWorkerOptions {
  /** The database file (the store's path). */
  readonly path: string
  /** Called when the thread dies unexpectedly (it is replaced at the next job). */
  readonly onError?: (err: unknown) => void
}

interface Thread {
  readonly worker: Worker
  readonly port: MessagePort
  readonly signal: Int32Array
  dead: boolean
}

interface InFlight {
  readonly id: number
  readonly thread: Thread
  readonly done: (o: CommitOutcome) => void
}

/**
 * Owner of the commit thread. Jobs are committed and answered in the order
 * they were sent; each callback runs once.
 *
 * @example
 * const w = new CommitWorker({ path: store.path })
 * w.commit(firstSeq, rows, (o) => { if (o.ok) acknowledge() else refuse(o.message) })
 * w.waitIdle() // on shutdown: blocks until the answer arrived and the callback ran
 * await w.close()
 */
export class CommitWorker {
  readonly #o: CommitWorkerOptions
  #thread: Thread | undefined
  #inFlight: InFlight[] = []
  #nextId = 1
  #closed = false

  constructor(o: CommitWorkerOptions) {
    this.#o = o
    this.#thread = this.#spawn()
  }

  /** True while a job waits for its answer. */
  get busy(): boolean {
    return this.#inFlight.length > 0
  }

  /** Jobs waiting for their answer. */
  get pending(): number {
    return this.#inFlight.length
  }

  /** The current thread's id (diagnostics and tests). */
  get threadId(): number {
    return this.#thread?.worker.threadId ?? -1
  }

  #spawn(): Thread {
    const { port1, port2 } = new MessageChannel()
    const signal = new Int32Array(new SharedArrayBuffer(4))
    const data: CommitThreadData = { path: this.#o.path, port: port2, signal }
    // The thread holds one job at a time: a small young generation keeps its resident memory small.
    const worker = new Worker(THREAD_URL, { workerData: data, transferList: [port2], stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } })
    worker.unref()
    const thread: Thread = { worker, port: port1, signal, dead: false }
    port1.on('message', (a: CommitAnswer) => this.#answer(thread, a))
    port1.unref()
    const onDeath = (err: unknown) => {
      if (thread.dead) return
      thread.dead = true
      port1.close()
      if (this.#thread === thread) this.#thread = undefined
      if (this.#closed) return
      this.#o.onError?.(err)
      this.#failAll(thread, `the commit thread stopped: ${(err as Error).message ?? String(err)}`)
    }
    worker.on('error', onDeath)
    worker.on('exit', (code) => onDeath(new Error(`commit thread exited with code ${code}`)))
    return thread
  }

  /** Answer every job sent to `thread` as crashed, in order. */
  #failAll(thread: Thread, message: string): void {
    // One at a time, so each callback sees the jobs still owed after it.
    for (;;) {
      const i = this.#inFlight.findIndex((f) => f.thread === thread)
      if (i < 0) return
      const [f] = this.#inFlight.splice(i, 1)
      f?.done({ ok: false, message, code: 'COMMIT_THREAD_DIED', full: false, crashed: true })
    }
  }

  #answer(thread: Thread, a: CommitAnswer): void {
    const f = this.#inFlight[0]
    if (!f || f.thread !== thread || f.id !== a.id) return
    this.#inFlight.shift()
    if (this.#inFlight.length === 0) thread.port.unref()
    if (a.ok) f.done({ ok: true })
    else f.done({ ok: false, message: a.message, code: a.code, full: a.full, crashed: false })
  }

  /**
   * Commit `rows` as seqs firstSeq, firstSeq+1, … in one transaction on the
   * commit thread, after the jobs sent before; `done` runs once with the
   * outcome (on the event loop, or inside waitIdle()).
   */
  commit(firstSeq: bigint, rows: readonly CommitRow[], done: (o: CommitOutcome) => void): void {
    if (this.#closed) {
      done({ ok: false, message: 'the store is closed', code: 'STORE_CLOSED', full: false, crashed: false })
      return
    }
    const thread = this.#thread && !this.#thread.dead ? this.#thread : (this.#thread = this.#spawn())
    let total = 0
    for (const r of rows) total += r.canonical.length
    const bytes = new Uint8Array(total)
    const ends = new Uint32Array(rows.length)
    const receivedMs = new Float64Array(rows.length)
    const deviceIds = new Array<string>(rows.length)
    const sources = new Array<string>(rows.length)
    const counters: [number, bigint][] = []
    let at = 0
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as CommitRow
      bytes.set(r.canonical, at)
      at += r.canonical.length
      ends[i] = at
      receivedMs[i] = r.receivedMs
      deviceIds[i] = r.deviceId
      sources[i] = r.source
      if (r.counter !== undefined) counters.push([i, r.counter])
    }
    const job: CommitJob = { id: this.#nextId++, firstSeq, deviceIds, sources, receivedMs, bytes, ends, counters }
    this.#inFlight.push({ id: job.id, thread, done })
    // Keep the process alive while an answer is owed.
    thread.port.ref()
    thread.port.postMessage(job, [bytes.buffer, ends.buffer, receivedMs.buffer])
  }

  /**
   * Block the calling thread until every job in flight is answered and its
   * callback has run. For shutdown, where the owner must finish
   * synchronously; a dead thread counts as answered (crashed).
   */
  waitIdle(timeoutMs = 30_000): void {
    const deadline = performance.now() + timeoutMs
    while (this.#inFlight.length > 0) {
      const f = this.#inFlight[0] as InFlight
      const seen = Atomics.load(f.thread.signal, 0)
      const m = receiveMessageOnPort(f.thread.port) as { message: CommitAnswer } | undefined
      if (m) {
        this.#answer(f.thread, m.message)
        continue
      }
      if (f.thread.dead) {
        this.#failAll(f.thread, 'the commit thread stopped')
        continue
      }
      const left = deadline - performance.now()
      if (left <= 0) {
        // The thread is stuck: give up on it; the caller re-reads the store.
        f.thread.dead = true
        void f.thread.worker.terminate()
        this.#failAll(f.thread, `the commit thread did not answer within ${timeoutMs} ms`)
        break
      }
      // Woken by the thread's notify after it posts. A thread that died cannot
      // notify, and its exit event needs the event loop: the deadline covers it.
      Atomics.wait(f.thread.signal, 0, seen, Math.min(50, left))
    }
  }

  /**
   * Stop the current thread, as a crash would: once it is gone, a job in
   * flight is answered as crashed (its rows may or may not be committed)
   * and the next job starts a new thread. For diagnostics and tests.
   */
  async terminate(): Promise<void> {
    const t = this.#thread
    if (!t || t.dead) return
    t.dead = true
    this.#thread = undefined
    t.port.close()
    // Answer only once the thread is gone: until then it may still commit.
    await t.worker.terminate()
    const err = new Error('the commit thread was terminated')
    if (!this.#closed) this.#o.onError?.(err)
    this.#failAll(t, err.message)
  }

  /** Stop the thread (after waitIdle()). Jobs can no longer be sent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.waitIdle()
    this.#closed = true
    const t = this.#thread
    this.#thread = undefined
    if (!t || t.dead) return
    const exited = new Promise<void>((resolve) => t.worker.once('exit', () => resolve()))
    // The thread closes the channel and exits once its connection is closed.
    t.port.postMessage({ close: true })
    const timer = setTimeout(() => void t.worker.terminate(), 5000)
    await exited
    clearTimeout(timer)
  }
}
