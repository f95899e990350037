// The EIP-712 messages of gateway registration with the FieldproofAnchor
// contract (docs/anchor-contract.md, "Registration"): the owner's
// GatewayClaim, presented by the gateway to registerWithClaim, and the
// gateway's GatewayConsent, presented by the owner to registerGateway. Both
// have these fields; the contract's claimDigest/consentDigest views hash the same.

import type { Hex } from '../../core/types.ts'

/** Fields of a GatewayClaim and of a GatewayConsent, in the contract's order. */
export const REGISTRATION_FIELDS = [
  { name: 'gateway', type: 'address' },
  { name: 'owner', type: 'address' },
  { name: 'nonce', type: 'uint256' },
  { name: 'deadline', type: 'uint256' },
] as const

/** The EIP-712 domain of a deployed FieldproofAnchor. */
export function anchorDomain(chainId: number, contract: Hex) {
  return { name: 'FieldproofAnchor', version: '1', chainId, verifyingContract: contract } as const
}
