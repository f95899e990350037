// Device-signature checks off the event loop: a small pool of worker threads
// (signature-pool-worker.ts), each with its own FastDeviceVerifier
// (signature-pool-verifier.ts). Jobs queued in
// one turn of the event loop go to a worker as one message; a worker that
// dies is replaced and its jobs are retried once elsewhere. With zero
// workers the checks run inline (tests, tiny boards).

import { Worker } from 'node:worker_threads'
import { FastDeviceVerifier } from './signature-pool-verifier.ts'

// The same extension as this module: .ts from the sources, .js in the built form (scripts/build-dist.ts).
const WORKER_URL = new URL(`./signature-pool-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
/** Jobs per message to a worker at most: bounds the latency one batch adds. */
const MAX_BATCH = 64

interface Job {
  readonly body: Uint8Array
  readonly signature: Uint8Array
  readonly publicKey: Uint8Array
  readonly resolve: (ok: boolean) => void
  retried: boolean
}

interface Slot {
  worker: Worker
  inflight: Map<number, Job[]>
  load: number
}

export interface SignaturePoolOptions {
  /** Worker threads; 0 checks inline on the calling thread. */
  readonly workers: number
  readonly onError?: (err: unknown) => void
}

export class SignaturePool {
  readonly #o: SignaturePoolOptions
  readonly #slots: Slot[] = []
  readonly #inline = new FastDeviceVerifier()
  #queue: Job[] = []
  #scheduled = false
  #nextId = 1
  #closed = false

  constructor(o: SignaturePoolOptions) {
    // Workers start with the first check, not here: a gateway with no signing
    // device never pays for them (a thread with its own V8 heap, ~20 MB RSS).
    this.#o = o
  }

  get workers(): number {
    return this.#slots.length
  }

  #spawn(): Slot {
    const worker = new Worker(WORKER_URL, { stdout: false, stderr: false })
    worker.unref()
    const slot: Slot = { worker, inflight: new Map(), load: 0 }
    worker.on('message', (m: { id: number; results: Uint8Array }) => {
      const jobs = slot.inflight.get(m.id)
      if (!jobs) return
      slot.inflight.delete(m.id)
      slot.load -= jobs.length
      for (let i = 0; i < jobs.length; i++) (jobs[i] as Job).resolve(m.results[i] === 1)
    })
    const onDeath = (err: unknown) => {
      if (this.#closed) return
      this.#o.onError?.(err)
      const idx = this.#slots.indexOf(slot)
      if (idx >= 0) this.#slots[idx] = this.#spawn()
      for (const jobs of slot.inflight.values()) {
        for (const j of jobs) {
          if (j.retried) j.resolve(this.#inline.verify(j.body, j.signature, j.publicKey))
          else {
            j.retried = true
            this.#queue.push(j)
          }
        }
      }
      slot.inflight.clear()
      this.#schedule()
    }
    worker.on('error', onDeath)
    worker.on('exit', (code) => {
      if (code !== 0) onDeath(new Error(`signature worker exited with code ${code}`))
    })
    return slot
  }

  /** True when `signature` over `body` is by `publicKey` (see FastDeviceVerifier.verify). Never rejects. */
  verify(body: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
    if (this.#o.workers === 0 || this.#closed) return Promise.resolve(this.#inline.verify(body, signature, publicKey))
    while (this.#slots.length < this.#o.workers) this.#slots.push(this.#spawn())
    return new Promise((resolve) => {
      this.#queue.push({ body, signature, publicKey, resolve, retried: false })
      this.#schedule()
    })
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    queueMicrotask(() => {
      this.#scheduled = false
      this.#dispatch()
    })
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let best = this.#slots[0] as Slot
      for (const s of this.#slots) if (s.load < best.load) best = s
      const jobs = this.#queue.splice(0, MAX_BATCH)
      const id = this.#nextId++
      best.inflight.set(id, jobs)
      best.load += jobs.length
      best.worker.postMessage({ id, jobs: jobs.map((j) => ({ body: j.body, signature: j.signature, publicKey: j.publicKey })) })
    }
  }

  /** Stop the workers; jobs still in flight are checked inline. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const pending: Job[] = [...this.#queue]
    this.#queue = []
    for (const s of this.#slots) for (const jobs of s.inflight.values()) pending.push(...jobs)
    await Promise.all(this.#slots.map((s) => s.worker.terminate()))
    for (const j of pending) j.resolve(this.#inline.verify(j.body, j.signature, j.publicKey))
  }
}
