// BLE source benchmark: advertisements per second decoded and stored, beside
// the raw decode ceiling measured in the same run, and memory figures.
//
//   node bench/ble.ts [--adverts N] [--devices D] [--in-process]
//
// 1. ceiling: registry lookup + BTHome decode of service data, nothing else;
// 2. policy: the same plus owner control, de-duplication and rate control;
// 3. end to end: a BlueZ-shaped service on a private dbus-daemon emits
//    InterfacesAdded / PropertiesChanged / InterfacesRemoved signals for 500
//    devices coming and going; the source decodes them and the pipeline
//    stores them in SQLite (WAL, synchronous=FULL, group commit). The service
//    runs in a child process (this file with --advertiser), as bluetoothd
//    does, so CPU and memory printed are the gateway side's own; dbus-daemon
//    is a third process. --in-process runs the service in this process
//    instead (the figures then include it).
// Memory: heap after GC before and after the end-to-end run, the peak and
// final RSS / heap total / external memory of this process, sampled every
// 20 ms during the run.

import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Value } from '@sinclair/typebox/value'
import { BleSourceSection } from '../gateway/src/config/sections/ble.ts'
import { safeDecode } from '../gateway/src/core/decoder.ts'
import { decodersFor } from '../gateway/src/decoders/index.ts'
import { ReadingBus } from '../gateway/src/pipeline/bus.ts'
import { BlePolicy } from '../gateway/src/sources/ble/policy.ts'
import { BleSource, type BleConfig } from '../gateway/src/sources/ble/source.ts'
import { bthomeObjects, bthomePlain, FakeBluez, startDbusDaemon } from '../test/helpers/fake-bluez.ts'
import { openPipeline } from '../test/helpers/readings.ts'

setFlagsFromString('--expose_gc')
const gc = runInNewContext('gc') as () => void
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}
const N = arg('adverts', 100_000)
const IN_PROCESS = process.argv.includes('--in-process')
const DEVICES = arg('devices', 500)
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`

const macs = Array.from({ length: DEVICES }, (_, i) => `c0:ff:ee:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`)
const frames = Array.from({ length: 256 }, (_, p) => bthomePlain(bthomeObjects(p, 20 + (p % 10) / 10, 50)))

/** Child role: the BlueZ-shaped service, told what to advertise over IPC. */
async function advertiser(address: string): Promise<void> {
  const fake = new FakeBluez()
  await fake.start(address)
  const send = process.send?.bind(process)
  if (!send) throw new Error('--advertiser runs as a child with an IPC channel')
  process.on('message', (m: { cmd: string; offset?: number; n?: number }) => {
    void (async () => {
      if (m.cmd === 'send') {
        await emit(fake, m.offset ?? 0, m.n ?? 0)
        send({ done: 'send' })
      } else if (m.cmd === 'discovering') {
        while (!fake.discovering) await new Promise((r) => setTimeout(r, 10))
        send({ done: 'discovering' })
      } else if (m.cmd === 'stop') {
        await fake.stop()
        send({ done: 'stop' }, () => process.exit(0))
      }
    })()
  })
  send({ done: 'ready' })
}

/** Advertisements offset … offset+n-1: device k % DEVICES, now and then one leaves BlueZ's cache. */
async function emit(fake: FakeBluez, offset: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = offset + i
    fake.advertise(macs[k % DEVICES]!, { rssi: -60, serviceData: { fcd2: frames[(k / DEVICES) & 0xff]! } })
    if (k % 997 === 0) fake.removeDevice(macs[(k + DEVICES / 2) % DEVICES]!)
    if (i % 500 === 499) await new Promise((r) => setImmediate(r))
  }
}

const advIdx = process.argv.indexOf('--advertiser')
if (advIdx > 0) {
  await advertiser(process.argv[advIdx + 1]!)
} else {
  await main()
}

async function main(): Promise<void> {
  // The end-to-end run goes first, so the memory it reports is not inflated by
  // the garbage of the two in-process loops below.
  const out: string[] = []
  let e2eRate = 0
  let e2eCapacity = 0
  // 3. End to end through D-Bus into SQLite.
  {
    const daemon = await startDbusDaemon()
    // The BlueZ-shaped service: a child process (default) or this process (--in-process).
    let child: ChildProcess | undefined
    let fake: FakeBluez | undefined
    const ask = (cmd: string, extra: Record<string, number> = {}): Promise<void> =>
      new Promise((resolve, reject) => {
        const c = child!
        const on = (m: { done?: string }) => {
          if (m.done !== cmd) return
          c.off('message', on)
          c.off('exit', onExit)
          resolve()
        }
        const onExit = (code: number | null) => reject(new Error(`advertiser exited with ${code}`))
        c.on('message', on)
        c.once('exit', onExit)
        c.send({ cmd, ...extra })
      })
    if (IN_PROCESS) {
      fake = new FakeBluez()
      await fake.start(daemon.address)
    } else {
      child = fork(fileURLToPath(import.meta.url), ['--advertiser', daemon.address], { stdio: 'inherit' })
      await new Promise<void>((resolve, reject) => {
        child!.once('message', () => resolve())
        child!.once('exit', (code) => reject(new Error(`advertiser exited with ${code}`)))
      })
    }
    const dir = mkdtempSync(join(tmpdir(), 'fp-bench-ble-'))
    const { store, pipeline, metrics } = openPipeline(dir, { maxPending: 100_000 })
    const config: BleConfig = { ...(Value.Default(BleSourceSection, {}) as BleConfig), enabled: true, bus_address: daemon.address, accept_all: ['bthome'], min_interval_seconds: 0 }
    const source = new BleSource({ config, store, backoffMinMs: 50 })
    const ac = new AbortController()
    let mono = 1n
    const run = source.start(
      { ingest: (r) => pipeline.ingest(r), now: () => ({ bootId: '0'.repeat(32), monoNs: (mono += 1000n), wallMs: Date.now(), clock: 'ntp' }), log: pino({ level: 'silent' }), metrics, bus: new ReadingBus() },
      ac.signal,
    )
    while (source.status()['state'] !== 'discovering') await new Promise((r) => setTimeout(r, 20))
    if (child) await ask('discovering')
    const counts = () => source.status()['counts'] as { advertisements: number; readings: number; dropped: number }
    const sendAll = async (n: number, offset: number) => {
      if (fake) await emit(fake, offset, n)
      else await ask('send', { offset, n })
      while (counts().advertisements < offset + n) await new Promise((r) => setTimeout(r, 5))
    }
    const warm = Math.min(10_000, N)
    await sendAll(warm, 0)
    gc()
    const mem0 = process.memoryUsage()
    const peak = { rss: mem0.rss, heapTotal: mem0.heapTotal, external: mem0.external, arrayBuffers: mem0.arrayBuffers }
    const sampler = setInterval(() => {
      const m = process.memoryUsage()
      peak.rss = Math.max(peak.rss, m.rss)
      peak.heapTotal = Math.max(peak.heapTotal, m.heapTotal)
      peak.external = Math.max(peak.external, m.external)
      peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers)
    }, 20)
    const readings0 = counts().readings
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    await sendAll(N, warm)
    // Wait until the last readings are durable (the stored count stops moving).
    let last = -1
    while (counts().readings + counts().dropped !== last) {
      last = counts().readings + counts().dropped
      await new Promise((r) => setTimeout(r, 100))
    }
    const s = (performance.now() - t0 - 100) / 1000
    const cpu = process.cpuUsage(cpu0)
    clearInterval(sampler)
    gc()
    const mem1 = process.memoryUsage()
    const c = counts()
    e2eRate = N / s
    e2eCapacity = N / ((cpu.user + cpu.system) / 1e6)
    const where = IN_PROCESS ? 'this process, BlueZ test service included' : 'gateway side only; the BlueZ test service is a child process'
    out.push(
      `end to end (D-Bus → source → SQLite)  ${Math.round(N / s).toLocaleString('en')} adv/s, ${Math.round((c.readings - readings0) / s).toLocaleString('en')} readings/s stored ` +
        `(@RATIO@); CPU ${(((cpu.user + cpu.system) / 1e6 / s) * 100).toFixed(0)}% of one core, ${((cpu.user + cpu.system) / N).toFixed(1)} µs CPU per advertisement, i.e. ${Math.round(N / ((cpu.user + cpu.system) / 1e6)).toLocaleString('en')} adv/s on one saturated core (@CAPRATIO@) (${where})`,
    )
    out.push(`memory              heap used after GC ${mb(mem0.heapUsed)} → ${mb(mem1.heapUsed)} (${((mem1.heapUsed - mem0.heapUsed) / 1048576).toFixed(2)} MB over ${N.toLocaleString('en')} advertisements from ${DEVICES} devices coming and going)`)
    out.push(
      `                    RSS ${mb(mem0.rss)} → ${mb(mem1.rss)} (peak ${mb(peak.rss)}); heap total ${mb(mem0.heapTotal)} → ${mb(mem1.heapTotal)} (peak ${mb(peak.heapTotal)}); ` +
        `external ${mb(mem1.external)} (peak ${mb(peak.external)}), array buffers ${mb(mem1.arrayBuffers)} (peak ${mb(peak.arrayBuffers)}) [${where}]`,
    )
    const spaces = getHeapSpaceStatistics()
      .filter((x) => x.space_size >= 1048576)
      .map((x) => `${x.space_name.replace('_space', '')} ${mb(x.space_used_size)} of ${mb(x.space_size)}`)
      .join(', ')
    out.push(`heap spaces         ${spaces}`)
    out.push(`tables              ${JSON.stringify({ tracked: source.status()['trackedDevices'], nearby: source.status()['nearbyDevices'], dropped: c.dropped })}`)
    ac.abort()
    await run
    pipeline.stop()
    store.close()
    if (fake) await fake.stop()
    if (child) await ask('stop')
    await daemon.stop()
    rmSync(dir, { recursive: true, force: true })
  }

  // 1. Raw decode ceiling.
  let ceilingRate = 0
  {
    const t0 = performance.now()
    let ok = 0
    for (let i = 0; i < N; i++) {
      const frame = { transport: 'ble' as const, serviceDataUuid: 'fcd2', mac: macs[i % DEVICES]!, bytes: frames[(i / DEVICES) & 0xff]! }
      const d = decodersFor(frame)[0]!
      if (safeDecode(d, frame).ok) ok++
    }
    const s = (performance.now() - t0) / 1000
    ceilingRate = N / s
    console.log(`decode ceiling      ${Math.round(N / s).toLocaleString('en')} adv/s (${ok} decoded)`)
  }

  // 2. Policy (decode + allowlist/accept_all + de-duplication + rate control).
  {
    const policy = new BlePolicy({
      acceptAll: new Set(['bthome']),
      minIntervalMs: 0,
      repeatWindowMs: 30_000,
      maxTracked: 2048,
      decodersFor: (f) => decodersFor(f).filter((d) => d.match.serviceDataUuid !== undefined || d.match.manufacturerId !== undefined),
    })
    const t0 = performance.now()
    let readings = 0
    for (let i = 0; i < N; i++) {
      const mac = macs[i % DEVICES]!
      const r = policy.decide(mac, [{ transport: 'ble', serviceDataUuid: 'fcd2', mac, bytes: frames[(i / DEVICES) & 0xff]! }], i)
      if (r.kind === 'reading') readings++
    }
    const s = (performance.now() - t0) / 1000
    console.log(`policy              ${Math.round(N / s).toLocaleString('en')} adv/s (${readings} readings)`)
  }

  for (const line of out) {
    console.log(
      line
        .replace('@RATIO@', `${((e2eRate / ceilingRate) * 100).toFixed(1)}% of the decode ceiling`)
        .replace('@CAPRATIO@', `${((e2eCapacity / ceilingRate) * 100).toFixed(1)}% of the ceiling`),
    )
  }
}
