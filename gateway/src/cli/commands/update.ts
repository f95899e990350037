// `fieldproof update <bundle>`: install a signed release into the inactive
// slot, switch, restart, roll back when unhealthy (docs/updates.md).

import { resolve } from 'node:path'
import { BundleError } from '../../service/release-bundle.ts'
import { DEFAULT_HEALTH_TIMEOUT_MS, runUpdate } from '../../service/update.ts'
import { jsonText, str, UsageError, type Command } from '../cli.ts'

export const updateCommand: Command = {
  name: 'update',
  summary: 'install a signed release bundle (A/B slots, automatic rollback)',
  options: {
    root: { type: 'string' },
    config: { type: 'string', short: 'c' },
    'restart-command': { type: 'string' },
    'health-timeout': { type: 'string' },
    json: { type: 'boolean' },
  },
  help: `Usage: fieldproof update BUNDLE [--root DIR] [--restart-command CMD]
                        [--health-timeout SECONDS] [--config PATH] [--json]

Install a gateway release built by scripts/build-release.ts:
  1. check its Ed25519 signature against /etc/fieldproof/release-keys/*.pub and
     the SHA-256 of every file; a bad bundle is refused with nothing touched;
  2. unpack it into the inactive slot (/opt/fieldproof/slots/a or b);
  3. switch /opt/fieldproof/current to it (atomic rename);
  4. restart the gateway (systemctl restart fieldproof);
  5. wait for GET /api/v1/status on the configured API address to answer
     healthy with the new version; otherwise switch back and restart again.
Config, keys and data are never touched. Exit 0 installed, 1 refused or rolled back.

Options:
      --root DIR              prefix of every system path (default /)
  -c, --config PATH           gateway config with the API address (default <root>/etc/fieldproof/fieldproof.toml)
      --restart-command CMD   shell command that restarts the gateway (default: systemctl restart fieldproof)
      --health-timeout S      seconds to wait for a healthy answer (default ${DEFAULT_HEALTH_TIMEOUT_MS / 1000})
      --json                  print the result as JSON
  -h, --help                  this help

See docs/updates.md.
`,
  async run(args, io) {
    const bundle = args.positionals[0]
    if (!bundle) throw new UsageError('BUNDLE is required')
    const t = str(args.values['health-timeout'])
    const seconds = t === undefined ? DEFAULT_HEALTH_TIMEOUT_MS / 1000 : Number(t)
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError('--health-timeout must be a positive number of seconds')
    const root = str(args.values['root'])
    const config = str(args.values['config'])
    const restartCommand = str(args.values['restart-command'])
    let result
    try {
      result = await runUpdate({
        bundle: resolve(io.cwd, bundle),
        root: root === undefined ? '/' : resolve(io.cwd, root),
        ...(config !== undefined ? { configPath: resolve(io.cwd, config) } : {}),
        ...(restartCommand !== undefined ? { restartCommand } : {}),
        healthTimeoutMs: seconds * 1000,
        log: (l) => io.err(l),
      })
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'EACCES' || code === 'EPERM') {
        io.err(`fieldproof update: ${(e as Error).message}: run it as root (sudo fieldproof update ...)`)
        return 1
      }
      if (!(e instanceof BundleError)) throw e
      if (args.values['json']) io.out(jsonText({ status: 'refused', reason: e.message }))
      io.err(`fieldproof update: refused: ${e.message}`)
      return 1
    }
    if (args.values['json']) io.out(jsonText(result))
    else if (result.status === 'installed') io.out(`installed ${result.version} in slots/${result.slot}; it answers healthy`)
    else if (result.status === 'rolled-back') io.out(`rolled back to slots/${result.slot}${result.previousHealthy ? ' (healthy)' : ' (NOT healthy: check journalctl -u fieldproof)'}: ${result.reason}`)
    else io.out(`failed: ${result.reason}`)
    return result.status === 'installed' ? 0 : 1
  },
}
