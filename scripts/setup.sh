#!/usr/bin/env bash
# Installs the Debian packages LeakVisor needs and builds the default guest image
# (guest-images/build/default/), then the Debian root disk for --root
# (guest-images/build/debian-root/). Idempotent; safe to re-run. Runs as root (CI) or
# through sudo when available.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(libelf-dev libdw-dev libsqlite3-dev libvirt-dev busybox-static cpio lz4 gcc g++ make file python3 acpica-tools bsdutils debootstrap e2fsprogs)

log() { echo "[setup] $*"; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "[setup] error: need root (or sudo) to run: $*" >&2; exit 1; fi
}

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
else
    log "Debian packages already installed"
fi

log "building the default guest image"
"$repo/guest-images/default/build.sh"
log "building the Debian root disk (leakvisor run --root)"
if [ "$(id -u)" = 0 ]; then "$repo/guest-images/debian-root/build.sh"
elif command -v sudo >/dev/null; then sudo "$repo/guest-images/debian-root/build.sh"
else log "skipped: debootstrap needs root (or sudo)"; fi
log "done"
