// A real sd_notify receiver for tests: the service manager's side of the
// notification socket (an AF_UNIX SOCK_DGRAM socket with SO_PASSCRED), which
// Node cannot bind. It runs python3, prints one JSON line per datagram (its
// text, the sender's PID from SCM_CREDENTIALS, the number of fds passed) and
// closes every fd it receives, which is how a BARRIER=1 is acknowledged
// (sd_notify_barrier(3)).

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

const SCRIPT = String.raw`
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": sys.argv[1]}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4) + socket.CMSG_SPACE(12))
    pid, fds = None, 0
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, _uid, _gid = struct.unpack("iII", cdata[:12])
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for (fd,) in struct.iter_unpack("i", cdata[: len(cdata) - len(cdata) % 4]):
                fds += 1
                os.close(fd)
    print(json.dumps({"text": data.decode("utf-8", "replace"), "pid": pid, "fds": fds}), flush=True)
`

export interface NotifyMessage {
  readonly text: string
  /** Key/value pairs of the message. */
  readonly fields: Readonly<Record<string, string>>
  readonly pid: number | null
  readonly fds: number
}

export interface NotifyReceiver {
  readonly socket: string
  readonly messages: NotifyMessage[]
  /** Resolves with the first message (from index `from`) matching `pred`. */
  waitFor(pred: (m: NotifyMessage) => boolean, timeoutMs?: number, from?: number): Promise<NotifyMessage>
  close(): Promise<void>
}

export async function startNotifyReceiver(socketPath: string): Promise<NotifyReceiver> {
  const proc: ChildProcess = spawn('python3', ['-c', SCRIPT, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  const messages: NotifyMessage[] = []
  const waiters = new Set<() => void>()
  let stderr = ''
  proc.stderr?.setEncoding('utf8')
  proc.stderr?.on('data', (d: string) => (stderr += d))
  const lines = createInterface({ input: proc.stdout! })
  let listening: () => void = () => undefined
  const ready = new Promise<void>((resolve) => (listening = resolve))
  lines.on('line', (line) => {
    const j = JSON.parse(line) as { listening?: string; text?: string; pid?: number | null; fds?: number }
    if (j.listening !== undefined) return listening()
    const text = j.text ?? ''
    const fields: Record<string, string> = {}
    for (const l of text.split('\n')) {
      const i = l.indexOf('=')
      if (i > 0) fields[l.slice(0, i)] = l.slice(i + 1)
    }
    messages.push({ text, fields, pid: j.pid ?? null, fds: j.fds ?? 0 })
    for (const w of waiters) w()
  })
  const early = await Promise.race([ready.then(() => false), once(proc, 'exit').then(() => true)])
  if (early) throw new Error(`notify receiver exited: ${stderr}`)
  return {
    socket: socketPath,
    messages,
    waitFor(pred, timeoutMs = 20_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const m = messages.slice(from).find(pred)
          if (m) {
            waiters.delete(onMsg)
            clearTimeout(timer)
            resolve(m)
            return true
          }
          return false
        }
        const onMsg = (): void => void check()
        const timer = setTimeout(() => {
          waiters.delete(onMsg)
          reject(new Error(`no matching notification within ${timeoutMs} ms; got: ${JSON.stringify(messages.map((m) => m.text))}`))
        }, timeoutMs)
        waiters.add(onMsg)
        check()
      })
    },
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM')
        await once(proc, 'exit').catch(() => undefined)
      }
    },
  }
}
