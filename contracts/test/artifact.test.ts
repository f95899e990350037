// The committed artifact (contracts/artifacts/FieldproofAnchor.json and .abi.ts) must be
// exactly what a fresh compile of contracts/src/FieldproofAnchor.sol produces, so the
// bytecode the gateway deploys cannot drift from the source that is reviewed.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { toFunctionSignature } from 'viem'
import type { AbiFunction } from 'viem'
import { abiModule, ABI_TS_PATH, ARTIFACT_PATH, artifactJson, compileAnchor, COMPILER_SETTINGS } from '../compile.ts'
import { fieldproofAnchorAbi } from '../artifacts/FieldproofAnchor.abi.ts'

const { artifact, warnings } = compileAnchor()

t.test('fresh compile matches the committed files', async (t) => {
  t.same(warnings, [], 'solc reports no warnings')
  const committed = readFileSync(ARTIFACT_PATH, 'utf8')
  t.equal(committed, artifactJson(artifact), 'FieldproofAnchor.json is up to date (run node contracts/compile.ts)')
  t.equal(readFileSync(ABI_TS_PATH, 'utf8'), abiModule(artifact), 'FieldproofAnchor.abi.ts is up to date')
  t.same(fieldproofAnchorAbi, artifact.abi, 'the typed ABI is the compiled ABI')
})

t.test('artifact shape and settings', async (t) => {
  t.match(artifact.solcVersion, /^0\.8\.\d+\+commit\.[0-9a-f]{8}/)
  t.same(artifact.settings, COMPILER_SETTINGS)
  t.equal(artifact.settings.evmVersion, 'cancun')
  t.match(artifact.bytecode, /^0x[0-9a-f]+$/)
  t.match(artifact.deployedBytecode, /^0x[0-9a-f]+$/)
  t.ok((artifact.deployedBytecode.length - 2) / 2 < 24_576, 'runtime code under the EIP-170 limit')
  t.match(artifact.sourceHash, /^0x[0-9a-f]{64}$/)
  t.ok('contracts/src/FieldproofAnchor.sol' in artifact.sources)
  t.ok('@openzeppelin/contracts/utils/cryptography/MerkleProof.sol' in artifact.sources)
})

t.test('public interface', async (t) => {
  const fns = artifact.abi
    .filter((x): x is AbiFunction => x.type === 'function')
    .map((f) => toFunctionSignature(f))
    .sort()
  for (const sig of [
    'registerWithClaim(address,uint256,bytes)',
    'registerGateway(address,uint256,bytes)',
    'deregisterGateway(address)',
    'transferGatewayOwnership(address,address)',
    'acceptGatewayOwnership(address)',
    'anchor(uint64,uint64,bytes32)',
    'lastAnchoredBatchId(address)',
    'anchorOf(address,uint64)',
    'findAnchor(address,uint64)',
    'verifyBatch(address,uint64,uint64,bytes32,bytes32[])',
    'verifyReading(address,uint64,uint64,bytes32,uint64,bytes32,bytes32[],bytes32[])',
    'merkleLeaf(uint64,bytes32)',
    'nonces(address)',
  ]) {
    t.ok(fns.includes(sig), sig)
  }
  const events = artifact.abi.filter((x) => x.type === 'event').map((e) => e.name).sort()
  t.same(events, ['Anchored', 'EIP712DomainChanged', 'GatewayDeregistered', 'GatewayOwnershipTransferStarted', 'GatewayOwnershipTransferred', 'GatewayRegistered'])
})
