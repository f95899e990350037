// BLE source benchmark: advertisements per second decoded and stored, beside
// the raw decode ceiling measured in the same run, and memory figures.
//
//   node bench/ble.ts [--adverts N] [--devices D]
//
// 1. ceiling: registry lookup + BTHome decode of service data, nothing else;
// 2. policy: the same plus owner control, de-duplication and rate control;
// 3. end to end: a BlueZ-shaped service on a private dbus-daemon emits
//    PropertiesChanged signals; the source decodes them and the pipeline
//    stores them in SQLite (WAL, synchronous=FULL, group commit). The service
//    runs in this process too, so the figure is a lower bound for the source
//    alone (dbus-daemon is a separate process).
// Memory: heap after GC before and after the end-to-end run, and RSS.

import { setFlagsFromString } from 'node:v8'
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
const DEVICES = arg('devices', 500)
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`

const macs = Array.from({ length: DEVICES }, (_, i) => `c0:ff:ee:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`)
const frames = Array.from({ length: 256 }, (_, p) => bthomePlain(bthomeObjects(p, 20 + (p % 10) / 10, 50)))

// 1. Raw decode ceiling.
{
  const t0 = performance.now()
  let ok = 0
  for (let i = 0; i < N; i++) {
    const frame = { transport: 'ble' as const, serviceDataUuid: 'fcd2', mac: macs[i % DEVICES]!, bytes: frames[(i / DEVICES) & 0xff]! }
    const d = decodersFor(frame)[0]!
    if (safeDecode(d, frame).ok) ok++
  }
  const s = (performance.now() - t0) / 1000
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

// 3. End to end through D-Bus into SQLite.
{
  const daemon = await startDbusDaemon()
  const fake = new FakeBluez()
  await fake.start(daemon.address)
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
  const counts = () => source.status()['counts'] as { advertisements: number; readings: number; dropped: number }
  const sendAll = async (n: number, offset: number) => {
    for (let i = 0; i < n; i++) {
      const k = offset + i
      fake.advertise(macs[k % DEVICES]!, { rssi: -60, serviceData: { fcd2: frames[(k / DEVICES) & 0xff]! } })
      if (k % 997 === 0) fake.removeDevice(macs[(k + DEVICES / 2) % DEVICES]!)
      if (i % 500 === 499) await new Promise((r) => setImmediate(r))
    }
    while (counts().advertisements < offset + n) await new Promise((r) => setTimeout(r, 5))
  }
  await sendAll(Math.min(10_000, N), 0)
  gc()
  const heap0 = process.memoryUsage().heapUsed
  const readings0 = counts().readings
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  await sendAll(N, Math.min(10_000, N))
  // Wait until the last readings are durable (the stored count stops moving).
  let last = -1
  while (counts().readings + counts().dropped !== last) {
    last = counts().readings + counts().dropped
    await new Promise((r) => setTimeout(r, 100))
  }
  const s = (performance.now() - t0 - 100) / 1000
  const cpu = process.cpuUsage(cpu0)
  gc()
  const heap1 = process.memoryUsage().heapUsed
  const c = counts()
  console.log(
    `end to end (D-Bus → source → SQLite)  ${Math.round(N / s).toLocaleString('en')} adv/s, ${Math.round((c.readings - readings0) / s).toLocaleString('en')} readings/s stored; ` +
      `process CPU ${(((cpu.user + cpu.system) / 1e6 / s) * 100).toFixed(0)}% of one core (includes the BlueZ test service)`,
  )
  console.log(`memory              heap after GC ${mb(heap0)} → ${mb(heap1)} (${((heap1 - heap0) / 1048576).toFixed(2)} MB over ${N.toLocaleString('en')} advertisements from ${DEVICES} devices), RSS ${mb(process.memoryUsage().rss)}, external ${mb(process.memoryUsage().external)} (SQLite, socket buffers)`)
  console.log(`tables              ${JSON.stringify({ tracked: source.status()['trackedDevices'], nearby: source.status()['nearbyDevices'], dropped: c.dropped })}`)
  ac.abort()
  await run
  pipeline.stop()
  store.close()
  await fake.stop()
  await daemon.stop()
  rmSync(dir, { recursive: true, force: true })
}
