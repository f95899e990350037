import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { verifyProofBundle } from '../../core/proof.ts'
import { parseAddress } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'
import { jsonText, str, UsageError, type Command } from '../cli.ts'

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'check a proof bundle offline (signature, Merkle path, batch link)',
  options: { json: { type: 'boolean' }, gateway: { type: 'string' } },
  help: `Usage: fieldproof verify BUNDLE.json [--gateway ADDRESS] [--json]

Check a reading's proof bundle (GET /api/v1/proofs/:seq, or fieldproof export)
without any network: the reading re-encodes to its canonical bytes, its leaf
hash, the Merkle path to the batch root, the batch header hash, the gateway's
EIP-712 signature, the device's own signature when it signed, and the link to
the previous batch when the bundle carries it. "-" reads standard input.

Exit status: 0 only if every check passed; 1 names the first check that failed.

Options:
      --gateway ADDRESS   also require the batch to be signed by this gateway
      --json              print the full report as JSON
`,
  run(args, io) {
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
    const report = verifyProofBundle(bundle, gw ? { expectedGateway: gw as Hex } : {})
    if (args.values['json']) io.out(jsonText(report))
    else {
      for (const c of report.checks) io.out(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(16)} ${c.detail}`)
      const failed = report.checks.find((c) => !c.ok)
      io.out(report.ok ? `valid: reading signed into a batch by ${report.gateway}` : `INVALID: ${failed ? `${failed.name}: ${failed.detail}` : 'see above'}`)
    }
    return report.ok ? 0 : 1
  },
}
