// Types shared by the anchor sink's modules.

import type { ProofAnchor } from '../../core/proof.ts'
import type { Hex } from '../../core/types.ts'

export type { Hex }
/** The `anchor` member of a proof bundle (core/proof.ts ProofAnchor). */
export type ProofAnchorLike = ProofAnchor

/** The kinds of error the anchor sink reports (status `error.kind`, metric label). */
export type AnchorErrorKind =
  | 'insufficient-funds'
  | 'not-registered'
  | 'rpc-unreachable'
  | 'fee-above-cap'
  | 'wrong-chain'
  | 'batch-gap'
  | 'rpc-error'

/** The anchor sink's state (status `state`). */
export type AnchorSinkState = 'idle' | 'anchoring' | 'waiting-confirmations' | 'error' | 'stopped'

/** An error as status shows it: a kind, a sentence, and the numbers behind it. */
export interface AnchorError {
  readonly kind: AnchorErrorKind
  readonly message: string
  readonly details?: Readonly<Record<string, string | number | boolean>>
  /** When it was first seen in a row, ms since the epoch. */
  readonly sinceMs: number
}
