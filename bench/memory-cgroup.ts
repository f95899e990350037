// A process with a Pi Zero 2 W's memory: started inside a memory cgroup
// limited to 512 MB. Node sizes V8's heap from the cgroup limit as from a
// machine's memory (process.constrainedMemory()): in a 512 MB cgroup the
// heap limit is ~259 MB and the young generation a few MB, as on the Pi; on
// a 24 GB host it is ~4.2 GB with 16 MB semi-spaces, so a busy gateway's
// resident memory there says little about the Pi. Used by bench/ingest.ts
// and bench/mqtt.ts.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The environment systemd/fieldproof.service gives the gateway (its
 * Environment= lines: glibc malloc settings), so a bench measures the
 * gateway as it runs on the Pi.
 */
export function serviceEnvironment(root: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const m of readFileSync(join(root, 'systemd/fieldproof.service'), 'utf8').matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/gm)) env[m[1] as string] = m[2] as string
  return env
}

export interface MemoryCgroup {
  readonly path: string
  remove(): void
}

/**
 * A memory cgroup limited to `mb` (cgroup v2 or v1; needs root), or
 * undefined where none can be made.
 */
export function memoryCgroup(name: string, mb: number): MemoryCgroup | undefined {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers')
  const root = v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory'
  const path = join(root, `fieldproof-bench-${process.pid}-${name}`)
  try {
    mkdirSync(path)
    writeFileSync(join(path, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(mb * 1024 * 1024))
  } catch {
    try {
      rmdirSync(path)
    } catch {
      // never made
    }
    return undefined
  }
  return {
    path,
    remove: () => {
      try {
        rmdirSync(path)
      } catch {
        // still populated: the kernel removes nothing; left for the next run's cleanup
      }
    },
  }
}

/** Spawn `process.execPath argv` inside `cg` from its first instruction (a shell joins the cgroup, then becomes node), or plainly without one. */
export function spawnNode(argv: readonly string[], options: SpawnOptions, cg?: MemoryCgroup): ChildProcess {
  return cg
    ? spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.path, process.execPath, ...argv], options)
    : spawn(process.execPath, [...argv], options)
}
