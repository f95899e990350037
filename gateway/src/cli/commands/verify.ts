import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { verifyProofBundle } from '../../core/proof.ts'
import { parseAddress } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'
import type { ChainReport } from '../../sinks/anchor/chain-verify.ts'
import { jsonText, str, UsageError, type Command } from '../cli.ts'

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'check a proof bundle offline (signature, Merkle path, batch link), and on chain with --rpc',
  options: { json: { type: 'boolean' }, gateway: { type: 'string' }, rpc: { type: 'string' }, contract: { type: 'string' }, confirmations: { type: 'string' } },
  help: `Usage: fieldproof verify BUNDLE.json [--gateway ADDRESS] [--rpc URL [--contract ADDRESS] [--confirmations N]] [--json]

Check a reading's proof bundle (GET /api/v1/proofs/:seq, or fieldproof export)
without any network: the reading re-encodes to its canonical bytes, its leaf
hash, the Merkle path to the batch root, the batch header hash, the gateway's
EIP-712 signature, the device's own signature when it signed, and the link to
the previous batch when the bundle carries it. "-" reads standard input.

With --rpc, then also on chain (no gas, read-only calls): the RPC serves the
bundle's chain, an anchor of the gateway covers the batch (findAnchor), the
anchor contract's verifyReading accepts the reading and batch paths, and the
anchor's block has enough confirmations (docs/anchor-sink.md).

Exit status: 0 only if every check passed; 1 names the first check that failed.

Options:
      --gateway ADDRESS     also require the batch to be signed by this gateway
      --rpc URL             JSON-RPC endpoint of the chain the batch is anchored on
      --contract ADDRESS    the anchor contract (default: the bundle's anchor.contract)
      --confirmations N     blocks required on top of the anchor, its own included (default 3)
      --json                print the full report as JSON
`,
  async run(args, io) {
    const file = args.positionals[0]
    if (!file) throw new UsageError('BUNDLE.json is required')
    const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(resolve(io.cwd, file), 'utf8')
    let bundle: unknown
    try {
      bundle = JSON.parse(text)
    } catch (e) {
      io.err(`fieldproof verify: ${file} is not JSON: ${(e as Error).message}`)
      return 1
    }
    const gw = str(args.values['gateway'])
    if (gw !== undefined && !parseAddress(gw)) throw new UsageError(`--gateway ${gw} is not an Ethereum address`)
    const rpc = str(args.values['rpc'])
    const contract = str(args.values['contract'])
    const confText = str(args.values['confirmations'])
    if (rpc === undefined && (contract !== undefined || confText !== undefined)) throw new UsageError('--contract and --confirmations need --rpc URL')
    if (rpc !== undefined && !/^https?:\/\/\S+$/.test(rpc)) throw new UsageError(`--rpc ${rpc} is not an http:// or https:// URL`)
    if (contract !== undefined && !parseAddress(contract)) throw new UsageError(`--contract ${contract} is not an Ethereum address`)
    const confirmations = confText === undefined ? undefined : Number(confText)
    if (confirmations !== undefined && (!Number.isSafeInteger(confirmations) || confirmations < 1)) throw new UsageError(`--confirmations ${confText} must be a whole number ≥ 1`)

    const report = verifyProofBundle(bundle, gw ? { expectedGateway: gw as Hex } : {})
    let checks: { name: string; ok: boolean; detail: string; skipped?: boolean }[] = [...report.checks]
    let ok = report.ok
    let chain: ChainReport | undefined
    if (rpc !== undefined) {
      const { verifyOnChain, CHAIN_CHECKS } = await import('../../sinks/anchor/chain-verify.ts')
      if (report.ok) {
        chain = await verifyOnChain(bundle, { rpcUrl: rpc, ...(contract !== undefined ? { contract: contract as Hex } : {}), ...(confirmations !== undefined ? { confirmations } : {}) })
        checks = [...checks, ...chain.checks]
        ok = chain.ok
      } else {
        checks = [...checks, ...CHAIN_CHECKS.map((name) => ({ name, ok: false, detail: 'skipped: an earlier check failed', skipped: true }))]
      }
    }
    if (args.values['json']) io.out(jsonText({ ...report, ok, checks, ...(chain?.anchor ? { anchor: chain.anchor } : {}) }))
    else {
      for (const c of checks) io.out(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(16)} ${c.detail}`)
      const failed = checks.find((c) => !c.ok)
      io.out(
        ok
          ? `valid: reading signed into a batch by ${report.gateway}${chain ? `, anchored on chain in anchor ${chain.anchor?.anchorId ?? '?'}` : ''}`
          : `INVALID: ${failed ? `${failed.name}: ${failed.detail}` : 'see above'}`,
      )
    }
    return ok ? 0 : 1
  },
}
