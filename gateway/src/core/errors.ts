// Errors: values for the air, classes for the system. Bad payloads are
// results (DecodeResult, IngestRejection); infrastructure failures throw a
// FieldproofError with a stable code.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'KEY_INVALID'
  | 'KEY_EXISTS'
  | 'KEYSTORE_INVALID'
  | 'KEYSTORE_PASSPHRASE'
  | 'STORE_FULL'
  | 'STORE_CLOSED'
  | 'STORE_CORRUPT'
  | 'BACKPRESSURE'
  | 'READING_INVALID'
  | 'PROOF_INVALID'
  | 'NOT_FOUND'
  | 'USAGE'
  | 'INTERNAL'

export interface FieldproofErrorOptions {
  readonly details?: Readonly<Record<string, unknown>>
  readonly cause?: unknown
}

export class FieldproofError extends Error {
  override readonly name = 'FieldproofError'
  readonly code: ErrorCode
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string, options: FieldproofErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details ?? {}
  }
}

export function isFieldproofError(e: unknown, code?: ErrorCode): e is FieldproofError {
  return e instanceof FieldproofError && (code === undefined || e.code === code)
}
