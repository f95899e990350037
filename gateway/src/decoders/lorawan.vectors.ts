// Vectors for the LoRaWAN PHYPayload inspector (decoders/lorawan.ts).
// Frames and keys: lora-packet's test suite (anthonykirby/lora-packet
// test/test_parse.js @ 0766fc85c672a022162df7d533af2ec9a95949e6, test/test_mic.js
// @ 007154810f921862d43fcf240c167d73abd86731, test/test_decrypt.js
// @ 1d77dca0a1f09158957dc2e0928a9a7da4747629), the same vectors as core/lorawan/phy.test.ts.

import type { DecoderVector } from '../core/decoder.ts'

const NWK = '44024241ed4ce9a68c6a8bc055233fd3'
const APP = 'ec925802ae430ca77fd3dd73cb2cc588'
const APP_KEY = '98929b92c49edba9676d646d3b612456'
const LP = 'anthonykirby/lora-packet'

export const LORAWAN_VECTORS: readonly DecoderVector[] = [
  {
    name: 'unconfirmed uplink "test", keys given',
    source: `${LP} test/test_parse.js and test/test_decrypt.js`,
    input: '40f17dbe4900020001954378762b11ff0d',
    options: { nwkskey: NWK, appskey: APP },
    expect: {
      ok: true,
      metrics: [],
      meta: { mtype: 'unconfirmed-data-up', dev_addr: '49be7df1', fcnt16: 2, fcnt: 2, fport: 1, mic: '2b11ff0d', mic_valid: true, payload: '74657374' },
    },
  },
  {
    name: 'the same frame with a wrong 32-bit counter: MIC invalid',
    source: `${LP} test/test_mic.js (MIC over the full 32-bit FCnt, LoRaWAN L2 1.0.4 §4.4)`,
    input: '40f17dbe4900020001954378762b11ff0d',
    options: { nwkskey: NWK, fcnt: '65538' },
    expect: { ok: true, metrics: [], meta: { fcnt: 0x10002, mic_valid: false } },
  },
  {
    name: 'downlink ACK without payload',
    source: `${LP} test/test_parse.js`,
    input: '60f17dbe4920020001f9d65d27',
    options: { nwkskey: NWK },
    expect: { ok: true, metrics: [], meta: { mtype: 'unconfirmed-data-down', ack: true, fcnt16: 2, mic_valid: true } },
  },
  {
    name: 'join-request',
    source: `${LP} test/test_mic.js`,
    input: '0039363463336913aa05693574323831330489c65b1304',
    options: { appkey: APP_KEY },
    expect: { ok: true, metrics: [], meta: { mtype: 'join-request', join_eui: 'aa13693363343639', dev_eui: '3331383274356905', dev_nonce: 0x8904, mic_valid: true } },
  },
  {
    name: 'join-accept (the published plaintext 20386337ccbbaae7cd2c010000d9d0a6e7, encrypted with the AppKey as a network does)',
    source: `${LP} test/test_mic.js "join accept"`,
    input: '2088f36ae3b21314bc284e314e99257328',
    options: { appkey: APP_KEY },
    expect: { ok: true, metrics: [], meta: { mtype: 'join-accept', mic_valid: true, join_nonce: 0x376338, net_id: 'aabbcc', dev_addr: '012ccde7', rx_delay_s: 1 } },
  },
  {
    name: 'data frame shorter than 12 bytes',
    source: 'LoRaWAN L2 1.0.4 §4.3 (MHDR + FHDR + MIC is at least 12 bytes)',
    input: '40f17dbe490002',
    expect: { ok: false, code: 'truncated' },
  },
]
