import { relative } from 'node:path'
import { loadConfig } from '../../config/load.ts'
import { Gateway } from '../../gateway.ts'
import { startGatewayService } from '../../service/gateway-service.ts'
import { CONFIG_OPTIONS, str, type Command } from '../cli.ts'

export const startCommand: Command = {
  name: 'start',
  summary: 'run the gateway (simulation mode when there is no config file)',
  options: { ...CONFIG_OPTIONS, 'http-listen': { type: 'string' }, 'lorawan-listen': { type: 'string' }, 'lorawan-station-listen': { type: 'string' }, 'mqtt-listen': { type: 'string' } },
  help: `Usage: fieldproof start [--config PATH] [--state-dir DIR] [--http-listen HOST:PORT]
                       [--lorawan-listen HOST:PORT] [--lorawan-station-listen HOST:PORT]
                       [--mqtt-listen HOST:PORT]

Run the gateway until SIGTERM or SIGINT, then stop intake, commit, seal the
open batch and exit 0 (within 5 seconds).

Without a config file (none named, none at /etc/fieldproof/fieldproof.toml or
$FIELDPROOF_CONFIG) the gateway runs in simulation mode: simulated sensors,
every listener on 127.0.0.1, state in ./.fieldproof/.

Options:
  -c, --config PATH          config file (TOML; see docs/configuration.md)
      --state-dir DIR        state directory (database, key, token), overrides the config
      --http-listen HOST:PORT  HTTP API address, overrides [api] listen
      --lorawan-listen HOST:PORT  Semtech UDP address, overrides [sources.lorawan] listen
      --lorawan-station-listen HOST:PORT
                               Basics Station LNS address, overrides [sources.lorawan.station] listen
      --mqtt-listen HOST:PORT  MQTT broker address, overrides [sources.mqtt] listen
  -h, --help                 this help

Several gateways can run side by side with distinct --state-dir and --http-listen.
`,
  async run(args, io) {
    const loaded = loadConfig({
      path: str(args.values['config']),
      overrides: { stateDir: str(args.values['state-dir']), listen: { http: str(args.values['http-listen']), lorawan: str(args.values['lorawan-listen']), 'lorawan-station': str(args.values['lorawan-station-listen']), mqtt: str(args.values['mqtt-listen']) } },
      env: io.env,
      cwd: io.cwd,
    })
    const gw = new Gateway({ loaded })
    let started
    try {
      started = await gw.start()
    } catch (e) {
      await gw.stop().catch(() => undefined)
      throw e
    }
    const url = `http://${started.api.host.includes(':') ? `[${started.api.host}]` : started.api.host}:${started.api.port}`
    const rel = (p: string) => (p.startsWith(io.cwd) ? relative(io.cwd, p) || '.' : p)
    io.err(
      [
        `Fieldproof gateway ${started.address}${loaded.simulation ? ' — simulation mode (no config file)' : ''}`,
        `  status page   ${url}/`,
        `  API           ${url}/api/v1/status`,
        `  state         ${rel(loaded.config.gateway.state_dir)}`,
        `  API token     cat ${rel(started.tokenFile)}   (needed for POST /api/v1/readings)`,
        loaded.simulation ? `  try           curl -s ${url}/api/v1/readings?order=desc\\&limit=3` : '',
        '  stop          Ctrl-C',
      ].filter(Boolean).join('\n'),
    )
    // systemd (Type=notify): READY=1, the health-gated watchdog, STOPPING=1. No-op outside systemd.
    const service = await startGatewayService(gw, `gateway ${started.address} listening on ${url}`)
    await new Promise<void>((resolve) => {
      let stopping = false
      const stop = (sig: string) => {
        if (stopping) return
        stopping = true
        gw.log.info({ signal: sig }, 'stopping')
        void service.stopping()
        const force = setTimeout(() => {
          gw.log.error('shutdown took longer than 5 s; exiting')
          process.exit(1)
        }, 5000)
        force.unref()
        gw.stop().then(resolve, (e: unknown) => {
          gw.log.error({ err: e }, 'error while stopping')
          resolve()
        })
      }
      process.once('SIGTERM', () => stop('SIGTERM'))
      process.once('SIGINT', () => stop('SIGINT'))
    })
    return 0
  },
}
