// A real `fieldproof start` with [sinks.anchor] enabled against anvil: the
// plugin is wired, status and /metrics show the anchor, a restart of the
// gateway in the middle of its backlog resumes without anchoring a range twice,
// and a reading's bundle from the running gateway verifies on chain.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPublicClient, createWalletClient, http, parseEther, type PublicClient } from 'viem'
import { foundry } from 'viem/chains'
import { fieldproofAnchorAbi as abi } from '../../contracts/artifacts/FieldproofAnchor.abi.ts'
import { runCommand, type Io } from '../../gateway/src/cli/cli.ts'
import { chainCommand } from '../../gateway/src/cli/commands/chain.ts'
import { bytesToHex } from '../../gateway/src/core/hex.ts'
import type { Hex } from '../../gateway/src/core/types.ts'
import { anvilAccount, startAnvil } from '../helpers/anvil.ts'
import { runCli, startGateway, type GatewayProcess } from '../helpers/gateway-process.ts'
import { TEST_ADDRESS, TEST_KEY } from '../helpers/readings.ts'

const anvilKey = (i: number): string => bytesToHex(anvilAccount(i).getHdKey().privateKey as Uint8Array).slice(2)

async function chain(cwd: string, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const io: Io = { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n'), env: { FIELDPROOF_CONFIG: '' }, cwd }
  const code = await runCommand(chainCommand, argv, io)
  return { code, out, err }
}

interface AnchorExtra {
  state: string
  lastAnchoredBatchId: string
  error: { kind: string } | null
}

async function anchorStatus(g: GatewayProcess): Promise<AnchorExtra | undefined> {
  const res = await fetch(`${g.url}/api/v1/status`, { headers: { authorization: `Bearer ${g.token}` } })
  const body = (await res.json()) as { sinks?: { id: string; extra?: AnchorExtra }[] }
  return body.sinks?.find((s) => s.id === 'anchor')?.extra
}

async function until(what: string, pred: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await pred()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out waiting for: ${what}`)
}

t.test('a running gateway anchors its batches, resumes after a restart, and its bundles verify on chain', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'gw')
  mkdirSync(stateDir, { mode: 0o700 })
  writeFileSync(join(stateDir, 'gateway.key'), TEST_KEY.slice(2) + '\n', { mode: 0o600 })
  writeFileSync(join(dir, 'deployer.key'), anvilKey(0) + '\n', { mode: 0o600 })
  writeFileSync(join(dir, 'owner.key'), anvilKey(2) + '\n', { mode: 0o600 })
  const anvil = await startAnvil()
  t.teardown(() => anvil.stop())
  const client = createPublicClient({ chain: { ...foundry, id: anvil.chainId }, transport: http(anvil.rpcUrl) }) as PublicClient
  const d = await chain(dir, ['deploy', '--rpc', anvil.rpcUrl, '--chain-id', String(anvil.chainId), '--key-file', 'deployer.key', '--json'])
  t.equal(d.code, 0, d.err)
  const contract = JSON.parse(d.out).address as Hex
  const funder = createWalletClient({ account: anvilAccount(0), chain: { ...foundry, id: anvil.chainId }, transport: http(anvil.rpcUrl) })
  await client.waitForTransactionReceipt({ hash: await funder.sendTransaction({ to: TEST_ADDRESS, value: parseEther('1') }) })

  const config = `[gateway]
state_dir = "${stateDir}"
[sources.sim]
enabled = true
sensors = 3
interval_ms = 60
[batch]
max_readings = 4
max_age_seconds = 1
[sinks.anchor]
enabled = true
rpc_url = "${anvil.rpcUrl}"
chain_id = ${anvil.chainId}
contract = "${contract}"
interval_s = 1
confirmations = 1
poll_ms = 100
`
  const r = await chain(dir, ['register', '--state-dir', stateDir, '--owner-key-file', 'owner.key', '--rpc', anvil.rpcUrl, '--chain-id', String(anvil.chainId), '--contract', contract])
  t.equal(r.code, 0, r.err)

  let g = await startGateway({ stateDir, config })
  t.teardown(() => g.kill())
  await until('a first anchor', async () => Number((await anchorStatus(g))?.lastAnchoredBatchId ?? 0) >= 2)
  const metrics = await (await fetch(`${g.url}/metrics`)).text()
  t.match(metrics, /fieldproof_anchor_last_batch_id \d+/)
  t.match(metrics, /fieldproof_anchor_state\{state="(idle|anchoring|waiting-confirmations)"\} 1/)

  // Stop while batches keep coming (some queued, maybe one in flight); start again.
  t.equal(await g.stop(), 0)
  const lastBefore = await client.readContract({ address: contract, abi, functionName: 'lastAnchoredBatchId', args: [TEST_ADDRESS] })
  g = await startGateway({ stateDir, config })
  await until('anchoring continues after the restart', async () => BigInt((await anchorStatus(g))?.lastAnchoredBatchId ?? 0) > lastBefore + 1n)
  t.equal((await anchorStatus(g))?.error ?? null, null, 'no error')

  // Every anchor on chain: contiguous from batch 1, so no batch twice.
  const count = await client.readContract({ address: contract, abi, functionName: 'anchorCount', args: [TEST_ADDRESS] })
  let next = 1n
  for (let i = 1n; i <= count; i++) {
    const a = await client.readContract({ address: contract, abi, functionName: 'anchorOf', args: [TEST_ADDRESS, i] })
    t.equal(a.firstBatchId, next, `anchor ${i} starts right after the previous one`)
    next = a.lastBatchId + 1n
  }

  // A reading of the first batch: bundle from the running gateway's store, checked with the real CLI.
  const p = await chain(dir, ['proof', '1', '--state-dir', stateDir, '--chain-id', String(anvil.chainId), '--contract', contract, '--out', 'bundle.json'])
  t.equal(p.code, 0, p.err)
  const v = await runCli(['verify', join(dir, 'bundle.json'), '--rpc', anvil.rpcUrl, '--confirmations', '1', '--gateway', TEST_ADDRESS])
  t.equal(v.code, 0, v.stdout + v.stderr)
  t.match(v.stdout, /valid: reading signed into a batch by 0x[0-9a-fA-F]{40}, anchored on chain in anchor 1/)

  // The same reading's bundle from the running gateway's API carries its anchor and verifies on chain too.
  const api = (await (await fetch(`${g.url}/api/v1/proofs/1`)).json()) as { anchor?: { anchorId: string; contract: string; chainId: number } }
  t.equal(api.anchor?.anchorId, '1', 'the API bundle names the anchor')
  t.equal(api.anchor?.contract.toLowerCase(), contract.toLowerCase())
  writeFileSync(join(dir, 'api-bundle.json'), JSON.stringify(api))
  const va = await runCli(['verify', join(dir, 'api-bundle.json'), '--rpc', anvil.rpcUrl, '--confirmations', '1', '--gateway', TEST_ADDRESS])
  t.equal(va.code, 0, va.stdout + va.stderr)
  t.match(va.stdout, /anchored on chain in anchor 1/)
  t.equal(await g.stop(), 0)
})
