// The anvil helper (test/helpers/anvil.ts) and what survives a node restart: the contract,
// its anchors and past receipts survive a graceful restart (state file); a pending anchor
// transaction does not (the mempool is not persisted), and the gateway must send it again;
// a killed node comes back at its last saved state, like a deep reorg.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { keccak256, stringToHex } from 'viem'
import type { Hex } from 'viem'
import { anvilBinary, startAnvil } from '../../test/helpers/anvil.ts'
import { abi, register, revertOf, setup } from './fixture.ts'

const root = (label: string): Hex => keccak256(stringToHex(label))

t.test('helper basics', async (t) => {
  t.ok(anvilBinary() === 'anvil' || existsSync(anvilBinary()), 'binary resolved')
  const a = await startAnvil()
  const b = await startAnvil({ chainId: 4242 })
  t.teardown(() => Promise.all([a.stop(), b.stop()]))
  t.not(a.port, b.port, 'each instance gets its own free port')
  t.match(a.rpcUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(await a.rpc('eth_chainId'), '0x7a69')
  t.equal(await b.rpc('eth_chainId'), '0x1092')
  await a.mine(3)
  t.equal(await a.rpc('eth_blockNumber'), '0x3')
  const err = await a.rpc('no_such_method').then(() => undefined, (e: unknown) => e as Error)
  t.ok(err instanceof Error, 'RPC errors reject')
  const pid = a.pid
  await a.stop()
  await a.stop()
  t.throws(() => process.kill(pid, 0), 'the process is gone after stop()')
  const refused = await fetch(a.rpcUrl, { method: 'POST' }).then(() => 'answered', () => 'refused')
  t.equal(refused, 'refused')
})

t.test('no anvil outlives its parent, even one killed with SIGKILL', async (t) => {
  const helper = new URL('../../test/helpers/anvil.ts', import.meta.url).href
  const script = `import { startAnvil } from ${JSON.stringify(helper)}
const a = await startAnvil()
console.log('pid', a.pid)
setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const pid = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /pid (\d+)/.exec(out)
      if (m !== null) resolve(Number(m[1]))
    })
    child.once('exit', () => reject(new Error(`child exited early: ${out}`)))
  })
  t.doesNotThrow(() => process.kill(pid, 0), 'anvil runs')
  child.kill('SIGKILL')
  let alive = true
  for (let i = 0; i < 100 && alive; i++) {
    await new Promise((r) => setTimeout(r, 50))
    try {
      process.kill(pid, 0)
    } catch {
      alive = false
    }
  }
  t.equal(alive, false, 'anvil stopped after its parent was killed')
})

t.test('restart keeps the chain; a pending anchor is lost and sent again', async (t) => {
  const stateFile = join(t.testdir(), 'anvil-state.json')
  const fx = await setup(t, { stateFile })
  const gw = fx.account(1).address
  const read = <T>(functionName: string, args: readonly unknown[]): Promise<T> =>
    fx.client.readContract({ address: fx.address, abi, functionName, args } as never) as Promise<T>

  await register(fx, 1, 2)
  const first = await fx.send(1, 'anchor', [1n, 2n, root('a1')])
  const blockBefore = await fx.client.getBlockNumber({ cacheTime: 0 }) // uncached: viem caches the head for its polling interval
  const { port, rpcUrl, pid } = fx.anvil

  await fx.anvil.restart()
  t.equal(fx.anvil.port, port)
  t.equal(fx.anvil.rpcUrl, rpcUrl, 'same URL: the gateway config stays valid')
  t.not(fx.anvil.pid, pid, 'a new process')
  t.ok(existsSync(stateFile), 'state written on stop')
  t.equal(await fx.client.getBlockNumber({ cacheTime: 0 }), blockBefore, 'blocks survive')
  t.equal((await fx.client.getTransactionReceipt({ hash: first.transactionHash })).status, 'success', 'receipts survive')
  t.equal(await read('lastAnchoredBatchId', [gw]), 2n, 'contract storage survives')
  t.equal(await read('ownerOf', [gw]), fx.account(2).address)

  // mid-anchor: the transaction is pending when the node goes down
  await fx.anvil.setAutomine(false)
  const nonce = await fx.client.getTransactionCount({ address: gw })
  const pending = await fx.wallet(1).writeContract({ address: fx.address, abi, functionName: 'anchor', args: [3n, 4n, root('a2')], nonce })
  t.ok(await fx.client.getTransaction({ hash: pending }), 'pending in the pool')
  await fx.anvil.restart()
  t.equal(await fx.client.getTransaction({ hash: pending }).then(() => 'found', () => 'missing'), 'missing', 'the pool did not survive')
  t.equal(await read('lastAnchoredBatchId', [gw]), 2n, 'the range is still unanchored')
  // the sink re-sends the identical transaction (same nonce): it is accepted and mined
  const again = await fx.wallet(1).writeContract({ address: fx.address, abi, functionName: 'anchor', args: [3n, 4n, root('a2')], nonce })
  t.equal(again, pending, 'same nonce and payload: the same transaction hash')
  t.equal((await fx.client.waitForTransactionReceipt({ hash: again })).status, 'success')
  t.equal(await read('lastAnchoredBatchId', [gw]), 4n)

  // a killed node loses what it had not saved: anchors after the last dump disappear
  await fx.anvil.save() // checkpoint with batches 1..4 anchored
  await fx.send(1, 'anchor', [5n, 5n, root('a3')])
  t.equal(await read('lastAnchoredBatchId', [gw]), 5n)
  await fx.anvil.stop({ kill: true })
  await fx.anvil.restart()
  t.equal(await read('lastAnchoredBatchId', [gw]), 4n, 'back to the saved state')
  t.equal(await read('anchorCount', [gw]), 2n)
  t.same(await revertOf(() => read('anchorOf', [gw, 3n])), { name: 'UnknownAnchor', args: [gw, 3n] })
  await fx.send(1, 'anchor', [5n, 5n, root('a3')])
  t.equal(await read('findAnchor', [gw, 5n]), 3n)
})
