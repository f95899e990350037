// Run a real gateway as a child process (`fieldproof start`) on 127.0.0.1
// with its own state directory, for integration tests.

import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { once } from 'node:events'

export const ROOT = resolve(import.meta.dirname, '../..')
export const CLI = join(ROOT, 'gateway/src/cli/main.ts')

export interface GatewayProcess {
  readonly proc: ChildProcess
  readonly url: string
  readonly address: string
  readonly token: string
  readonly stateDir: string
  /** Everything the process wrote to stderr so far (JSON log lines and the banner). */
  readonly stderr: () => string
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>
  /** SIGKILL and wait. */
  kill(): Promise<void>
}

export interface StartOptions {
  readonly stateDir: string
  /** TOML text; written to <stateDir>/../<name>.toml. Omit for simulation mode (cwd = cwd option). */
  readonly config?: string
  readonly cwd?: string
  readonly env?: Record<string, string>
  readonly timeoutMs?: number
}

export async function startGateway(o: StartOptions): Promise<GatewayProcess> {
  // An empty stateDir runs without --state-dir: the config's (or simulation's ./.fieldproof in cwd).
  // Every listener on a free port, so gateways in parallel tests never collide.
  const args = [CLI, 'start', ...(o.stateDir ? ['--state-dir', o.stateDir] : []), '--http-listen', '127.0.0.1:0', ...(o.config === undefined ? ['--mqtt-listen', '127.0.0.1:0'] : [])]
  if (o.config !== undefined) {
    const file = o.stateDir.replace(/\/+$/, '') + '.toml'
    // Tests never announce over mDNS on the machine's real interfaces.
    writeFileSync(file, /^\[discovery\]/m.test(o.config) ? o.config : `${o.config}\n[discovery]\nmdns = false\n`)
    args.push('--config', file)
  }
  const env: Record<string, string | undefined> = { ...process.env, FIELDPROOF_CONFIG: '', ...o.env }
  const proc = spawn(process.execPath, args, { cwd: o.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  proc.stderr?.setEncoding('utf8')
  proc.stdout?.setEncoding('utf8')
  proc.stdout?.on('data', (d: string) => (err += d))
  const started = new Promise<{ url: string; address: string }>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start within ${o.timeoutMs ?? 20000} ms:\n${err}`)), o.timeoutMs ?? 20000)
    proc.stderr?.on('data', (d: string) => {
      err += d
      for (const line of err.split('\n')) {
        if (!line.startsWith('{')) continue
        try {
          const j = JSON.parse(line) as { msg?: string; api?: string; address?: string }
          if (j.msg === 'gateway started' && j.api && j.address) {
            clearTimeout(timer)
            resolvePromise({ url: j.api, address: j.address })
          }
        } catch {
          // partial line
        }
      }
    })
    proc.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`gateway exited with ${code} before starting:\n${err}`))
    })
  })
  const { url, address } = await started
  const stateDir = o.stateDir || join(o.cwd ?? ROOT, '.fieldproof')
  const token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim()
  const exited = once(proc, 'exit') as Promise<[number | null, string | null]>
  return {
    proc,
    url,
    address,
    token,
    stateDir,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      proc.kill('SIGTERM')
      const [code] = await exited
      return code
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGKILL')
      await exited
    },
  }
}

/** Run the CLI to completion; returns exit code and output. */
export async function runCli(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; input?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, FIELDPROOF_CONFIG: '', ...opts.env },
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  if (opts.input !== undefined) proc.stdin?.end(opts.input)
  const [code] = (await once(proc, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

export async function postReadings(g: { url: string; token: string }, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${g.url}/api/v1/readings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${g.token}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}
