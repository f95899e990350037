// Compiles contracts/src/FieldproofAnchor.sol with solc-js (Solidity standard JSON input,
// https://docs.soliditylang.org/en/latest/using-the-compiler.html#compiler-input-and-output-json-description)
// and writes the committed artifacts:
//   contracts/artifacts/FieldproofAnchor.json    { abi, bytecode, deployedBytecode, solcVersion, sourceHash, ... }
//   contracts/artifacts/FieldproofAnchor.abi.ts  the ABI `as const`, for typed viem calls
//
// Usage: node contracts/compile.ts           compile and write both files
//        node contracts/compile.ts --check   compile and exit 1 if the committed files differ
//
// Imports of @openzeppelin/contracts/... are served from node_modules by solc's import
// callback; nothing else may be imported.
import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import solc from 'solc'
import { keccak256, stringToHex } from 'viem'
import type { Abi, Hex } from 'viem'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Path of the contract source, as solc sees it (relative to the repository root). */
export const SOURCE_NAME = 'contracts/src/FieldproofAnchor.sol'
export const CONTRACT_NAME = 'FieldproofAnchor'
export const ARTIFACT_PATH = join(root, 'contracts/artifacts/FieldproofAnchor.json')
export const ABI_TS_PATH = join(root, 'contracts/artifacts/FieldproofAnchor.abi.ts')

/** Compiler settings; part of the artifact so a block explorer can reproduce the bytecode. */
export const COMPILER_SETTINGS = {
  optimizer: { enabled: true, runs: 10_000 },
  evmVersion: 'cancun',
  metadata: { bytecodeHash: 'ipfs' },
} as const

/** The committed artifact, contracts/artifacts/FieldproofAnchor.json. */
export interface AnchorArtifact {
  contractName: string
  sourceName: string
  abi: Abi
  /** Creation bytecode, 0x-prefixed. */
  bytecode: Hex
  /** Runtime bytecode, 0x-prefixed (what `eth_getCode` returns after deployment). */
  deployedBytecode: Hex
  /** Full solc version string, e.g. `0.8.37+commit.....Emscripten.clang`. */
  solcVersion: string
  settings: typeof COMPILER_SETTINGS
  /** keccak256 of every source solc read: `{ [path]: keccak256(content) }`, as in solc metadata. */
  sources: Record<string, Hex>
  /** keccak256 of the JSON text `{"settings":...,"sources":{path: keccak256}}` (paths sorted). */
  sourceHash: Hex
  /** Storage layout as solc reports it (slots and offsets of the state variables). */
  storageLayout: unknown
}

/** Result of {@link compileAnchor}: the artifact plus any compiler warnings. */
export interface CompileResult {
  artifact: AnchorArtifact
  warnings: string[]
}

interface SolcMessage {
  severity: 'error' | 'warning' | 'info'
  formattedMessage?: string
  message: string
}

interface SolcOutput {
  errors?: SolcMessage[]
  contracts?: Record<string, Record<string, {
    abi: Abi
    evm: { bytecode: { object: string }; deployedBytecode: { object: string } }
    storageLayout: unknown
  }>>
}

const OZ_PREFIX = '@openzeppelin/contracts/'

/** Compiles the anchor contract in memory. Throws with solc's messages if it does not compile. */
export function compileAnchor(): CompileResult {
  const read: Record<string, string> = {}
  const content = readFileSync(join(root, SOURCE_NAME), 'utf8')
  read[SOURCE_NAME] = content

  const input = {
    language: 'Solidity',
    sources: { [SOURCE_NAME]: { content } },
    settings: {
      ...COMPILER_SETTINGS,
      outputSelection: {
        [SOURCE_NAME]: { [CONTRACT_NAME]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'storageLayout'] },
      },
    },
  }

  const findImports = (path: string): { contents: string } | { error: string } => {
    const clean = normalize(path)
    if (!clean.startsWith(OZ_PREFIX) || clean.includes('..')) return { error: `import not allowed: ${path}` }
    try {
      const text = readFileSync(join(root, 'node_modules', clean), 'utf8')
      read[clean] = text
      return { contents: text }
    } catch (err) {
      return { error: `cannot read ${path}: ${(err as Error).message}` }
    }
  }

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports })) as SolcOutput
  const messages = output.errors ?? []
  const errors = messages.filter((m) => m.severity === 'error')
  if (errors.length > 0) {
    throw new Error(`solc failed:\n${errors.map((m) => m.formattedMessage ?? m.message).join('\n')}`)
  }
  const warnings = messages.filter((m) => m.severity === 'warning').map((m) => m.formattedMessage ?? m.message)
  const contract = output.contracts?.[SOURCE_NAME]?.[CONTRACT_NAME]
  if (contract === undefined) throw new Error(`solc produced no ${CONTRACT_NAME}`)

  const sources: Record<string, Hex> = {}
  for (const path of Object.keys(read).sort()) sources[path] = keccak256(stringToHex(read[path] ?? ''))
  const sourceHash = keccak256(stringToHex(JSON.stringify({ settings: COMPILER_SETTINGS, sources })))

  return {
    warnings,
    artifact: {
      contractName: CONTRACT_NAME,
      sourceName: SOURCE_NAME,
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
      solcVersion: solc.version() as string,
      settings: COMPILER_SETTINGS,
      sources,
      sourceHash,
      storageLayout: contract.storageLayout,
    },
  }
}

/** The text of contracts/artifacts/FieldproofAnchor.json for an artifact. */
export function artifactJson(artifact: AnchorArtifact): string {
  return `${JSON.stringify(artifact, null, 2)}\n`
}

/** The text of contracts/artifacts/FieldproofAnchor.abi.ts for an artifact. */
export function abiModule(artifact: AnchorArtifact): string {
  return [
    `// ABI of ${CONTRACT_NAME} (${SOURCE_NAME}), written by contracts/compile.ts. Do not edit:`,
    '// run `node contracts/compile.ts` after changing the contract.',
    `// sourceHash ${artifact.sourceHash}`,
    `export const fieldproofAnchorAbi = ${JSON.stringify(artifact.abi, null, 2)} as const`,
    '',
  ].join('\n')
}

function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, text)
  renameSync(tmp, path)
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

function main(argv: string[]): number {
  const check = argv.includes('--check')
  let result: CompileResult
  try {
    result = compileAnchor()
  } catch (err) {
    console.error((err as Error).message)
    return 1
  }
  for (const w of result.warnings) console.error(w)
  const files: Array<[string, string]> = [
    [ARTIFACT_PATH, artifactJson(result.artifact)],
    [ABI_TS_PATH, abiModule(result.artifact)],
  ]
  if (check) {
    const stale = files.filter(([path, text]) => readOrEmpty(path) !== text).map(([path]) => path)
    if (stale.length > 0) {
      console.error(`out of date (run node contracts/compile.ts): ${stale.join(', ')}`)
      return 1
    }
    console.log(`artifacts up to date (sourceHash ${result.artifact.sourceHash})`)
    return 0
  }
  for (const [path, text] of files) writeAtomic(path, text)
  const runtimeBytes = (result.artifact.deployedBytecode.length - 2) / 2
  console.log(`wrote ${ARTIFACT_PATH} (${result.artifact.solcVersion}, runtime ${runtimeBytes} bytes, sourceHash ${result.artifact.sourceHash})`)
  return 0
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2))
