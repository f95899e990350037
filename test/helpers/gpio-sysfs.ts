// A sysfs-shaped GPIO directory for tests (the layout of
// Documentation/ABI/obsolete/sysfs-gpio): gpiochipN/{base,label,ngpio},
// export, unexport, and gpioN/{direction,edge,active_low,value} created when
// a number is written to `export`, as the kernel does (polled every few ms:
// of two writes in between only the last is seen, so tests export and
// unexport one line at a time when they check it). onoff's root is fixed
// at /sys/class/gpio, so tests bind this directory there inside a private
// mount namespace (`unshare --mount`; root only): nothing outside the test
// process sees it, and onoff itself runs unmodified.

import { execFileSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export interface FakeChip {
  readonly label: string
  readonly base: number
  readonly ngpio: number
}

/** Set in the child that runs inside the private mount namespace. */
export const GPIO_NAMESPACE_ENV = 'FIELDPROOF_TEST_GPIO_NS'

export class FakeGpioSysfs {
  readonly dir: string
  #timer: NodeJS.Timeout | undefined
  /** Lines exported through `export` (in order) and unexported through `unexport`. */
  readonly exported: number[] = []
  readonly unexported: number[] = []

  constructor(dir: string, chips: readonly FakeChip[]) {
    this.dir = dir
    mkdirSync(dir, { recursive: true })
    for (const c of chips) {
      const d = join(dir, `gpiochip${c.base}`)
      mkdirSync(d, { recursive: true })
      writeFileSync(join(d, 'base'), `${c.base}\n`)
      writeFileSync(join(d, 'label'), `${c.label}\n`)
      writeFileSync(join(d, 'ngpio'), `${c.ngpio}\n`)
    }
    writeFileSync(join(dir, 'export'), '')
    writeFileSync(join(dir, 'unexport'), '')
  }

  /** Act as the kernel: watch `export` and `unexport` every `everyMs`. */
  start(everyMs = 2): this {
    this.#timer = setInterval(() => {
      try {
        this.service()
      } catch {
        // The directory is gone (the test's temp dir was removed): the kernel is done.
        this.stop()
      }
    }, everyMs)
    this.#timer.unref()
    return this
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
  }

  /** Handle pending writes to export / unexport once. */
  service(): void {
    const take = (f: string): number | undefined => {
      const p = join(this.dir, f)
      const text = readFileSync(p, 'utf8').trim()
      if (text === '') return undefined
      writeFileSync(p, '')
      return Number(text)
    }
    const ex = take('export')
    if (ex !== undefined && !existsSync(this.linePath(ex))) {
      mkdirSync(this.linePath(ex))
      writeFileSync(join(this.linePath(ex), 'direction'), 'in\n')
      writeFileSync(join(this.linePath(ex), 'edge'), 'none\n')
      writeFileSync(join(this.linePath(ex), 'active_low'), '0\n')
      writeFileSync(join(this.linePath(ex), 'value'), '0\n')
      this.exported.push(ex)
    }
    const un = take('unexport')
    if (un !== undefined) {
      rmSync(this.linePath(un), { recursive: true, force: true })
      this.unexported.push(un)
    }
  }

  linePath(n: number): string {
    return join(this.dir, `gpio${n}`)
  }

  /** Drive an input: write the level in place (one byte at offset 0, as a reader never sees an empty file). */
  set(n: number, level: 0 | 1): void {
    const fd = openSync(join(this.linePath(n), 'value'), 'r+')
    try {
      writeSync(fd, level === 1 ? '1' : '0', 0)
    } finally {
      closeSync(fd)
    }
  }

  /** The level an output was last driven to. */
  get(n: number): 0 | 1 {
    const fd = openSync(join(this.linePath(n), 'value'), 'r')
    try {
      const b = Buffer.alloc(1)
      readSync(fd, b, 0, 1, 0)
      return b[0] === 0x31 ? 1 : 0
    } finally {
      closeSync(fd)
    }
  }

  attr(n: number, name: 'direction' | 'edge' | 'active_low'): string {
    return readFileSync(join(this.linePath(n), name), 'utf8').trim()
  }
}

/**
 * Bind `dir` on /sys/class/gpio. Call only inside a private mount namespace
 * (the child started by `unshare --mount`): where /sys/class/gpio does not
 * exist (a kernel without GPIO sysfs, a container) a tmpfs is laid over
 * /sys/class first to create the mount point.
 */
export function bindOnSysClassGpio(dir: string): void {
  if (process.env[GPIO_NAMESPACE_ENV] !== '1') throw new Error('bindOnSysClassGpio outside the private mount namespace')
  if (!existsSync('/sys/class/gpio')) {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'fieldproof-test', '/sys/class'])
    mkdirSync('/sys/class/gpio')
  }
  execFileSync('mount', ['--bind', dir, '/sys/class/gpio'])
}

/** `unshare` arguments that run `file` with this Node inside a private mount namespace. */
export function mountNamespaceCommand(file: string): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  return {
    cmd: 'unshare',
    args: ['--mount', '--propagation', 'private', process.execPath, ...process.execArgv, file],
    env: { ...process.env, [GPIO_NAMESPACE_ENV]: '1' },
  }
}
