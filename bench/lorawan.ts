// LoRaWAN benchmark: uplinks per second from a simulated packet forwarder
// (real UDP on 127.0.0.1, Semtech protocol v2) to durable readings (MIC
// checked, FCnt persisted, decrypted, Cayenne LPP decoded, committed with
// synchronous=FULL), printed beside the raw ceiling of the same decode work
// in a bare loop in the same run. Never asserted in tests.
//
//   bash scripts/run-node bench/lorawan.ts [--uplinks 20000] [--devices 50] [--per-push 8]
//
// Ceiling loop, per uplink: parseDatagram of the PUSH_DATA, parsePhyPayload,
// reconstructFCnt, verifyDataFrameMic, decryptFrmPayload, Cayenne LPP decode,
// radio metadata and canonical encoding. It excludes what only the server
// does: UDP, the dedup window timer, the state and reading commits.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { encodeReading } from '../gateway/src/core/canonical.ts'
import { aesKey, type AesKey } from '../gateway/src/core/lorawan/crypto.ts'
import { buildDataFrame, decryptFrmPayload, parsePhyPayload, verifyDataFrameMic } from '../gateway/src/core/lorawan/phy.ts'
import type { Reading } from '../gateway/src/core/types.ts'
import { decodeCayenneLpp } from '../gateway/src/decoders/cayenne-lpp.ts'
import { Clock } from '../gateway/src/pipeline/clock.ts'
import { reconstructFCnt } from '../gateway/src/sources/lorawan/fcnt.ts'
import { frameKeys, radioMeta } from '../gateway/src/sources/lorawan/radio.ts'
import { buildDatagram, parseDatagram, type Rxpk } from '../gateway/src/sources/lorawan/semtech-udp.ts'
import { LorawanSource } from '../gateway/src/sources/lorawan/server.ts'
import { PacketForwarder, rxpkFor } from '../test/helpers/packet-forwarder.ts'
import { openPipeline } from '../test/helpers/readings.ts'

const { values } = parseArgs({ options: { uplinks: { type: 'string', default: '20000' }, devices: { type: 'string', default: '50' }, 'per-push': { type: 'string', default: '8' } } })
const N = Number(values.uplinks)
const D = Number(values.devices)
const PER_PUSH = Number(values['per-push'])
const NWK = aesKey('44024241ed4ce9a68c6a8bc055233fd3') as AesKey
const APP = aesKey('ec925802ae430ca77fd3dd73cb2cc588') as AesKey
const GW = 'aa555a0000000001'
const devAddr = (d: number): number => (0x26000000 + d) >>> 0
// Cayenne LPP: temperature, humidity, barometer (11 bytes, a typical sensor frame).
const payload = (i: number) => new Uint8Array([0x01, 0x67, (200 + (i % 50)) >> 8, (200 + (i % 50)) & 0xff, 0x02, 0x68, 80, 0x03, 0x73, 0x27, 0x7f])

// Frames: device d sends counters 0, 1, 2, ... in order.
const frames: Uint8Array[] = []
for (let i = 0; i < N; i++) {
  const d = i % D
  const b = buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: devAddr(d), fcnt32: Math.floor(i / D), fport: 1, payload: payload(i) }, { nwkSKey: NWK, appSKey: APP })
  if (!b.ok) throw new Error(b.reason)
  frames.push(b.bytes)
}
const rxpks: Rxpk[] = frames.map((f, i) => rxpkFor(f, { tmst: (i * 1000) >>> 0 }))

// ---------------------------------------------------------------- ceiling
function ceiling(): number {
  const last = new Array<number | null>(D).fill(null)
  const datagrams: Uint8Array[] = []
  for (let i = 0; i < N; i += PER_PUSH) {
    const b = buildDatagram({ type: 'PUSH_DATA', version: 2, token: i & 0xffff, gatewayEui: GW, rxpk: rxpks.slice(i, i + PER_PUSH) })
    if (!b.ok) throw new Error(b.reason)
    datagrams.push(b.bytes)
  }
  const received = new Clock({ syncCheck: 'none' }).now()
  const t0 = performance.now()
  let n = 0
  for (const dg of datagrams) {
    const p = parseDatagram(dg)
    if (!p.ok || p.packet.type !== 'PUSH_DATA') throw new Error('parse')
    for (const rx of p.packet.rxpk) {
      const ph = parsePhyPayload(rx.data)
      if (!ph.ok || ph.frame.kind !== 'data') throw new Error('phy')
      const f = ph.frame
      const d = f.devAddr - 0x26000000
      const fc = reconstructFCnt(f.fcnt16, last[d] ?? null)
      if (!fc.ok || !verifyDataFrameMic(f, NWK, fc.fcnt32)) throw new Error('mic')
      last[d] = fc.fcnt32
      const plain = decryptFrmPayload(f, { nwkSKey: NWK, appSKey: APP }, fc.fcnt32)
      const dec = decodeCayenneLpp(plain)
      if (!dec.ok) throw new Error('lpp')
      const r: Reading = {
        deviceId: `bench-${d}`,
        source: 'lorawan',
        received,
        metrics: dec.metrics,
        radio: radioMeta(frameKeys('session', f, fc.fcnt32), [{ gatewayEui: GW, rxpk: rx, monoNs: 0n }]),
        raw: plain,
        auth: { kind: 'lorawan-mic', devAddr: f.devAddr, fcnt: fc.fcnt32 },
      }
      encodeReading(r)
      n++
    }
  }
  return n / ((performance.now() - t0) / 1000)
}

// ---------------------------------------------------------------- server
async function server(): Promise<{ rate: number; p50: number; stateTx: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'fieldproof-bench-lorawan-'))
  try {
    const { store, pipeline, metrics } = openPipeline(dir, { batchMaxReadings: 1000, batchMaxAgeMs: 10_000, maxPending: 100_000 })
    for (let d = 0; d < D; d++) {
      store.upsertDevice({
        id: `bench-${d}`,
        kind: 'lorawan',
        config: JSON.stringify({ activation: 'abp', lorawanVersion: '1.0.4', devAddr: devAddr(d).toString(16).padStart(8, '0'), codec: 'cayenne-lpp' }),
        secret: JSON.stringify({ nwkSKey: '44024241ed4ce9a68c6a8bc055233fd3', appSKey: 'ec925802ae430ca77fd3dd73cb2cc588' }),
      })
    }
    const clock = new Clock({ syncCheck: 'none' })
    const source = new LorawanSource({
      config: {
        enabled: true, listen: '127.0.0.1:0', region: 'EU868', net_id: '000000', gateway_euis: [], max_forwarders: 16,
        dedup_window_ms: 200, rx1_delay_s: 1, downlink_lead_ms: 100, gps_clock: false, codec_timeout_ms: 100, codec_memory_mb: 64,
        witness: { enabled: false, dev_addr_prefixes: [], net_ids: [] }, relay: { upstreams: [], max_forwarders: 1 },
      },
      store, metrics, log: pino({ level: 'silent' }), clock,
    })
    const ac = new AbortController()
    const running = source.start({ ingest: (r) => pipeline.ingest(r), now: () => clock.now(), log: pino({ level: 'silent' }), metrics, bus: pipeline.bus }, ac.signal)
    const addr = await source.ready
    const pf = await PacketForwarder.open(GW, { host: '127.0.0.1', port: addr.port })
    const stored = (): number => source.counts.sessionUplinks
    const t0 = performance.now()
    const latencies: number[] = []
    // Keep at most WINDOW uplinks in flight (UDP has no flow control; a forwarder sends as frames arrive).
    const WINDOW = 2000
    for (let i = 0; i < N; i += PER_PUSH) {
      while (i - stored() > WINDOW) await new Promise((r) => setTimeout(r, 1))
      const sentAt = performance.now()
      await pf.push(rxpks.slice(i, i + PER_PUSH), undefined, 5000)
      latencies.push(performance.now() - sentAt)
    }
    while (stored() + source.counts.rejected < N) await new Promise((r) => setTimeout(r, 5))
    const rate = stored() / ((performance.now() - t0) / 1000)
    if (source.counts.rejected > 0) console.error(`${source.counts.rejected} uplinks rejected`)
    latencies.sort((a, b) => a - b)
    const st = (source.status() as { state: { transactions: number } }).state
    pf.close()
    ac.abort()
    await running
    pipeline.stop()
    store.close()
    return { rate, p50: latencies[Math.floor(latencies.length / 2)] ?? 0, stateTx: st.transactions }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const ceil = ceiling()
const s = await server()
console.log(`LoRaWAN uplinks, ${N} frames from ${D} ABP devices, ${PER_PUSH} rxpk per PUSH_DATA, Cayenne LPP, dedup window 200 ms`)
console.log(`  raw ceiling (decode work only, one loop)   ${Math.round(ceil).toLocaleString('en')} uplinks/s`)
console.log(`  server: UDP → durable readings              ${Math.round(s.rate).toLocaleString('en')} uplinks/s  (${((s.rate / ceil) * 100).toFixed(1)} % of the ceiling)`)
console.log(`  PUSH_ACK round trip p50                     ${s.p50.toFixed(2)} ms;  device-state transactions: ${s.stateTx}`)
