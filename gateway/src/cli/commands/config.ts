import { loadConfig } from '../../config/load.ts'
import { renderConfigTemplate } from '../../config/template.ts'
import { CONFIG_OPTIONS, jsonText, str, type Command } from '../cli.ts'

const print: Command = {
  name: 'print',
  summary: 'print a fully commented config template',
  options: {},
  help: `Usage: fieldproof config print > fieldproof.toml

Print every config key, commented out, with its description and default —
rendered from the live schema, so it is always complete.
`,
  run(_args, io) {
    io.out(renderConfigTemplate().trimEnd())
    return 0
  },
}

const check: Command = {
  name: 'check',
  summary: 'validate a config file and print the result',
  options: { ...CONFIG_OPTIONS, json: { type: 'boolean' } },
  help: `Usage: fieldproof config check [--config PATH] [--json]

Load and validate the config exactly as \`fieldproof start\` would; print every
problem as "file: key: message", or (with --json) the resolved config.
`,
  run(args, io) {
    const loaded = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    if (args.values['json']) io.out(jsonText({ path: loaded.path, simulation: loaded.simulation, config: loaded.config }))
    else io.out(loaded.simulation ? 'no config file: simulation mode' : `${loaded.path}: ok`)
    return 0
  },
}

export const configCommand: Command = {
  name: 'config',
  summary: 'print a config template or check a config file',
  options: {},
  subcommands: [print, check],
  help: `Usage: fieldproof config <print|check> [options]

  print   print a fully commented template of every key (docs/configuration.md)
  check   validate a config file
`,
}
