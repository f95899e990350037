// Shared setup for the anchor contract tests: an anvil node, viem clients, the deployed
// contract, EIP-712 claim signing, and Merkle trees built with @openzeppelin/merkle-tree
// (the reference implementation of the StandardMerkleTree format the contract verifies).
import { StandardMerkleTree } from '@openzeppelin/merkle-tree'
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  getAddress,
  http,
  keccak256,
  stringToHex,
} from 'viem'
import type { Address, Hex, PublicClient, TransactionReceipt, WalletClient, Account, Chain, Transport } from 'viem'
import type { HDAccount } from 'viem/accounts'
import { foundry } from 'viem/chains'
import artifact from '../artifacts/FieldproofAnchor.json' with { type: 'json' }
import { fieldproofAnchorAbi } from '../artifacts/FieldproofAnchor.abi.ts'
import { anvilAccount, startAnvil } from '../../test/helpers/anvil.ts'
import type { Anvil, AnvilOptions } from '../../test/helpers/anvil.ts'
import { anchorDomain, REGISTRATION_FIELDS } from '../../gateway/src/sinks/anchor/registration.ts'

export { fieldproofAnchorAbi }
export const abi = fieldproofAnchorAbi
export const LEAF_TYPES = ['uint64', 'bytes32']

/** A receipt that does not come within this time fails the test instead of hanging it. */
const RECEIPT_TIMEOUT_MS = 20_000

export type Wallet = WalletClient<Transport, Chain, Account>

/** A running anvil with the contract deployed. */
export interface Fixture {
  anvil: Anvil
  client: PublicClient
  address: Address
  chainId: number
  /** Wallet client of anvil account `i` (funded for i < 10). */
  wallet(i: number): Wallet
  account(i: number): HDAccount
  /** Sends `functionName(args)` from wallet `from` and waits for its receipt (must succeed). */
  send(from: number, functionName: string, args: readonly unknown[]): Promise<TransactionReceipt>
  /** Deploys another instance from account 0. */
  deploy(): Promise<Address>
  /** The same fixture aimed at another deployed instance. */
  at(address: Address): Fixture
}

/** Starts anvil (stopped on teardown) and deploys FieldproofAnchor from account 0. */
export async function setup(t: { teardown(fn: () => unknown): void }, opts: AnvilOptions = {}): Promise<Fixture> {
  const anvil = await startAnvil(opts)
  t.teardown(() => anvil.stop())
  const chain = { ...foundry, id: anvil.chainId }
  const client = createPublicClient({ chain, transport: http(anvil.rpcUrl), pollingInterval: 20 }) as PublicClient
  const wallets = new Map<number, Wallet>()
  const wallet = (i: number): Wallet => {
    let w = wallets.get(i)
    if (w === undefined) {
      w = createWalletClient({ account: anvilAccount(i), chain, transport: http(anvil.rpcUrl), pollingInterval: 20 })
      wallets.set(i, w)
    }
    return w
  }
  const deploy = async (): Promise<Address> => {
    const hash = await wallet(0).deployContract({ abi, bytecode: artifact.bytecode as Hex })
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })
    if (receipt.contractAddress == null) throw new Error('deployment failed')
    return getAddress(receipt.contractAddress)
  }
  const at = (address: Address): Fixture => ({
    anvil,
    client,
    address,
    chainId: anvil.chainId,
    wallet,
    account: anvilAccount,
    deploy,
    at,
    send: async (from, functionName, args) => {
      const hash = await wallet(from).writeContract({ address, abi, functionName, args } as never)
      const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })
      if (receipt.status !== 'success') throw new Error(`${functionName} reverted`)
      return receipt
    },
  })
  return at(await deploy())
}

/** EIP-712 domain of a deployed FieldproofAnchor. */
export function domainOf(fx: { chainId: number; address: Address }) {
  return anchorDomain(fx.chainId, fx.address)
}

/** Fields of a GatewayClaim or GatewayConsent message. */
export interface Registration {
  gateway: Address
  owner: Address
  nonce: bigint
  deadline: bigint
}

/** The owner's GatewayClaim signature, presented by the gateway to registerWithClaim. */
export function signClaim(
  signer: HDAccount,
  domain: ReturnType<typeof domainOf>,
  message: Registration,
): Promise<Hex> {
  return signer.signTypedData({ domain, types: { GatewayClaim: REGISTRATION_FIELDS }, primaryType: 'GatewayClaim', message })
}

/** The gateway's GatewayConsent signature, presented by the owner to registerGateway. */
export function signConsent(
  signer: HDAccount,
  domain: ReturnType<typeof domainOf>,
  message: Registration,
): Promise<Hex> {
  return signer.signTypedData({ domain, types: { GatewayConsent: REGISTRATION_FIELDS }, primaryType: 'GatewayConsent', message })
}

/** Latest block timestamp + `seconds`. */
export async function deadlineIn(client: PublicClient, seconds: number): Promise<bigint> {
  const block = await client.getBlock()
  return block.timestamp + BigInt(seconds)
}

/** Registers anvil account `gateway` under account `owner` with a claim; returns the receipt. */
export async function register(fx: Fixture, gateway: number, owner: number): Promise<TransactionReceipt> {
  const gw = fx.account(gateway).address
  const nonce = await fx.client.readContract({ address: fx.address, abi, functionName: 'nonces', args: [gw] })
  const deadline = await deadlineIn(fx.client, 3600)
  const sig = await signClaim(fx.account(owner), domainOf(fx), { gateway: gw, owner: fx.account(owner).address, nonce, deadline })
  return fx.send(gateway, 'registerWithClaim', [fx.account(owner).address, deadline, sig])
}

/**
 * Runs `action` and returns the custom error it reverted with ({ name, args }), or
 * undefined if it did not revert. Errors that are not contract reverts are rethrown.
 */
export async function revertOf(action: () => Promise<unknown>): Promise<{ name: string; args: readonly unknown[] } | undefined> {
  try {
    await action()
    return undefined
  } catch (err) {
    if (err instanceof BaseError) {
      const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError)
      if (reverted instanceof ContractFunctionRevertedError) {
        return { name: reverted.data?.errorName ?? reverted.signature ?? reverted.reason ?? 'unknown', args: reverted.data?.args ?? [] }
      }
    }
    throw err
  }
}

// ---------------------------------------------------------------------------- Merkle

/** A sealed batch as the gateway core builds it: readings (seq, readingHash) under merkleRoot. */
export interface TestBatch {
  batchId: bigint
  readings: Array<[bigint, Hex]>
  tree: StandardMerkleTree<[bigint, Hex]>
  merkleRoot: Hex
}

/** A reading hash stand-in: keccak256 of a label (the contract treats it as opaque bytes32). */
export function readingHash(label: string): Hex {
  return keccak256(stringToHex(label))
}

/**
 * Builds batches `firstBatchId, firstBatchId+1, ...` with `sizes[i]` readings each, sequence
 * numbers contiguous from `firstSeq`.
 */
export function makeBatches(firstBatchId: bigint, firstSeq: bigint, sizes: readonly number[], tag = 'r'): TestBatch[] {
  const out: TestBatch[] = []
  let seq = firstSeq
  sizes.forEach((size, i) => {
    const readings: Array<[bigint, Hex]> = []
    for (let k = 0; k < size; k++, seq++) readings.push([seq, readingHash(`${tag}:${seq}`)])
    const tree = StandardMerkleTree.of(readings, LEAF_TYPES)
    out.push({ batchId: firstBatchId + BigInt(i), readings, tree, merkleRoot: tree.root as Hex })
  })
  return out
}

/** The anchor tree over contiguous batches: leaves [batchId, merkleRoot]. */
export function anchorTree(batches: readonly TestBatch[]): StandardMerkleTree<[bigint, Hex]> {
  return StandardMerkleTree.of(batches.map((b) => [b.batchId, b.merkleRoot] as [bigint, Hex]), LEAF_TYPES)
}
