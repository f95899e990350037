// A viem account that signs with the gateway key through the gateway's
// signDigest (SinkPluginContext): the private key stays where the gateway
// keeps it; this module only ever sees 32-byte digests and 65-byte signatures.
// Transactions are serialized (EIP-2718 typed or legacy EIP-155), hashed with
// keccak256, signed, and serialized again with (r, s, yParity) — what viem's
// own privateKeyToAccount does (viem accounts/utils/signTransaction.ts).

import { hashMessage, hashTypedData, keccak256, serializeTransaction, type Hex as ViemHex, type LocalAccount, type SerializeTransactionFn, type TransactionSerializable } from 'viem'
import { toAccount, type CustomSource } from 'viem/accounts'
import { hexToBytes } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'

/** Signs a 32-byte digest: 65 bytes r || s || v (v 27/28), as SinkPluginContext.signDigest. */
export type DigestSigner = (digest: Uint8Array) => Hex

/** Split a 65-byte r || s || v signature into viem's signature fields. */
export function splitSignature(sig: Hex): { r: ViemHex; s: ViemHex; v: bigint; yParity: number } {
  const b = hexToBytes(sig, 65)
  const v = b[64] as number
  const yParity = v >= 27 ? v - 27 : v
  if (yParity !== 0 && yParity !== 1) throw new Error(`signature recovery byte ${v} is not 27/28`)
  const hex = (x: Uint8Array): ViemHex => `0x${Buffer.from(x).toString('hex')}`
  return { r: hex(b.subarray(0, 32)), s: hex(b.subarray(32, 64)), v: BigInt(27 + yParity), yParity }
}

/**
 * A viem LocalAccount for `address` whose every signature comes from `sign`.
 *
 * @example
 * const account = digestAccount(ctx.gatewayAddress, ctx.signDigest)
 * const wallet = createWalletClient({ account, transport: http(rpcUrl) })
 */
export function digestAccount(address: Hex, sign: DigestSigner): LocalAccount {
  const signHash = (h: ViemHex): ViemHex => sign(hexToBytes(h, 32)) as ViemHex
  return toAccount<CustomSource>({
    address: address as ViemHex,
    signMessage: async ({ message }) => signHash(hashMessage(message)),
    signTypedData: async (typedData) => signHash(hashTypedData(typedData as Parameters<typeof hashTypedData>[0])),
    signTransaction: async (transaction, options) => {
      const serializer: SerializeTransactionFn<TransactionSerializable> = (options?.serializer as SerializeTransactionFn<TransactionSerializable> | undefined) ?? serializeTransaction
      // EIP-4844/7702 blob and authorization fields are never used by the anchor sink.
      const unsigned = await serializer(transaction as TransactionSerializable)
      const { r, s, v, yParity } = splitSignature(sign(hexToBytes(keccak256(unsigned), 32)))
      // v 27/28 for legacy transactions (viem adds EIP-155's chainId·2 + 35), yParity for typed ones.
      return serializer(transaction as TransactionSerializable, { r, s, v, yParity })
    },
  })
}
