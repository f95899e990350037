// Test vector of one W3bstream device message (docs/upstream-protocol.md,
// "W3bstream", vector W1), computed for this project from the published API:
// iotexproject/w3bstream, cmd/apinode/api/http.go (commit
// 09eaee9b17108e6280a748c4d646be557f20c876), handleMessage — the request
// re-marshalled by Go's encoding/json without its signature (omitempty),
// keccak256, go-ethereum SigToPub with a 65-byte [R || S || V], V = 0/1.
// The key is the well-known example key of the web3.js accounts docs
// (0x4c08…2318 → 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23), also
// TEST_KEY in test/helpers/readings.ts. Signatures are RFC 6979
// deterministic, so the vector is stable.

export const W3BSTREAM_VECTOR = {
  privateKey: '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318',
  address: '0x2c7536E3605D9C16a7a3D7b1898e529396a65c23',
  projectID: 42,
  projectVersion: '0.1',
  data: '{"type":"fieldproof.batch","version":1,"note":"<&>"}',
  /** The exact bytes hashed (UTF-8), as text: note Go's \u003c \u0026 \u003e escapes. */
  signedText: '{"projectID":42,"projectVersion":"0.1","data":"{\\"type\\":\\"fieldproof.batch\\",\\"version\\":1,\\"note\\":\\"\\u003c\\u0026\\u003e\\"}"}',
  signedHex:
    '0x7b2270726f6a6563744944223a34322c2270726f6a65637456657273696f6e223a22302e31222c2264617461223a227b5c22747970655c223a5c226669656c6470726f6f662e62617463685c222c5c2276657273696f6e5c223a312c5c226e6f74655c223a5c225c75303033635c75303032365c75303033655c227d227d',
  keccak256: '0x5add554c83be2ac6fa306791fcb551d57c67fc9f8e1277985e4479fc4c08a7c3',
  signature:
    '0xb06b5e85a331cb8d9930140bcc53917be6defb32116dfed7cc9bb3e9818fa23e63a04a2fcb21c23dbcd4f5f626c3cba6c3d5c7917c9f27044d7d6b884ae3669d00',
} as const
