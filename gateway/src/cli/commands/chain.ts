// `fieldproof chain deploy|claim|register|status|proof` (docs/anchor-sink.md):
// the anchor contract's life cycle from the command line. Private keys come
// only from files (mode 0600 checked by identity/key-file.ts readKey) or the
// gateway's own key file; never from the command line, never printed.

import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createPublicClient, createWalletClient, defineChain, getAddress, http, type Account, type Chain, type PublicClient } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import artifact from '../../../../contracts/artifacts/FieldproofAnchor.json' with { type: 'json' }
import { fieldproofAnchorAbi } from '../../../../contracts/artifacts/FieldproofAnchor.abi.ts'
import { loadConfig } from '../../config/load.ts'
import { FieldproofError } from '../../core/errors.ts'
import { parseAddress } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'
import { DB_FILE } from '../../gateway.ts'
import { readKey } from '../../identity/key-file.ts'
import { writeFileAtomic } from '../../identity/secret-file.ts'
import { proofForSeq } from '../../pipeline/proofs.ts'
import { AnchorState } from '../../sinks/anchor/state.ts'
import { Store } from '../../store/store.ts'
import { CONFIG_OPTIONS, jsonText, str, UsageError, type Command, type Io, type ParsedArgs } from '../cli.ts'
import { anchorDomain, REGISTRATION_FIELDS } from '../../sinks/anchor/registration.ts'

const RECEIPT_TIMEOUT_MS = 180_000
const ZERO = '0x0000000000000000000000000000000000000000'

/** A signed GatewayClaim as `fieldproof chain claim` writes it and `register --claim` reads it. */
export interface ClaimFile {
  readonly type: 'fieldproof.gateway-claim'
  readonly version: 1
  readonly chainId: number
  readonly contract: Hex
  readonly gateway: Hex
  readonly owner: Hex
  /** nonces(gateway) when signed, decimal. */
  readonly nonce: string
  /** Unix seconds, decimal. */
  readonly deadline: string
  /** The owner's EIP-712 signature. */
  readonly signature: Hex
}

const CHAIN_OPTIONS = {
  rpc: { type: 'string' },
  'chain-id': { type: 'string' },
  contract: { type: 'string' },
} as const

function chainOf(id: number, rpc: string): Chain {
  return defineChain({ id, name: `chain ${id}`, nativeCurrency: { name: 'native', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [rpc] } } })
}

function address(v: string | undefined, flag: string): Hex {
  if (v === undefined) throw new UsageError(`${flag} ADDRESS is required`)
  const a = parseAddress(v)
  if (a === undefined) throw new UsageError(`${flag} ${v} is not an Ethereum address`)
  return getAddress(v) as Hex
}

function rpcUrl(v: string | undefined, from: string): string {
  if (v === undefined || v === '') throw new UsageError(`an RPC URL is required: pass --rpc URL${from}`)
  if (!/^https?:\/\/\S+$/.test(v)) throw new UsageError(`--rpc ${v} is not an http:// or https:// URL`)
  return v
}

function chainId(v: string | number | undefined, from: string): number {
  const n = typeof v === 'number' ? v : v === undefined ? NaN : Number(v)
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`a chain id is required: pass --chain-id N${from}`)
  return n
}

/** A private key from a file (0600 checked); the key never appears in errors. */
function keyAccount(file: string | undefined, flag: string, io: Io): Account {
  if (file === undefined) throw new UsageError(`${flag} FILE is required`)
  return privateKeyToAccount(readKey(resolve(io.cwd, file)).privateKey)
}

/** Settings from the gateway's config ([sinks.anchor], identity.key_file), overridden by flags. */
function fromConfig(args: ParsedArgs, io: Io): { rpc: string; chainId: number; contract: Hex; keyFile: string; stateDir: string } {
  const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
  const a = config.sinks.anchor
  const hint = ' or set it in [sinks.anchor]'
  return {
    rpc: rpcUrl(str(args.values['rpc']) ?? (a.rpc_url || undefined), hint),
    chainId: chainId(str(args.values['chain-id']) ?? (a.chain_id > 0 ? a.chain_id : undefined), hint),
    contract: address(str(args.values['contract']) ?? (a.contract || undefined), '--contract (or [sinks.anchor] contract)'),
    keyFile: config.identity.key_file,
    stateDir: config.gateway.state_dir,
  }
}

async function connect(rpc: string, want: number): Promise<PublicClient> {
  const client = createPublicClient({ transport: http(rpc, { timeout: 20_000, retryCount: 1 }), pollingInterval: 250 }) as PublicClient
  let got: number
  try {
    got = await client.getChainId()
  } catch (e) {
    throw new FieldproofError('INTERNAL', `the RPC at ${rpc} does not answer: ${(e as { shortMessage?: string }).shortMessage ?? (e as Error).message}`)
  }
  if (got !== want) throw new FieldproofError('CONFIG_INVALID', `the RPC at ${rpc} serves chain ${got}, not chain ${want}`)
  return client
}

async function requireContract(client: PublicClient, contract: Hex, id: number): Promise<void> {
  const code = await client.getCode({ address: contract })
  if (code === undefined || code === '0x') throw new FieldproofError('NOT_FOUND', `there is no contract at ${contract} on chain ${id} (deploy one with fieldproof chain deploy)`)
}

/** The owner's GatewayClaim for `gateway` (docs/anchor-contract.md, "Registration"). */
async function signClaim(client: PublicClient, owner: Account, id: number, contract: Hex, gateway: Hex, validS: number): Promise<ClaimFile> {
  if (!owner.signTypedData) throw new FieldproofError('INTERNAL', 'the owner account cannot sign typed data')
  const nonce = await client.readContract({ address: contract, abi: fieldproofAnchorAbi, functionName: 'nonces', args: [gateway] })
  const block = await client.getBlock({ blockTag: 'latest' })
  const deadline = block.timestamp + BigInt(validS)
  const signature = await owner.signTypedData({
    domain: anchorDomain(id, contract),
    types: { GatewayClaim: REGISTRATION_FIELDS },
    primaryType: 'GatewayClaim',
    message: { gateway, owner: owner.address, nonce, deadline },
  })
  return { type: 'fieldproof.gateway-claim', version: 1, chainId: id, contract, gateway, owner: owner.address as Hex, nonce: nonce.toString(), deadline: deadline.toString(), signature: signature as Hex }
}

function readClaim(file: string, io: Io): ClaimFile {
  let c: Partial<ClaimFile>
  try {
    c = JSON.parse(readFileSync(resolve(io.cwd, file), 'utf8')) as Partial<ClaimFile>
  } catch (e) {
    throw new UsageError(`--claim ${file}: ${(e as Error).message}`)
  }
  if (c.type !== 'fieldproof.gateway-claim' || c.version !== 1) throw new UsageError(`--claim ${file} is not a fieldproof.gateway-claim v1 document (write one with fieldproof chain claim)`)
  for (const k of ['contract', 'gateway', 'owner'] as const) if (parseAddress(c[k]) === undefined) throw new UsageError(`--claim ${file}: ${k} is not an address`)
  if (typeof c.deadline !== 'string' || !/^\d{1,20}$/.test(c.deadline) || typeof c.signature !== 'string' || !/^0x[0-9a-fA-F]+$/.test(c.signature) || typeof c.chainId !== 'number') {
    throw new UsageError(`--claim ${file}: chainId, deadline or signature is malformed`)
  }
  return c as ClaimFile
}

const validity = (args: ParsedArgs): number => {
  const v = str(args.values['valid-s'])
  const n = v === undefined ? 86_400 : Number(v)
  if (!Number.isSafeInteger(n) || n < 60 || n > 31_536_000) throw new UsageError(`--valid-s ${v} must be whole seconds between 60 and 31536000`)
  return n
}

const deploy: Command = {
  name: 'deploy',
  summary: 'deploy the FieldproofAnchor contract from the committed artifact',
  options: { rpc: { type: 'string' }, 'chain-id': { type: 'string' }, 'key-file': { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof chain deploy --rpc URL --chain-id N --key-file FILE [--json]

Deploy FieldproofAnchor (contracts/artifacts/FieldproofAnchor.json) from the
account whose private key (hex) is in FILE (mode 0600), wait for the receipt
and print the contract address: put it in [sinks.anchor] contract.

Options:
      --rpc URL         JSON-RPC endpoint of the chain
      --chain-id N      the chain id the RPC must serve (refuses another chain)
      --key-file FILE   the deployer's private key; pays the gas (about 2,000,000)
      --json            print { address, txHash, blockNumber, gasUsed, chainId }
`,
  async run(args, io) {
    const rpc = rpcUrl(str(args.values['rpc']), '')
    const id = chainId(str(args.values['chain-id']), '')
    const account = keyAccount(str(args.values['key-file']), '--key-file', io)
    const client = await connect(rpc, id)
    const wallet = createWalletClient({ account, chain: chainOf(id, rpc), transport: http(rpc, { timeout: 20_000 }) })
    const hash = await wallet.deployContract({ abi: fieldproofAnchorAbi, bytecode: artifact.bytecode as Hex })
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })
    if (receipt.status !== 'success' || !receipt.contractAddress) throw new FieldproofError('INTERNAL', `the deployment transaction ${hash} failed`)
    const out = { address: getAddress(receipt.contractAddress), txHash: hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, chainId: id }
    io.out(args.values['json'] ? jsonText(out) : `deployed FieldproofAnchor at ${out.address} (chain ${id}, tx ${hash}, block ${receipt.blockNumber})\nput it in your config:\n  [sinks.anchor]\n  contract = "${out.address}"`)
    return 0
  },
}

const claim: Command = {
  name: 'claim',
  summary: "the owner signs a claim that lets a gateway register itself (no gateway key needed)",
  options: { ...CHAIN_OPTIONS, gateway: { type: 'string' }, 'owner-key-file': { type: 'string' }, out: { type: 'string', short: 'o' }, 'valid-s': { type: 'string' } },
  help: `Usage: fieldproof chain claim --rpc URL --chain-id N --contract ADDRESS --gateway ADDRESS --owner-key-file FILE [--out FILE] [--valid-s S]

The hotspot owner signs an EIP-712 GatewayClaim (docs/anchor-contract.md) for
the gateway address (fieldproof keys show, or the status page): the gateway
then registers itself with fieldproof chain register --claim FILE and pays the
gas. No transaction is sent; the RPC is read for the gateway's claim nonce and
the chain time. The claim is good for one registration, until its deadline.

Options:
      --gateway ADDRESS        the gateway to claim
      --owner-key-file FILE    the owner's private key (hex, mode 0600)
  -o, --out FILE               write the claim here (default: standard output)
      --valid-s S              seconds the claim stays valid (default 86400)
      --rpc URL / --chain-id N / --contract ADDRESS   the chain and the anchor contract
`,
  async run(args, io) {
    const rpc = rpcUrl(str(args.values['rpc']), '')
    const id = chainId(str(args.values['chain-id']), '')
    const contract = address(str(args.values['contract']), '--contract')
    const gateway = address(str(args.values['gateway']), '--gateway')
    const owner = keyAccount(str(args.values['owner-key-file']), '--owner-key-file', io)
    const client = await connect(rpc, id)
    await requireContract(client, contract, id)
    const c = await signClaim(client, owner, id, contract, gateway, validity(args))
    const out = str(args.values['out'])
    if (out === undefined || out === '-') io.out(jsonText(c))
    else {
      writeFileAtomic(resolve(io.cwd, out), jsonText(c) + '\n')
      io.out(`wrote the claim of owner ${c.owner} for gateway ${gateway} to ${out} (valid until ${new Date(Number(c.deadline) * 1000).toISOString()})`)
    }
    return 0
  },
}

const register: Command = {
  name: 'register',
  summary: "register the gateway with the anchor contract, with its owner's claim",
  options: { ...CONFIG_OPTIONS, ...CHAIN_OPTIONS, claim: { type: 'string' }, 'owner-key-file': { type: 'string' }, 'valid-s': { type: 'string' }, json: { type: 'boolean' } },
  help: `Usage: fieldproof chain register (--claim FILE | --owner-key-file FILE) [--config PATH | --state-dir DIR] [--rpc URL] [--chain-id N] [--contract ADDRESS] [--json]

The gateway sends registerWithClaim from its own key (it pays the gas, about
77,000) presenting its owner's signed GatewayClaim: either a claim file the
owner wrote with fieldproof chain claim, or the owner's key file, from which
the claim is signed here. The chain, RPC and contract come from [sinks.anchor]
unless given as flags. Registering an already registered gateway does nothing.

Options:
      --claim FILE            a claim from fieldproof chain claim
      --owner-key-file FILE   the owner's private key (hex, mode 0600) instead of a claim
      --valid-s S             validity of a claim signed here (default 86400)
  -c, --config PATH / --state-dir DIR   which gateway (its key and [sinks.anchor])
      --json                  print { gateway, owner, txHash, blockNumber }
`,
  async run(args, io) {
    const s = fromConfig(args, io)
    const claimFile = str(args.values['claim'])
    const ownerKey = str(args.values['owner-key-file'])
    if ((claimFile === undefined) === (ownerKey === undefined)) throw new UsageError('pass exactly one of --claim FILE and --owner-key-file FILE')
    if (!existsSync(s.keyFile)) throw new FieldproofError('KEY_INVALID', `no gateway key at ${s.keyFile} yet: start the gateway once, or import a key with fieldproof keys import`)
    const gw = privateKeyToAccount(readKey(s.keyFile).privateKey)
    const client = await connect(s.rpc, s.chainId)
    await requireContract(client, s.contract, s.chainId)
    const current = await client.readContract({ address: s.contract, abi: fieldproofAnchorAbi, functionName: 'ownerOf', args: [gw.address] })
    if (current !== ZERO) {
      io.out(args.values['json'] ? jsonText({ gateway: gw.address, owner: current, alreadyRegistered: true }) : `gateway ${gw.address} is already registered (owner ${current})`)
      return 0
    }
    const c = claimFile !== undefined ? readClaim(claimFile, io) : await signClaim(client, keyAccount(ownerKey, '--owner-key-file', io), s.chainId, s.contract, gw.address as Hex, validity(args))
    if (c.gateway.toLowerCase() !== gw.address.toLowerCase()) throw new FieldproofError('USAGE', `the claim is for gateway ${c.gateway}, this gateway is ${gw.address}`)
    if (c.contract.toLowerCase() !== s.contract.toLowerCase() || c.chainId !== s.chainId) throw new FieldproofError('USAGE', `the claim is for contract ${c.contract} on chain ${c.chainId}, not ${s.contract} on chain ${s.chainId}`)
    const balance = await client.getBalance({ address: gw.address })
    if (balance === 0n) throw new FieldproofError('INTERNAL', `the gateway account ${gw.address} holds no native currency to pay the gas: fund it first (or let the owner register it with registerGateway)`)
    const wallet = createWalletClient({ account: gw, chain: chainOf(s.chainId, s.rpc), transport: http(s.rpc, { timeout: 20_000 }) })
    let hash: Hex
    try {
      hash = (await wallet.writeContract({ address: s.contract, abi: fieldproofAnchorAbi, functionName: 'registerWithClaim', args: [c.owner, BigInt(c.deadline), c.signature] })) as Hex
    } catch (e) {
      throw new FieldproofError('INTERNAL', `registerWithClaim was refused: ${(e as { shortMessage?: string }).shortMessage ?? (e as Error).message}`)
    }
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS })
    if (receipt.status !== 'success') throw new FieldproofError('INTERNAL', `registerWithClaim transaction ${hash} reverted`)
    const out = { gateway: gw.address, owner: c.owner, txHash: hash, blockNumber: receipt.blockNumber }
    io.out(args.values['json'] ? jsonText(out) : `registered gateway ${gw.address} under owner ${c.owner} (tx ${hash}, block ${receipt.blockNumber})`)
    return 0
  },
}

const status: Command = {
  name: 'status',
  summary: "the gateway's registration, anchors and balance on chain",
  options: { ...CONFIG_OPTIONS, ...CHAIN_OPTIONS, json: { type: 'boolean' } },
  help: `Usage: fieldproof chain status [--config PATH | --state-dir DIR] [--rpc URL] [--chain-id N] [--contract ADDRESS] [--json]

Read the chain for this gateway: the chain id the RPC serves (and whether it is
the configured one), whether the contract is there, the gateway's registration
and owner, its last anchored batch and anchor count, and its balance (which
pays for anchors). Exit status 1 when the RPC does not answer, the chain or the
contract does not match, or the gateway is not registered.
`,
  async run(args, io) {
    const s = fromConfig(args, io)
    if (!existsSync(s.keyFile)) throw new FieldproofError('KEY_INVALID', `no gateway key at ${s.keyFile} yet: start the gateway once, or import a key with fieldproof keys import`)
    const gateway = readKey(s.keyFile).address
    const client = createPublicClient({ transport: http(s.rpc, { timeout: 20_000, retryCount: 1 }) }) as PublicClient
    let rpcChainId: number
    try {
      rpcChainId = await client.getChainId()
    } catch (e) {
      throw new FieldproofError('INTERNAL', `the RPC at ${s.rpc} does not answer: ${(e as { shortMessage?: string }).shortMessage ?? (e as Error).message}`)
    }
    const code = await client.getCode({ address: s.contract })
    const hasContract = code !== undefined && code !== '0x'
    const [owner, lastBatchId, anchors] = hasContract
      ? await client.readContract({ address: s.contract, abi: fieldproofAnchorAbi, functionName: 'gatewayInfo', args: [gateway] })
      : [ZERO, 0n, 0n]
    const balance = await client.getBalance({ address: gateway })
    const out = {
      gateway,
      chainId: rpcChainId,
      configChainId: s.chainId,
      contract: s.contract,
      contractDeployed: hasContract,
      configMatches: rpcChainId === s.chainId && hasContract,
      registered: owner !== ZERO,
      owner: owner === ZERO ? null : owner,
      lastAnchoredBatchId: lastBatchId,
      anchorCount: anchors,
      balanceWei: balance,
      blockNumber: await client.getBlockNumber(),
    }
    if (args.values['json']) io.out(jsonText(out))
    else {
      io.out(`gateway            ${gateway}`)
      io.out(`chain              ${rpcChainId}${rpcChainId === s.chainId ? '' : `  MISMATCH: the config says ${s.chainId}`}`)
      io.out(`contract           ${s.contract}${hasContract ? '' : '  NOT DEPLOYED on this chain'}`)
      io.out(`registered         ${owner !== ZERO ? `yes, owner ${owner}` : 'no: run fieldproof chain register'}`)
      io.out(`last anchored      batch ${lastBatchId} (${anchors} anchors)`)
      io.out(`balance            ${balance} wei (${(Number(balance) / 1e18).toFixed(6)})`)
    }
    return out.configMatches && out.registered ? 0 : 1
  },
}

const proof: Command = {
  name: 'proof',
  summary: "a reading's proof bundle with its anchor fields, from the local store",
  options: { ...CONFIG_OPTIONS, ...CHAIN_OPTIONS, out: { type: 'string', short: 'o' } },
  help: `Usage: fieldproof chain proof SEQ [--config PATH | --state-dir DIR] [--chain-id N] [--contract ADDRESS] [--out FILE]

Print the proof bundle of reading SEQ (as GET /api/v1/proofs/SEQ) with its
"anchor" member: chain id, contract, transaction, block, anchor id, anchor root
and the batch's path to it, once a confirmed anchor covers the batch. Reads the
gateway's database (it may be running). Check it with
fieldproof verify FILE --rpc URL. Exit status 1 when the reading is unknown or
its batch is not anchored yet.
`,
  run(args, io) {
    const seqText = args.positionals[0]
    if (seqText === undefined || !/^[1-9]\d{0,19}$/.test(seqText)) throw new UsageError('SEQ (a reading sequence number ≥ 1) is required')
    const { config } = loadConfig({ path: str(args.values['config']), overrides: { stateDir: str(args.values['state-dir']) }, env: io.env, cwd: io.cwd })
    const a = config.sinks.anchor
    const id = chainId(str(args.values['chain-id']) ?? (a.chain_id > 0 ? a.chain_id : undefined), ' or set it in [sinks.anchor]')
    const contract = address(str(args.values['contract']) ?? (a.contract || undefined), '--contract (or [sinks.anchor] contract)')
    const dbPath = join(config.gateway.state_dir, DB_FILE)
    if (!existsSync(dbPath)) throw new FieldproofError('NOT_FOUND', `no database at ${dbPath}`)
    const store = new Store(dbPath, { readonly: true })
    try {
      const p = proofForSeq(store, BigInt(seqText))
      if (!p.ok) throw new FieldproofError('NOT_FOUND', p.reason)
      const batchId = BigInt(p.bundle.batch.header.batchId)
      const anchor = new AnchorState(store, id, contract).proofAnchor(batchId)
      if (!anchor) throw new FieldproofError('NOT_FOUND', `batch ${batchId} of reading ${seqText} is not covered by a confirmed anchor on chain ${id} yet`)
      const text = jsonText({ ...p.bundle, anchor })
      const out = str(args.values['out'])
      if (out === undefined || out === '-') io.out(text)
      else writeFileAtomic(resolve(io.cwd, out), text + '\n')
      return 0
    } finally {
      store.close()
    }
  },
}

export const chainCommand: Command = {
  name: 'chain',
  summary: 'deploy the anchor contract, register the gateway, show its anchors on chain',
  options: {},
  subcommands: [deploy, claim, register, status, proof],
  help: `Usage: fieldproof chain <deploy|claim|register|status|proof> [options]

The EVM anchor (docs/anchor-sink.md, docs/anchor-contract.md):
  deploy     deploy FieldproofAnchor and print its address
  claim      the owner signs a claim for a gateway address (no gateway key needed)
  register   the gateway registers itself with its owner's claim (or owner key file)
  status     registration, owner, last anchored batch, anchor count, balance
  proof      a reading's proof bundle with its anchor fields

Private keys are read only from files (mode 0600) or the gateway's key file.
Run fieldproof chain <command> --help for its options.
`,
}
