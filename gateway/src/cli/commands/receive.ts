// `fieldproof receive`: the reference receiver of the HTTP sink
// (docs/upstream-protocol.md, "Reference receiver"). The logic lives in
// receiver/receiver.ts; this file parses options and runs the server.

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseListenAddress } from '../../config/common.ts'
import { Receiver, ReceiverServer } from '../../receiver/receiver.ts'
import { str, UsageError, type Command } from '../cli.ts'

export const receiveCommand: Command = {
  name: 'receive',
  summary: 'run the reference receiver for the HTTP sink (verifies and stores batches)',
  options: {
    listen: { type: 'string' },
    db: { type: 'string' },
    allow: { type: 'string', multiple: true },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'accept-any-first': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  help: `Usage: fieldproof receive [--listen HOST:PORT] [--db FILE] [--allow ADDRESS]...
                         [--token TOKEN | --token-file FILE] [--accept-any-first] [--json]

Accept batches from gateways' HTTP sinks (POST /v1/batches), verify each one
(signature recovers the gateway, readings are canonical, leaves give the
signed Merkle root, the batch links to the previous one of that gateway) and
store accepted batches in a SQLite file. Duplicates are answered 200; a gap or
broken link 409 (the gateway retries); a tampered or forged batch 422.
GET /v1/gateways lists each gateway's last batch. Runs until SIGTERM/SIGINT.

Options:
      --listen HOST:PORT   address to listen on (default 127.0.0.1:8700)
      --db FILE            SQLite file of accepted batches (default ./fieldproof-receiver.db)
      --allow ADDRESS      accept only this gateway address (repeatable; default: any)
      --token TOKEN        require "Authorization: Bearer TOKEN"
      --token-file FILE    read the token from FILE instead
      --accept-any-first   accept a gateway's first batch even when it is not batch 1
      --json               print the listening address as JSON
  -h, --help               this help

Gateway side (fieldproof.toml):
  [sinks.http]
  enabled = true
  url = "http://HOST:PORT/v1/batches"
  auth_value = "Bearer TOKEN"
`,
  async run(args, io) {
    const listenText = str(args.values['listen']) ?? '127.0.0.1:8700'
    const listen = parseListenAddress(listenText)
    if (!listen.ok) throw new UsageError(`--listen: ${listen.reason}`)
    const tokenFile = str(args.values['token-file'])
    let token = str(args.values['token'])
    if (tokenFile !== undefined) {
      if (token !== undefined) throw new UsageError('give --token or --token-file, not both')
      try {
        token = readFileSync(resolve(io.cwd, tokenFile), 'utf8').trim()
      } catch (e) {
        throw new UsageError(`--token-file: ${(e as Error).message}`)
      }
      if (token === '') throw new UsageError('--token-file: the file is empty')
    }
    const allow = (args.values['allow'] as string[] | undefined) ?? []
    let receiver: Receiver
    try {
      receiver = new Receiver({
        dbPath: resolve(io.cwd, str(args.values['db']) ?? 'fieldproof-receiver.db'),
        allow,
        ...(token !== undefined ? { token } : {}),
        firstContact: args.values['accept-any-first'] === true ? 'any' : 'genesis',
      })
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
    const server = new ReceiverServer(receiver, {
      onResult: (r) => {
        if (r.body.code !== 'accepted') io.err(JSON.stringify({ status: r.status, ...r.body }))
      },
    })
    const addr = await server.listen(listen.value.host, listen.value.port)
    const url = `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`
    if (args.values['json'] === true) io.out(JSON.stringify({ listening: url, batches: `${url}/v1/batches` }))
    else io.err(`fieldproof receiver listening on ${url} (POST ${url}/v1/batches)`)
    await new Promise<void>((resolveStop) => {
      const stop = () => {
        server.close().then(() => {
          receiver.close()
          resolveStop()
        }, () => resolveStop())
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
    return 0
  },
}
