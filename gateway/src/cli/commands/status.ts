import { loadConfig } from '../../config/load.ts'
import { parseListenAddress } from '../../config/common.ts'
import { FieldproofError } from '../../core/errors.ts'
import { CONFIG_OPTIONS, jsonText, str, type Command } from '../cli.ts'

/** The URL of the local API from the config (0.0.0.0 and :: mean this machine). */
export function apiUrl(listen: string): string {
  const p = parseListenAddress(listen)
  if (!p.ok) throw new FieldproofError('CONFIG_INVALID', p.reason)
  let host = p.value.host
  if (host === '0.0.0.0') host = '127.0.0.1'
  if (host === '::') host = '::1'
  return `http://${host.includes(':') ? `[${host}]` : host}:${p.value.port}`
}

/** The parts of GET /api/v1/status this command prints. */
interface StatusDoc {
  version?: string
  uptimeS?: number
  simulation?: boolean
  gateway?: { name?: string; address?: string }
  clock?: { state?: string; bootId?: string }
  counts?: { readings?: number; lastSeq?: string; pending?: number; lastBatchId?: string; openBatch?: number }
  store?: { usedBytes?: number; maxBytes?: number; full?: boolean }
  sinks?: { id: string; ackedBatchId: string; backlogBatches: number; state: string }[]
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'show the running gateway\'s status',
  options: { ...CONFIG_OPTIONS, url: { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof status [--url URL] [--config PATH] [--json]

Ask the running gateway for its status (GET /api/v1/status).

Options:
      --url URL       the gateway's API (default: from the config's [api] listen)
  -c, --config PATH   config file
      --json          print the status document as JSON
  -h, --help          this help
`,
  async run(args, io) {
    let base = str(args.values['url'])
    if (!base) {
      const { config } = loadConfig({ path: str(args.values['config']), env: io.env, cwd: io.cwd })
      base = apiUrl(config.api.listen)
    }
    let s: StatusDoc
    try {
      const res = await fetch(new URL('/api/v1/status', base), { signal: AbortSignal.timeout(5000) })
      s = (await res.json()) as StatusDoc
    } catch (e) {
      io.err(`fieldproof status: the gateway at ${base} does not answer (${(e as Error).message}); is it running? (systemctl status fieldproof, or fieldproof start)`)
      return 1
    }
    if (args.values['json']) {
      io.out(jsonText(s))
      return 0
    }
    const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`
    io.out(
      [
        `gateway   ${s.gateway?.name} ${s.gateway?.address}${s.simulation ? '  (simulation mode)' : ''}`,
        `version   ${s.version}, up ${s.uptimeS} s`,
        `clock     ${s.clock?.state}  boot ${s.clock?.bootId}`,
        `readings  ${s.counts?.readings} stored, last seq ${s.counts?.lastSeq}, ${s.counts?.pending} waiting for commit`,
        `batches   ${s.counts?.lastBatchId} sealed, ${s.counts?.openBatch} readings in the open batch`,
        `store     ${mb(s.store?.usedBytes ?? 0)} of ${mb(s.store?.maxBytes ?? 0)}${s.store?.full ? '  FULL: refusing input' : ''}`,
        `sinks     ${s.sinks?.length ? s.sinks.map((k) => `${k.id}: acked ${k.ackedBatchId}, backlog ${k.backlogBatches} (${k.state})`).join('; ') : 'none configured'}`,
      ].join('\n'),
    )
    return 0
  },
}
