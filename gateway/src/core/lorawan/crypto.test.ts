// Vectors: RFC 4493 §4 (AES-CMAC examples 1-4, subkeys); lora-packet test suite
// (anthonykirby/lora-packet test/test_mic.js @ 007154810f921862d43fcf240c167d73abd86731,
// test/test_decrypt.js @ 1d77dca0a1f09158957dc2e0928a9a7da4747629,
// test/test_keygen.js @ 0db06218353648be5d35d6d704a196b11dec4763).
import t from 'tap'
import {
  aesCmac,
  aesDecrypt,
  aesEncrypt,
  aesKey,
  bytesEqual,
  bytesToHex,
  cryptFrmPayload,
  dataMic,
  deriveSessionKeys10,
  hexToBytes,
  joinAcceptMic,
  joinRequestMic,
  type AesKey,
} from './crypto.ts'

const h = (s: string): Uint8Array => {
  const b = hexToBytes(s.replace(/\s+/g, ''))
  if (!b) throw new Error(`bad hex in test: ${s}`)
  return b
}
const key = (s: string): AesKey => {
  const k = aesKey(s.replace(/\s+/g, ''))
  if (!k) throw new Error('bad key in test')
  return k
}

t.test('RFC 4493 §4 AES-CMAC examples', async (t) => {
  const k = key('2b7e1516 28aed2a6 abf71588 09cf4f3c')
  t.equal(bytesToHex(aesEncrypt(k, new Uint8Array(16))), '7df76b0c1ab899b33e42f047b91b546f', 'AES-128(key, 0^128) (subkey generation L)')
  const m = h(
    '6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51 30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710',
  )
  t.equal(bytesToHex(aesCmac(k, new Uint8Array(0))), 'bb1d6929e95937287fa37d129b756746', 'example 1: empty message')
  t.equal(bytesToHex(aesCmac(k, m.subarray(0, 16))), '070a16b46b4d4144f79bdd9dd04a287c', 'example 2: 16 bytes')
  t.equal(bytesToHex(aesCmac(k, m.subarray(0, 40))), 'dfa66747de9ae63030ca32611497c827', 'example 3: 40 bytes')
  t.equal(bytesToHex(aesCmac(k, m.subarray(0, 64))), '51f0bebf7e3b9d92fc49741779363cfe', 'example 4: 64 bytes')
})

t.test('aesKey checks its input', async (t) => {
  t.equal(aesKey('00'), undefined)
  t.equal(aesKey('zz'.repeat(16)), undefined)
  t.equal(aesKey(new Uint8Array(15)), undefined)
  t.ok(aesKey(new Uint8Array(16)))
  t.equal(hexToBytes('abc'), undefined)
  const src = new Uint8Array(16)
  const k = aesKey(src)
  src[0] = 1
  t.equal(k?.[0], 0, 'the key is a copy')
})

t.test('AES decrypt inverts encrypt', async (t) => {
  const k = key('000102030405060708090a0b0c0d0e0f')
  const p = h('00112233445566778899aabbccddeeff')
  // FIPS-197 Appendix C.1 AES-128 example.
  t.equal(bytesToHex(aesEncrypt(k, p)), '69c4e0d86a7b0430d8cdb78070b4c55a')
  t.equal(bytesToHex(aesDecrypt(k, aesEncrypt(k, p))), bytesToHex(p))
})

const NWK_SKEY = key('44024241ed4ce9a68c6a8bc055233fd3')
const APP_SKEY = key('ec925802ae430ca77fd3dd73cb2cc588')
const APP_KEY = key('98929b92c49edba9676d646d3b612456')

t.test('data MIC (lora-packet test_mic.js)', async (t) => {
  const cases: [string, 'up' | 'down', number, string][] = [
    ['40f17dbe4900020001954378762b11ff0d', 'up', 2, '2b11ff0d'],
    ['40f17dbe49000300012a3518af', 'up', 3, '2a3518af'],
    ['60f17dbe4920020001f9d65d27', 'down', 2, 'f9d65d27'],
  ]
  for (const [frame, dir, fcnt, mic] of cases) {
    const b = h(frame)
    t.equal(bytesToHex(dataMic(NWK_SKEY, dir, 0x49be7df1, fcnt, b.subarray(0, b.length - 4))), mic, frame)
  }
})

t.test('FRMPayload decryption (lora-packet test_decrypt.js)', async (t) => {
  const small = h('95437876')
  t.equal(Buffer.from(cryptFrmPayload(APP_SKEY, 'up', 0x49be7df1, 2, small)).toString(), 'test')
  const big = h('55332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f28dea8a2')
  t.equal(Buffer.from(cryptFrmPayload(APP_SKEY, 'up', 0x49be7df1, 4, big)).toString(), 'The quick brown fox jumps over the lazy dog.')
  t.equal(bytesToHex(cryptFrmPayload(key('ec925802ae430ca77fd3dd73cb2cc580'), 'up', 0x49be7df1, 2, small)), '5999fc3f', 'wrong key scrambles')
  t.equal(Buffer.from(cryptFrmPayload(APP_SKEY, 'up', 0x49be7df1, 2, h('95447876'))).toString(), 'tbst', 'a flipped bit flips one bit')
  t.equal(cryptFrmPayload(APP_SKEY, 'up', 1, 1, new Uint8Array(0)).length, 0)
  const p = Uint8Array.from({ length: 50 }, (_, i) => i)
  t.same(cryptFrmPayload(APP_SKEY, 'down', 7, 0x12345, cryptFrmPayload(APP_SKEY, 'down', 7, 0x12345, p)), p, 'involution')
})

t.test('join MICs (lora-packet test_mic.js)', async (t) => {
  const jr = h('0039363463336913aa05693574323831330489c65b1304')
  t.equal(bytesToHex(joinRequestMic(APP_KEY, jr.subarray(0, 19))), 'c65b1304')
  const ja = h('20386337ccbbaae7cd2c010000d9d0a6e7')
  t.equal(bytesToHex(joinAcceptMic(APP_KEY, ja.subarray(0, 13))), 'd9d0a6e7')
})

t.test('1.0.x session keys (lora-packet test_keygen.js)', async (t) => {
  // lora-packet takes AppNonce "376338", NetID "aabbcc", DevNonce "f18e" most significant byte first.
  const k = deriveSessionKeys10(APP_KEY, 0x376338, 0xaabbcc, 0xf18e)
  t.equal(bytesToHex(k.nwkSKey), '4e3d6e6afbcc67af2ba3c8e8ec4acf4b')
  t.equal(bytesToHex(k.appSKey), '610897aa6f1460623443b527d3ac6a9d')
})

t.test('bytesEqual', async (t) => {
  t.ok(bytesEqual(h('0102'), h('0102')))
  t.notOk(bytesEqual(h('0102'), h('0103')))
  t.notOk(bytesEqual(h('0102'), h('010200')))
})
