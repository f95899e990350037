// GPIO lines through the kernel's sysfs interface, with onoff
// (https://github.com/fivdi/onoff, v6: /sys/class/gpio/gpioN/{direction,
// edge,active_low,value}; edge interrupts by epoll(7) EPOLLPRI on the value
// file, as Documentation/ABI/obsolete/sysfs-gpio describes).
//
// onoff's own export step gives up after a busy loop of 10000 open() tries
// when udev is slow to hand the new files to our user, so the export is done
// here first, asynchronously, and onoff then finds the line already exported.
// onoff's root is fixed at /sys/class/gpio: the tests run it inside a private
// mount namespace with a sysfs-shaped directory bound there (docs/gpio.md).

import { existsSync, openSync, closeSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Gpio as OnoffGpio } from 'onoff'
import type { Level } from './counter.ts'
import { SYSFS_GPIO_ROOT } from './pins.ts'

/** An input line. */
export interface InputPin {
  readonly number: number
  /** The current (active_low-adjusted) level. */
  read(): Level
  /**
   * Call `onLevel` with the level after every edge interrupt. Returns false,
   * watching nothing, when the kernel offers no edge interrupt for the line.
   */
  watch(onLevel: (level: Level) => void, onError: (err: Error) => void): boolean
  close(): void
}

/** An output line. */
export interface OutputPin {
  readonly number: number
  write(level: Level): void
  close(): void
}

/** Opens lines by sysfs number. */
export interface PinOpener {
  openInput(n: number, o: { activeLow: boolean; interrupts: boolean }, signal?: AbortSignal): Promise<InputPin>
  openOutput(n: number, o: { activeLow: boolean }, signal?: AbortSignal): Promise<OutputPin>
}

/**
 * Export line `n` unless it already is, and wait until its value file can be
 * opened for writing (udev sets the permissions after the kernel creates it).
 * Returns whether this call exported it.
 */
export async function exportLine(n: number, o: { root?: string; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<boolean> {
  const root = o.root ?? SYSFS_GPIO_ROOT
  const dir = join(root, `gpio${n}`)
  if (existsSync(dir)) return false
  try {
    writeFileSync(join(root, 'export'), String(n))
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    const why = code === 'EBUSY' ? 'the line is in use by a kernel driver (an overlay in config.txt?)' : code === 'EINVAL' ? 'no such line' : (e as Error).message
    throw new Error(`cannot export GPIO line ${n}: ${why}`, { cause: e })
  }
  const deadline = performance.now() + (o.timeoutMs ?? 5000)
  for (;;) {
    try {
      closeSync(openSync(join(dir, 'value'), 'r+'))
      return true
    } catch (e) {
      if (performance.now() > deadline) throw new Error(`GPIO line ${n} exported but ${join(dir, 'value')} is not writable: ${(e as Error).message}`, { cause: e })
    }
    await sleep(10, undefined, o.signal ? { signal: o.signal } : {})
  }
}

async function loadOnoff(): Promise<typeof OnoffGpio> {
  // Loaded on first use: the epoll native module is needed only when GPIO is on.
  const m = await import('onoff')
  return m.Gpio
}

const bit = (v: number): Level => (v === 1 ? 1 : 0)

function unexport(g: OnoffGpio): void {
  try {
    g.unexport()
  } catch {
    // Already gone (unexported by someone else): nothing left to release.
  }
}

/** Lines through onoff on /sys/class/gpio. */
export const onoffPins: PinOpener = {
  async openInput(n, o, signal) {
    await exportLine(n, signal ? { signal } : {})
    const Gpio = await loadOnoff()
    const g = new Gpio(n, 'in', o.interrupts ? 'both' : 'none', { activeLow: o.activeLow })
    return {
      number: n,
      read: () => bit(g.readSync()),
      watch(onLevel, onError) {
        const listener = (err: Error | null | undefined, value: number): void => {
          if (err) onError(err)
          else onLevel(bit(value))
        }
        try {
          g.watch(listener)
          return true
        } catch {
          // epoll_ctl refuses files without poll support (EPERM): no interrupts for this line.
          try {
            g.unwatch(listener)
          } catch {
            // onoff's unwatch repeats the refused epoll_ctl; the listener is gone either way.
          }
          return false
        }
      },
      close: () => unexport(g),
    }
  },
  async openOutput(n, o, signal) {
    await exportLine(n, signal ? { signal } : {})
    const Gpio = await loadOnoff()
    // "low"/"high" set the direction and the initial level in one write, so the LED never flashes on
    // export. The kernel takes that level raw (gpiod_direction_output_raw), before active_low: an
    // active-low LED is off when the line is high.
    const g = new Gpio(n, o.activeLow ? 'high' : 'low', 'none', { activeLow: o.activeLow })
    return {
      number: n,
      write: (level) => g.writeSync(level),
      close() {
        try {
          g.writeSync(0)
        } finally {
          unexport(g)
        }
      },
    }
  },
}
