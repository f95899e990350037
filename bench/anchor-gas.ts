// Gas of the FieldproofAnchor contract on a local anvil node (receipt gasUsed, so the 21,000
// intrinsic gas and calldata are included): deployment, registration both ways, anchors
// covering 1, 10 and 100 batches, and the eth_estimateGas of an on-chain verifyReading.
// Gas per reading assumes 1,000 readings per batch.
//
// Then the same through the gateway's anchor sink (gateway/src/sinks/anchor): a real
// pipeline seals batches of SINK_READINGS_PER_BATCH readings into a temporary SQLite
// store, the sink anchors 1, 10 and 100 of them per transaction (max_batches), and the
// receipts of ITS transactions give the gas per anchored reading, printed beside the raw
// cost of one anchor call measured above in the same run (the ceiling: the sink can only
// add overhead, never save gas, so the ratio should be 1.00).
//
// Usage: node bench/anchor-gas.ts [--json]
import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import { createPublicClient, createWalletClient, encodeFunctionData, getAddress, http, keccak256, stringToHex } from 'viem'
import type { Address, Hex } from 'viem'
import { foundry } from 'viem/chains'
import artifact from '../contracts/artifacts/FieldproofAnchor.json' with { type: 'json' }
import { fieldproofAnchorAbi as abi } from '../contracts/artifacts/FieldproofAnchor.abi.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { privateKeyToAccount } from 'viem/accounts'
import { signDigest } from '../gateway/src/core/batch.ts'
import { hexToBytes } from '../gateway/src/core/hex.ts'
import { sinkBatchFromStore } from '../gateway/src/pipeline/sink-runner.ts'
import { AnchorSink } from '../gateway/src/sinks/anchor/anchor.ts'
import { anvilAccount, startAnvil } from '../test/helpers/anvil.ts'
import { openPipeline, reading, TEST_ADDRESS, TEST_KEY } from '../test/helpers/readings.ts'
import { anchorDomain, REGISTRATION_FIELDS } from '../gateway/src/sinks/anchor/registration.ts'

const LEAF = ['uint64', 'bytes32']
const READINGS_PER_BATCH = 1000
/** Readings per batch sealed by the pipeline for the sink measurement (anchor gas does not depend on it). */
const SINK_READINGS_PER_BATCH = 10

/** One anchor measurement. */
export interface AnchorGas {
  batches: number
  /** receipt gasUsed of each repetition */
  gasUsed: bigint[]
  /** gasUsed / (batches × readingsPerBatch), of the median repetition */
  gasPerReading: number
}

/** Everything the benchmark measures. */
export interface AnchorGasReport {
  solcVersion: string
  evmVersion: string
  deployGas: bigint
  registerWithClaimGas: bigint
  registerGatewayGas: bigint
  anchors: AnchorGas[]
  readingsPerBatch: number
  /** eth_estimateGas of verifyReading for a 1,000-reading batch inside a 100-batch anchor */
  verifyReadingGas: bigint
  verifyProofNodes: { reading: number; batch: number }
  /** Anchors sent by the anchor sink itself, over batches sealed by a real pipeline. */
  sink: SinkAnchorGas[]
  sinkReadingsPerBatch: number
}

/** One anchor transaction of the anchor sink. */
export interface SinkAnchorGas {
  batches: number
  gasUsed: bigint
  /** The raw cost of one anchor call of the same size (median above): the ceiling. */
  rawGasUsed: bigint
  /** gasUsed / (batches × sinkReadingsPerBatch) */
  gasPerReading: number
  /** gasUsed / (batches × 1000), comparable with the raw table */
  gasPerReadingAt1000: number
  /** gas limit the sink set (estimate + 20 %) */
  gasLimit: bigint
}

function median(xs: bigint[]): bigint {
  const s = [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return s[Math.floor(s.length / 2)] ?? 0n
}

/** Runs the benchmark on a fresh anvil (stopped before returning). */
export async function runAnchorGasBench(repetitions = 3): Promise<AnchorGasReport> {
  const anvil = await startAnvil({ hardfork: 'cancun' })
  try {
    const chain = { ...foundry, id: anvil.chainId }
    const client = createPublicClient({ chain, transport: http(anvil.rpcUrl), pollingInterval: 20 })
    const wallet = (i: number) => createWalletClient({ account: anvilAccount(i), chain, transport: http(anvil.rpcUrl), pollingInterval: 20 })
    const owner = anvilAccount(1)
    const wait = (hash: Hex) => client.waitForTransactionReceipt({ hash })

    const deployed = await wait(await wallet(0).deployContract({ abi, bytecode: artifact.bytecode as Hex }))
    const address = getAddress(deployed.contractAddress ?? '0x')
    const domain = anchorDomain(anvil.chainId, address)
    const fields = REGISTRATION_FIELDS
    const deadline = (await client.getBlock()).timestamp + 3600n

    // registration by the gateway (owner's claim) and by the owner (gateway's consent)
    const gw = anvilAccount(2)
    const claim = await owner.signTypedData({ domain, types: { GatewayClaim: fields }, primaryType: 'GatewayClaim', message: { gateway: gw.address, owner: owner.address, nonce: 0n, deadline } })
    const byClaim = await wait(await wallet(2).writeContract({ address, abi, functionName: 'registerWithClaim', args: [owner.address, deadline, claim] }))
    const gw2 = anvilAccount(3)
    const consent = await gw2.signTypedData({ domain, types: { GatewayConsent: fields }, primaryType: 'GatewayConsent', message: { gateway: gw2.address, owner: owner.address, nonce: 0n, deadline } })
    const byConsent = await wait(await wallet(1).writeContract({ address, abi, functionName: 'registerGateway', args: [gw2.address, deadline, consent] }))

    // anchors: the transaction carries only the anchor root, so batch roots stand in for
    // 1,000-reading batches, except the one real batch used for verifyReading below
    const readings: Array<[bigint, Hex]> = []
    for (let s = 1; s <= READINGS_PER_BATCH; s++) readings.push([BigInt(s), keccak256(stringToHex(`reading ${s}`))])
    const realBatch = StandardMerkleTree.of(readings, LEAF)

    let nextBatch = 1n
    const anchors: AnchorGas[] = []
    let lastTree: { tree: StandardMerkleTree<[bigint, Hex]>; anchorId: bigint; first: bigint } | undefined
    let anchorId = 0n
    for (const batches of [1, 10, 100]) {
      const gasUsed: bigint[] = []
      for (let r = 0; r < repetitions; r++) {
        const leaves: Array<[bigint, Hex]> = []
        for (let i = 0; i < batches; i++) {
          const id = nextBatch + BigInt(i)
          leaves.push([id, id === 1n ? (realBatch.root as Hex) : keccak256(stringToHex(`batch ${id}`))])
        }
        const tree = StandardMerkleTree.of(leaves, LEAF)
        const last = nextBatch + BigInt(batches) - 1n
        const receipt = await wait(await wallet(2).writeContract({ address, abi, functionName: 'anchor', args: [nextBatch, last, tree.root as Hex] }))
        if (receipt.status !== 'success') throw new Error('anchor reverted')
        gasUsed.push(receipt.gasUsed)
        anchorId++
        if (batches === 100 && lastTree === undefined) lastTree = { tree, anchorId, first: nextBatch }
        nextBatch = last + 1n
      }
      anchors.push({ batches, gasUsed, gasPerReading: Number(median(gasUsed)) / (batches * READINGS_PER_BATCH) })
    }

    // verifyReading: put the real batch inside a 100-batch anchor of the second gateway
    const leaves: Array<[bigint, Hex]> = []
    for (let id = 1n; id <= 100n; id++) leaves.push([id, id === 37n ? (realBatch.root as Hex) : keccak256(stringToHex(`g2 batch ${id}`))])
    const tree = StandardMerkleTree.of(leaves, LEAF)
    await wait(await wallet(3).writeContract({ address, abi, functionName: 'anchor', args: [1n, 100n, tree.root as Hex] }))
    const reading = readings[421]!
    const readingProof = realBatch.getProof(reading) as Hex[]
    const batchProof = tree.getProof([37n, realBatch.root as Hex]) as Hex[]
    const args = [gw2.address as Address, 1n, 37n, realBatch.root as Hex, reading[0], reading[1], readingProof, batchProof] as const
    const ok = await client.readContract({ address, abi, functionName: 'verifyReading', args })
    if (!ok) throw new Error('verifyReading returned false')
    // a view: estimate the gas a contract (or a transaction) spends calling it
    const verifyReadingGas = await client.estimateGas({ to: address, data: encodeFunctionData({ abi, functionName: 'verifyReading', args }) })

    const sink = await measureSink(anvil, client, address, owner, anchors)

    return {
      sink,
      sinkReadingsPerBatch: SINK_READINGS_PER_BATCH,
      solcVersion: artifact.solcVersion,
      evmVersion: artifact.settings.evmVersion,
      deployGas: deployed.gasUsed,
      registerWithClaimGas: byClaim.gasUsed,
      registerGatewayGas: byConsent.gasUsed,
      anchors,
      readingsPerBatch: READINGS_PER_BATCH,
      verifyReadingGas,
      verifyProofNodes: { reading: readingProof.length, batch: batchProof.length },
    }
  } finally {
    await anvil.stop()
  }
}

/** The anchor sink anchors 1, 10 and 100 pipeline-sealed batches per transaction; returns its receipts' gas. */
async function measureSink(
  anvil: Awaited<ReturnType<typeof startAnvil>>,
  client: ReturnType<typeof createPublicClient>,
  address: Address,
  owner: ReturnType<typeof anvilAccount>,
  raw: readonly AnchorGas[],
): Promise<SinkAnchorGas[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fieldproof-anchor-bench-'))
  const { store, pipeline } = openPipeline(dir)
  try {
    // The pipeline's batches are signed by TEST_KEY: that key is the anchoring gateway.
    await anvil.rpc('anvil_setBalance', [TEST_ADDRESS, '0x8ac7230489e80000'])
    const chain = { ...foundry, id: anvil.chainId }
    const gwWallet = createWalletClient({ account: privateKeyToAccount(TEST_KEY), chain, transport: http(anvil.rpcUrl) })
    const deadline = (await client.getBlock()).timestamp + 3600n
    const domain = anchorDomain(anvil.chainId, address)
    const fields = REGISTRATION_FIELDS
    const claim = await owner.signTypedData({ domain, types: { GatewayClaim: fields }, primaryType: 'GatewayClaim', message: { gateway: TEST_ADDRESS, owner: owner.address, nonce: 0n, deadline } })
    await client.waitForTransactionReceipt({ hash: await gwWallet.writeContract({ address, abi, functionName: 'registerWithClaim', args: [owner.address, deadline, claim] }) })

    const key = hexToBytes(TEST_KEY, 32)
    const out: SinkAnchorGas[] = []
    let seq = 0
    for (const batches of [1, 10, 100]) {
      const first = store.lastBatchId()
      for (let b = 0; b < batches; b++) {
        await pipeline.ingest(Array.from({ length: SINK_READINGS_PER_BATCH }, () => reading(++seq)))
        pipeline.seal()
      }
      const sink = new AnchorSink({
        rpcUrl: anvil.rpcUrl,
        chainId: anvil.chainId,
        contract: address as Hex,
        gateway: TEST_ADDRESS,
        signDigest: (d) => signDigest(d, key),
        store,
        log: pino({ level: 'silent' }),
        intervalMs: 3_600_000,
        maxBatches: batches,
        confirmations: 1,
        maxFeeWei: 100_000_000_000n,
        pollMs: 20,
        rpcTimeoutMs: 10_000,
        replaceAfterMs: 600_000,
      })
      try {
        for (const row of store.batchesAfter(first, batches)) await sink.send(sinkBatchFromStore(store, row))
        const want = (first + BigInt(batches)).toString()
        for (let i = 0; sink.anchorStatus().lastAnchoredBatchId !== want; i++) {
          if (i > 1000) throw new Error(`the sink did not anchor ${batches} batches: ${JSON.stringify(sink.anchorStatus().error)}`)
          await new Promise((r) => setTimeout(r, 20))
        }
        const hash = sink.anchorStatus().lastTxHash as Hex
        const receipt = await client.getTransactionReceipt({ hash })
        const tx = await client.getTransaction({ hash })
        const rawGas = median(raw.find((a) => a.batches === batches)?.gasUsed ?? [0n])
        out.push({
          batches,
          gasUsed: receipt.gasUsed,
          rawGasUsed: rawGas,
          gasPerReading: Number(receipt.gasUsed) / (batches * SINK_READINGS_PER_BATCH),
          gasPerReadingAt1000: Number(receipt.gasUsed) / (batches * READINGS_PER_BATCH),
          gasLimit: tx.gas,
        })
      } finally {
        await sink.close()
      }
    }
    return out
  } finally {
    pipeline.stop()
    store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

function print(r: AnchorGasReport): void {
  console.log(`FieldproofAnchor gas (solc ${r.solcVersion.split('+')[0]}, evm ${r.evmVersion}, anvil, receipt gasUsed)`)
  console.log(`  deploy                          ${r.deployGas}`)
  console.log(`  registerWithClaim (by gateway)  ${r.registerWithClaimGas}`)
  console.log(`  registerGateway (by owner)      ${r.registerGatewayGas}`)
  console.log(`  anchor: batches  gasUsed (each repetition)   gas/reading @ ${r.readingsPerBatch} readings/batch`)
  for (const a of r.anchors) {
    console.log(`          ${String(a.batches).padStart(7)}  ${a.gasUsed.join(', ').padEnd(28)}  ${a.gasPerReading.toFixed(4)}`)
  }
  console.log(`  verifyReading (estimateGas, proof ${r.verifyProofNodes.reading}+${r.verifyProofNodes.batch} nodes)  ${r.verifyReadingGas}`)
  console.log(`anchor sink (its own transactions; pipeline batches of ${r.sinkReadingsPerBatch} readings)`)
  console.log(`  batches/anchor  gasUsed  raw anchor call  ratio  gas limit  gas/reading @${r.sinkReadingsPerBatch}  gas/reading @${r.readingsPerBatch}`)
  for (const a of r.sink) {
    console.log(
      `  ${String(a.batches).padStart(14)}  ${String(a.gasUsed).padStart(7)}  ${String(a.rawGasUsed).padStart(15)}  ${(Number(a.gasUsed) / Number(a.rawGasUsed)).toFixed(2).padStart(5)}  ${String(a.gasLimit).padStart(9)}  ${a.gasPerReading.toFixed(3).padStart(14)}  ${a.gasPerReadingAt1000.toFixed(4).padStart(16)}`,
    )
  }
}

if (import.meta.main) {
  const report = await runAnchorGasBench()
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2))
  } else {
    print(report)
  }
}
