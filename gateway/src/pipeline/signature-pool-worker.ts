// Worker thread for device-signature checks (signature-pool.ts): keeps the
// secp256k1 arithmetic off the event loop. Each message is a batch of jobs
// of either protocol version (FastDeviceVerifier decides by the body's
// magic; version-2 keys stay imported as KeyObjects in this thread); the
// answer is one byte per job (1 valid, 0 not).

import { parentPort } from 'node:worker_threads'
import { FastDeviceVerifier } from './signature-pool-verifier.ts'

/** One batch from the main thread: body, signature and public key per job. */
export interface VerifyBatch {
  readonly id: number
  readonly jobs: readonly { readonly body: Uint8Array; readonly signature: Uint8Array; readonly publicKey: Uint8Array }[]
}

const verifier = new FastDeviceVerifier()
parentPort?.on('message', (b: VerifyBatch) => {
  const out = new Uint8Array(b.jobs.length)
  for (let i = 0; i < b.jobs.length; i++) {
    const j = b.jobs[i] as VerifyBatch['jobs'][number]
    out[i] = verifier.verify(j.body, j.signature, j.publicKey) ? 1 : 0
  }
  parentPort?.postMessage({ id: b.id, results: out }, [out.buffer])
})
