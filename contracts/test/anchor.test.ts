// anchor(firstBatchId, lastBatchId, anchorRoot): who may anchor, contiguity (no gap, no
// overlap, no range twice), events and storage, findAnchor over many anchors, and a reorg
// stand-in (evm_snapshot / evm_revert) after which the same range anchors again.
import t from 'tap'
import { keccak256, parseEventLogs, stringToHex, zeroHash } from 'viem'
import type { Address, Hex } from 'viem'
import { abi, register, revertOf, setup } from './fixture.ts'

const fx = await setup(t)
const addr = (i: number) => fx.account(i).address
const root = (label: string): Hex => keccak256(stringToHex(label))

interface AnchorRecord {
  anchorRoot: Hex
  firstBatchId: bigint
  lastBatchId: bigint
  blockNumber: bigint
  timestamp: bigint
}

const readAt = <T>(address: Address, functionName: string, args: readonly unknown[]): Promise<T> =>
  fx.client.readContract({ address, abi, functionName, args } as never) as Promise<T>
const read = <T>(functionName: string, args: readonly unknown[]): Promise<T> => readAt<T>(fx.address, functionName, args)

await register(fx, 1, 2) // gateway A = account 1, owner = account 2
await register(fx, 3, 2) // gateway B = account 3, same owner
const A = addr(1)
const B = addr(3)

t.test('first anchor: event, storage and views', async (t) => {
  t.equal(await read('lastAnchoredBatchId', [A]), 0n)
  t.equal(await read('findAnchor', [A, 1n]), 0n)
  const receipt = await fx.send(1, 'anchor', [1n, 3n, root('a1')])
  const logs = parseEventLogs({ abi, logs: receipt.logs, eventName: 'Anchored' })
  t.equal(logs.length, 1)
  t.same(logs[0]?.args, { gateway: A, anchorId: 1n, firstBatchId: 1n, lastBatchId: 3n, anchorRoot: root('a1') })
  t.equal(logs[0]?.address.toLowerCase(), fx.address.toLowerCase())
  const block = await fx.client.getBlock({ blockNumber: receipt.blockNumber })
  const rec = await read<AnchorRecord>('anchorOf', [A, 1n])
  t.same(rec, { anchorRoot: root('a1'), firstBatchId: 1n, lastBatchId: 3n, blockNumber: receipt.blockNumber, timestamp: block.timestamp })
  t.equal(await read('lastAnchoredBatchId', [A]), 3n)
  t.equal(await read('anchorCount', [A]), 1n)
  t.same(await read('gatewayInfo', [A]), [addr(2), 3n, 1n])
  t.same(await revertOf(() => read('anchorOf', [A, 2n])), { name: 'UnknownAnchor', args: [A, 2n] })
  t.same(await revertOf(() => read('anchorOf', [A, 0n])), { name: 'UnknownAnchor', args: [A, 0n] })
  // the anchor function returns the new id (seen through a simulation of the next one)
  const sim = await fx.client.simulateContract({ account: fx.account(1), address: fx.address, abi, functionName: 'anchor', args: [4n, 4n, root('x')] })
  t.equal(sim.result, 2n)
})

t.test('only a registered gateway may anchor', async (t) => {
  t.same(await revertOf(() => fx.send(5, 'anchor', [1n, 1n, root('u')])), { name: 'NotRegistered', args: [addr(5)] })
  t.same(await revertOf(() => fx.send(2, 'anchor', [1n, 1n, root('u')])), { name: 'NotRegistered', args: [addr(2)] }, 'not even the owner')
})

t.test('contiguity: no gap, no overlap, no range twice', async (t) => {
  // A has anchored 1..3
  t.same(await revertOf(() => fx.send(1, 'anchor', [5n, 6n, root('gap')])), { name: 'BatchGap', args: [4n, 5n] })
  t.same(await revertOf(() => fx.send(1, 'anchor', [1n, 3n, root('a1')])), { name: 'AlreadyAnchored', args: [1n, 3n] }, 'same range again (a retry)')
  t.same(await revertOf(() => fx.send(1, 'anchor', [3n, 5n, root('ov')])), { name: 'AlreadyAnchored', args: [3n, 3n] }, 'overlap')
  t.same(await revertOf(() => fx.send(1, 'anchor', [0n, 5n, root('z')])), { name: 'AlreadyAnchored', args: [0n, 3n] }, 'batch 0')
  t.same(await revertOf(() => fx.send(1, 'anchor', [4n, 3n, root('inv')])), { name: 'InvalidBatchRange', args: [4n, 3n] })
  t.same(await revertOf(() => fx.send(1, 'anchor', [4n, 4n, zeroHash])), { name: 'ZeroAnchorRoot', args: [] })
  t.equal(await read('lastAnchoredBatchId', [A]), 3n, 'nothing changed')
  t.equal(await read('anchorCount', [A]), 1n)

  // B is independent: its first anchor must start at 1
  t.same(await revertOf(() => fx.send(3, 'anchor', [4n, 4n, root('b')])), { name: 'BatchGap', args: [1n, 4n] })
  await fx.send(3, 'anchor', [1n, 1n, root('b1')])
  t.equal(await read('lastAnchoredBatchId', [B]), 1n)

  const r = await fx.send(1, 'anchor', [4n, 4n, root('a2')])
  t.equal(parseEventLogs({ abi, logs: r.logs, eventName: 'Anchored' })[0]?.args.anchorId, 2n)
  t.equal(await read('lastAnchoredBatchId', [A]), 4n)
})

t.test('deregistration stops anchoring; history stays; re-registration continues', async (t) => {
  await fx.send(2, 'deregisterGateway', [B])
  t.same(await revertOf(() => fx.send(3, 'anchor', [2n, 2n, root('b2')])), { name: 'NotRegistered', args: [B] })
  t.equal((await read<AnchorRecord>('anchorOf', [B, 1n])).anchorRoot, root('b1'))
  t.equal(await read('findAnchor', [B, 1n]), 1n)
  await register(fx, 3, 4) // a new owner
  t.same(await revertOf(() => fx.send(3, 'anchor', [1n, 1n, root('b1')])), { name: 'AlreadyAnchored', args: [1n, 1n] })
  await fx.send(3, 'anchor', [2n, 2n, root('b2')])
  t.equal(await read('anchorCount', [B]), 2n)
})

t.test('findAnchor across many anchors', async (t) => {
  const gw = await fx.deploy()
  const local = fx.at(gw)
  await register(local, 6, 7)
  const G = addr(6)
  // 40 anchors with irregular range lengths (1..7 batches)
  const ranges: Array<[bigint, bigint]> = []
  let next = 1n
  for (let i = 0; i < 40; i++) {
    const len = BigInt(((i * 5) % 7) + 1)
    ranges.push([next, next + len - 1n])
    next += len
  }
  for (const [i, [first, last]] of ranges.entries()) await local.send(6, 'anchor', [first, last, root(`f${i}`)])
  const lastBatch = next - 1n
  t.equal(await readAt(gw, 'lastAnchoredBatchId', [G]), lastBatch)
  t.equal(await readAt(gw, 'anchorCount', [G]), 40n)

  const expected = new Map<bigint, bigint>()
  ranges.forEach(([first, last], i) => {
    for (let b = first; b <= last; b++) expected.set(b, BigInt(i + 1))
  })
  const ids = [...expected.keys()]
  const found = await Promise.all(ids.map((b) => readAt<bigint>(gw, 'findAnchor', [G, b])))
  const wrong = ids.filter((b, k) => found[k] !== expected.get(b))
  t.same(wrong, [], `every one of ${ids.length} batch ids maps to its anchor`)
  t.equal(await readAt(gw, 'findAnchor', [G, 0n]), 0n, 'batch 0 is never anchored')
  t.equal(await readAt(gw, 'findAnchor', [G, lastBatch + 1n]), 0n, 'beyond the last anchored batch')
  t.equal(await readAt(gw, 'findAnchor', [G, 2n ** 64n - 1n]), 0n)
  t.equal(await readAt(gw, 'findAnchor', [addr(8), 1n]), 0n, 'unknown gateway')
  // each anchor's record agrees with its range
  const rec = await readAt<AnchorRecord>(gw, 'anchorOf', [G, 17n])
  t.same([rec.firstBatchId, rec.lastBatchId, rec.anchorRoot], [ranges[16]?.[0], ranges[16]?.[1], root('f16')])
})

t.test('reorg stand-in: evm_revert drops an anchor; the same range anchors again', async (t) => {
  const before = await read<bigint>('lastAnchoredBatchId', [A]) // 4
  const count = await read<bigint>('anchorCount', [A])
  const snap = await fx.anvil.snapshot()
  const receipt = await fx.send(1, 'anchor', [before + 1n, before + 3n, root('r1')])
  t.equal(await read('lastAnchoredBatchId', [A]), before + 3n)

  t.equal(await fx.anvil.revert(snap), true)
  t.equal(await read('lastAnchoredBatchId', [A]), before, 'the anchor is gone')
  t.equal(await read('anchorCount', [A]), count)
  t.same(await revertOf(() => read('anchorOf', [A, count + 1n])), { name: 'UnknownAnchor', args: [A, count + 1n] })
  t.equal(await fx.client.getTransactionReceipt({ hash: receipt.transactionHash }).then(() => 'found', () => 'missing'), 'missing')

  // the sink re-sends the same range (here with the same root) and it lands under the same id
  const again = await fx.send(1, 'anchor', [before + 1n, before + 3n, root('r1')])
  const ev = parseEventLogs({ abi, logs: again.logs, eventName: 'Anchored' })[0]?.args
  t.same(ev, { gateway: A, anchorId: count + 1n, firstBatchId: before + 1n, lastBatchId: before + 3n, anchorRoot: root('r1') })
  t.equal(await read('findAnchor', [A, before + 2n]), count + 1n)
})

t.test('pending anchor: not visible until mined; a duplicate send then reverts', async (t) => {
  const before = await read<bigint>('lastAnchoredBatchId', [A])
  await fx.anvil.setAutomine(false)
  t.teardown(() => fx.anvil.setAutomine(true))
  const hash = await fx.wallet(1).writeContract({ address: fx.address, abi, functionName: 'anchor', args: [before + 1n, before + 1n, root('p')] })
  t.equal(await read('lastAnchoredBatchId', [A]), before, 'pending: not anchored yet')
  await fx.anvil.mine()
  const receipt = await fx.client.waitForTransactionReceipt({ hash })
  t.equal(receipt.status, 'success')
  t.equal(await read('lastAnchoredBatchId', [A]), before + 1n)
  await fx.anvil.setAutomine(true)
  t.same(await revertOf(() => fx.send(1, 'anchor', [before + 1n, before + 1n, root('p')])), { name: 'AlreadyAnchored', args: [before + 1n, before + 1n] })
})
