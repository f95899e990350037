// BCM GPIO numbers → Linux sysfs GPIO numbers (docs/gpio.md, "Pin numbers").
//
// The sysfs interface (Documentation/ABI/obsolete/sysfs-gpio in the kernel
// tree) numbers a line as the chip's `base` + its offset; each chip is a
// directory /sys/class/gpio/gpiochipN holding `base`, `label` and `ngpio`.
// Raspberry Pi kernels before 6.6 pinned the header's chip at base 0; since
// 6.6 the base is allocated dynamically from 512 (Pi 3/4: "pinctrl-bcm2835"
// or "pinctrl-bcm2711" at 512), and the Pi 5's header lines sit on the RP1
// chip ("pinctrl-rp1", 571 on 6.6+ kernels, 53 on the first 6.1 kernels).
// So the base is read, never assumed.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Where the kernel exposes sysfs GPIO. */
export const SYSFS_GPIO_ROOT = '/sys/class/gpio'

/** Labels of the chips that carry the 40-pin header's GPIOs, by board family. */
export const HEADER_CHIP_LABELS = {
  'pinctrl-bcm2835': 'Raspberry Pi 1, 2, 3, Zero, Zero 2 W (BCM2835/6/7)',
  'pinctrl-bcm2711': 'Raspberry Pi 4, 400, CM4 (BCM2711)',
  'pinctrl-rp1': 'Raspberry Pi 5, 500, CM5 (RP1 I/O controller)',
} as const

export type HeaderChipLabel = keyof typeof HEADER_CHIP_LABELS

/** One /sys/class/gpio/gpiochipN directory. */
export interface GpioChip {
  /** Directory name, e.g. `gpiochip512`. */
  readonly name: string
  readonly label: string
  readonly base: number
  readonly ngpio: number
}

/** The header chip found, or why none was. */
export type ChipBaseResult =
  | { readonly ok: true; readonly base: number; readonly ngpio: number; readonly label: string; readonly board: string; readonly chip: string }
  | { readonly ok: false; readonly reason: string }

/** Every gpiochip under `root`; chips whose files cannot be read are left out. */
export function listGpioChips(root: string = SYSFS_GPIO_ROOT): GpioChip[] {
  let names: string[]
  try {
    names = readdirSync(root).filter((n) => /^gpiochip[0-9]+$/.test(n))
  } catch {
    return []
  }
  const chips: GpioChip[] = []
  for (const name of names) {
    try {
      const read = (f: string) => readFileSync(join(root, name, f), 'utf8').trim()
      const base = Number(read('base'))
      const ngpio = Number(read('ngpio'))
      if (!Number.isInteger(base) || base < 0 || !Number.isInteger(ngpio) || ngpio < 1) continue
      chips.push({ name, label: read('label'), base, ngpio })
    } catch {
      // A chip without readable attributes is not one we can use.
    }
  }
  return chips.sort((a, b) => a.base - b.base)
}

/**
 * Pick the chip of the 40-pin header among `chips`: the first whose label is
 * one of {@link HEADER_CHIP_LABELS}.
 *
 * @example findHeaderChip([{ name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }]) // { ok: true, base: 512, ... }
 */
export function findHeaderChip(chips: readonly GpioChip[]): ChipBaseResult {
  for (const label of Object.keys(HEADER_CHIP_LABELS) as HeaderChipLabel[]) {
    const chip = chips.find((c) => c.label === label)
    if (chip) return { ok: true, base: chip.base, ngpio: chip.ngpio, label, board: HEADER_CHIP_LABELS[label], chip: chip.name }
  }
  const seen = chips.map((c) => `${c.name} "${c.label}"`).join(', ')
  return {
    ok: false,
    reason:
      chips.length === 0
        ? 'no GPIO chip found under the sysfs GPIO directory (is this a Raspberry Pi with CONFIG_GPIO_SYSFS?)'
        : `no Raspberry Pi header chip (${Object.keys(HEADER_CHIP_LABELS).join(', ')}) among ${seen}; set [sources.gpio] chip_base`,
  }
}

/** The header chip under `root`. */
export function detectChipBase(root: string = SYSFS_GPIO_ROOT): ChipBaseResult {
  return findHeaderChip(listGpioChips(root))
}

export type SysfsNumberResult = { readonly ok: true; readonly value: number } | { readonly ok: false; readonly reason: string }

/** The sysfs number of BCM GPIO `bcm` on a chip at `base` with `ngpio` lines. */
export function sysfsNumber(bcm: number, base: number, ngpio: number): SysfsNumberResult {
  if (!Number.isInteger(bcm) || bcm < 0) return { ok: false, reason: `GPIO ${bcm} is not a BCM GPIO number` }
  if (bcm >= ngpio) return { ok: false, reason: `GPIO ${bcm} is beyond the header chip's ${ngpio} lines` }
  return { ok: true, value: base + bcm }
}
