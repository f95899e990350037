// The composition root: the only module that wires config, identity, store,
// pipeline, sources, sinks and the API together. `fieldproof start` runs it.

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { signBatchHeader, signDigest } from './core/batch.ts'
import { hexToBytes } from './core/hex.ts'
import type { Hex } from './core/types.ts'
import type { ProofAnchor } from './core/proof.ts'
import type { LoadedConfig } from './config/load.ts'
import { parseListenAddress } from './config/common.ts'
import { loadOrCreateKey } from './identity/key-file.ts'
import { loadOrCreateSecret } from './identity/secret-file.ts'
import { createLogger, RateLimitedLog } from './log/logger.ts'
import { ApiServer } from './api/server.ts'
import { ReadingBus } from './pipeline/bus.ts'
import { Clock } from './pipeline/clock.ts'
import { MetricsRegistry } from './pipeline/metrics.ts'
import { Pipeline } from './pipeline/pipeline.ts'
import { DeviceRegistry } from './pipeline/devices.ts'
import type { Source, SourceContext } from './pipeline/source.ts'
import { SinkRunner, SinkRunners } from './pipeline/sink-runner.ts'
import { SINK_PLUGINS, SOURCE_PLUGINS, type PluginContext } from './plugins.ts'
import type { BleSource } from './sources/ble/source.ts'
import { deriveHealth, type GatewayHealth } from './sources/gpio/status-led.ts'
import { MdnsAnnouncer, gatewayServices } from './discovery/mdns.ts'
import { Store } from './store/store.ts'
import { FirstbootReportFile } from './service/firstboot-report.ts'
import { REPORT_FILE_NAME as FIRSTBOOT_REPORT_FILE } from './service/firstboot-report.ts'

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version

export const DB_FILE = 'fieldproof.db'

export interface GatewayOptions {
  readonly loaded: LoadedConfig
  readonly log?: Logger
}

export interface StartedGateway {
  readonly address: Hex
  readonly api: { host: string; port: number }
  readonly keyCreated: boolean
  readonly tokenFile: string
}

export class Gateway {
  readonly loaded: LoadedConfig
  readonly log: Logger
  readonly metrics = new MetricsRegistry()
  readonly bus = new ReadingBus()
  readonly clock: Clock
  store: Store | undefined
  pipeline: Pipeline | undefined
  api: ApiServer | undefined
  devices: DeviceRegistry | undefined
  sinks: SinkRunners | undefined
  readonly sources: Source[] = []
  #abort = new AbortController()
  #running: Promise<void>[] = []
  #address: Hex | undefined
  #flushTimer: NodeJS.Timeout | undefined
  #rejects: RateLimitedLog | undefined
  #phase: 'starting' | 'running' | 'stopping' | 'stopped' = 'starting'
  #failedSources = 0
  #mdns: MdnsAnnouncer | undefined

  constructor(o: GatewayOptions) {
    this.loaded = o.loaded
    const c = o.loaded.config
    this.log = o.log ?? createLogger({ level: c.gateway.log_level, name: c.gateway.name })
    this.clock = new Clock({ syncCheck: c.clock.sync_check })
  }

  get address(): Hex | undefined {
    return this.#address
  }

  async start(): Promise<StartedGateway> {
    const c = this.loaded.config
    const log = this.log
    const key = loadOrCreateKey(c.identity.key_file)
    this.#address = key.address
    if (key.created) log.info({ address: key.address, keyFile: c.identity.key_file }, 'generated the gateway key')
    const token = loadOrCreateSecret(c.api.token_file, () => randomBytes(32).toString('base64url'))

    const store = new Store(join(c.gateway.state_dir, DB_FILE))
    this.store = store
    const privateKey = key.privateKey
    const rejects = new RateLimitedLog(log)
    // Report the tail of a flood of rejections (counts suppressed since the last line).
    this.#flushTimer = setInterval(() => rejects.flush(), 60_000)
    this.#flushTimer.unref()
    this.#rejects = rejects
    // Sinks first: retention must know every enabled sink's cursor from the start (invariant 5).
    const keyBytes = hexToBytes(privateKey, 32)
    const sinkCtx = { config: c, simulation: this.loaded.simulation, store, metrics: this.metrics, log, clock: this.clock, bus: this.bus, rejects, gatewayAddress: key.address }
    const runners: SinkRunner[] = []
    for (const plugin of SINK_PLUGINS) {
      const inst = await plugin.create({ ...sinkCtx, log: log.child({ sink: plugin.id }), signDigest: (d) => signDigest(d, keyBytes) })
      if (inst) runners.push(new SinkRunner({ sink: inst.sink, settings: inst.settings, store, bus: this.bus, log: log.child({ sink: inst.sink.id }) }))
    }
    const sinks = new SinkRunners(runners, this.metrics)
    this.sinks = sinks
    const pipeline = new Pipeline({
      store,
      bus: this.bus,
      metrics: this.metrics,
      signer: { address: key.address, sign: (h) => signBatchHeader(h, privateKey) },
      sealThreadKey: privateKey,
      batchMaxReadings: c.batch.max_readings,
      batchMaxAgeMs: c.batch.max_age_seconds * 1000,
      maxPending: c.store.max_pending,
      commitMaxReadings: c.store.commit_max_readings,
      commitWorker: c.store.commit_worker,
      retentionMs: c.store.retention_hours * 3_600_000,
      maxBytes: c.store.max_bytes,
      ...(sinks.size > 0 ? { ackedBatchId: () => sinks.minAcked() ?? 0n } : {}),
      onError: (err, where) => log.error({ err, where }, 'pipeline error'),
    })
    this.pipeline = pipeline
    // Proof bundles carry where their batch was anchored, once the anchor sink has a confirmed anchor for it.
    let proofAnchor: ((batchId: bigint) => ProofAnchor | undefined) | undefined
    const anchorCfg = c.sinks.anchor
    if (anchorCfg?.enabled && /^0x[0-9a-fA-F]{40}$/.test(anchorCfg.contract)) {
      const { AnchorState } = await import('./sinks/anchor/state.ts')
      const anchors = new AnchorState(store, anchorCfg.chain_id, anchorCfg.contract as Hex)
      proofAnchor = (batchId) => (store.closed ? undefined : anchors.proofAnchor(batchId))
    }
    const devices = new DeviceRegistry({ store, metrics: this.metrics, log, verifyWorkers: c.sources.mqtt.signature_workers })
    this.devices = devices
    this.metrics.gauge('fieldproof_store_bytes', 'Database size in bytes: live pages plus WAL (used), file, WAL, and the configured cap', () => {
      if (store.closed) return []
      const z = store.size()
      return [[{ kind: 'used' }, z.usedBytes], [{ kind: 'file' }, z.fileBytes], [{ kind: 'wal' }, z.walBytes], [{ kind: 'cap' }, c.store.max_bytes]]
    })
    // Sink backlog gauges and counters (one series per enabled sink) are registered by SinkRunners.
    sinks.start()
    this.bus.onBatch((b) => log.debug({ batchId: b.header.batchId.toString(), count: b.header.count }, 'batch sealed'))

    const listen = parseListenAddress(c.api.listen)
    if (!listen.ok) throw new Error(listen.reason)
    this.api = new ApiServer({
      pipeline,
      clock: this.clock,
      metrics: this.metrics,
      log,
      rejects,
      token: token.value,
      maxBodyBytes: c.api.max_body_bytes,
      maxReadingsPerRequest: c.api.max_readings_per_request,
      httpSourceEnabled: c.sources.http.enabled,
      status: () => this.status(),
      devices,
      bleNearby: () => (this.sources.find((s) => s.id === 'ble') as BleSource | undefined)?.nearby(),
      firstbootReport: new FirstbootReportFile(join(c.gateway.state_dir, FIRSTBOOT_REPORT_FILE)),
      ...(proofAnchor ? { proofAnchor } : {}),
    })
    const api = await this.api.listen(listen.value.host, listen.value.port)

    const pluginCtx: PluginContext = {
      config: c,
      simulation: this.loaded.simulation,
      store,
      metrics: this.metrics,
      log,
      clock: this.clock,
      bus: this.bus,
      rejects,
      gatewayAddress: key.address,
      devices,
      health: () => this.health(),
    }
    for (const plugin of SOURCE_PLUGINS) {
      const source = await plugin.create({ ...pluginCtx, log: log.child({ source: plugin.id }) })
      if (source) this.sources.push(source)
    }
    const ctx: SourceContext = {
      ingest: (r) => pipeline.ingest(r),
      now: () => this.clock.now(),
      log,
      metrics: this.metrics,
      bus: this.bus,
    }
    for (const s of this.sources) {
      const child = log.child({ source: s.id })
      this.#running.push(
        s.start({ ...ctx, log: child }, this.#abort.signal).catch((err: unknown) => {
          this.#failedSources++
          child.error({ err }, 'source stopped with an error')
        }),
      )
    }
    if (c.discovery.mdns) {
      this.#mdns = new MdnsAnnouncer({ instance: c.gateway.name, host: c.gateway.name, interface: c.discovery.interface, log: log.child({ component: 'mdns' }), services: gatewayServices(c, api.port, key.address, VERSION) })
      await this.#mdns.start().catch((err: unknown) => log.warn({ err }, 'mDNS: cannot announce'))
    }
    this.#phase = 'running'
    log.info(
      { address: key.address, api: `http://${api.host}:${api.port}`, simulation: this.loaded.simulation, stateDir: c.gateway.state_dir, sources: this.sources.map((s) => s.id), sinks: this.sinks?.runners.map((r) => r.sink.id) ?? [] },
      'gateway started',
    )
    return { address: key.address, api, keyCreated: key.created, tokenFile: c.api.token_file }
  }

  status(): Record<string, unknown> {
    const c = this.loaded.config
    const store = this.store
    const p = this.pipeline
    const stats = store?.stats()
    return {
      version: VERSION,
      gateway: { name: c.gateway.name, address: this.#address },
      simulation: this.loaded.simulation,
      clock: { state: this.clock.state, bootId: this.clock.bootId, wallMs: Date.now() },
      counts: {
        readings: stats?.readings ?? 0,
        firstSeq: stats?.firstSeq?.toString() ?? null,
        lastSeq: stats?.lastSeq.toString() ?? '0',
        batches: stats?.batches ?? 0,
        lastBatchId: stats?.lastBatchId.toString() ?? '0',
        pending: p?.state.pending ?? 0,
        openBatch: p?.state.open ?? 0,
      },
      store: {
        usedBytes: stats?.usedBytes ?? 0,
        fileBytes: stats?.fileBytes ?? 0,
        walBytes: stats?.walBytes ?? 0,
        maxBytes: c.store.max_bytes,
        full: p?.state.storeFull ?? false,
        retentionHours: c.store.retention_hours,
      },
      sinks: this.sinks?.status() ?? [],
      sources: Object.fromEntries(this.sources.map((s) => [s.id, s.status?.() ?? {}])),
      health: this.health(),
      discovery: this.#mdns?.status() ?? null,
    }
  }

  /** The gateway's state as the status LED shows it (sources/gpio/status-led.ts). */
  health(): GatewayHealth {
    return deriveHealth({
      phase: this.#phase,
      storeFull: this.pipeline?.state.storeFull ?? false,
      failedSources: this.#failedSources,
      sinkStates: this.sinks?.status().map((s) => s.state) ?? [],
    })
  }

  /**
   * Graceful shutdown: stop intake (sources, then the API), commit what is
   * queued, seal the open batch, close the store.
   */
  async stop(): Promise<void> {
    this.#phase = 'stopping'
    // Goodbye first (TTL 0), so clients stop using the API before it closes.
    await this.#mdns?.stop()
    this.#abort.abort()
    await Promise.allSettled(this.#running)
    // Let in-flight HTTP requests finish their commit before closing.
    const closing = this.api?.close()
    this.pipeline?.stop()
    await closing
    await this.devices?.close()
    // The in-flight send of each sink is aborted; its batch is sent again after the next start.
    await this.sinks?.stop()
    this.store?.close()
    if (this.#flushTimer) clearInterval(this.#flushTimer)
    this.#rejects?.flush()
    this.#phase = 'stopped'
    this.log.info('gateway stopped')
  }
}
