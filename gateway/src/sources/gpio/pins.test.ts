import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { detectChipBase, findHeaderChip, listGpioChips, sysfsNumber } from './pins.ts'

function chip(root: string, base: number, label: string, ngpio: number): void {
  const d = join(root, `gpiochip${base}`)
  mkdirSync(d, { recursive: true })
  writeFileSync(join(d, 'base'), `${base}\n`)
  writeFileSync(join(d, 'label'), `${label}\n`)
  writeFileSync(join(d, 'ngpio'), `${ngpio}\n`)
}

t.test('Pi 5 on a 6.6+ kernel: the RP1 chip among the SoC chips', async (t) => {
  const root = t.testdir()
  chip(root, 512, 'gpio-brcmstb@107d508500', 32)
  chip(root, 544, 'gpio-brcmstb@107d508520', 4)
  chip(root, 548, 'gpio-brcmstb@107d517c00', 17)
  chip(root, 565, 'gpio-brcmstb@107d517c20', 6)
  chip(root, 571, 'pinctrl-rp1', 54)
  writeFileSync(join(root, 'export'), '')
  const r = detectChipBase(root)
  t.match(r, { ok: true, base: 571, ngpio: 54, label: 'pinctrl-rp1', chip: 'gpiochip571' })
  t.same(sysfsNumber(17, 571, 54), { ok: true, value: 588 }, 'GPIO17 is 588')
})

t.test('Pi 4 (512) and Pi 3 on an older kernel (0)', async (t) => {
  t.match(findHeaderChip([{ name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 }]), { ok: true, base: 512 })
  const root = t.testdir()
  chip(root, 0, 'pinctrl-bcm2835', 54)
  chip(root, 504, 'raspberrypi-exp-gpio', 8)
  t.match(detectChipBase(root), { ok: true, base: 0, label: 'pinctrl-bcm2835' })
  t.equal(listGpioChips(root).length, 2)
})

t.test('no header chip, no sysfs, bad numbers: reasons, never throws', async (t) => {
  t.match(detectChipBase(join(t.testdir(), 'missing')), { ok: false, reason: /no GPIO chip found/ })
  const root = t.testdir()
  chip(root, 0, 'gpio-mockup-A', 8)
  mkdirSync(join(root, 'gpiochip99'))
  writeFileSync(join(root, 'gpiochip99', 'base'), 'x')
  t.match(detectChipBase(root), { ok: false, reason: /no Raspberry Pi header chip .* gpiochip0 "gpio-mockup-A"; set \[sources.gpio\] chip_base/ })
  t.match(sysfsNumber(58, 512, 58), { ok: false, reason: /beyond/ })
  t.match(sysfsNumber(-1, 512, 58), { ok: false })
})
