import { createWriteStream, existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { loadConfig } from '../../config/load.ts'
import { FieldproofError } from '../../core/errors.ts'
import { DB_FILE } from '../../gateway.ts'
import { proofForSeq } from '../../pipeline/proofs.ts'
import { sinkBatchFromStore } from '../../pipeline/sink-runner.ts'
import { ArchiveWriter } from '../../sinks/archive/archive.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, str, UsageError, type Command, type Io, type ParsedArgs } from '../cli.ts'

const SEQ_RE = /^\d{1,19}$/

export const exportCommand: Command = {
  name: 'export',
  summary: 'write readings with their proofs as NDJSON',
  options: { ...CONFIG_OPTIONS, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string', short: 'o' }, archive: { type: 'string' }, 'from-batch': { type: 'string' }, 'to-batch': { type: 'string' } },
  help: `Usage: fieldproof export [--from SEQ] [--to SEQ] [--out FILE] [--config PATH | --state-dir DIR]
       fieldproof export --archive DIR [--from-batch N] [--to-batch M] [--config PATH | --state-dir DIR]

Write every stored reading in the range, each with its proof bundle, as one
JSON document per line (NDJSON) — each line is what fieldproof verify checks.
Reads the database directly, so it works whether or not the gateway runs.
Readings whose batch is not sealed yet are skipped and counted on stderr.

Options:
      --from SEQ     first sequence number (default: the oldest stored)
      --to SEQ       last sequence number (default: the newest sealed)
  -o, --out FILE     write to FILE instead of standard output
      --archive DIR  instead: write each sealed batch with its readings and proofs
                     as a content-addressed <sha256>.json file plus index.ndjson,
                     the same files the archive sink writes (docs/upstream-protocol.md)
      --from-batch N --to-batch M   the batch range for --archive (default: all stored)
`,
  async run(args, io) {
    const archive = str(args.values['archive'])
    if (archive !== undefined) return exportArchive(args, io, archive)
    if (args.values['from-batch'] !== undefined || args.values['to-batch'] !== undefined) throw new UsageError('--from-batch and --to-batch go with --archive')
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

async function exportArchive(args: ParsedArgs, io: Io, dir: string): Promise<number> {
  const fromB = str(args.values['from-batch'])
  const toB = str(args.values['to-batch'])
  if (fromB !== undefined && !SEQ_RE.test(fromB)) throw new UsageError('--from-batch must be a batch id')
  if (toB !== undefined && !SEQ_RE.test(toB)) throw new UsageError('--to-batch must be a batch id')
  const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
  const dbPath = join(config.gateway.state_dir, DB_FILE)
  if (!existsSync(dbPath)) throw new FieldproofError('NOT_FOUND', `no database at ${dbPath}: has the gateway run with this state directory?`)
  const store = new Store(dbPath, { readonly: true })
  const writer = new ArchiveWriter(resolve(io.cwd, dir))
  let written = 0
  try {
    let after = fromB !== undefined ? BigInt(fromB) - 1n : 0n
    const last = toB !== undefined ? BigInt(toB) : store.lastBatchId()
    for (;;) {
      const rows = store.batchesAfter(after, 100).filter((b) => b.id <= last)
      if (rows.length === 0) break
      for (const row of rows) {
        writer.write(sinkBatchFromStore(store, row))
        written++
        after = row.id
      }
    }
  } finally {
    store.close()
  }
  io.err(`archived ${written} batches into ${writer.dir}`)
  return 0
}
