// The EVM anchor sink against a real anvil (docs/anchor-sink.md): deploy,
// claim and register through `fieldproof chain`, anchor ranges of sealed
// batches, verify a reading on chain (contract view and `fieldproof verify
// --rpc`), anvil restarted mid-anchor, a reorg, a gateway restart with a
// transaction in flight, and the status error kinds.
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import { createPublicClient, createWalletClient, http, parseEther, type PublicClient } from 'viem'
import { foundry } from 'viem/chains'
import { fieldproofAnchorAbi as abi } from '../../contracts/artifacts/FieldproofAnchor.abi.ts'
import { signDigest } from '../../gateway/src/core/batch.ts'
import { bytesToHex, hexToBytes } from '../../gateway/src/core/hex.ts'
import type { Hex } from '../../gateway/src/core/types.ts'
import { runCommand, type Io } from '../../gateway/src/cli/cli.ts'
import { chainCommand } from '../../gateway/src/cli/commands/chain.ts'
import { MetricsRegistry } from '../../gateway/src/pipeline/metrics.ts'
import { proofForSeq } from '../../gateway/src/pipeline/proofs.ts'
import { sinkBatchFromStore } from '../../gateway/src/pipeline/sink-runner.ts'
import { AnchorSink, type AnchorSinkOptions, type AnchorStatus } from '../../gateway/src/sinks/anchor/anchor.ts'
import type { Store } from '../../gateway/src/store/store.ts'
import { anvilAccount, startAnvil, type Anvil } from '../helpers/anvil.ts'
import { runCli } from '../helpers/gateway-process.ts'
import { openPipeline, reading, TEST_ADDRESS, TEST_KEY } from '../helpers/readings.ts'

const KEY_BYTES = hexToBytes(TEST_KEY, 32)
const log = pino({ level: 'silent' })
const ZERO = '0x0000000000000000000000000000000000000000'

/** Anvil's well-known private key of account i (m/44'/60'/0'/0/i). */
function anvilKey(i: number): Hex {
  return bytesToHex(anvilAccount(i).getHdKey().privateKey as Uint8Array)
}

function capture(cwd: string): Io & { stdout: () => string; stderr: () => string } {
  let out = ''
  let err = ''
  return { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n'), env: { FIELDPROOF_CONFIG: '' }, cwd, stdout: () => out, stderr: () => err }
}

async function chain(dir: string, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = capture(dir)
  const code = await runCommand(chainCommand, argv, io)
  return { code, out: io.stdout(), err: io.stderr() }
}

interface World {
  anvil: Anvil
  client: PublicClient
  contract: Hex
  dir: string
  store: Store
  pipeline: ReturnType<typeof openPipeline>['pipeline']
  rpcArgs: string[]
}

/** anvil + the contract deployed and the test gateway (TEST_KEY) funded and registered, all through `fieldproof chain`. */
async function world(t: Test, opts: { stateFile?: boolean; register?: boolean } = {}): Promise<World> {
  const dir = t.testdir()
  const anvil = await startAnvil(opts.stateFile ? { stateFile: join(dir, 'anvil-state.json') } : {})
  t.teardown(() => anvil.stop())
  const client = createPublicClient({ chain: { ...foundry, id: anvil.chainId }, transport: http(anvil.rpcUrl), pollingInterval: 20 }) as PublicClient
  writeFileSync(join(dir, 'deployer.key'), anvilKey(0).slice(2) + '\n', { mode: 0o600 })
  writeFileSync(join(dir, 'owner.key'), anvilKey(1).slice(2) + '\n', { mode: 0o600 })
  writeFileSync(join(dir, 'gateway.key'), TEST_KEY.slice(2) + '\n', { mode: 0o600 })
  const d = await chain(dir, ['deploy', '--rpc', anvil.rpcUrl, '--chain-id', String(anvil.chainId), '--key-file', 'deployer.key', '--json'])
  if (d.code !== 0) throw new Error(`deploy failed: ${d.err}`)
  const contract = JSON.parse(d.out).address as Hex
  const funder = createWalletClient({ account: anvilAccount(0), chain: { ...foundry, id: anvil.chainId }, transport: http(anvil.rpcUrl) })
  await client.waitForTransactionReceipt({ hash: await funder.sendTransaction({ to: TEST_ADDRESS, value: parseEther('10') }) })
  const rpcArgs = ['--rpc', anvil.rpcUrl, '--chain-id', String(anvil.chainId), '--contract', contract]
  if (opts.register !== false) {
    const r = await chain(dir, ['register', '--state-dir', dir, '--owner-key-file', 'owner.key', ...rpcArgs, '--json'])
    if (r.code !== 0) throw new Error(`register failed: ${r.err}`)
  }
  const { store, pipeline } = openPipeline(dir)
  t.teardown(() => {
    pipeline.stop()
    store.close()
  })
  return { anvil, client, contract, dir, store, pipeline, rpcArgs }
}

/** Ingest `n` readings and seal them as one batch; returns the batch id. */
async function sealBatch(w: World, n: number): Promise<bigint> {
  const base = Number(w.store.lastSeq())
  await w.pipeline.ingest(Array.from({ length: n }, (_, i) => reading(base + i + 1)))
  const b = w.pipeline.seal()
  if (!b) throw new Error('nothing sealed')
  return b.header.batchId
}

/** Hand every stored batch after `after` to the sink, as its runner would. */
async function feed(w: World, sink: AnchorSink, after = 0n): Promise<bigint> {
  let last = after
  for (const row of w.store.batchesAfter(after, 10_000)) {
    const ack = await sink.send(sinkBatchFromStore(w.store, row))
    if (!ack.ok) throw new Error('send refused')
    last = row.id
  }
  return last
}

function makeSink(w: World, over: Partial<AnchorSinkOptions> = {}, metrics = new MetricsRegistry()): AnchorSink {
  return new AnchorSink({
    rpcUrl: w.anvil.rpcUrl,
    chainId: w.anvil.chainId,
    contract: w.contract,
    gateway: TEST_ADDRESS,
    signDigest: (d) => signDigest(d, KEY_BYTES),
    store: w.store,
    log,
    metrics,
    intervalMs: 100,
    maxBatches: 1000,
    confirmations: 1,
    maxFeeWei: 100n * 1_000_000_000n,
    pollMs: 25,
    rpcTimeoutMs: 2000,
    replaceAfterMs: 600_000,
    ...over,
  })
}

/** Poll until `pred` holds (mining a block per round when `mine`); fails after ~20 s. */
async function until(w: World, what: string, pred: () => boolean | Promise<boolean>, mine = false): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await pred()) return
    if (mine) await w.anvil.mine(1).catch(() => {})
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for: ${what}`)
}

const st = (s: AnchorSink): AnchorStatus => s.anchorStatus()

async function anchorsOnChain(w: World): Promise<{ first: bigint; last: bigint; root: Hex }[]> {
  const count = await w.client.readContract({ address: w.contract, abi, functionName: 'anchorCount', args: [TEST_ADDRESS] })
  const out = []
  for (let i = 1n; i <= count; i++) {
    const a = await w.client.readContract({ address: w.contract, abi, functionName: 'anchorOf', args: [TEST_ADDRESS, i] })
    out.push({ first: a.firstBatchId, last: a.lastBatchId, root: a.anchorRoot })
  }
  return out
}

/** The anchor root as @openzeppelin/merkle-tree (the reference) computes it over stored batches. */
function referenceRoot(store: Store, first: bigint, last: bigint): Hex {
  const leaves: [bigint, Hex][] = []
  for (let id = first; id <= last; id++) leaves.push([id, bytesToHex(store.batch(id)!.merkleRoot)])
  return StandardMerkleTree.of(leaves, ['uint64', 'bytes32']).root as Hex
}

t.test('deploy, claim, register, anchor one range, verify a reading on chain and with fieldproof verify --rpc', async (t) => {
  const w = await world(t, { register: false })
  // The owner signs a claim without the gateway key; the gateway registers itself with it.
  const c = await chain(w.dir, ['claim', ...w.rpcArgs, '--gateway', TEST_ADDRESS, '--owner-key-file', 'owner.key', '--out', 'claim.json'])
  t.equal(c.code, 0, c.err)
  const before = await chain(w.dir, ['status', '--state-dir', w.dir, ...w.rpcArgs, '--json'])
  t.equal(before.code, 1, 'status exits 1 while not registered')
  t.equal(JSON.parse(before.out).registered, false)
  const r = await chain(w.dir, ['register', '--state-dir', w.dir, '--claim', 'claim.json', ...w.rpcArgs, '--json'])
  t.equal(r.code, 0, r.err)
  t.equal(JSON.parse(r.out).owner, anvilAccount(1).address)
  const s = await chain(w.dir, ['status', '--state-dir', w.dir, ...w.rpcArgs, '--json'])
  t.equal(s.code, 0, s.err)
  const status = JSON.parse(s.out)
  t.match(status, { registered: true, owner: anvilAccount(1).address, configMatches: true, lastAnchoredBatchId: '0', anchorCount: '0' })

  for (let i = 0; i < 5; i++) await sealBatch(w, 7)
  const sink = makeSink(w, { confirmations: 2 })
  t.teardown(() => sink.close())
  const last = await feed(w, sink)
  t.equal(last, 5n)
  await until(w, 'range 1 … 5 confirmed', () => st(sink).lastAnchoredBatchId === '5', true)
  const anchors = await anchorsOnChain(w)
  t.equal(anchors.length, 1, 'one transaction for the five batches')
  t.same(anchors[0], { first: 1n, last: 5n, root: referenceRoot(w.store, 1n, 5n) }, 'the root is the StandardMerkleTree root of [batchId, merkleRoot]')
  t.match(st(sink), { state: 'idle', error: null, lastAnchorId: '1', backlogBatches: 0 })
  t.match(st(sink).lastTxHash, /^0x[0-9a-f]{64}$/)

  // Reading 17 sits in batch 3: its bundle with the anchor fields verifies through the contract view.
  const p = proofForSeq(w.store, 17n)
  if (!p.ok) throw new Error(p.reason)
  const anchor = sink.proofAnchor(3n)!
  t.ok(anchor, 'a confirmed anchor covers batch 3')
  const bundle = { ...p.bundle, anchor }
  const h = bundle.batch.header
  const { keccak256 } = await import('viem')
  const ok = await w.client.readContract({
    address: w.contract,
    abi,
    functionName: 'verifyReading',
    args: [TEST_ADDRESS, 1n, 3n, h.merkleRoot as Hex, 17n, keccak256(bundle.canonical), bundle.merkleProof as Hex[], anchor.batchProof as Hex[]],
  })
  t.equal(ok, true, 'verifyReading accepts the reading')

  const file = join(w.dir, 'bundle.json')
  writeFileSync(file, JSON.stringify(bundle))
  const v = await runCli(['verify', file, '--rpc', w.anvil.rpcUrl, '--confirmations', '2'])
  t.equal(v.code, 0, v.stdout + v.stderr)
  t.match(v.stdout, /ok +inclusion +verifyReading/)
  t.match(v.stdout, /anchored on chain in anchor 1/)

  const deep = await runCli(['verify', file, '--rpc', w.anvil.rpcUrl, '--confirmations', '1000', '--json'])
  t.equal(deep.code, 1)
  const deepReport = JSON.parse(deep.stdout)
  t.equal(deepReport.checks.find((x: { ok: boolean }) => !x.ok).name, 'confirmations', 'names the first failed check')

  const tampered = { ...bundle, anchor: { ...anchor, batchProof: [...anchor.batchProof].reverse().map((x, i) => (i === 0 ? (`0x${'11'.repeat(32)}` as Hex) : x)) } }
  writeFileSync(file, JSON.stringify(tampered))
  const bad = await runCli(['verify', file, '--rpc', w.anvil.rpcUrl, '--confirmations', '1'])
  t.equal(bad.code, 1)
  t.match(bad.stdout, /INVALID: inclusion: verifyReading/)

  // Without anchor fields the verifier finds the anchor itself, and says why it cannot check a multi-batch anchor.
  writeFileSync(file, JSON.stringify(p.bundle))
  const bare = await runCli(['verify', file, '--rpc', w.anvil.rpcUrl, '--contract', w.contract, '--confirmations', '1'])
  t.equal(bare.code, 1)
  t.match(bare.stdout, /INVALID: anchor: batch 3 is in anchor 1 \(batches 1 … 5\), but the bundle carries no anchor.batchProof/)

  // `fieldproof chain proof` writes the same bundle from the store.
  const cp = await chain(w.dir, ['proof', '17', '--state-dir', w.dir, '--chain-id', String(w.anvil.chainId), '--contract', w.contract])
  t.equal(cp.code, 0, cp.err)
  t.same(JSON.parse(cp.out).anchor, anchor)

  // Unregistered batch of a later range: not anchored yet.
  await sealBatch(w, 3)
  const p2 = proofForSeq(w.store, 36n)
  if (!p2.ok) throw new Error(p2.reason)
  writeFileSync(file, JSON.stringify(p2.bundle))
  const notYet = await runCli(['verify', file, '--rpc', w.anvil.rpcUrl, '--contract', w.contract])
  t.equal(notYet.code, 1)
  t.match(notYet.stdout, /INVALID: anchor: batch 6 of gateway 0x[0-9a-fA-F]{40} is not anchored \(its last anchored batch is 5\)/)
})

t.test('anvil restarted with the anchor transaction pending: re-broadcast, no range anchored twice', async (t) => {
  const w = await world(t, { stateFile: true })
  for (let i = 0; i < 3; i++) await sealBatch(w, 4)
  const metrics = new MetricsRegistry()
  const sink = makeSink(w, { confirmations: 1 }, metrics)
  t.teardown(() => sink.close())
  await feed(w, sink)
  await until(w, 'first range confirmed', () => st(sink).lastAnchoredBatchId === '3')

  await w.anvil.setAutomine(false)
  for (let i = 0; i < 2; i++) await sealBatch(w, 4)
  await feed(w, sink, 3n)
  await until(w, 'second range sent', () => st(sink).inflight !== null && st(sink).state === 'anchoring')
  const inflight = st(sink).inflight!
  t.match(inflight, { firstBatchId: '4', lastBatchId: '5' })
  await w.anvil.restart() // the pending transaction is lost; the chain comes back as saved
  await until(w, 'second range confirmed after the restart', () => st(sink).lastAnchoredBatchId === '5', true)
  const anchors = await anchorsOnChain(w)
  t.same(
    anchors.map((a) => [a.first, a.last]),
    [
      [1n, 3n],
      [4n, 5n],
    ],
    'two anchors, contiguous, none twice',
  )
  t.equal(anchors[1]!.root, referenceRoot(w.store, 4n, 5n))
  t.equal(st(sink).lastTxHash, inflight.txHash, 'the same signed transaction was broadcast again')
  t.match(metrics.render(), /fieldproof_anchor_reanchors_total 1/)
  t.match(metrics.render(), /fieldproof_anchor_last_batch_id 5/)
})

t.test('a reorg drops the anchor transaction: the range is anchored again', async (t) => {
  const w = await world(t)
  for (let i = 0; i < 4; i++) await sealBatch(w, 3)
  const snap = await w.anvil.snapshot()
  const sink = makeSink(w, { confirmations: 3 })
  t.teardown(() => sink.close())
  await feed(w, sink)
  await until(w, 'waiting for confirmations', () => st(sink).state === 'waiting-confirmations')
  t.equal((await anchorsOnChain(w)).length, 1, 'mined once')
  t.equal(await w.anvil.revert(snap), true)
  t.equal((await anchorsOnChain(w)).length, 0, 'the reorg removed it')
  t.equal(st(sink).lastAnchoredBatchId, '0', 'not counted as anchored before its confirmations')
  await until(w, 're-anchored and confirmed', () => st(sink).lastAnchoredBatchId === '4', true)
  const anchors = await anchorsOnChain(w)
  t.same(anchors.map((a) => [a.first, a.last]), [[1n, 4n]], 'anchored again, once')
  t.equal(anchors[0]!.root, referenceRoot(w.store, 1n, 4n))
})

t.test('gateway restart with an anchor in flight: the new sink follows it and sends nothing twice', async (t) => {
  const w = await world(t)
  for (let i = 0; i < 3; i++) await sealBatch(w, 5)
  await w.anvil.setAutomine(false)
  const first = makeSink(w)
  await feed(w, first)
  await until(w, 'sent', () => st(first).inflight !== null)
  const sent = st(first).inflight!
  await first.close()
  const nonceBefore = await w.client.getTransactionCount({ address: TEST_ADDRESS, blockTag: 'pending' })

  // More batches sealed while the gateway was down; the new sink resumes from the durable state.
  await sealBatch(w, 5)
  const second = makeSink(w)
  t.teardown(() => second.close())
  await feed(w, second, 3n)
  await new Promise((r) => setTimeout(r, 300))
  t.same(st(second).inflight, { ...sent, confirmations: 0 }, 'the same attempt is followed')
  t.equal(await w.client.getTransactionCount({ address: TEST_ADDRESS, blockTag: 'pending' }), nonceBefore, 'no second transaction')
  await w.anvil.setAutomine(true)
  await w.anvil.mine(1)
  await until(w, 'both ranges confirmed', () => st(second).lastAnchoredBatchId === '4', true)
  t.same(
    (await anchorsOnChain(w)).map((a) => [a.first, a.last]),
    [
      [1n, 3n],
      [4n, 4n],
    ],
  )
})

t.test('status kinds: not-registered, insufficient-funds, fee-above-cap, wrong-chain, rpc-unreachable; interval and max_batches', async (t) => {
  const w = await world(t, { register: false })
  await sealBatch(w, 2)
  const kindOf = async (sink: AnchorSink, kind: string): Promise<AnchorStatus> => {
    await until(w, kind, () => st(sink).error?.kind === kind)
    const s = st(sink)
    await sink.close()
    return s
  }
  let sink = makeSink(w)
  await feed(w, sink)
  const nr = await kindOf(sink, 'not-registered')
  t.equal(nr.state, 'error')
  t.match(nr.error!.message, /fieldproof chain register/)

  t.equal((await chain(w.dir, ['register', '--state-dir', w.dir, '--owner-key-file', 'owner.key', ...w.rpcArgs])).code, 0)
  const balance = await w.client.getBalance({ address: TEST_ADDRESS })
  await w.anvil.rpc('anvil_setBalance', [TEST_ADDRESS, '0x3e8'])
  const poor = await kindOf(makeSink(w), 'insufficient-funds')
  t.equal(poor.error!.details!['balanceWei'], '1000')
  t.ok(BigInt(poor.error!.details!['neededWei'] as string) > 1000n, 'says what one anchor needs')
  await w.anvil.rpc('anvil_setBalance', [TEST_ADDRESS, `0x${balance.toString(16)}`])

  const capped = await kindOf(makeSink(w, { maxFeeWei: 1n }), 'fee-above-cap')
  t.match(capped.error!.message, /above max_fee_gwei/)
  const wrong = await kindOf(makeSink(w, { chainId: 1 }), 'wrong-chain')
  t.match(wrong.error!.details, { rpcChainId: w.anvil.chainId, configChainId: 1 })
  const down = await kindOf(makeSink(w, { rpcUrl: 'http://127.0.0.1:9' }), 'rpc-unreachable')
  t.match(down.error!.message, /does not answer/)
  t.equal((await anchorsOnChain(w)).length, 0, 'nothing was anchored by any of them')

  // The interval: a long one holds the range back; max_batches anchors early.
  sink = makeSink(w, { intervalMs: 3_600_000, maxBatches: 3 })
  t.teardown(() => sink.close())
  await until(w, 'idle until due', () => st(sink).state === 'idle' && st(sink).nextAnchorMs !== null)
  t.equal((await anchorsOnChain(w)).length, 0, 'one batch waits for the interval')
  await sealBatch(w, 2)
  await sealBatch(w, 2)
  await feed(w, sink, 1n)
  await until(w, 'max_batches reached: anchored early', () => st(sink).lastAnchoredBatchId === '3')
  t.same((await anchorsOnChain(w)).map((a) => [a.first, a.last]), [[1n, 3n]])
  t.equal(ZERO.length, 42)
})

t.test('a transaction left pending is replaced with higher fees (same nonce), and the range is anchored once', async (t) => {
  const w = await world(t)
  for (let i = 0; i < 2; i++) await sealBatch(w, 3)
  await w.anvil.setAutomine(false)
  const sink = makeSink(w, { replaceAfterMs: 300 })
  t.teardown(() => sink.close())
  await feed(w, sink)
  await until(w, 'sent', () => st(sink).inflight !== null)
  const first = st(sink).inflight!
  await until(w, 'replaced', () => st(sink).inflight !== null && st(sink).inflight!.txHash !== first.txHash)
  const second = st(sink).inflight!
  t.equal(second.nonce, first.nonce, 'same nonce')
  const [a, b] = await Promise.all([w.client.getTransaction({ hash: first.txHash }).catch(() => undefined), w.client.getTransaction({ hash: second.txHash })])
  if (a) t.ok(b.maxFeePerGas! > a.maxFeePerGas!, 'higher max fee')
  await w.anvil.setAutomine(true)
  await until(w, 'confirmed', () => st(sink).lastAnchoredBatchId === '2', true)
  t.same((await anchorsOnChain(w)).map((x) => [x.first, x.last]), [[1n, 2n]], 'anchored once')
  t.equal(await w.client.getTransactionCount({ address: TEST_ADDRESS }), first.nonce + 1, 'one nonce used')
})
