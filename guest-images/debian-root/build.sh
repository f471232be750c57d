#!/usr/bin/env bash
# Builds a minimal Debian root disk for `leakvisor run --root` into
# guest-images/build/debian-root/ (after the default image, whose dynamic test programs it holds):
#
#   tree/       debootstrap --variant=minbase bookworm, plus the dynamic leak test programs in
#               /usr/local/bin; also the monitor's symbol directory for the disk
#               (guest path = tree/ + path)
#   root.img    raw ext4 image made from tree/ (mke2fs -d), sized to the tree plus headroom
#
# Idempotent: debootstrap runs again only when its parameters change (tree.stamp), the image is
# made again only when the tree or the programs change (root.stamp). Runs as root (no sudo needed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/guest-images/build/debian-root
host_bin=$repo/guest-images/build/default/host-bin
suite=${LEAKVISOR_DEBIAN_SUITE:-bookworm}
mirror=${LEAKVISOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Dynamic programs copied into /usr/local/bin (expected leaks: default/programs/LEAK-PROGRAMS.md).
programs=(lv-leak-basic-dynamic lv-leak-tree-dynamic lv-leak-cxx-dynamic lv-alloc-clean-dynamic lv-hello-dynamic)

log() { echo "[guest-image] $*"; }
die() { echo "[guest-image] error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "debootstrap and mke2fs -d of a root tree need root"
for tool in debootstrap mke2fs sha256sum du; do
    command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup.sh)"
done
for p in "${programs[@]}"; do
    [ -x "$host_bin/$p" ] || die "missing $host_bin/$p (build the default image first: guest-images/default/build.sh)"
done
mkdir -p "$out"

# --- Tree ----------------------------------------------------------------------
tree_stamp="suite=$suite
variant=minbase
mirror=$mirror"
if [ -x "$out/tree/bin/sh" ] && [ -f "$out/tree.stamp" ] && [ "$(cat "$out/tree.stamp")" = "$tree_stamp" ]; then
    log "debian-root: $suite tree is up to date"
else
    log "debian-root: debootstrap --variant=minbase $suite from $mirror (a few minutes)"
    rm -rf "$out/tree" "$out/tree.stamp" "$out/root.stamp" "$out/root.img"
    start=$(date +%s)
    if ! debootstrap --variant=minbase "$suite" "$out/tree" "$mirror" >"$out/debootstrap.log" 2>&1; then
        tail -n 20 "$out/debootstrap.log" | sed 's/^/[guest-image]   /' >&2
        die "debootstrap failed (log: $out/debootstrap.log)"
    fi
    # Nothing of apt's download cache is needed inside the disk.
    rm -rf "$out/tree/var/cache/apt/archives/"*.deb "$out/tree/var/lib/apt/lists/"*_Packages
    echo leakvisor >"$out/tree/etc/hostname"
    # A read-only --root disk gets a tmpfs here for the command and the payload.
    mkdir -p "$out/tree/leakvisor"
    printf '%s\n' "$tree_stamp" >"$out/tree.stamp"
    log "debian-root: debootstrap took $(( $(date +%s) - start )) s"
fi

# --- Programs --------------------------------------------------------------------
mkdir -p "$out/tree/usr/local/bin"
for p in "${programs[@]}"; do
    cmp -s "$host_bin/$p" "$out/tree/usr/local/bin/$p" || install -m 0755 "$host_bin/$p" "$out/tree/usr/local/bin/$p"
done

# --- Image -----------------------------------------------------------------------
root_stamp="$tree_stamp
$(cd "$out/tree/usr/local/bin" && sha256sum "${programs[@]}")
recipe=$(sha256sum <"$here/build.sh" | cut -d' ' -f1)"
if [ -s "$out/root.img" ] && [ -f "$out/root.stamp" ] && [ "$(cat "$out/root.stamp")" = "$root_stamp" ]; then
    log "debian-root: root.img is up to date"
else
    tree_mib=$(du -sm "$out/tree" | cut -f1)
    # Headroom: half the tree again plus 64 MiB (ext4 metadata, the journal, files a run writes).
    size_mib=$(( tree_mib + tree_mib / 2 + 64 ))
    log "debian-root: mke2fs -t ext4 -d tree ($tree_mib MiB) -> root.img ($size_mib MiB)"
    rm -f "$out/root.img.tmp" "$out/root.stamp"
    mke2fs -q -F -t ext4 -L lv-debian-root -d "$out/tree" "$out/root.img.tmp" "${size_mib}M" >"$out/mke2fs.log" 2>&1 ||
        { sed 's/^/[guest-image]   /' "$out/mke2fs.log" >&2; die "mke2fs failed"; }
    mv "$out/root.img.tmp" "$out/root.img"
    printf '%s\n' "$root_stamp" >"$out/root.stamp"
fi
log "debian-root: done: $out/root.img ($(du -h --apparent-size "$out/root.img" | cut -f1) apparent, $(du -h "$out/root.img" | cut -f1) on disk)"
