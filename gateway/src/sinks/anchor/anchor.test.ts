// Unit tests of the anchor sink's pure parts: the anchor tree against
// @openzeppelin/merkle-tree (the reference StandardMerkleTree), the
// signDigest-backed viem account against viem's own private-key account, the
// gwei parser, and error classification.
import t from 'tap'
import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import { HttpRequestError, InsufficientFundsError, keccak256, parseTransaction, recoverTransactionAddress, type TransactionSerializable } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { signDigest } from '../../core/batch.ts'
import { bytesToHex, hexToBytes } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'
import { digestAccount, splitSignature } from './account.ts'
import { classifyError } from './anchor.ts'
import { gweiToWei } from './plugin.ts'
import { anchorLeaf, anchorProof, anchorRoot } from './tree.ts'
import { join } from 'node:path'
import { Store } from '../../store/store.ts'
import { AnchorState } from './state.ts'

const KEY = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318' as Hex
const reference = privateKeyToAccount(KEY)
const account = digestAccount(reference.address as Hex, (d) => signDigest(d, hexToBytes(KEY, 32)))

const batches = (first: bigint, n: number) =>
  Array.from({ length: n }, (_, i) => ({ batchId: first + BigInt(i), merkleRoot: hexToBytes(keccak256(new TextEncoder().encode(`batch ${first + BigInt(i)}`)), 32) }))

t.test('anchor tree: root, leaf and proofs equal StandardMerkleTree over [uint64 batchId, bytes32 merkleRoot]', (t) => {
  for (const n of [1, 2, 3, 10, 100]) {
    const bs = batches(7n, n)
    const ref = StandardMerkleTree.of(bs.map((b) => [b.batchId, bytesToHex(b.merkleRoot)] as [bigint, Hex]), ['uint64', 'bytes32'])
    t.equal(bytesToHex(anchorRoot(bs)), ref.root, `${n} batches: root`)
    const probe = bs[Math.floor(n / 2)]!
    t.equal(bytesToHex(anchorLeaf(probe)), ref.leafHash([probe.batchId, bytesToHex(probe.merkleRoot)]), `${n} batches: leaf`)
    const p = anchorProof(bs, probe.batchId)!
    t.ok(StandardMerkleTree.verify(ref.root, ['uint64', 'bytes32'], [probe.batchId, bytesToHex(probe.merkleRoot)], p.proof.map(bytesToHex)), `${n} batches: proof verifies with the reference`)
  }
  t.equal(anchorProof(batches(1n, 3), 9n), undefined, 'a batch outside the range has no proof')
  t.end()
})

t.test('the digest account signs transactions byte for byte like viem\'s private-key account', async (t) => {
  const txs: TransactionSerializable[] = [
    { type: 'eip1559', chainId: 31337, nonce: 5, to: '0x5FbDB2315678afecb367f032d93F642f64180aa3', data: '0x12345678', gas: 90_000n, maxFeePerGas: 3_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n },
    { type: 'legacy', chainId: 4689, nonce: 0, to: '0x5FbDB2315678afecb367f032d93F642f64180aa3', data: '0xabcdef', gas: 90_000n, gasPrice: 1_000_000_000_000n },
  ]
  for (const tx of txs) {
    const ours = await account.signTransaction(tx)
    t.equal(ours, await reference.signTransaction(tx), `${tx.type}: identical serialized transaction`)
    t.equal(await recoverTransactionAddress({ serializedTransaction: ours as never }), reference.address, `${tx.type}: recovers the gateway address`)
    t.equal(parseTransaction(ours).nonce, tx.nonce)
  }
  t.equal(await account.signMessage({ message: 'hello' }), await reference.signMessage({ message: 'hello' }), 'EIP-191 message')
  const typed = { domain: { name: 'FieldproofAnchor', version: '1', chainId: 1 }, types: { M: [{ name: 'x', type: 'uint256' }] }, primaryType: 'M', message: { x: 1n } } as const
  t.equal(await account.signTypedData(typed), await reference.signTypedData(typed), 'EIP-712 typed data')
  t.throws(() => splitSignature(('0x' + '11'.repeat(64) + '05') as Hex), /not 27\/28/)
})

t.test('gweiToWei parses decimals exactly', (t) => {
  t.equal(gweiToWei(100), 100_000_000_000n)
  t.equal(gweiToWei(0.1), 100_000_000n)
  t.equal(gweiToWei(1.5), 1_500_000_000n)
  t.equal(gweiToWei(0.000000001), 1n)
  t.end()
})

t.test('errors are classified into status kinds', (t) => {
  t.equal(classifyError(new HttpRequestError({ url: 'http://127.0.0.1:9', details: 'fetch failed' }), 'http://127.0.0.1:9').kind, 'rpc-unreachable')
  t.equal(classifyError(new InsufficientFundsError(), 'x').kind, 'insufficient-funds')
  t.equal(classifyError(new Error('connect ECONNREFUSED 127.0.0.1:9'), 'x').kind, 'rpc-unreachable')
  t.equal(classifyError(new Error('something else'), 'x').kind, 'rpc-error')
  t.end()
})

t.test('state: attempts, confirmation, proof fields, drops, and pruning of roots no proof needs', (t) => {
  const store = new Store(join(t.testdir(), 'f.db'))
  t.teardown(() => store.close())
  const contract = '0x5FbDB2315678afecb367f032d93F642f64180aa3' as Hex
  const s = new AnchorState(store, 31337, contract)
  const other = new AnchorState(store, 1, contract)
  const bs = batches(1n, 5)
  for (const b of bs) s.queue(b.batchId, b.merkleRoot, 1000)
  s.queue(2n, bs[1]!.merkleRoot, 2000) // handed over twice: queued once
  t.equal(s.countAfter(0n), 5)
  t.same(s.queuedAfter(3n, 10).map((b) => b.batchId), [4n, 5n])
  const root = anchorRoot(bs.slice(0, 3))
  s.recordSent({ firstBatchId: 1n, lastBatchId: 3n, anchorRoot: root, txHash: `0x${'ab'.repeat(32)}`, nonce: 7, rawTx: '0x02', sentMs: 5000 })
  t.match(s.inflight(), { firstBatchId: 1n, lastBatchId: 3n, state: 'sent', nonce: 7 })
  t.equal(other.inflight(), undefined, 'scoped to the chain and contract')
  t.equal(s.proofAnchor(2n), undefined, 'no proof fields before confirmation')
  s.confirm(1n, 1n, 42n, 6000)
  t.equal(s.inflight(), undefined)
  t.match(s.lastConfirmed(), { lastBatchId: 3n, anchorId: 1n, blockNumber: 42n })
  t.equal(s.lastSentMs(), 5000)
  const p = s.proofAnchor(2n)!
  t.match(p, { chainId: 31337, anchorId: '1', blockNumber: '42', anchorRoot: bytesToHex(root) })
  t.same(p.batchProof, anchorProof(bs.slice(0, 3), 2n)!.proof.map(bytesToHex))
  t.equal(s.proofAnchor(4n), undefined, 'batch 4 is not anchored')
  t.equal(s.pruneBefore(3n), 0, 'range 1 … 3 still has stored batches: its roots stay')
  t.equal(s.pruneBefore(4n), 3, 'range 1 … 3 wholly pruned: its roots go')
  t.same(s.queuedAfter(0n, 10).map((b) => b.batchId), [4n, 5n])
  s.dropAfter(2n)
  t.equal(s.lastConfirmed(), undefined, 'a reorg below the range forgets it')
  t.end()
})
