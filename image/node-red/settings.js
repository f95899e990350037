// Node-RED settings for the Fieldproof image (/etc/node-red/settings.js).
//
// Node-RED 5 runs as the `nodered` user (node-red.service) with its user
// directory in /var/lib/node-red. The editor and admin API need a login:
// user "admin", password checked against /etc/node-red/admin-auth.json,
// written at first boot (root:nodered 0640):
//   {"username":"admin","scrypt":{"N":16384,"r":8,"p":1,"salt":"<hex>","hash":"<hex, 64 bytes>"}}
// The password is verified with node:crypto scrypt (RFC 7914) over the UTF-8
// password and the salt bytes, compared in constant time. With no such file
// (or an unreadable or malformed one) every login is refused.
// Settings reference: https://nodered.org/docs/user-guide/runtime/settings-file

'use strict'

// Node-RED loads its settings file with require(), so this file is CommonJS.
/* eslint-disable @typescript-eslint/no-require-imports */
const crypto = require('node:crypto')
const fs = require('node:fs')

const AUTH_FILE = '/etc/node-red/admin-auth.json'

/** The stored credentials, or null when the file is missing or malformed. */
function readAuth() {
  let a
  try {
    a = JSON.parse(fs.readFileSync(AUTH_FILE, 'utf8'))
  } catch {
    return null
  }
  const s = a && a.scrypt
  const hex = (v) => typeof v === 'string' && v.length > 0 && v.length % 2 === 0 && /^[0-9a-f]+$/i.test(v)
  const int = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi
  if (typeof a.username !== 'string' || !s || !int(s.N, 2, 1 << 20) || (s.N & (s.N - 1)) !== 0 ||
      !int(s.r, 1, 64) || !int(s.p, 1, 16) || !hex(s.salt) || !hex(s.hash) || s.hash.length !== 128) {
    return null
  }
  return a
}

/** Check a password; resolves to true only on an exact match. */
function verify(username, password) {
  return new Promise((resolve) => {
    const a = readAuth()
    if (!a || typeof username !== 'string' || typeof password !== 'string' || username !== a.username) {
      resolve(false)
      return
    }
    const { N, r, p, salt, hash } = a.scrypt
    const want = Buffer.from(hash, 'hex')
    crypto.scrypt(Buffer.from(password, 'utf8'), Buffer.from(salt, 'hex'), want.length,
      { N, r, p, maxmem: 256 * N * r }, (err, got) => {
        resolve(!err && crypto.timingSafeEqual(got, want))
      })
  })
}

module.exports = {
  uiHost: '0.0.0.0',
  uiPort: 1880,
  flowFile: 'flows.json',
  flowFilePretty: true,

  adminAuth: {
    type: 'credentials',
    users: async (username) => {
      const a = readAuth()
      return a && username === a.username ? { username, permissions: '*' } : null
    },
    authenticate: async (username, password) => (await verify(username, password)) ? { username, permissions: '*' } : null,
    default: async () => null,
  },

  // No installing of extra node modules from the editor (it would write
  // into /opt); add nodes to /var/lib/node-red with npm as the nodered user.
  externalModules: {
    autoInstall: false,
    palette: { allowInstall: false },
    modules: { allowInstall: false },
  },

  // Function nodes may not load npm modules (nothing to install into /opt).
  functionExternalModules: false,
  functionGlobalContext: {},

  logging: {
    console: { level: 'info', metrics: false, audit: false },
  },

  editorTheme: {
    page: { title: 'Node-RED — Fieldproof' },
    projects: { enabled: false },
    tours: false,
  },

  diagnostics: { enabled: false },
  runtimeState: { enabled: false, ui: false },
}
