// W3bstream device messages (IoTeX W3bstream "sprout" API node, POST /message).
//
// Source: iotexproject/w3bstream, cmd/apinode/api/http.go (commit
// 09eaee9b17108e6280a748c4d646be557f20c876), handleMessage:
//
//   type HandleMessageReq struct {
//     ProjectID      uint64 `json:"projectID"`
//     ProjectVersion string `json:"projectVersion"`
//     Data           string `json:"data"`
//     Signature      string `json:"signature,omitempty"`
//   }
//   sigStr := req.Signature; req.Signature = ""
//   reqJson := json.Marshal(req)                 // signature omitted (omitempty)
//   h := crypto.Keccak256Hash(reqJson)
//   sigpk := crypto.SigToPub(h, hexutil.Decode(sigStr))
//   DeviceID = crypto.PubkeyToAddress(sigpk)     // the sender's address
//
// So the signed bytes are Go's encoding/json output for the three fields in
// declaration order: {"projectID":<uint64>,"projectVersion":"…","data":"…"}.
// encoding/json escapes '<', '>', '&', U+2028 and U+2029 as \u003c, \u003e,
// \u0026, \u2028, \u2029, which JSON.stringify does not: goJsonString adds
// them. The signature is go-ethereum's [R || S || V] with V = 0 or 1
// (crypto.Sign / SigToPub), 0x-hex (hexutil.Decode requires the prefix).

import { recoverSignerAddress } from '../../core/batch.ts'
import { bytesToHex, keccak256, tryHexToBytes } from '../../core/hex.ts'
import type { Hex } from '../../core/types.ts'

/** The JSON body of POST /message. */
export interface W3bstreamMessage {
  readonly projectID: number
  readonly projectVersion: string
  readonly data: string
  readonly signature: Hex
}

/** A string as Go's encoding/json writes it (HTML-safe escaping). */
export function goJsonString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}

/** The exact bytes the sequencer hashes: the request re-marshalled without its signature. */
export function signedBytes(m: { projectID: number; projectVersion: string; data: string }): Uint8Array {
  if (!Number.isSafeInteger(m.projectID) || m.projectID < 0) throw new Error('projectID must be a non-negative integer')
  return new TextEncoder().encode(`{"projectID":${m.projectID},"projectVersion":${goJsonString(m.projectVersion)},"data":${goJsonString(m.data)}}`)
}

/**
 * Build a signed message. `signDigest` signs a 32-byte digest with the
 * gateway key and returns 65 bytes r || s || v (v 27/28 or 0/1); the
 * message carries v as 0/1, as go-ethereum expects.
 */
export function buildMessage(m: { projectID: number; projectVersion: string; data: string }, signDigest: (digest: Uint8Array) => Hex): W3bstreamMessage {
  const sig = tryHexToBytes(signDigest(keccak256(signedBytes(m))), 65)
  if (sig === undefined) throw new Error('the signer returned no 65-byte signature')
  const v = sig[64] as number
  sig[64] = v >= 27 ? v - 27 : v
  return { projectID: m.projectID, projectVersion: m.projectVersion, data: m.data, signature: bytesToHex(sig) }
}

/** The body as sent: the signed fields in order, then the signature. */
export function messageBody(m: W3bstreamMessage): string {
  return `{"projectID":${m.projectID},"projectVersion":${goJsonString(m.projectVersion)},"data":${goJsonString(m.data)},"signature":${JSON.stringify(m.signature)}}`
}

/**
 * What the sequencer does on receipt: recover the sender's address (EIP-55)
 * from a parsed body, or undefined when the signature does not recover.
 */
export function recoverMessageSender(m: { projectID: number; projectVersion: string; data: string; signature: string }): Hex | undefined {
  const sig = tryHexToBytes(m.signature, 65)
  if (sig === undefined) return undefined
  let digest: Uint8Array
  try {
    digest = keccak256(signedBytes(m))
  } catch {
    return undefined
  }
  // go-ethereum's SigToPub accepts V = 0/1 only.
  if ((sig[64] as number) > 1) return undefined
  return recoverSignerAddress(digest, sig, { allowV01: true })
}
