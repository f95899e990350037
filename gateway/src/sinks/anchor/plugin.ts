// [sinks.anchor] → AnchorSink (docs/anchor-sink.md). Kept apart from
// plugins.ts so viem is loaded only when the sink is enabled.

import type { Static } from '@sinclair/typebox'
import type { AnchorSinkSection } from '../../config/sections/sinks.ts'
import { FieldproofError } from '../../core/errors.ts'
import type { Hex } from '../../core/types.ts'
import type { SinkPluginContext } from '../../plugins.ts'
import { AnchorSink } from './anchor.ts'

/** Parse a gwei amount (up to 9 decimals) into wei without floating-point error. */
export function gweiToWei(gwei: number): bigint {
  const [int = '0', frac = ''] = gwei.toFixed(9).split('.')
  return BigInt(int) * 1_000_000_000n + BigInt(frac.padEnd(9, '0').slice(0, 9))
}

/** The anchor sink of a [sinks.anchor] table; throws CONFIG_INVALID for a missing rpc_url, contract or chain_id. */
export function createAnchorSink(ctx: SinkPluginContext, c: Static<typeof AnchorSinkSection>): AnchorSink {
  if (c.rpc_url === '') throw new FieldproofError('CONFIG_INVALID', 'sinks.anchor.rpc_url: required when the sink is enabled')
  if (c.contract === '') throw new FieldproofError('CONFIG_INVALID', 'sinks.anchor.contract: required when the sink is enabled (`fieldproof chain deploy` prints one)')
  if (c.chain_id < 1) throw new FieldproofError('CONFIG_INVALID', 'sinks.anchor.chain_id: required when the sink is enabled (the chain the RPC serves)')
  return new AnchorSink({
    rpcUrl: c.rpc_url,
    chainId: c.chain_id,
    contract: c.contract as Hex,
    gateway: ctx.gatewayAddress,
    signDigest: ctx.signDigest,
    store: ctx.store,
    log: ctx.log,
    metrics: ctx.metrics,
    intervalMs: c.interval_s * 1000,
    maxBatches: c.max_batches,
    confirmations: c.confirmations,
    maxFeeWei: gweiToWei(c.max_fee_gwei),
    ...(c.priority_fee_gwei > 0 ? { priorityFeeWei: gweiToWei(c.priority_fee_gwei) } : {}),
    pollMs: c.poll_ms,
    rpcTimeoutMs: c.rpc_timeout_ms,
    replaceAfterMs: c.replace_after_s * 1000,
  })
}
