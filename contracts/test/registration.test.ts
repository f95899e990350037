// Gateway registration: the owner's EIP-712 GatewayClaim presented by the gateway
// (registerWithClaim), the gateway's GatewayConsent presented by the owner (registerGateway),
// nonces, deadlines, deregistration and two-step ownership transfer.
// EIP-712: https://eips.ethereum.org/EIPS/eip-712
import t from 'tap'
import solc from 'solc'
import { encodeFunctionData, getAddress, hashTypedData, parseEventLogs, zeroAddress } from 'viem'
import type { Abi, Hex } from 'viem'
import {
  abi,
  deadlineIn,
  domainOf,
  register,
  revertOf,
  setup,
  signClaim,
  signConsent,
} from './fixture.ts'

const fx = await setup(t)
const read = <T>(functionName: string, args: readonly unknown[]): Promise<T> =>
  fx.client.readContract({ address: fx.address, abi, functionName, args } as never) as Promise<T>
const addr = (i: number) => fx.account(i).address

t.test('eip712Domain and digests match viem', async (t) => {
  const [, name, version, chainId, verifyingContract] = await read<readonly unknown[]>('eip712Domain', [])
  t.equal(name, 'FieldproofAnchor')
  t.equal(version, '1')
  t.equal(chainId, BigInt(fx.chainId))
  t.equal(verifyingContract, fx.address)
  const message = { gateway: addr(1), owner: addr(2), nonce: 7n, deadline: 123456789n }
  const fields = [
    { name: 'gateway', type: 'address' },
    { name: 'owner', type: 'address' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ] as const
  const claim = hashTypedData({ domain: domainOf(fx), types: { GatewayClaim: fields }, primaryType: 'GatewayClaim', message })
  const consent = hashTypedData({ domain: domainOf(fx), types: { GatewayConsent: fields }, primaryType: 'GatewayConsent', message })
  t.equal(await read('claimDigest', [message.gateway, message.owner, message.nonce, message.deadline]), claim)
  t.equal(await read('consentDigest', [message.gateway, message.owner, message.nonce, message.deadline]), consent)
  t.not(claim, consent, 'a consent can never pass for a claim')
})

t.test('registerWithClaim: valid claim registers the calling gateway', async (t) => {
  const gw = addr(1)
  const owner = addr(2)
  t.equal(await read('isRegistered', [gw]), false)
  t.equal(await read('nonces', [gw]), 0n)
  const receipt = await register(fx, 1, 2)
  const logs = parseEventLogs({ abi, logs: receipt.logs, eventName: 'GatewayRegistered' })
  t.equal(logs.length, 1)
  t.same(logs[0]?.args, { gateway: gw, owner })
  t.equal(await read('ownerOf', [gw]), owner)
  t.equal(await read('isRegistered', [gw]), true)
  t.equal(await read('nonces', [gw]), 1n, 'the claim nonce is consumed')
  t.same(await read('gatewayInfo', [gw]), [owner, 0n, 0n])

  const again = await revertOf(() => register(fx, 1, 2))
  t.same(again, { name: 'AlreadyRegistered', args: [gw, owner] })
})

t.test('registerWithClaim rejections', async (t) => {
  const gw = fx.account(3)
  const owner = fx.account(4)
  const domain = domainOf(fx)
  const nonce = await read<bigint>('nonces', [gw.address])
  const deadline = await deadlineIn(fx.client, 600)
  const good = await signClaim(owner, domain, { gateway: gw.address, owner: owner.address, nonce, deadline })

  t.test('expired deadline', async (t) => {
    const past = (await deadlineIn(fx.client, 0)) - 1n
    const sig = await signClaim(owner, domain, { gateway: gw.address, owner: owner.address, nonce, deadline: past })
    const err = await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, past, sig]))
    t.equal(err?.name, 'SignatureExpired')
    t.equal(err?.args[0], past)
  })

  t.test('signed by someone other than the named owner', async (t) => {
    const sig = await signClaim(fx.account(5), domain, { gateway: gw.address, owner: owner.address, nonce, deadline })
    t.same(await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, sig])), {
      name: 'InvalidSignature',
      args: [owner.address],
    })
  })

  t.test('presented by an address other than the gateway', async (t) => {
    // account 5 replays the claim made out to account 3
    t.same(await revertOf(() => fx.send(5, 'registerWithClaim', [owner.address, deadline, good])), {
      name: 'InvalidSignature',
      args: [owner.address],
    })
    t.equal(await read('isRegistered', [addr(5)]), false)
  })

  t.test('altered fields', async (t) => {
    const later = deadline + 1n
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, later, good])))?.name, 'InvalidSignature', 'deadline')
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [addr(6), deadline, good])))?.name, 'InvalidSignature', 'owner')
    const wrongNonce = await signClaim(owner, domain, { gateway: gw.address, owner: owner.address, nonce: nonce + 1n, deadline })
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, wrongNonce])))?.name, 'InvalidSignature', 'nonce')
    const otherChain = await signClaim(owner, { ...domain, chainId: 1 }, { gateway: gw.address, owner: owner.address, nonce, deadline })
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, otherChain])))?.name, 'InvalidSignature', 'chain id')
    const otherContract = await signClaim(owner, { ...domain, verifyingContract: addr(9) }, { gateway: gw.address, owner: owner.address, nonce, deadline })
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, otherContract])))?.name, 'InvalidSignature', 'contract')
    const consent = await signConsent(owner, domain, { gateway: gw.address, owner: owner.address, nonce, deadline })
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, consent])))?.name, 'InvalidSignature', 'consent type')
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, '0x1234'])))?.name, 'InvalidSignature', 'malformed signature')
    t.equal((await revertOf(() => fx.send(3, 'registerWithClaim', [zeroAddress, deadline, good])))?.name, 'ZeroAddress', 'zero owner')
  })

  t.test('the good claim works once; replay after deregistration fails (nonce consumed)', async (t) => {
    await fx.send(3, 'registerWithClaim', [owner.address, deadline, good])
    t.equal(await read('ownerOf', [gw.address]), owner.address)
    const receipt = await fx.send(4, 'deregisterGateway', [gw.address])
    const logs = parseEventLogs({ abi, logs: receipt.logs, eventName: 'GatewayDeregistered' })
    t.same(logs[0]?.args, { gateway: gw.address, owner: owner.address })
    t.equal(await read('isRegistered', [gw.address]), false)
    t.equal(await read('nonces', [gw.address]), nonce + 2n)
    t.same(await revertOf(() => fx.send(3, 'registerWithClaim', [owner.address, deadline, good])), {
      name: 'InvalidSignature',
      args: [owner.address],
    })
  })
})

t.test('registerGateway: the owner registers with the gateway consent', async (t) => {
  const gw = fx.account(6)
  const owner = fx.account(7)
  const domain = domainOf(fx)
  const nonce = await read<bigint>('nonces', [gw.address])
  const deadline = await deadlineIn(fx.client, 600)
  const consent = await signConsent(gw, domain, { gateway: gw.address, owner: owner.address, nonce, deadline })

  const byOther = await revertOf(() => fx.send(8, 'registerGateway', [gw.address, deadline, consent]))
  t.same(byOther, { name: 'InvalidSignature', args: [gw.address] }, 'consent names owner 7, not the caller')
  const signedByOwner = await signConsent(owner, domain, { gateway: gw.address, owner: owner.address, nonce, deadline })
  t.equal((await revertOf(() => fx.send(7, 'registerGateway', [gw.address, deadline, signedByOwner])))?.name, 'InvalidSignature')
  const claimInstead = await signClaim(gw, domain, { gateway: gw.address, owner: owner.address, nonce, deadline })
  t.equal((await revertOf(() => fx.send(7, 'registerGateway', [gw.address, deadline, claimInstead])))?.name, 'InvalidSignature')

  const receipt = await fx.send(7, 'registerGateway', [gw.address, deadline, consent])
  const logs = parseEventLogs({ abi, logs: receipt.logs, eventName: 'GatewayRegistered' })
  t.same(logs[0]?.args, { gateway: gw.address, owner: owner.address })
  t.equal(await read('ownerOf', [gw.address]), owner.address)
  t.equal(await read('nonces', [gw.address]), nonce + 1n)
})

t.test('owner-only operations and two-step transfer', async (t) => {
  const fresh = await fx.deploy()
  const local = fx.at(fresh)
  const r = <T>(functionName: string, args: readonly unknown[]) =>
    fx.client.readContract({ address: fresh, abi, functionName, args } as never) as Promise<T>
  await register(local, 1, 2)
  const gw = addr(1)

  t.same(await revertOf(() => local.send(5, 'deregisterGateway', [gw])), { name: 'NotGatewayOwner', args: [gw, addr(5)] })
  t.same(await revertOf(() => local.send(1, 'deregisterGateway', [gw])), { name: 'NotGatewayOwner', args: [gw, gw] }, 'the gateway itself is not its owner')
  t.same(await revertOf(() => local.send(5, 'transferGatewayOwnership', [gw, addr(5)])), { name: 'NotGatewayOwner', args: [gw, addr(5)] })
  t.same(await revertOf(() => local.send(2, 'deregisterGateway', [addr(9)])), { name: 'NotRegistered', args: [addr(9)] })

  const started = await local.send(2, 'transferGatewayOwnership', [gw, addr(3)])
  t.same(parseEventLogs({ abi, logs: started.logs, eventName: 'GatewayOwnershipTransferStarted' })[0]?.args, {
    gateway: gw,
    owner: addr(2),
    newOwner: addr(3),
  })
  t.equal(await r('pendingOwnerOf', [gw]), addr(3))
  t.equal(await r('ownerOf', [gw]), addr(2), 'owner unchanged until accepted')
  t.same(await revertOf(() => local.send(4, 'acceptGatewayOwnership', [gw])), { name: 'NotPendingOwner', args: [gw, addr(4)] })
  const accepted = await local.send(3, 'acceptGatewayOwnership', [gw])
  t.same(parseEventLogs({ abi, logs: accepted.logs, eventName: 'GatewayOwnershipTransferred' })[0]?.args, {
    gateway: gw,
    previousOwner: addr(2),
    newOwner: addr(3),
  })
  t.equal(await r('ownerOf', [gw]), addr(3))
  t.equal(await r('pendingOwnerOf', [gw]), zeroAddress)
  t.equal((await revertOf(() => local.send(2, 'deregisterGateway', [gw])))?.name, 'NotGatewayOwner', 'old owner lost control')

  // a pending transfer dies with deregistration
  await local.send(3, 'transferGatewayOwnership', [gw, addr(4)])
  await local.send(3, 'deregisterGateway', [gw])
  t.equal(await r('pendingOwnerOf', [gw]), zeroAddress)
  t.same(await revertOf(() => local.send(4, 'acceptGatewayOwnership', [gw])), { name: 'NotPendingOwner', args: [gw, addr(4)] })
})

// A contract owner (a multisig, a smart account) consents through ERC-1271
// (https://eips.ethereum.org/EIPS/eip-1271): isValidSignature(hash, signature) == 0x1626ba7e.
const WALLET_SOURCE = `
// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;
contract OneKeyWallet {
    address public immutable signer;
    constructor(address s) { signer = s; }
    function isValidSignature(bytes32 hash, bytes calldata sig) external view returns (bytes4) {
        if (sig.length != 65) return 0xffffffff;
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        return ecrecover(hash, v, r, s) == signer ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }
    function exec(address to, bytes calldata data) external {
        require(msg.sender == signer, "not signer");
        (bool ok, bytes memory ret) = to.call(data);
        if (!ok) assembly { revert(add(ret, 32), mload(ret)) }
    }
}`

t.test('a contract owner (ERC-1271) signs the claim', async (t) => {
  const input = {
    language: 'Solidity',
    sources: { 'OneKeyWallet.sol': { content: WALLET_SOURCE } },
    settings: { evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
  }
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: Array<{ severity: string; formattedMessage: string }>
    contracts: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>
  }
  t.same((out.errors ?? []).filter((e) => e.severity === 'error'), [])
  const walletArtifact = out.contracts['OneKeyWallet.sol']?.['OneKeyWallet']
  if (walletArtifact === undefined) throw new Error('wallet did not compile')
  const signerKey = fx.account(8)
  const hash = await fx.wallet(8).deployContract({ abi: walletArtifact.abi, bytecode: `0x${walletArtifact.evm.bytecode.object}`, args: [signerKey.address] })
  const walletAddress = getAddress((await fx.client.waitForTransactionReceipt({ hash })).contractAddress ?? '0x')

  const gw = fx.account(9)
  const nonce = await read<bigint>('nonces', [gw.address])
  const deadline = await deadlineIn(fx.client, 600)
  const digest = await read<Hex>('claimDigest', [gw.address, walletAddress, nonce, deadline])
  const byStranger = await fx.account(5).sign({ hash: digest })
  t.same(await revertOf(() => fx.send(9, 'registerWithClaim', [walletAddress, deadline, byStranger])), { name: 'InvalidSignature', args: [walletAddress] })
  const sig = await signerKey.sign({ hash: digest })
  await fx.send(9, 'registerWithClaim', [walletAddress, deadline, sig])
  t.equal(await read('ownerOf', [gw.address]), walletAddress)

  // the wallet, not its signer key, owns the gateway
  t.equal((await revertOf(() => fx.send(8, 'deregisterGateway', [gw.address])))?.name, 'NotGatewayOwner')
  const call = encodeFunctionData({ abi, functionName: 'deregisterGateway', args: [gw.address] })
  const tx = await fx.wallet(8).writeContract({ address: walletAddress, abi: walletArtifact.abi, functionName: 'exec', args: [fx.address, call] })
  t.equal((await fx.client.waitForTransactionReceipt({ hash: tx })).status, 'success')
  t.equal(await read('isRegistered', [gw.address]), false)
})
