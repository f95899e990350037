import t from 'tap'
import {
  JOIN_ACCEPT_DELAY1_S,
  JOIN_ACCEPT_DELAY2_S,
  RECEIVE_DELAY1_S,
  REGIONS,
  addTmst,
  datrOf,
  drOf,
  maxPayload,
  rx1,
  rx2,
  txpkFor,
  type WindowResult,
} from './region.ts'

const w = (r: WindowResult): [number, string | number] | string => (r.ok ? [r.freqHz, r.datr] : r.reason)

t.test('timing constants (L2 1.0.4, RP002-1.0.3)', async (t) => {
  t.equal(RECEIVE_DELAY1_S, 1)
  t.equal(JOIN_ACCEPT_DELAY1_S, 5)
  t.equal(JOIN_ACCEPT_DELAY2_S, 6)
})

t.test('EU868', async (t) => {
  const eu = REGIONS.EU868
  t.same(w(rx1(eu, { freqHz: 868_100_000, datr: 'SF7BW125' }, 0)), [868_100_000, 'SF7BW125'], 'RX1 = uplink channel and DR')
  t.same(w(rx1(eu, { freqHz: 867_500_000, datr: 'SF7BW125' }, 2)), [867_500_000, 'SF9BW125'], 'DR5 offset 2 → DR3')
  t.same(w(rx1(eu, { freqHz: 868_300_000, datr: 'SF12BW125' }, 5)), [868_300_000, 'SF12BW125'], 'never below DR0')
  t.same(w(rx1(eu, { freqHz: 868_800_000, datr: 50000 }, 0)), [868_800_000, 50000], 'FSK DR7')
  t.equal(rx1(eu, { freqHz: 868_100_000, datr: 'SF7BW125' }, 6).ok, false, 'offset 6 undefined in EU868')
  t.equal(rx1(eu, { freqHz: 868_100_000, datr: 'SF7BW500' }, 0).ok, false, 'not an EU868 data rate')
  t.same(w(rx2(eu)), [869_525_000, 'SF12BW125'])
  t.same(w(rx2(eu, 3)), [869_525_000, 'SF9BW125'])
  t.same(maxPayload(eu, 0), { m: 59, n: 51 })
  t.same(maxPayload(eu, 3), { m: 123, n: 115 })
  t.same(maxPayload(eu, 5), { m: 250, n: 242 })
  t.equal(eu.downlinkTxPowerDbm, 14)
  t.same(eu.defaultChannelsHz, [868_100_000, 868_300_000, 868_500_000])
  t.equal(drOf(eu, 'SF7BW250'), 6)
})

t.test('US915', async (t) => {
  const us = REGIONS.US915
  t.same(w(rx1(us, { freqHz: 902_300_000, datr: 'SF10BW125' }, 0)), [923_300_000, 'SF10BW500'], 'ch0 DR0 → ch0 DR10')
  t.same(w(rx1(us, { freqHz: 903_900_000, datr: 'SF7BW125' }, 0)), [923_300_000, 'SF7BW500'], 'ch8 (903.9) → dl ch0, DR3 → DR13')
  t.same(w(rx1(us, { freqHz: 904_500_000, datr: 'SF9BW125' }, 1)), [925_100_000, 'SF10BW500'], 'ch11 → dl ch3, DR1 offset 1 → DR10')
  t.same(w(rx1(us, { freqHz: 914_900_000, datr: 'SF7BW125' }, 3)), [927_500_000, 'SF10BW500'], 'ch63 → dl ch7, DR3 offset 3 → DR10')
  t.same(w(rx1(us, { freqHz: 903_000_000, datr: 'SF8BW500' }, 0)), [923_300_000, 'SF7BW500'], '500 kHz ch64 → dl ch0, DR4 → DR13')
  t.same(w(rx1(us, { freqHz: 914_200_000, datr: 'SF8BW500' }, 2)), [927_500_000, 'SF8BW500'], 'ch71 → dl ch7, DR4 offset 2 → DR12')
  t.equal(rx1(us, { freqHz: 902_400_000, datr: 'SF10BW125' }, 0).ok, false, 'between channels')
  t.equal(rx1(us, { freqHz: 902_300_000, datr: 'SF10BW125' }, 4).ok, false, 'offset 4 undefined in US915')
  t.same(w(rx2(us)), [923_300_000, 'SF12BW500'])
  t.same(maxPayload(us, 0), { m: 19, n: 11 })
  t.same(maxPayload(us, 8), { m: 61, n: 53 })
  t.equal(drOf(us, 'SF8BW500', 'up'), 4)
  t.equal(drOf(us, 'SF8BW500', 'down'), 12)
})

t.test('other regions are table entries', async (t) => {
  t.same(w(rx1(REGIONS.AU915, { freqHz: 915_200_000, datr: 'SF12BW125' }, 0)), [923_300_000, 'SF12BW500'], 'AU915 DR0 → DR8')
  t.same(w(rx1(REGIONS.AU915, { freqHz: 917_500_000, datr: 'SF8BW500' }, 0)), [923_900_000, 'SF7BW500'], 'AU915 ch65 → dl ch1, DR6 → DR13')
  t.same(w(rx2(REGIONS.AU915)), [923_300_000, 'SF12BW500'])
  t.same(w(rx1(REGIONS.AS923, { freqHz: 923_200_000, datr: 'SF10BW125' }, 6)), [923_200_000, 'SF9BW125'], 'AS923 offset 6 raises the DR')
  t.same(w(rx1(REGIONS.AS923, { freqHz: 923_200_000, datr: 'SF7BW125' }, 7)), [923_200_000, 'SF7BW125'], 'capped at DR5')
  t.same(w(rx2(REGIONS.AS923)), [923_200_000, 'SF10BW125'])
  t.same(w(rx2(REGIONS.KR920)), [921_900_000, 'SF12BW125'])
  t.same(w(rx2(REGIONS.IN865)), [866_550_000, 'SF10BW125'])
  t.same(w(rx1(REGIONS.IN865, { freqHz: 865_062_500, datr: 'SF12BW125' }, 7)), [865_062_500, 'SF10BW125'])
  for (const r of Object.values(REGIONS)) {
    t.ok(rx2(r).ok, `${r.id} RX2 defined`)
    r.rx1DrTable.forEach((row, upDr) => row.forEach((dr) => t.ok(r.dataRates[dr], `${r.id} RX1 DR${dr} from DR${upDr} exists`)))
    r.dataRates.forEach((d, i) => {
      if (d) t.equal(drOf(r, datrOf(d), i < 8 ? 'up' : 'down'), i, `${r.id} DR${i} ↔ ${String(datrOf(d))}`)
      if (d) t.ok(r.maxPayload[i], `${r.id} DR${i} has a max payload`)
    })
  }
})

t.test('txpk for a downlink: tmst + delay, wrapping', async (t) => {
  t.equal(addTmst(3_512_348_611, 5_000_000), (3_512_348_611 + 5_000_000) % 2 ** 32)
  t.equal(addTmst(0xffff_ffff, 1), 0)
  t.equal(addTmst(4_294_000_000, 6_000_000), 5_032_704)
  const payload = new Uint8Array(33).fill(7)
  const r = txpkFor({ region: REGIONS.EU868, uplink: { tmst: 4_292_000_000, freqHz: 868_100_000, datr: 'SF9BW125' }, window: 'rx1', rx1DelayS: JOIN_ACCEPT_DELAY1_S, phyPayload: payload })
  t.ok(r.ok)
  if (r.ok) {
    t.same(
      { ...r.txpk, data: Array.from(r.txpk.data) },
      { imme: false, tmst: 2_032_704, freqHz: 868_100_000, rfch: 0, powe: 14, modu: 'LORA', datr: 'SF9BW125', codr: '4/5', ipol: true, size: 33, data: Array.from(payload) },
    )
    t.equal(r.dr, 3)
  }
  const r2 = txpkFor({ region: REGIONS.EU868, uplink: { tmst: 1000, freqHz: 868_100_000, datr: 'SF9BW125' }, window: 'rx2', rx1DelayS: JOIN_ACCEPT_DELAY1_S, phyPayload: payload })
  t.ok(r2.ok && r2.txpk.tmst === 6_001_000 && r2.txpk.freqHz === 869_525_000 && r2.txpk.datr === 'SF12BW125', 'RX2 one second after RX1')
  const us = txpkFor({ region: REGIONS.US915, uplink: { tmst: 10, freqHz: 902_300_000, datr: 'SF10BW125' }, window: 'rx1', rx1DelayS: 1, phyPayload: new Uint8Array(20) })
  t.ok(us.ok && us.txpk.freqHz === 923_300_000 && us.txpk.powe === 20 && us.txpk.tmst === 1_000_010)
  const tooBig = txpkFor({ region: REGIONS.US915, uplink: { tmst: 10, freqHz: 902_300_000, datr: 'SF10BW125' }, window: 'rx2', rx1DelayS: 1, phyPayload: new Uint8Array(70) })
  t.equal(tooBig.ok, false, 'MACPayload 65 > 61 at DR8')
  t.equal(txpkFor({ region: REGIONS.EU868, uplink: { tmst: -1, freqHz: 868_100_000, datr: 'SF7BW125' }, window: 'rx1', rx1DelayS: 1, phyPayload: payload }).ok, false)
  t.equal(txpkFor({ region: REGIONS.EU868, uplink: { tmst: 0, freqHz: 868_100_000, datr: 'SF7BW125' }, window: 'rx1', rx1DelayS: 0, phyPayload: payload }).ok, false)
})
