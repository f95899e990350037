// The join-request frame and AppKey are lora-packet's published vector
// (anthonykirby/lora-packet test/test_mic.js @ 007154810f921862d43fcf240c167d73abd86731);
// lora-packet 0.9.3 serves as an oracle for the session keys.
import t from 'tap'
import { createCipheriv } from 'node:crypto'
import lpImport from 'lora-packet'
import { aesKey, bytesToHex, hexToBytes, aesCmac, type AesKey } from '../../core/lorawan/crypto.ts'
import { buildDataFrame, buildJoinRequest, encodeCfListFrequencies, verifyDataFrameMic, parsePhyPayload } from '../../core/lorawan/phy.ts'
import { devAddrForNetIdType0, handleJoinRequest, type JoinDevice } from './join.ts'
import { EU868_CFLIST_FREQS_HZ } from './region.ts'

// lora-packet is CommonJS with an __esModule default: Node hands over the API object itself.
const loraPacket = (lpImport as unknown as { default?: typeof lpImport.default }).default ?? (lpImport as unknown as typeof lpImport.default)

const APP_KEY_HEX = '98929b92c49edba9676d646d3b612456'
const APP_KEY = aesKey(APP_KEY_HEX) as AesKey
const FRAME = hexToBytes('0039363463336913aa05693574323831330489c65b1304') ?? new Uint8Array(0)
const DEVICE: JoinDevice = { devEui: '3331383274356905', joinEui: 'AA13693363343639', appKey: APP_KEY_HEX, lorawanVersion: '1.0.3', usedDevNonces: [] }

function ctx(devAddr = 0x26011bda) {
  let calls = 0
  return {
    calls: () => calls,
    value: {
      netId: 0x000013,
      allocateDevAddr: () => {
        calls++
        return devAddr
      },
    },
  }
}

function deviceOpen(enc: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-128-ecb', APP_KEY, null)
  c.setAutoPadding(false)
  return new Uint8Array(Buffer.concat([c.update(enc.subarray(1)), c.final()]))
}

t.test('1.0.3 join: accept, keys, join-accept a device can open', async (t) => {
  const c = ctx()
  const r = handleJoinRequest(DEVICE, FRAME, c.value)
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(r.devNonce, 0x8904)
  t.equal(r.joinNonce, 0, 'first JoinNonce')
  t.equal(r.devAddr, 0x26011bda)
  t.equal(c.calls(), 1)
  t.same(r.nextState, { usedDevNonces: [0x8904], lastDevNonce: 0x8904, lastJoinNonce: 0 })
  t.equal(r.joinAccept.length, 17)
  const body = deviceOpen(r.joinAccept)
  t.same(Array.from(body.subarray(0, 3)), [0, 0, 0], 'JoinNonce')
  t.same(Array.from(body.subarray(3, 6)), [0x13, 0, 0], 'NetID')
  t.same(Array.from(body.subarray(6, 10)), [0xda, 0x1b, 0x01, 0x26], 'DevAddr LE')
  t.equal(body[10], 0, 'DLSettings')
  t.equal(body[11], 1, 'RxDelay 1 s')
  t.equal(bytesToHex(aesCmac(APP_KEY, Uint8Array.from([0x20, ...body.subarray(0, 12)])).subarray(0, 4)), bytesToHex(body.subarray(12)), 'MIC')
  // The device derives the same keys (oracle: lora-packet, which takes the nonces MSB first).
  const lp = loraPacket.generateSessionKeys(Buffer.from(APP_KEY), Buffer.from('000013', 'hex'), Buffer.from('000000', 'hex'), Buffer.from('8904', 'hex'))
  t.equal(bytesToHex(r.nwkSKey), lp.NwkSKey.toString('hex'))
  t.equal(bytesToHex(r.appSKey), lp.AppSKey.toString('hex'))
  // And a first uplink built with the device's keys verifies with the server's.
  const up = buildDataFrame({ mtype: 'unconfirmed-data-up', devAddr: r.devAddr, fcnt32: 0, fport: 2, payload: Uint8Array.of(1, 2, 3) }, { nwkSKey: r.nwkSKey, appSKey: r.appSKey })
  const p = up.ok ? parsePhyPayload(up.bytes) : undefined
  t.ok(p?.ok && p.frame.kind === 'data' && verifyDataFrameMic(p.frame, r.nwkSKey, 0))
})

t.test('1.0.3: a DevNonce is never reused', async (t) => {
  const c = ctx()
  const r = handleJoinRequest({ ...DEVICE, usedDevNonces: [1, 0x8904, 7] }, FRAME, c.value)
  t.same(r.ok ? 'ok' : r.code, 'devnonce-replay')
  t.equal(c.calls(), 0, 'no DevAddr allocated for a rejected join')
  const other = buildJoinRequest({ joinEui: DEVICE.joinEui, devEui: DEVICE.devEui, devNonce: 0x0001 }, APP_KEY)
  t.ok(other.ok)
  if (other.ok) {
    const r2 = handleJoinRequest({ ...DEVICE, usedDevNonces: [0x8904] }, other.bytes, ctx().value)
    t.ok(r2.ok, 'a random new DevNonce below the last is fine in 1.0.3')
    if (r2.ok) t.same(r2.nextState.usedDevNonces, [0x8904, 1])
  }
})

t.test('1.0.4: DevNonce strictly increasing', async (t) => {
  const dev: JoinDevice = { ...DEVICE, lorawanVersion: '1.0.4', lastDevNonce: 4, lastJoinNonce: 41 }
  const jr = (n: number): Uint8Array => {
    const b = buildJoinRequest({ joinEui: DEVICE.joinEui, devEui: DEVICE.devEui, devNonce: n }, APP_KEY)
    return b.ok ? b.bytes : new Uint8Array(0)
  }
  const ok = handleJoinRequest(dev, jr(5), ctx().value)
  t.ok(ok.ok)
  if (ok.ok) {
    t.equal(ok.joinNonce, 42, 'JoinNonce = last + 1')
    t.same(ok.nextState, { lastDevNonce: 5, lastJoinNonce: 42 })
    t.same(Array.from(deviceOpen(ok.joinAccept).subarray(0, 3)), [42, 0, 0])
  }
  for (const n of [4, 3, 0]) {
    const r = handleJoinRequest(dev, jr(n), ctx().value)
    t.same(r.ok ? 'ok' : r.code, 'devnonce-replay', `DevNonce ${n} after 4`)
  }
  const first = handleJoinRequest({ ...dev, lastDevNonce: null }, jr(0), ctx().value)
  t.ok(first.ok, 'DevNonce 0 on the first join')
  const fromHistory = handleJoinRequest({ devEui: DEVICE.devEui, joinEui: DEVICE.joinEui, appKey: APP_KEY, lorawanVersion: '1.0.4', usedDevNonces: [3, 9] }, jr(9), ctx().value)
  t.same(fromHistory.ok ? 'ok' : fromHistory.code, 'devnonce-replay', 'max of the history when no last value')
  const exhausted = handleJoinRequest({ ...dev, lastJoinNonce: 0xffffff }, jr(6), ctx().value)
  t.same(exhausted.ok ? 'ok' : exhausted.code, 'joinnonce-exhausted')
})

t.test('rejections', async (t) => {
  const code = (r: ReturnType<typeof handleJoinRequest>): string => (r.ok ? 'ok' : r.code)
  const flipped = Uint8Array.from(FRAME)
  flipped[20] = (flipped[20] ?? 0) ^ 0x01
  t.equal(code(handleJoinRequest(DEVICE, flipped, ctx().value)), 'bad-mic')
  t.equal(code(handleJoinRequest({ ...DEVICE, usedDevNonces: [0x8904] }, flipped, ctx().value)), 'bad-mic', 'MIC checked before the DevNonce history')
  t.equal(code(handleJoinRequest({ ...DEVICE, appKey: '00'.repeat(16) }, FRAME, ctx().value)), 'bad-mic', 'wrong AppKey')
  t.equal(code(handleJoinRequest({ ...DEVICE, appKey: '0011' }, FRAME, ctx().value)), 'bad-key')
  t.equal(code(handleJoinRequest({ ...DEVICE, devEui: '0000000000000001' }, FRAME, ctx().value)), 'eui-mismatch')
  t.equal(code(handleJoinRequest(DEVICE, FRAME.subarray(0, 22), ctx().value)), 'malformed')
  t.equal(code(handleJoinRequest(DEVICE, hexToBytes('40f17dbe4900020001954378762b11ff0d') ?? FRAME, ctx().value)), 'not-join-request')
  t.equal(code(handleJoinRequest(DEVICE, FRAME, { netId: 0x1000000, allocateDevAddr: () => 1 })), 'bad-context')
  t.equal(code(handleJoinRequest(DEVICE, FRAME, { netId: 1, allocateDevAddr: () => -1 })), 'bad-devaddr')
  t.equal(
    code(handleJoinRequest(DEVICE, FRAME, { netId: 1, allocateDevAddr: () => { throw new Error('pool empty') } })),
    'bad-devaddr',
    'a throwing allocator is a value',
  )
})

t.test('join-accept with an EU868 CFList and DL settings', async (t) => {
  const cfList = encodeCfListFrequencies(EU868_CFLIST_FREQS_HZ)
  const r = handleJoinRequest(DEVICE, FRAME, { netId: 0x13, allocateDevAddr: () => 0x26000001, rx1DrOffset: 1, rx2DataRate: 3, rxDelayS: 2, ...(cfList ? { cfList } : {}) })
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(r.joinAccept.length, 33)
  const b = deviceOpen(r.joinAccept)
  t.equal(b[10], 0x13, 'RX1DROffset 1, RX2 DR3')
  t.equal(b[11], 2)
  t.equal(b[27], 0, 'CFListType 0')
})

t.test('DevAddr for a type 0 NetID', async (t) => {
  t.equal(devAddrForNetIdType0(0x13, 0x1bda), 0x26001bda)
  t.equal(devAddrForNetIdType0(0x000000, 1), 1)
  t.equal(devAddrForNetIdType0(0x600000, 1), undefined, 'type 3 NetID')
  t.equal(devAddrForNetIdType0(0x13, 0x2000000), undefined, 'NwkAddr over 25 bits')
})
