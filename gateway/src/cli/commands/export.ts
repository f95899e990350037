import { createWriteStream, existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { loadConfig } from '../../config/load.ts'
import { FieldproofError } from '../../core/errors.ts'
import { DB_FILE } from '../../gateway.ts'
import { proofForSeq } from '../../pipeline/proofs.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, str, UsageError, type Command } from '../cli.ts'

const SEQ_RE = /^\d{1,19}$/

export const exportCommand: Command = {
  name: 'export',
  summary: 'write readings with their proofs as NDJSON',
  options: { ...CONFIG_OPTIONS, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string', short: 'o' } },
  help: `Usage: fieldproof export [--from SEQ] [--to SEQ] [--out FILE] [--config PATH | --state-dir DIR]

Write every stored reading in the range, each with its proof bundle, as one
JSON document per line (NDJSON) — each line is what fieldproof verify checks.
Reads the database directly, so it works whether or not the gateway runs.
Readings whose batch is not sealed yet are skipped and counted on stderr.

Options:
      --from SEQ     first sequence number (default: the oldest stored)
      --to SEQ       last sequence number (default: the newest sealed)
  -o, --out FILE     write to FILE instead of standard output
`,
  async run(args, io) {
    const from = str(args.values['from'])
    const to = str(args.values['to'])
    if (from !== undefined && !SEQ_RE.test(from)) throw new UsageError('--from must be a sequence number')
    if (to !== undefined && !SEQ_RE.test(to)) throw new UsageError('--to must be a sequence number')
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const dbPath = join(config.gateway.state_dir, DB_FILE)
    if (!existsSync(dbPath)) throw new FieldproofError('NOT_FOUND', `no database at ${dbPath}: has the gateway run with this state directory?`)
    const store = new Store(dbPath, { readonly: true })
    const outPath = str(args.values['out'])
    const stream = outPath ? createWriteStream(resolve(io.cwd, outPath), { mode: 0o644 }) : undefined
    const write = async (line: string) => {
      if (stream) {
        if (!stream.write(line + '\n')) await once(stream, 'drain')
      } else io.out(line)
    }
    let written = 0
    let unsealed = 0
    try {
      let after = from !== undefined ? BigInt(from) - 1n : 0n
      const last = to !== undefined ? BigInt(to) : store.lastSeq()
      for (;;) {
        const rows = store.queryReadings({ afterSeq: after, toSeq: last, limit: 1000 })
        if (rows.length === 0) break
        for (const r of rows) {
          const p = proofForSeq(store, r.seq)
          if (p.ok) {
            await write(JSON.stringify(p.bundle))
            written++
          } else unsealed++
          after = r.seq
        }
      }
    } finally {
      store.close()
      if (stream) {
        stream.end()
        await once(stream, 'close')
      }
    }
    io.err(`exported ${written} readings with proofs${unsealed ? `; ${unsealed} not yet sealed were skipped` : ''}`)
    return 0
  },
}
