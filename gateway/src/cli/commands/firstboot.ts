// `fieldproof firstboot`: apply the owner's fieldproof.toml from the boot
// partition (docs/first-boot.md; run once by fieldproof-firstboot.service).

import { resolve } from 'node:path'
import { runFirstboot } from '../../service/firstboot.ts'
import { jsonText, str, UsageError, type Command } from '../cli.ts'

export const firstbootCommand: Command = {
  name: 'firstboot',
  summary: 'apply fieldproof.toml from the boot partition (run once at first boot)',
  options: { 'boot-dir': { type: 'string' }, root: { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof firstboot --boot-dir DIR [--root DIR] [--json]

Apply DIR/fieldproof.toml: host name, Wi-Fi, SSH keys, time zone, the
Node-RED password, the gateway key (restored from [keystore]) and every
gateway config table (merged into /etc/fieldproof/fieldproof.toml). The file
is checked completely first: a bad file changes nothing and the error names
the key. Secrets are then removed from it and it is renamed
fieldproof.toml.applied. A report (gateway address, URLs, generated
passwords) goes to /var/lib/fieldproof/firstboot-report.json and
/home/admin/firstboot-report.txt, and is shown once on the status page.
Running it again when the file is already applied does nothing.

Options:
      --boot-dir DIR   directory holding fieldproof.toml (the boot partition: /boot/firmware)
      --root DIR       prefix of every system path written (default /)
      --json           print the result as JSON
  -h, --help           this help

See docs/first-boot.md and image/firstboot/fieldproof.toml (the commented template).
`,
  run(args, io) {
    const bootDir = str(args.values['boot-dir'])
    if (!bootDir) throw new UsageError('--boot-dir DIR is required')
    const rootArg = str(args.values['root'])
    const result = runFirstboot({ bootDir: resolve(io.cwd, bootDir), root: rootArg === undefined ? '/' : resolve(io.cwd, rootArg), log: (l) => io.err(l) })
    if (args.values['json']) {
      io.out(jsonText(result.status === 'applied' ? { status: result.status, reportFile: result.reportFile, applied: result.report.applied, gatewayAddress: result.report.gatewayAddress } : result))
    } else if (result.status === 'already-applied') {
      io.out(`nothing to do: ${result.appliedFile} shows the file was applied already`)
    } else {
      io.out(`applied: ${result.report.applied.join(', ')}\ngateway ${result.report.gatewayAddress}\nstatus page ${result.report.urls.statusPage}\nreport ${result.reportFile}`)
    }
    return 0
  },
}
