#!/usr/bin/env bash
# Builds the flashable Raspberry Pi SD-card image.
#
# Not yet: the image build (Debian trixie arm64 root filesystem, Node 24,
# the gateway, hardened systemd units, first boot from fieldproof.toml on the
# boot partition, QEMU boot test) is tracked as its own piece of work and is
# not implemented in this release. This script says so instead of pretending.
set -euo pipefail
case "${1:-}" in
  -h|--help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0 ;;
esac
echo "build-image.sh: not yet implemented — the SD-card image is not part of this release (see README.md)." >&2
exit 1
