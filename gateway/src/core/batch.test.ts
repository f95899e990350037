// Batch header EIP-712 hashing and signing against viem (the oracle).

import t from 'tap'
import { hashTypedData, recoverTypedDataAddress, verifyTypedData } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import {
  BATCH_DOMAIN,
  batchHeaderFromJson,
  batchHeaderToJson,
  batchTypedData,
  hashBatchHeader,
  recoverBatchSigner,
  signBatchHeader,
  signedBatchFromJson,
  signedBatchToJson,
  verifySignedBatch,
} from './batch.ts'
import { FieldproofError } from './errors.ts'
import { bytesToHex, hexToBytes } from './hex.ts'
import type { BatchHeader, Hex, SignedBatch } from './types.ts'

// Foundry anvil default accounts #0 and #1 (public test keys).
const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' as Hex
const OTHER = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d' as Hex
const account = privateKeyToAccount(KEY)

const header: BatchHeader = {
  gateway: account.address,
  batchId: 7n,
  firstSeq: 1001n,
  lastSeq: 1500n,
  count: 500,
  merkleRoot: '0x5a1d6b1f3b6a0f8e2c7d9e4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49',
  prevBatchHash: '0x0102030405060708091011121314151617181920212223242526272829303132',
  sealedAtMs: 1_717_171_717_171n,
}

t.test('hash equals viem hashTypedData; the domain has no chain', async (t) => {
  t.same(BATCH_DOMAIN, { name: 'Fieldproof', version: '1' })
  t.equal(hashBatchHeader(header), hashTypedData(batchTypedData(header)))
  const extremes: BatchHeader = { ...header, batchId: 2n ** 64n - 1n, firstSeq: 0n, lastSeq: 2n ** 64n - 1n, count: 2 ** 32 - 1, sealedAtMs: 0n }
  t.equal(hashBatchHeader(extremes), hashTypedData(batchTypedData(extremes)), 'extreme values')
  const lower = { ...header, gateway: header.gateway.toLowerCase() as Hex }
  t.equal(hashBatchHeader(lower), hashBatchHeader(header), 'address case does not matter')
})

t.test('signature: viem accepts it, it equals viem signTypedData, recovers the gateway', async (t) => {
  const signed = signBatchHeader(header, KEY)
  t.equal(signed.hash, hashBatchHeader(header))
  t.equal(signed.signature.length, 2 + 130)
  t.ok([27, 28].includes(hexToBytes(signed.signature)[64] as number), 'v is 27 or 28')
  t.ok(await verifyTypedData({ address: account.address, ...batchTypedData(header), signature: signed.signature }), 'viem verifyTypedData')
  t.equal(signed.signature, await account.signTypedData(batchTypedData(header)), 'same bytes as viem (RFC 6979)')
  t.equal(recoverBatchSigner(signed), account.address)
  t.equal(await recoverTypedDataAddress({ ...batchTypedData(header), signature: signed.signature }), account.address)
  t.ok(verifySignedBatch(signed))
})

t.test('a one-byte change anywhere makes verification fail', async (t) => {
  const signed = signBatchHeader(header, KEY)
  let checked = 0
  const expectFail = (s: SignedBatch, what: string): void => {
    checked++
    if (verifySignedBatch(s)) t.fail(`${what}: still verifies`)
  }
  // Every byte of every header field, in its EIP-712 word.
  const hexField = (name: 'gateway' | 'merkleRoot' | 'prevBatchHash'): void => {
    const bytes = hexToBytes(header[name])
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes.slice()
      b[i] = (b[i] as number) ^ 0x01
      expectFail({ ...signed, header: { ...header, [name]: bytesToHex(b) } }, `${name} byte ${i}`)
    }
  }
  hexField('gateway')
  hexField('merkleRoot')
  hexField('prevBatchHash')
  for (const name of ['batchId', 'firstSeq', 'lastSeq', 'sealedAtMs'] as const) {
    for (let i = 0; i < 8; i++) expectFail({ ...signed, header: { ...header, [name]: header[name] ^ (1n << BigInt(8 * i)) } }, `${name} byte ${i}`)
  }
  for (let i = 0; i < 4; i++) expectFail({ ...signed, header: { ...header, count: (header.count ^ (1 << (8 * i))) >>> 0 } }, `count byte ${i}`)
  // Every byte of the signature and of the claimed hash.
  const sig = hexToBytes(signed.signature)
  for (let i = 0; i < 65; i++) {
    const b = sig.slice()
    b[i] = (b[i] as number) ^ 0x01
    expectFail({ ...signed, signature: bytesToHex(b) }, `signature byte ${i}`)
  }
  const hash = hexToBytes(signed.hash)
  for (let i = 0; i < 32; i++) {
    const b = hash.slice()
    b[i] = (b[i] as number) ^ 0x80
    expectFail({ ...signed, hash: bytesToHex(b) }, `hash byte ${i}`)
  }
  t.equal(checked, 20 + 32 + 32 + 32 + 4 + 65 + 32, 'every byte was changed once')
})

t.test('signature by another key fails; signing for another gateway is refused', async (t) => {
  const other = privateKeyToAccount(OTHER)
  const forged: SignedBatch = { header, hash: hashBatchHeader(header), signature: await other.signTypedData(batchTypedData(header)) }
  t.notOk(verifySignedBatch(forged))
  t.equal(recoverBatchSigner(forged), other.address)
  t.throws(() => signBatchHeader(header, OTHER), { code: 'KEY_INVALID' })
  t.throws(() => signBatchHeader(header, '0x1234'), { code: 'KEY_INVALID' })
  t.throws(() => signBatchHeader(header, `0x${'00'.repeat(32)}`), { code: 'KEY_INVALID' })
})

t.test('high-s twin and malformed signatures are rejected', async (t) => {
  const signed = signBatchHeader(header, KEY)
  const sig = hexToBytes(signed.signature)
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
  const s = BigInt(bytesToHex(sig.subarray(32, 64)))
  const twin = sig.slice()
  twin.set(hexToBytes(`0x${(n - s).toString(16).padStart(64, '0')}`), 32)
  twin[64] = (sig[64] as number) === 27 ? 28 : 27
  // The twin recovers the same key (ECDSA malleability) but is not canonical (EIP-2).
  t.notOk(verifySignedBatch({ ...signed, signature: bytesToHex(twin) }), 'high-s twin refused')
  t.notOk(verifySignedBatch({ ...signed, signature: '0x1234' }), 'short')
  t.notOk(verifySignedBatch({ ...signed, signature: `0x${'00'.repeat(65)}` }), 'zeros')
  t.throws(() => recoverBatchSigner({ ...signed, signature: `0x${'00'.repeat(65)}` }), FieldproofError)
  t.notOk(verifySignedBatch({ ...signed, header: { ...header, count: -1 } }), 'malformed header')
  t.notOk(verifySignedBatch(null as never), 'null')
})

t.test('JSON round trip and strict parsing', async (t) => {
  const j = batchHeaderToJson(header)
  t.same(j, { ...j, batchId: '7', firstSeq: '1001', lastSeq: '1500', sealedAtMs: '1717171717171' })
  t.same(batchHeaderFromJson(JSON.parse(JSON.stringify(j))), header)
  const signed = signBatchHeader(header, KEY)
  t.same(signedBatchFromJson(JSON.parse(JSON.stringify(signedBatchToJson(signed)))), signed)
  const lower = batchHeaderFromJson({ ...j, gateway: j.gateway.toLowerCase() })
  t.equal(lower.gateway, account.address, 'gateway normalized to EIP-55')
  const bad = (patch: Record<string, unknown>, what: string): void => {
    t.throws(() => batchHeaderFromJson({ ...j, ...patch }), { code: 'PROOF_INVALID' }, what)
  }
  bad({ batchId: 7 }, 'number instead of decimal string')
  bad({ batchId: '-1' }, 'negative')
  bad({ firstSeq: '18446744073709551616' }, '2^64')
  bad({ count: 1.5 }, 'fractional count')
  bad({ merkleRoot: '0x12' }, 'short root')
  bad({ gateway: '0xF39fd6e51aad88F6F4ce6aB8827279cffFb92266' }, 'bad checksum')
  bad({ extra: 1 }, 'unknown key')
  t.throws(() => hashBatchHeader({ ...header, batchId: -1n }), { code: 'PROOF_INVALID' })
})
