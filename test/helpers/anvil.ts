// Starts and stops a local anvil node (Foundry, https://getfoundry.sh/anvil) for tests and
// benchmarks. Anvil listens on 127.0.0.1 only; with no port given it binds port 0 and the port
// is read from its "Listening on 127.0.0.1:PORT" line, so parallel test files never collide.
//
// Persistence across restarts: stop() asks the node for its state (anvil_dumpState: blocks,
// transactions, receipts, balances, nonces, code, storage), writes it to the state file
// atomically, then ends the process; the next start loads it with --load-state. (anvil's
// own dump on exit is not used: the state must be taken when the chain is settled, see
// saveState.) So a test can stop the node mid-anchor and restart it on the same port with
// the same chain.
// Pending transactions and snapshots (evm_snapshot) do not survive a restart.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { mnemonicToAccount } from 'viem/accounts'
import type { HDAccount } from 'viem/accounts'

/** Anvil's default mnemonic; its accounts hold 10,000 ETH each. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'

/** Account `index` of {@link ANVIL_MNEMONIC} (m/44'/60'/0'/0/index), funded by anvil for indexes below `accounts`. */
export function anvilAccount(index: number): HDAccount {
  return mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index })
}

/** Options of {@link startAnvil}. */
export interface AnvilOptions {
  /** TCP port; default 0, a free port chosen by the OS. */
  port?: number
  /** Interval mining every N seconds; default: a block per transaction (automine). */
  blockTime?: number
  /** Mine only on evm_mine (transactions stay pending); default false. */
  noMining?: boolean
  /** Chain id; default 31337. */
  chainId?: number
  /**
   * State file (anvil's JSON state): loaded at start if it exists, written by a graceful
   * stop() or restart(). Needed for restart() to keep the chain.
   * Example: `join(t.testdir(), 'anvil-state.json')`.
   */
  stateFile?: string
  /** Number of funded accounts; default 10. */
  accounts?: number
  /** Hardfork, e.g. 'cancun'; default anvil's latest. */
  hardfork?: string
  /** Milliseconds to wait for eth_chainId to answer; default 15000. */
  startTimeoutMs?: number
  /** Extra command-line arguments. */
  args?: readonly string[]
}

/** A running anvil node, returned by {@link startAnvil}. */
export interface Anvil {
  /** `http://127.0.0.1:PORT`; stays the same across restart(). */
  readonly rpcUrl: string
  readonly port: number
  readonly chainId: number
  /** Process id of the current anvil process (changes on restart). */
  readonly pid: number
  /** The state file, if persistence was asked for. */
  readonly stateFile: string | undefined
  /** Last lines anvil printed (stdout and stderr), for failure messages. */
  output(): string
  /** Sends one JSON-RPC request; rejects with the node's error message. */
  rpc<T = unknown>(method: string, params?: readonly unknown[]): Promise<T>
  /** evm_snapshot: returns the snapshot id. */
  snapshot(): Promise<string>
  /** evm_revert to a snapshot id (a snapshot is consumed when reverted to); resolves to anvil's answer. */
  revert(id: string): Promise<boolean>
  /** Mines `blocks` blocks (default 1). */
  mine(blocks?: number): Promise<void>
  /** Turns automine on or off (off leaves sent transactions pending until mine()). */
  setAutomine(on: boolean): Promise<void>
  /**
   * Stops the node: writes the state file (if any) from anvil_dumpState, then SIGTERM, and
   * SIGKILL after 5 s. With `{ kill: true }` sends SIGKILL at once and writes nothing, so
   * the next start comes back at the last saved state (a crash). Idempotent.
   */
  stop(opts?: { kill?: boolean }): Promise<void>
  /**
   * Writes the state file now (a checkpoint), without stopping: after `stop({ kill: true })`
   * the next start comes back to the latest checkpoint. Throws if there is no state file.
   */
  save(): Promise<void>
  /**
   * Stops (gracefully) and starts again on the same port, chain id and state file. Without a
   * state file the new node starts from genesis. Pending transactions and snapshots are lost.
   */
  restart(): Promise<void>
}

/** A running anvil under its watchdog shell. */
interface Proc {
  /** The watchdog `sh`; its stdin is a pipe from this process. */
  child: ChildProcess
  /** anvil's own pid, once the watchdog reported it. */
  anvilPid: number | undefined
}

const live = new Set<Proc>()
let hooksInstalled = false

function killNow(proc: Proc): void {
  try {
    if (proc.anvilPid !== undefined) process.kill(proc.anvilPid, 'SIGKILL')
  } catch {
    // already gone
  }
  proc.child.kill('SIGKILL')
}

function installExitHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', () => {
    for (const proc of live) killNow(proc)
  })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const proc of live) killNow(proc)
      process.removeListener(sig, onSignal)
      // Only re-raise when nobody else handles the signal, so the default action (exit) happens.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
    }
    process.on(sig, onSignal)
  }
}

// Runs anvil under sh with a watchdog on sh's stdin (a pipe from this process): when this
// process dies, even by SIGKILL (a test timeout), the pipe closes and the watchdog stops
// anvil, so no node is left running. Closing the pipe is also how stop() asks anvil to quit.
// Background jobs of a non-interactive sh get /dev/null as stdin, hence fd 3.
const WATCHDOG = [
  'exec 3<&0',
  '"$@" </dev/null &',
  'p=$!',
  'echo "anvil-pid $p" >&2',
  '( read _ <&3; kill -TERM $p 2>/dev/null ) &',
  'w=$!',
  'wait $p',
  's=$?',
  'kill $w 2>/dev/null',
  'exit $s',
].join('\n')

/**
 * Path of the anvil binary: $FIELDPROOF_ANVIL, else the platform package that
 * `@foundry-rs/anvil` installs in node_modules (linux-amd64, linux-arm64, darwin-*), else
 * `anvil` on the PATH.
 */
export function anvilBinary(): string {
  const fromEnv = process.env['FIELDPROOF_ANVIL']
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  const arch = process.arch === 'x64' ? 'amd64' : process.arch
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`
  const exe = process.platform === 'win32' ? 'anvil.exe' : 'anvil'
  const local = fileURLToPath(new URL(`../../node_modules/${pkg}/bin/${exe}`, import.meta.url))
  return existsSync(local) ? local : 'anvil'
}

interface Spawned {
  proc: Proc
  port: number
  exited: Promise<void>
}

function spawnAnvil(args: string[], wantPort: number, log: string[], timeoutMs: number): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', WATCHDOG, 'anvil-watchdog', anvilBinary(), ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    const proc: Proc = { child, anvilPid: undefined }
    live.add(proc)
    let settled = false
    const exited = new Promise<void>((res) => {
      child.once('exit', () => {
        live.delete(proc)
        res()
      })
    })
    const fail = (err: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      killNow(proc)
      reject(err)
    }
    const timer = setTimeout(() => fail(new Error(`anvil did not start within ${timeoutMs} ms:\n${log.join('\n')}`)), timeoutMs)
    child.once('error', (err) => fail(new Error(`cannot run anvil (${anvilBinary()}): ${err.message}`)))
    child.once('exit', (code, signal) => fail(new Error(`anvil exited (${code ?? signal}) before it answered:\n${log.join('\n')}`)))
    child.stdin?.on('error', () => {}) // EPIPE if the watchdog is already gone
    let buffered = ''
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8')
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) {
        const pidLine = /^anvil-pid (\d+)$/.exec(line)
        if (pidLine !== null) {
          proc.anvilPid = Number(pidLine[1])
          continue
        }
        log.push(line)
        if (log.length > 200) log.shift()
        const m = /Listening on 127\.0\.0\.1:(\d+)/.exec(line)
        if (m !== null && !settled) {
          const port = Number(m[1])
          if (wantPort !== 0 && port !== wantPort) {
            fail(new Error(`anvil listens on ${port}, asked for ${wantPort}`))
            return
          }
          waitForRpc(`http://127.0.0.1:${port}`, timeoutMs).then(
            () => {
              if (settled) return
              settled = true
              clearTimeout(timer)
              resolve({ proc, port, exited })
            },
            (err: unknown) => fail(err as Error),
          )
        }
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
  })
}

async function rpcCall<T>(url: string, method: string, params: readonly unknown[]): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const body = (await res.json()) as { result?: T; error?: { message: string } }
  if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`)
  return body.result as T
}

async function waitForRpc(url: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    try {
      await rpcCall<string>(url, 'eth_chainId', [])
      return
    } catch (err) {
      if (performance.now() > deadline) throw new Error(`anvil at ${url} does not answer eth_chainId: ${(err as Error).message}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

/**
 * Starts anvil on 127.0.0.1 and resolves once it answers eth_chainId. The process is killed
 * on stop(), and on exit of this process if stop() was never called.
 *
 * @example
 * const anvil = await startAnvil({ stateFile: join(t.testdir(), 'state.json') })
 * t.teardown(() => anvil.stop())
 * const client = createPublicClient({ transport: http(anvil.rpcUrl) })
 */
export async function startAnvil(opts: AnvilOptions = {}): Promise<Anvil> {
  installExitHooks()
  const chainId = opts.chainId ?? 31337
  const timeoutMs = opts.startTimeoutMs ?? 15_000
  const log: string[] = []
  const argsFor = (port: number): string[] => {
    const args = ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(chainId)]
    if (opts.blockTime !== undefined) args.push('--block-time', String(opts.blockTime))
    if (opts.noMining === true) args.push('--no-mining')
    if (opts.stateFile !== undefined && existsSync(opts.stateFile)) args.push('--load-state', opts.stateFile)
    if (opts.accounts !== undefined) args.push('--accounts', String(opts.accounts))
    if (opts.hardfork !== undefined) args.push('--hardfork', opts.hardfork)
    args.push(...(opts.args ?? []))
    return args
  }

  let current = await spawnAnvil(argsFor(opts.port ?? 0), opts.port ?? 0, log, timeoutMs)
  const port = current.port
  const rpcUrl = `http://127.0.0.1:${port}`

  const dumpState = async (): Promise<Buffer> => {
    const dump = await rpcCall<string>(rpcUrl, 'anvil_dumpState', [])
    const bytes = Buffer.from(dump.replace(/^0x/, ''), 'hex')
    // anvil returns gzip-compressed JSON; --load-state reads the JSON
    return bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes
  }

  const saveState = async (file: string): Promise<void> => {
    // A dump taken while a block is being mined can hold the new account state without the
    // block (seen with automine right after eth_sendRawTransaction). Take dumps until two in
    // a row agree, so the file holds a settled chain.
    let json = await dumpState()
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 20))
      const again = await dumpState()
      if (again.equals(json)) break
      json = again
    }
    const tmp = `${file}.tmp-${process.pid}`
    writeFileSync(tmp, json)
    renameSync(tmp, file)
  }

  const stopCurrent = async (kill: boolean): Promise<void> => {
    const { proc, exited } = current
    const { child } = proc
    if (child.exitCode !== null || child.signalCode !== null) return
    let saveError: unknown
    // A test's teardown may already have removed the state file's folder: nothing to keep then.
    if (!kill && opts.stateFile !== undefined && existsSync(dirname(opts.stateFile))) {
      // the process is stopped whatever happens to the state file
      await saveState(opts.stateFile).catch((err: unknown) => {
        saveError = err
      })
    }
    if (kill) {
      killNow(proc)
    } else {
      child.stdin?.end() // the watchdog sends SIGTERM to anvil
    }
    const timer = setTimeout(() => killNow(proc), 5_000)
    await exited
    clearTimeout(timer)
    if (saveError !== undefined) throw saveError
  }

  const anvil: Anvil = {
    rpcUrl,
    port,
    chainId,
    get pid() {
      return current.proc.anvilPid ?? -1
    },
    stateFile: opts.stateFile,
    output: () => log.join('\n'),
    rpc: <T = unknown>(method: string, params: readonly unknown[] = []) => rpcCall<T>(rpcUrl, method, params),
    snapshot: () => rpcCall<string>(rpcUrl, 'evm_snapshot', []),
    revert: (id: string) => rpcCall<boolean>(rpcUrl, 'evm_revert', [id]),
    mine: async (blocks = 1) => {
      await rpcCall(rpcUrl, 'anvil_mine', [`0x${blocks.toString(16)}`])
    },
    setAutomine: async (on: boolean) => {
      await rpcCall(rpcUrl, 'evm_setAutomine', [on])
    },
    save: async () => {
      if (opts.stateFile === undefined) throw new Error('startAnvil was given no stateFile')
      await saveState(opts.stateFile)
    },
    stop: async (stopOpts = {}) => {
      await stopCurrent(stopOpts.kill === true)
    },
    restart: async () => {
      await stopCurrent(false)
      // The port was just released by anvil itself; bind it again so rpcUrl stays valid.
      current = await spawnAnvil(argsFor(port), port, log, timeoutMs)
    },
  }
  return anvil
}
