// [sinks.*]: where sealed batches go (docs/upstream-protocol.md). One table per
// sink; `enabled = true` turns it on. Every sink has its own delivery keys
// (timeout, backoff, when it counts as stuck), because an HTTP sequencer, a
// broker and a local directory fail in different ways.

import { Type } from '@sinclair/typebox'

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const

/** Delivery keys shared by every sink (sink-runner.ts), with per-sink defaults. */
function delivery(d: { timeoutMs: number; baseMs: number; maxMs: number; stuckAfter: number }) {
  return {
    timeout_ms: Type.Integer({
      description: 'A send that takes longer than this many milliseconds is aborted and retried.',
      default: d.timeoutMs,
      minimum: 100,
      maximum: 600_000,
    }),
    backoff_base_ms: Type.Integer({
      description: 'First retry delay after a failed send, in milliseconds; it doubles with each consecutive failure (with random jitter).',
      default: d.baseMs,
      minimum: 10,
      maximum: 600_000,
    }),
    backoff_max_ms: Type.Integer({
      description: 'Longest retry delay, in milliseconds; once the sink is stuck, one probe goes out per this interval.',
      default: d.maxMs,
      minimum: 100,
      maximum: 3_600_000,
    }),
    stuck_after_failures: Type.Integer({
      description: 'Consecutive failures after which the sink is shown as "stuck" with its last error (status, metrics, log); it keeps retrying slowly.',
      default: d.stuckAfter,
      minimum: 1,
      maximum: 1_000_000,
    }),
  }
}

const HTTP_URL_PATTERN = '^(|https?://[^\\s]+)$'

export const HttpSinkSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'POST every sealed batch to `url`.', default: false }),
    url: Type.String({
      description: 'Endpoint batches are POSTed to, http:// or https:// (e.g. a `fieldproof receive` server: "http://10.0.0.2:8700/v1/batches"). Required when enabled.',
      default: '',
      pattern: HTTP_URL_PATTERN,
      patternHint: 'use an http:// or https:// URL',
    }),
    format: Type.Union([Type.Literal('json'), Type.Literal('cbor')], {
      description: 'Body encoding: "json" (application/json) or "cbor" (application/cbor, RFC 8949; hex fields become byte strings).',
      default: 'json',
    }),
    payload: Type.Union([Type.Literal('canonical'), Type.Literal('leaves')], {
      description: 'What each batch carries besides its signed header: "canonical" every reading in canonical form (the receiver re-derives the leaves), or "leaves" only the Merkle leaves.',
      default: 'canonical',
    }),
    auth_header: Type.String({
      description: 'Name of the header carrying the credential, e.g. "Authorization" or "X-Api-Key".',
      default: 'Authorization',
      pattern: '^[A-Za-z0-9-]{1,64}$',
      patternHint: 'use 1 to 64 letters, digits or "-"',
    }),
    auth_value: Type.String({
      description: 'Value of the auth header, e.g. "Bearer <token>". Empty: no auth header (unless auth_value_file is set). Prefer auth_value_file to keep secrets out of this file.',
      default: '',
    }),
    auth_value_file: Type.String({
      description: 'File whose content (trimmed) is the auth header value; relative to state_dir. Overrides auth_value.',
      default: '',
    }),
    ca_file: Type.String({
      description: 'PEM file of the certificate authority that signed the upstream\'s certificate (https only); relative to state_dir. Empty: the system trust store.',
      default: '',
    }),
    ...delivery({ timeoutMs: 30_000, baseMs: 1000, maxMs: 300_000, stuckAfter: 10 }),
  },
  table('Forward sealed batches to an HTTP endpoint (a sequencer, a webhook, `fieldproof receive`). Wire format: docs/upstream-protocol.md.'),
)

export const W3bstreamSinkSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Send every sealed batch as a signed message to a W3bstream sequencer.', default: false }),
    url: Type.String({
      description: 'The sequencer\'s message endpoint, e.g. "https://sequencer.example/message" (W3bstream POST /message). Required when enabled.',
      default: '',
      pattern: HTTP_URL_PATTERN,
      patternHint: 'use an http:// or https:// URL',
    }),
    project_id: Type.Integer({ description: 'The W3bstream project id messages are sent to.', default: 0, minimum: 0 }),
    project_version: Type.String({ description: 'The W3bstream project version, e.g. "0.1".', default: '0.1', minLength: 1, maxLength: 64 }),
    payload: Type.Union([Type.Literal('canonical'), Type.Literal('leaves')], {
      description: 'What the message `data` carries besides the signed batch header: "canonical" readings or only "leaves".',
      default: 'leaves',
    }),
    auth_value_file: Type.String({
      description: 'File whose content (trimmed) is sent as "Authorization: Bearer <content>" (a sequencer token); relative to state_dir. Empty: none.',
      default: '',
    }),
    ...delivery({ timeoutMs: 30_000, baseMs: 2000, maxMs: 300_000, stuckAfter: 10 }),
  },
  table('Forward sealed batches to an IoTeX W3bstream sequencer as device messages signed by the gateway key (docs/upstream-protocol.md).'),
)

export const MqttSinkSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Publish every sealed batch to an external MQTT broker (QoS 1).', default: false }),
    url: Type.String({
      description: 'Broker URL: mqtt://HOST:PORT or mqtts://HOST:PORT (TLS). Required when enabled.',
      default: '',
      pattern: '^(|mqtts?://[^\\s]+)$',
      patternHint: 'use an mqtt:// or mqtts:// URL',
    }),
    topic: Type.String({
      description: 'Topic template; {gateway} is replaced by the gateway address (lowercase), {batch} by the batch id.',
      default: 'fieldproof/{gateway}/batches',
      minLength: 1,
      maxLength: 512,
    }),
    client_id: Type.String({ description: 'MQTT client id. Empty: "fieldproof-" and the gateway address.', default: '' }),
    username: Type.String({ description: 'User name for the broker. Empty: none.', default: '' }),
    password_file: Type.String({ description: 'File whose content (trimmed) is the broker password; relative to state_dir. Empty: none.', default: '' }),
    ca_file: Type.String({ description: 'PEM file of the CA for mqtts://; relative to state_dir. Empty: the system trust store.', default: '' }),
    cert_file: Type.String({ description: 'PEM client certificate for mqtts:// (mutual TLS); relative to state_dir. Empty: none.', default: '' }),
    key_file: Type.String({ description: 'PEM private key of cert_file; relative to state_dir. Empty: none.', default: '' }),
    format: Type.Union([Type.Literal('json'), Type.Literal('cbor')], {
      description: 'Payload encoding, the same document as the HTTP sink\'s body: "json" or "cbor".',
      default: 'json',
    }),
    payload: Type.Union([Type.Literal('canonical'), Type.Literal('leaves')], {
      description: 'What each message carries besides the signed header: "canonical" readings or only "leaves".',
      default: 'canonical',
    }),
    ...delivery({ timeoutMs: 15_000, baseMs: 1000, maxMs: 120_000, stuckAfter: 10 }),
  },
  table('Publish sealed batches to an external MQTT broker, acknowledged by PUBACK (docs/upstream-protocol.md).'),
)

export const ArchiveSinkSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Write every sealed batch, with its readings and proofs, as a content-addressed file.', default: false }),
    dir: Type.String({
      description: 'Directory of the archive files (created when missing); relative to state_dir. Put it on another disk or a network share to keep history beyond retention.',
      default: 'archive',
      minLength: 1,
    }),
    ...delivery({ timeoutMs: 60_000, baseMs: 1000, maxMs: 60_000, stuckAfter: 5 }),
  },
  table('Long-term storage: each batch with its readings and proof bundles as <sha256>.json in a directory, plus an index (docs/upstream-protocol.md).'),
)

const HEX_ADDRESS_PATTERN = '^(|0x[0-9a-fA-F]{40})$'

export const AnchorSinkSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Anchor sealed batches on an EVM chain: one transaction per range of batches, committing a Merkle root over their roots (docs/anchor-sink.md).', default: false }),
    rpc_url: Type.String({
      description: 'JSON-RPC endpoint of the chain, http:// or https:// (e.g. "https://babel-api.mainnet.iotex.io", "https://polygon-rpc.com", "http://127.0.0.1:8545"). Required when enabled.',
      default: '',
      pattern: HTTP_URL_PATTERN,
      patternHint: 'use an http:// or https:// URL',
    }),
    chain_id: Type.Integer({ description: 'EIP-155 chain id the RPC must report (4689 IoTeX, 137 Polygon, 8453 Base, 1 Ethereum, 31337 a local anvil). A mismatch stops anchoring with the status "wrong-chain".', default: 0, minimum: 0 }),
    contract: Type.String({
      description: 'Address of the FieldproofAnchor contract (`fieldproof chain deploy` prints it). Required when enabled.',
      default: '',
      pattern: HEX_ADDRESS_PATTERN,
      patternHint: 'use a 0x-prefixed 20-byte hex address',
    }),
    interval_s: Type.Integer({ description: 'Seconds between anchors: each anchor covers every batch sealed since the previous one, in one transaction.', default: 3600, minimum: 1, maximum: 31_536_000 }),
    max_batches: Type.Integer({ description: 'Anchor early once this many batches wait, and never cover more than this many in one anchor (the gas cost of an anchor does not depend on it; it bounds the time a range waits and the work of one anchor).', default: 1000, minimum: 1, maximum: 100_000 }),
    confirmations: Type.Integer({ description: 'Blocks on top of the anchor\'s block (its own included) before a range counts as anchored; a reorg that drops the transaction before that re-anchors the range. Use 3 or more on mainnets, 1 on a local node.', default: 3, minimum: 1, maximum: 10_000 }),
    max_fee_gwei: Type.Number({ description: 'Cap of maxFeePerGas (EIP-1559) or gasPrice (legacy chains), in gwei: above it nothing is sent and the status says "fee-above-cap" until fees fall.', default: 100, minimum: 0.000001 }),
    priority_fee_gwei: Type.Number({ description: 'maxPriorityFeePerGas in gwei; 0 uses the node\'s suggestion (eth_maxPriorityFeePerGas).', default: 0, minimum: 0 }),
    poll_ms: Type.Integer({ description: 'How often, in milliseconds, a sent transaction is checked for its receipt and confirmations (and the RPC retried after an error).', default: 5000, minimum: 10, maximum: 600_000 }),
    replace_after_s: Type.Integer({ description: 'An anchor transaction still pending after this many seconds (fees rose past it) is replaced by the same transaction with fees at least 12.5 % higher, under max_fee_gwei.', default: 300, minimum: 1, maximum: 86_400 }),
    rpc_timeout_ms: Type.Integer({ description: 'A JSON-RPC request that takes longer than this many milliseconds fails (status "rpc-unreachable") and is retried.', default: 15_000, minimum: 100, maximum: 600_000 }),
    ...delivery({ timeoutMs: 30_000, baseMs: 1000, maxMs: 60_000, stuckAfter: 10 }),
  },
  table('Anchor sealed batches on any EVM chain (IoTeX, Polygon, Base, Ethereum, a local node) with the FieldproofAnchor contract, signing with the gateway key (docs/anchor-sink.md, docs/anchor-contract.md).'),
)
