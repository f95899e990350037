// Lint rules, including the import graph of ARCHITECTURE.md: core imports
// nothing of ours; sources, sinks and decoders never import each other.
import tseslint from 'typescript-eslint'

const layer = (files, patterns, message) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns: [{ group: patterns, message }] }] },
})

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.tap/**', '.fieldproof/**', 'out/**', 'firmware/**', 'image/cache/**', 'contracts/out/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  { ...layer(['gateway/src/core/**'], ['../*', '../../*'], 'core imports nothing of ours outside core/'), ignores: ['gateway/src/core/**/*.test.ts'] },
  // core's tests may also use the shared test helpers (seeded randomness, fixtures)
  {
    files: ['gateway/src/core/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(?!\\.\\./\\.\\./test/helpers/)', message: 'core tests import nothing of ours outside core/ but test/helpers/' }] }],
    },
  },
  layer(['gateway/src/store/**', 'gateway/src/pipeline/**'], ['**/sources/**', '**/sinks/**', '**/decoders/**', '**/api/**', '**/cli/**', '**/nodered/**'], 'store and pipeline import core only'),
  layer(['gateway/src/decoders/**'], ['**/sources/**', '**/sinks/**', '**/store/**', '**/api/**', '**/cli/**', '**/nodered/**'], 'decoders import core only'),
  layer(['gateway/src/sources/**'], ['**/sinks/**', '**/api/**', '**/cli/**', '**/nodered/**'], 'sources import core, decoders and pipeline interfaces only'),
  layer(['gateway/src/sinks/**'], ['**/sources/**', '**/decoders/**', '**/api/**', '**/cli/**', '**/nodered/**'], 'sinks import core and pipeline interfaces only'),
)
