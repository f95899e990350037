// Pack a slot directory into a signed release bundle (docs/updates.md).
//
//   node scripts/build-release.ts --gen-key release.pem
//       writes an Ed25519 key pair: release.pem (private, 0600) and
//       release.pub (public: goes to /etc/fieldproof/release-keys/ on devices)
//   node scripts/build-release.ts --slot DIR --key release.pem --out fieldproof-<version>.fpr
//       DIR is a slot as scripts/build-dist.ts --out writes it, with RELEASE.json
//       ({"version","commit","builtAt"}); the version must equal the gateway's
//       package.json version (the update's health check compares them).

import { generateKeyPairSync } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { writeBundle } from '../gateway/src/service/release-bundle.ts'

function fail(msg: string): never {
  process.stderr.write(`build-release: ${msg}\n`)
  process.exit(2)
}

const { values } = parseArgs({
  options: { slot: { type: 'string' }, key: { type: 'string' }, out: { type: 'string' }, 'gen-key': { type: 'string' }, force: { type: 'boolean' } },
})

if (values['gen-key'] !== undefined) {
  const priv = resolve(values['gen-key'])
  const pub = priv.replace(/\.pem$/, '') + '.pub'
  if (!values.force && (existsSync(priv) || existsSync(pub))) fail(`${priv} or ${pub} exists; pass --force to overwrite`)
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 })
  process.stdout.write(`wrote ${priv} (keep it secret) and ${pub} (install into /etc/fieldproof/release-keys/)\n`)
  process.exit(0)
}

if (!values.slot || !values.key || !values.out) fail('usage: --slot DIR --key KEY.pem --out FILE, or --gen-key KEY.pem')
const slot = resolve(values.slot)
let release: { version?: unknown; commit?: unknown; builtAt?: unknown }
try {
  release = JSON.parse(readFileSync(join(slot, 'RELEASE.json'), 'utf8')) as typeof release
} catch (e) {
  fail(`${join(slot, 'RELEASE.json')}: ${(e as Error).message}`)
}
const { version, commit, builtAt } = release
if (typeof version !== 'string' || typeof commit !== 'string' || typeof builtAt !== 'string') fail('RELEASE.json needs string version, commit and builtAt')
for (const pkg of ['gateway/package.json', 'package.json']) {
  const p = join(slot, pkg)
  if (!existsSync(p)) continue
  const v = (JSON.parse(readFileSync(p, 'utf8')) as { version?: unknown }).version
  if (v !== version) fail(`${pkg} says version ${String(v)}, RELEASE.json ${version}: the gateway reports the former`)
  break
}
const manifest = writeBundle(slot, resolve(values.out), { version, commit, builtAt }, readFileSync(resolve(values.key), 'utf8'))
process.stdout.write(`wrote ${resolve(values.out)}: ${version} (${commit}), ${manifest.entries.length} entries\n`)
