// The on-chain half of `fieldproof verify --rpc` (docs/anchor-contract.md,
// "How a verifier checks a reading on chain"; ARCHITECTURE.md invariant 4).
// After the offline checks of core/proof.ts passed, these run in order and
// stop at the first failure:
//   chain-id       the RPC answers and serves the bundle's chain (if it names one)
//   anchor         an anchor of the batch's gateway covers the batch id
//                  (findAnchor), and it is the one the bundle names, with its root
//   inclusion      FieldproofAnchor.verifyReading(gateway, anchorId, batchId,
//                  merkleRoot, seq, readingHash, readingProof, batchProof) is true
//   confirmations  the anchor's block has at least N blocks on top (its own included)
// Never throws: every problem (RPC down, bad address, revert) is a failed check.

import { createPublicClient, http, type PublicClient } from 'viem'
import { fieldproofAnchorAbi } from '../../../../contracts/artifacts/FieldproofAnchor.abi.ts'
import { bytesToHex, keccak256, parseAddress, toChecksumAddress, tryHexToBytes } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'

export const CHAIN_CHECKS = ['chain-id', 'anchor', 'inclusion', 'confirmations'] as const
export type ChainCheckName = (typeof CHAIN_CHECKS)[number]

/** One on-chain check's outcome (skipped after an earlier failure). */
export interface ChainCheck {
  readonly name: ChainCheckName
  readonly ok: boolean
  readonly detail: string
  readonly skipped?: boolean
}

/** The verdict of {@link verifyOnChain}. */
export interface ChainReport {
  readonly ok: boolean
  readonly checks: readonly ChainCheck[]
  /** The anchor found on chain, once the anchor check passed. */
  readonly anchor?: { readonly anchorId: string; readonly firstBatchId: string; readonly lastBatchId: string; readonly blockNumber: string; readonly confirmations: number }
}

/** Options of {@link verifyOnChain}. */
export interface ChainVerifyOptions {
  readonly rpcUrl: string
  /** The anchor contract; default: the bundle's anchor.contract. */
  readonly contract?: Hex
  /** Blocks required on top of the anchor (its own included); default 3. */
  readonly confirmations?: number
  /** Per-request timeout, ms; default 15000. */
  readonly timeoutMs?: number
}

interface BundleView {
  seq: bigint
  canonical: Uint8Array
  merkleProof: Hex[]
  gateway: Hex
  batchId: bigint
  merkleRoot: Hex
  anchor?: { chainId: number; contract: Hex; anchorId: bigint; anchorRoot: Hex; batchProof: Hex[] }
}

const rec = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {})

/** The fields the chain checks need; the bundle already passed verifyProofBundle's shape check. */
function view(bundle: unknown): BundleView | string {
  const b = rec(bundle)
  const header = rec(rec(b.batch).header)
  const canonical = tryHexToBytes(b.canonical)
  if (canonical === undefined || typeof b.seq !== 'string' || !Array.isArray(b.merkleProof)) return 'the bundle lacks seq, canonical or merkleProof'
  if (typeof header.gateway !== 'string' || typeof header.batchId !== 'string' || typeof header.merkleRoot !== 'string') return 'the bundle lacks the batch header'
  const out: BundleView = {
    seq: BigInt(b.seq),
    canonical,
    merkleProof: b.merkleProof as Hex[],
    gateway: header.gateway as Hex,
    batchId: BigInt(header.batchId),
    merkleRoot: header.merkleRoot as Hex,
  }
  if (b.anchor !== undefined) {
    const a = rec(b.anchor)
    out.anchor = { chainId: a.chainId as number, contract: a.contract as Hex, anchorId: BigInt(a.anchorId as string), anchorRoot: a.anchorRoot as Hex, batchProof: a.batchProof as Hex[] }
  }
  return out
}

/**
 * Check a proof bundle's reading against the anchor contract.
 *
 * @example
 * const r = await verifyOnChain(bundle, { rpcUrl: 'http://127.0.0.1:8545', confirmations: 1 })
 * if (!r.ok) console.log(r.checks.find((c) => !c.ok)?.detail)
 */
export async function verifyOnChain(bundle: unknown, opts: ChainVerifyOptions): Promise<ChainReport> {
  const checks: ChainCheck[] = []
  const want = opts.confirmations ?? 3
  let found: ChainReport['anchor']
  let v: BundleView | undefined
  let client: PublicClient | undefined
  let contract: Hex | undefined
  let anchorId = 0n
  let batchProof: Hex[] = []
  let blockNumber = 0n

  const steps: Record<ChainCheckName, () => Promise<{ ok: boolean; detail: string }>> = {
    'chain-id': async () => {
      const parsed = view(bundle)
      if (typeof parsed === 'string') return { ok: false, detail: parsed }
      v = parsed
      const c = opts.contract ?? v.anchor?.contract
      if (c === undefined) return { ok: false, detail: 'no anchor contract: the bundle names none; pass --contract ADDRESS' }
      const addr = parseAddress(c)
      if (addr === undefined) return { ok: false, detail: `contract ${String(c).slice(0, 60)} is not an address` }
      contract = toChecksumAddress(addr)
      client = createPublicClient({ transport: http(opts.rpcUrl, { timeout: opts.timeoutMs ?? 15_000, retryCount: 1 }) }) as PublicClient
      const id = await client.getChainId()
      if (v.anchor && v.anchor.chainId !== id) return { ok: false, detail: `the RPC serves chain ${id}, the bundle was anchored on chain ${v.anchor.chainId}` }
      if (v.anchor && opts.contract !== undefined && v.anchor.contract.toLowerCase() !== opts.contract.toLowerCase()) {
        return { ok: false, detail: `--contract ${opts.contract} differs from the bundle's anchor contract ${v.anchor.contract}` }
      }
      const code = await client.getCode({ address: contract })
      if (code === undefined || code === '0x') return { ok: false, detail: `no contract at ${contract} on chain ${id}` }
      return { ok: true, detail: `chain ${id}, contract ${contract}` }
    },
    anchor: async () => {
      const q = v as BundleView
      const c = client as PublicClient
      const onChain = await c.readContract({ address: contract as Hex, abi: fieldproofAnchorAbi, functionName: 'findAnchor', args: [q.gateway, q.batchId] })
      if (onChain === 0n) {
        const last = await c.readContract({ address: contract as Hex, abi: fieldproofAnchorAbi, functionName: 'lastAnchoredBatchId', args: [q.gateway] })
        return { ok: false, detail: `batch ${q.batchId} of gateway ${q.gateway} is not anchored (its last anchored batch is ${last})` }
      }
      if (q.anchor && q.anchor.anchorId !== onChain) {
        return { ok: false, detail: `the bundle names anchor ${q.anchor.anchorId}, but batch ${q.batchId} is in anchor ${onChain} (re-anchored after a reorg?): fetch the bundle again` }
      }
      const a = await c.readContract({ address: contract as Hex, abi: fieldproofAnchorAbi, functionName: 'anchorOf', args: [q.gateway, onChain] })
      if (q.anchor && q.anchor.anchorRoot.toLowerCase() !== a.anchorRoot.toLowerCase()) {
        return { ok: false, detail: `anchor ${onChain} holds root ${a.anchorRoot}, the bundle says ${q.anchor.anchorRoot}` }
      }
      anchorId = onChain
      blockNumber = a.blockNumber
      if (q.anchor) batchProof = q.anchor.batchProof
      else if (a.firstBatchId === a.lastBatchId) batchProof = []
      else {
        return {
          ok: false,
          detail: `batch ${q.batchId} is in anchor ${onChain} (batches ${a.firstBatchId} … ${a.lastBatchId}), but the bundle carries no anchor.batchProof: fetch the bundle again from the gateway`,
        }
      }
      const head = await c.getBlockNumber({ cacheTime: 0 })
      found = { anchorId: onChain.toString(), firstBatchId: a.firstBatchId.toString(), lastBatchId: a.lastBatchId.toString(), blockNumber: a.blockNumber.toString(), confirmations: Number(head - a.blockNumber + 1n) }
      return { ok: true, detail: `batch ${q.batchId} is in anchor ${onChain} (batches ${a.firstBatchId} … ${a.lastBatchId}, block ${a.blockNumber})` }
    },
    inclusion: async () => {
      const q = v as BundleView
      const readingHash = bytesToHex(keccak256(q.canonical))
      const ok = await (client as PublicClient).readContract({
        address: contract as Hex,
        abi: fieldproofAnchorAbi,
        functionName: 'verifyReading',
        args: [q.gateway, anchorId, q.batchId, q.merkleRoot, q.seq, readingHash, q.merkleProof, batchProof],
      })
      return ok
        ? { ok: true, detail: `verifyReading(seq ${q.seq}, batch ${q.batchId}, anchor ${anchorId}) is true on chain` }
        : { ok: false, detail: `verifyReading(seq ${q.seq}, batch ${q.batchId}, anchor ${anchorId}) is false: the reading or batch path does not lead to the anchored root` }
    },
    confirmations: async () => {
      const head = await (client as PublicClient).getBlockNumber({ cacheTime: 0 })
      const depth = Number(head - blockNumber + 1n)
      return depth >= want
        ? { ok: true, detail: `${depth} confirmations (at least ${want} required)` }
        : { ok: false, detail: `only ${depth} confirmations of the anchor's block ${blockNumber}; ${want} required (wait, or pass --confirmations)` }
    },
  }

  let failed = false
  for (const name of CHAIN_CHECKS) {
    if (failed) {
      checks.push({ name, ok: false, detail: 'skipped: an earlier check failed', skipped: true })
      continue
    }
    let r: { ok: boolean; detail: string }
    try {
      r = await steps[name]()
    } catch (e) {
      const msg = (e as { shortMessage?: string; message?: string }).shortMessage ?? (e as Error)?.message ?? String(e)
      r = { ok: false, detail: `RPC ${opts.rpcUrl}: ${msg.split('\n')[0]}` }
    }
    checks.push({ name, ok: r.ok, detail: r.detail })
    if (!r.ok) failed = true
  }
  return { ok: !failed, checks, ...(found !== undefined ? { anchor: found } : {}) }
}
