// What the config module offers without its schema: the default paths and
// the listen-address syntax. Imported by code that runs in the gateway
// process, which never loads the TypeBox schema (validate.ts says why).

import { isIPv4, isIPv6 } from 'node:net'

/** Where the gateway looks for its config file when none is named. `FIELDPROOF_CONFIG` overrides it. */
export const DEFAULT_CONFIG_PATH = '/etc/fieldproof/fieldproof.toml'

/** File names inside the state directory used when `key_file` / `token_file` are empty. */
export const DEFAULT_KEY_FILE_NAME = 'gateway.key'
export const DEFAULT_TOKEN_FILE_NAME = 'api-token'

// ---------------------------------------------------------------------------
// HOST:PORT listen addresses

/** A parsed listen address. `host` is without brackets (`::1`, not `[::1]`). */
export interface ListenAddress {
  readonly host: string
  readonly port: number
}

export type ParseListenResult = { readonly ok: true; readonly value: ListenAddress } | { readonly ok: false; readonly reason: string }

const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

function checkHostname(host: string): string | null {
  if (host.length > 253) return 'host name longer than 253 characters'
  if (/^[0-9.]+$/.test(host)) return `"${host}" is not a valid IPv4 address`
  for (const label of host.split('.')) {
    if (!HOSTNAME_LABEL.test(label)) return `"${host}" is not a valid IPv4 address or host name`
  }
  return null
}

/**
 * Parse a listen address: `HOST:PORT` with an IPv4 address, a bracketed IPv6
 * address (`[::1]:8080`) or a host name, and a port from 0 to 65535 (0: the
 * kernel picks a free port).
 *
 * @example parseListenAddress('127.0.0.1:8080') // { ok: true, value: { host: '127.0.0.1', port: 8080 } }
 */
export function parseListenAddress(text: string): ParseListenResult {
  const fail = (reason: string): ParseListenResult => ({
    ok: false,
    reason: `${reason}; expected HOST:PORT, e.g. "0.0.0.0:8080", "127.0.0.1:8080" or "[::1]:8080"`,
  })
  let host: string
  let portText: string
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return fail('missing "]" after the IPv6 address')
    host = text.slice(1, close)
    if (text[close + 1] !== ':') return fail('missing ":PORT" after "]"')
    portText = text.slice(close + 2)
    if (!isIPv6(host)) return fail(`"${host}" is not a valid IPv6 address`)
  } else {
    const colon = text.lastIndexOf(':')
    if (colon < 0) return fail('missing ":PORT"')
    host = text.slice(0, colon)
    portText = text.slice(colon + 1)
    if (host === '') return fail('missing host (use 0.0.0.0 for every interface, 127.0.0.1 for this machine only)')
    if (host.includes(':')) return fail('an IPv6 address must be in brackets')
    if (!isIPv4(host)) {
      const reason = checkHostname(host)
      if (reason !== null) return fail(reason)
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return fail(portText === '' ? 'missing port' : `port "${portText}" is not a number`)
  const port = Number(portText)
  // Port 0 asks the kernel for a free port (tests, several gateways side by side); the chosen port is logged.
  if (port > 65535) return fail(`port ${port} is out of range 0..65535`)
  return { ok: true, value: { host, port } }
}

/** The JSON Schema `format` name of listen addresses. */
export const LISTEN_FORMAT = 'host-port'
