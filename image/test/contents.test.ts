// The built SD-card image, read without booting it (docs/image.md, "What the
// image tests check"): MBR layout, the boot partition written by Debian's
// raspi-firmware (config.txt, cmdline.txt, firmware, device trees of every
// supported board, kernel, initrd, our overlay), the root filesystem (arm64
// Node.js of .node-version, the gateway slot and its aarch64 addons, units
// from systemd/ enabled, first-boot pieces, SD-card care settings, no
// per-device identity baked in). Run by scripts/test-image.

import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  REPO, fatCopyOut, fatList, fatRead, fileType, groupMembers, imagePath, nodeVersion, partitionTable,
  passwdEntry, rootDump, rootList, rootRead, rootStat,
} from './lib.ts'

const img = imagePath()
const tmp = mkdtempSync(join(tmpdir(), 'fp-image-contents-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

const text = (b: Buffer | undefined): string => (b === undefined ? '' : b.toString('utf8'))

t.test('partition table: MBR, FAT32 boot + ext4 root, 4 MiB aligned', async (t) => {
  const pt = partitionTable(img)
  t.equal(pt.label, 'dos', 'MBR (the Pi 3 cannot boot from GPT)')
  t.equal(pt.partitions.length, 2)
  const [boot, root] = pt.partitions
  t.equal(boot?.type, 'c', 'partition 1 is FAT32 (LBA)')
  t.equal(boot?.bootable, true, 'partition 1 has the boot flag')
  t.equal(boot?.start, 8192, 'partition 1 starts at 4 MiB')
  t.ok((boot?.size ?? 0) >= 256 * 2048, 'boot partition holds at least 256 MiB')
  t.equal(root?.type, '83', 'partition 2 is Linux')
  t.equal(root?.start, (boot?.start ?? 0) + (boot?.size ?? 0), 'root follows boot directly')
  t.equal(((root?.start ?? 1) * 512) % (4 << 20), 0, 'root is 4 MiB aligned')
  const blk = (off: number) => execFileSync('blkid', ['-p', '-O', String(off), '-o', 'export', img], { encoding: 'utf8' })
  t.match(blk((boot?.start ?? 0) * 512), /LABEL=RASPIFIRM[\s\S]*TYPE=vfat/, 'FAT labelled RASPIFIRM')
  t.match(blk((root?.start ?? 0) * 512), /LABEL=RASPIROOT[\s\S]*TYPE=ext4/, 'ext4 labelled RASPIROOT')
})

const config = text(fatRead(img, 'config.txt'))
const kernelFile = /^kernel=(\S+)$/m.exec(config)?.[1] ?? ''
const initrdFile = /^initramfs (\S+)/m.exec(config)?.[1] ?? ''

t.test('boot partition: firmware, config.txt and cmdline.txt from raspi-firmware', async (t) => {
  const files = fatList(img)
  for (const f of ['bootcode.bin', 'start.elf', 'fixup.dat', 'start4.elf', 'fixup4.dat', 'config.txt', 'cmdline.txt']) {
    t.ok(files.includes(f), `${f} on the boot partition`)
  }
  t.match(config, /^arm_64bit=1$/m, 'arm_64bit=1')
  t.match(config, /^upstream_kernel=1$/m, 'mainline device trees (upstream_kernel=1)')
  t.match(config, /^enable_uart=1$/m, 'serial console UART enabled')
  t.match(kernelFile, /^vmlinuz-\S+-arm64$/, 'kernel= names a Debian arm64 kernel')
  t.match(initrdFile, /^initrd\.img-\S+-arm64$/, 'initramfs names its initrd')
  t.ok(files.includes(kernelFile), `${kernelFile} is on the boot partition`)
  t.ok(files.includes(initrdFile), `${initrdFile} is on the boot partition`)
  // The SX1302 overlay (from /etc/default/raspi-firmware-custom) for the boards
  // whose header SPI is the SoC's SPI0, under the firmware's board filters.
  for (const board of ['pi3', 'pi02', 'pi4']) {
    t.match(config, new RegExp(`^\\[${board}\\]\\ndtoverlay=fieldproof-sx1302$`, 'm'), `SX1302 overlay under [${board}]`)
  }
  t.match(config, /\[all\]\s*$/, 'config.txt ends in [all]')
  const cmdline = text(fatRead(img, 'cmdline.txt'))
  t.equal(cmdline.split('\n').filter(Boolean).length, 1, 'cmdline.txt is one line')
  t.match(cmdline, /(^| )root=LABEL=RASPIROOT( |$)/, 'root by label')
  t.match(cmdline, /(^| )rootwait( |$)/, 'rootwait')
  t.match(cmdline, /(^| )console=ttyS1,115200( |$)/, 'serial console on the header UART')
  t.notMatch(cmdline, /x-systemd\.device-timeout|rootdelay/, 'no short device timeouts')
  const example = fatRead(img, 'fieldproof.toml.example')
  t.ok(example, 'first-boot template on the boot partition')
  t.same(example, readFileSync(join(REPO, 'image/firstboot/fieldproof.toml')), 'it is image/firstboot/fieldproof.toml')
  t.notOk(files.includes('fieldproof.toml'), 'no active fieldproof.toml in the image itself')
})

t.test('device trees of every supported board', async (t) => {
  const files = fatList(img)
  const boards: Record<string, string> = {
    'bcm2837-rpi-3-b.dtb': 'Pi 3 B', 'bcm2837-rpi-3-b-plus.dtb': 'Pi 3 B+', 'bcm2837-rpi-3-a-plus.dtb': 'Pi 3 A+',
    'bcm2837-rpi-zero-2-w.dtb': 'Pi Zero 2 W', 'bcm2711-rpi-4-b.dtb': 'Pi 4 B', 'bcm2711-rpi-400.dtb': 'Pi 400',
    'bcm2712-rpi-5-b.dtb': 'Pi 5',
  }
  for (const [dtb, board] of Object.entries(boards)) t.ok(files.includes(dtb), `${dtb} (${board})`)
  // The Pi 5 needs a device tree with PCIe and RP1 (Ethernet, USB): the
  // trixie-backports kernel's, not trixie 6.12's (docs/image.md).
  fatCopyOut(img, 'bcm2712-rpi-5-b.dtb', join(tmp, 'pi5.dtb'))
  const dts = execFileSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', join(tmp, 'pi5.dtb')], { encoding: 'utf8' })
  t.match(dts, /pcie@/, 'Pi 5 device tree has PCIe')
  t.match(dts, /ethernet@/, 'Pi 5 device tree has the RP1 Ethernet')
  // Our overlay: SPI0 CE0 spidev for SX1302 HATs, with a reset GPIO property.
  t.ok(fatList(img, '::/overlays').includes('fieldproof-sx1302.dtbo'), 'overlays/fieldproof-sx1302.dtbo')
  fatCopyOut(img, 'overlays/fieldproof-sx1302.dtbo', join(tmp, 'sx.dtbo'))
  const ov = execFileSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', join(tmp, 'sx.dtbo')], { encoding: 'utf8' })
  t.match(ov, /compatible = "semtech,sx1301"/, 'spidev child bound by compatible')
  t.match(ov, /reg = <0x00>;|reg = <0x0>;/, 'chip select CE0')
  t.match(ov, /spi = "\/fragment@0:target:0"/, 'targets the SoC SPI0 controller (label spi)')
  t.match(ov, /fieldproof,reset-gpios/, 'reset GPIO recorded')
  // The overlay applies to the Pi 3, Zero 2 W and Pi 4 base trees (fdtoverlay
  // resolves its fixups against their __symbols__, as the firmware does):
  // SPI0 enabled on GPIO 7-11, the spidev child on CE0, the reset GPIO bound
  // to the SoC GPIO controller.
  const get = (dtb: string, node: string, prop: string, type = 's') =>
    execFileSync('fdtget', ['-t', type, dtb, node, prop], { encoding: 'utf8' }).trim()
  for (const dtb of ['bcm2837-rpi-3-b.dtb', 'bcm2837-rpi-3-b-plus.dtb', 'bcm2837-rpi-zero-2-w.dtb', 'bcm2711-rpi-4-b.dtb']) {
    const base = join(tmp, dtb)
    const out = join(tmp, `${dtb}.applied`)
    fatCopyOut(img, dtb, base)
    execFileSync('fdtoverlay', ['-i', base, '-o', out, join(tmp, 'sx.dtbo')])
    const spi = get(out, '/__symbols__', 'spi')
    const pins = get(out, '/__symbols__', 'spi0_gpio7')
    const gpio = get(out, '/__symbols__', 'gpio')
    t.equal(get(out, spi, 'status'), 'okay', `${dtb}: SPI0 (${spi}) enabled`)
    t.equal(get(out, spi, 'pinctrl-0', 'u'), get(out, pins, 'phandle', 'u'), `${dtb}: SPI0 on spi0_gpio7`)
    t.equal(get(out, pins, 'brcm,pins', 'u'), '7 8 9 10 11', `${dtb}: GPIO 7-11`)
    t.equal(get(out, `${spi}/concentrator@0`, 'compatible'), 'semtech,sx1301', `${dtb}: spidev child on CE0`)
    t.equal(get(out, `${spi}/concentrator@0`, 'fieldproof,reset-gpios', 'u'), `${get(out, gpio, 'phandle', 'u')} 17 0`, `${dtb}: reset on GPIO 17`)
  }
})

t.test('kernel and initrd', async (t) => {
  const kver = kernelFile.replace(/^vmlinuz-/, '')
  t.ok(rootStat(img, `/boot/vmlinuz-${kver}`), 'the kernel is also in the root filesystem /boot')
  t.ok(rootStat(img, `/usr/lib/modules/${kver}/modules.dep`), `modules of ${kver} installed`)
  fatCopyOut(img, kernelFile, join(tmp, 'vmlinuz'))
  t.match(fileType(join(tmp, 'vmlinuz')), /ARM64|aarch64/i, 'an arm64 kernel')
  fatCopyOut(img, initrdFile, join(tmp, 'initrd'))
  // initramfs-tools (trixie) writes the already compressed modules into a
  // first, uncompressed cpio archive and the rest as a zstd-compressed one.
  const initrd = readFileSync(join(tmp, 'initrd'))
  const trailer = initrd.indexOf('TRAILER!!!')
  const zstdAt = initrd.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), trailer < 0 ? 0 : trailer)
  t.ok(zstdAt >= 0, 'initrd has a zstd-compressed archive')
  const first = trailer < 0 ? '' : execFileSync('cpio', ['-it', '--quiet'], { input: initrd.subarray(0, zstdAt), encoding: 'utf8', maxBuffer: 64 << 20 })
  writeFileSync(join(tmp, 'initrd.zst'), initrd.subarray(zstdAt))
  const main = execFileSync('sh', ['-c', `zstd -dc "${join(tmp, 'initrd.zst')}" | cpio -it --quiet`], { encoding: 'utf8', maxBuffer: 64 << 20 })
  const list = first + main
  t.match(main, /(^|\n)init\n/, 'the zstd archive holds /init')
  t.match(main, /(^|\n)(usr\/)?sbin\/e2fsck\n/, 'e2fsck in the initrd (the root is checked before it is mounted)')
  t.same(rootRead(img, '/etc/initramfs-tools/conf.d/fieldproof.conf'), readFileSync(join(REPO, 'image/initramfs/fieldproof.conf')),
    'initramfs-tools settings installed')
  // Each driver the root file system needs is either built into the kernel
  // (modules.builtin) or in the initrd: virtio (QEMU), the Pi SD controllers,
  // MMC block devices, ext4.
  const builtin = text(rootRead(img, `/usr/lib/modules/${kver}/modules.builtin`))
  for (const m of ['virtio_blk', 'sdhci-iproc', 'sdhci-brcmstb', 'bcm2835', 'mmc_block', 'ext4']) {
    const re = new RegExp(`/${m}\\.ko(\\.xz|\\.zst)?(\\n|$)`)
    t.ok(re.test(list) || re.test(builtin), `${m}: ${re.test(builtin) ? 'built into the kernel' : 'in the initrd'}`)
  }
})

t.test('Node.js, the gateway slot, the wrapper', async (t) => {
  const opt = rootDump(img, '/opt/fieldproof')
  t.teardown(() => rmSync(opt, { recursive: true, force: true }))
  const base = join(opt, 'fieldproof')
  const node = join(base, 'node/bin/node')
  t.match(fileType(node), /ELF 64-bit LSB .*ARM aarch64/, 'bin/node is an aarch64 ELF')
  const bin = readFileSync(node)
  t.ok(bin.includes(Buffer.from(`v${nodeVersion()}`)) || bin.includes(Buffer.from(`node-v${nodeVersion()}`)) || bin.includes(Buffer.from(nodeVersion())), `Node ${nodeVersion()} (.node-version)`)
  t.same(rootStat(img, '/opt/fieldproof/current')?.target, 'slots/a', 'current -> slots/a (relative)')
  const slot = join(base, 'slots/a')
  t.ok(statSync(join(slot, 'gateway/src/cli/main.js')).isFile(), 'CLI entry in the production form')
  const tsLeft = execFileSync('find', [join(slot, 'gateway/src'), '-name', '*.ts'], { encoding: 'utf8' }).trim()
  t.equal(tsLeft, '', 'no TypeScript sources in the slot')
  const release = JSON.parse(readFileSync(join(slot, 'RELEASE.json'), 'utf8')) as { version: string; commit: string; builtAt: string }
  const pkg = JSON.parse(readFileSync(join(REPO, 'gateway/package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> }
  t.equal(release.version, pkg.version, 'RELEASE.json version')
  t.match(release.commit, /^[0-9a-f]{40}$|^unknown$/, 'RELEASE.json commit')
  t.match(release.builtAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'RELEASE.json builtAt')
  for (const dep of Object.keys(pkg.dependencies)) t.ok(statSync(join(slot, 'node_modules', dep, 'package.json')).isFile(), `dependency ${dep}`)
  const addons = execFileSync('find', [slot, join(opt, 'fieldproof/node'), '-name', '*.node'], { encoding: 'utf8' }).split('\n').filter(Boolean)
  t.ok(addons.some((a) => a.endsWith('better-sqlite3/prebuilds/linux-arm64.node')), 'better-sqlite3 arm64 prebuild')
  t.ok(addons.some((a) => a.endsWith('epoll/build/Release/epoll.node')), 'epoll addon built')
  for (const a of addons) t.match(fileType(a), /ARM aarch64/, `${a.slice(slot.length + 1)} is aarch64`)
  t.equal(readdirSync(join(base, 'slots/b')).length, 0, 'slot b empty')
  const wrapper = text(rootRead(img, '/usr/bin/fieldproof'))
  t.match(wrapper, /exec \/opt\/fieldproof\/node\/bin\/node \/opt\/fieldproof\/current\/gateway\/src\/cli\/main\.js "\$@"/, '/usr/bin/fieldproof wrapper')
  t.equal((rootStat(img, '/usr/bin/fieldproof')?.mode ?? 0) & 0o777, 0o755, 'wrapper is executable')
  const nr = JSON.parse(text(rootRead(img, '/opt/node-red/node_modules/node-red/package.json'))) as { version: string }
  t.equal(nr.version, '5.0.7', 'Node-RED 5.0.7 in /opt/node-red')
})

t.test('systemd units from systemd/ installed and enabled, OS first-boot units', async (t) => {
  const repoUnits = readdirSync(join(REPO, 'systemd')).filter((f) => /\.(service|timer|path|socket)$/.test(f))
  t.ok(repoUnits.length > 0, 'systemd/ has units')
  const wants = rootList(img, '/etc/systemd/system/multi-user.target.wants')
  for (const u of repoUnits) {
    t.same(rootRead(img, `/usr/lib/systemd/system/${u}`), readFileSync(join(REPO, 'systemd', u)), `${u} installed as in the repository`)
    const install = /^\[Install\][^[]*^WantedBy=(\S+)/m.exec(readFileSync(join(REPO, 'systemd', u), 'utf8'))?.[1]
    if (install) t.ok(rootList(img, `/etc/systemd/system/${install}.wants`).includes(u), `${u} enabled (${install})`)
  }
  for (const u of ['fieldproof-growroot.service', 'fieldproof-ssh-hostkeys.service', 'systemd-networkd.service', 'ssh.service']) {
    t.ok(wants.includes(u), `${u} enabled`)
  }
  t.match(text(rootRead(img, '/usr/lib/systemd/system/fieldproof-ssh-hostkeys.service')), /Before=ssh\.service/, 'host keys before sshd')
})

t.test('users, config and the Node-RED settings (image contract)', async (t) => {
  const fp = passwdEntry(img, 'fieldproof')
  const nr = passwdEntry(img, 'nodered')
  const admin = passwdEntry(img, 'admin')
  t.ok(fp && fp.uid < 1000 && fp.shell === '/usr/sbin/nologin', 'fieldproof: system user, no shell')
  t.ok(nr && nr.uid < 1000 && nr.shell === '/usr/sbin/nologin', 'nodered: system user, no shell')
  t.ok(admin && admin.uid >= 1000 && admin.home === '/home/admin', 'admin: login user')
  for (const g of ['bluetooth', 'gpio', 'dialout', 'spi', 'i2c']) t.ok(groupMembers(img, g)?.includes('fieldproof'), `fieldproof in ${g}`)
  t.ok(groupMembers(img, 'sudo')?.includes('admin'), 'admin in sudo')
  t.notOk(groupMembers(img, 'fieldproof')?.includes('nodered'), 'nodered not in the fieldproof group')
  const shadow = text(rootRead(img, '/etc/shadow'))
  t.match(shadow, /^admin:\*:/m, 'admin has no password (SSH keys only), account not locked')
  t.match(shadow, /^root:[!*]/m, 'root has no password')
  t.match(text(rootRead(img, '/etc/sudoers.d/fieldproof-admin')), /^admin ALL=\(ALL:ALL\) NOPASSWD: ALL$/m, 'passwordless sudo for admin')
  const sshd = text(rootRead(img, '/etc/ssh/sshd_config.d/fieldproof.conf'))
  t.match(sshd, /^PasswordAuthentication no$/m, 'SSH password login off')
  t.match(sshd, /^PermitRootLogin no$/m, 'no root login')
  const conf = rootStat(img, '/etc/fieldproof/fieldproof.toml')
  t.ok(conf && conf.uid === 0 && conf.gid === fp?.gid && (conf.mode & 0o777) === 0o640, 'fieldproof.toml root:fieldproof 0640')
  t.match(text(rootRead(img, '/etc/fieldproof/fieldproof.toml')), /listen = "0\.0\.0\.0:8080"/, 'API on 0.0.0.0:8080 by default')
  t.equal(rootStat(img, '/etc/fieldproof/release-keys')?.type, 'directory', 'release-keys directory')
  t.same(rootRead(img, '/etc/node-red/settings.js'), readFileSync(join(REPO, 'image/node-red/settings.js')), 'Node-RED settings.js')
  t.notOk(rootStat(img, '/etc/node-red/admin-auth.json'), 'no Node-RED password in the image (first boot writes it)')
})

t.test('no per-device identity in the image; SD-card care', async (t) => {
  t.same(rootList(img, '/etc/ssh').filter((f) => f.startsWith('ssh_host_')), [], 'no SSH host keys')
  t.equal(rootStat(img, '/etc/machine-id')?.size, 0, 'empty machine-id (generated at boot)')
  t.notOk(rootStat(img, '/var/lib/dbus/machine-id'), 'no D-Bus machine-id')
  t.notOk(rootStat(img, '/var/lib/fieldproof/gateway.key'), 'no gateway key')
  const journald = text(rootRead(img, '/etc/systemd/journald.conf.d/fieldproof.conf'))
  t.match(journald, /^Storage=volatile$/m, 'journal in RAM')
  t.match(journald, /^RuntimeMaxUse=\d+M$/m, 'journal size capped')
  const fstab = text(rootRead(img, '/etc/fstab')).split('\n').filter((l) => !l.startsWith('#')).join('\n')
  t.match(fstab, /^LABEL=RASPIROOT\s+\/\s+ext4\s+\S*noatime/m, 'root by label, noatime')
  t.match(fstab, /^LABEL=RASPIFIRM\s+\/boot\/firmware\s+vfat\s+\S*nofail/m, 'boot partition nofail')
  t.notMatch(fstab, /\sswap\s/, 'no swap in fstab')
  t.notMatch(fstab, /device-timeout/, 'no short device timeouts')
  t.notOk(rootStat(img, '/swapfile') ?? rootStat(img, '/var/swap'), 'no swap file')
  const net = text(rootRead(img, '/etc/systemd/network/20-wired.network')) + text(rootRead(img, '/etc/systemd/network/25-wireless.network'))
  t.match(net, /Name=eth\*/, 'Ethernet by networkd')
  t.match(net, /Name=wlan\*/, 'WiFi by networkd')
  t.match(net, /DHCP=yes/, 'DHCP')
  const fw = rootList(img, '/usr/lib/firmware/brcm')
  t.ok(fw.some((f) => f.startsWith('brcmfmac43455-sdio')), 'WiFi firmware for Pi 3 B+/4/5 (brcmfmac43455)')
  t.ok(fw.some((f) => f.startsWith('brcmfmac43436') || f.startsWith('brcmfmac43430')), 'WiFi firmware for Zero 2 W / Pi 3 (brcmfmac4343x)')
  t.ok(rootStat(img, '/usr/sbin/wpa_supplicant'), 'wpa_supplicant')
  t.ok(rootStat(img, '/usr/libexec/bluetooth/bluetoothd') ?? rootStat(img, '/usr/lib/bluetooth/bluetoothd'), 'BlueZ')
  for (const tool of ['/usr/sbin/sfdisk', '/usr/bin/partx', '/usr/sbin/resize2fs', '/usr/bin/lsblk']) {
    t.ok(rootStat(img, tool), `${tool} for growing the root at first boot`)
  }
  t.notOk(rootStat(img, '/usr/bin/python3'), 'no Python in the image')
})

// Keep a record the docs can quote.
t.test('image size', async (t) => {
  const st = statSync(img)
  const used = Number(execFileSync('du', ['-B1', img], { encoding: 'utf8' }).split('\t')[0])
  t.ok(st.size > 0)
  t.comment(`image ${Math.round(st.size / 2 ** 20)} MiB, ${Math.round(used / 2 ** 20)} MiB allocated`)
  writeFileSync(join(tmp, 'ok'), '')
})
