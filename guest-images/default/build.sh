#!/usr/bin/env bash
# Builds the default LeakVisor guest image into guest-images/build/default/
# from Debian packages and the C programs in programs/:
#
#   bzImage, vmlinux (ELF), System.map, config, version   Debian cloud kernel
#   modules/                                               virtio modules; lv_leak_kmod.ko (kmod/, with DWARF)
#   guest-bin/  host-bin/                                  test programs
#   initramfs.cpio                                      busybox + /init + programs
#   rootfs/                                             the initramfs tree (symbols for introspection)
#
# Idempotent: the kernel is downloaded and unpacked only when its version changes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/guest-images/build/default
cache=$repo/guest-images/build/cache
meta=linux-image-cloud-amd64
modules=(virtio virtio_ring virtio_mmio virtio_blk virtio_pci virtio_pci_legacy_dev
         virtio_pci_modern_dev virtio_console)
programs=(lv-exit lv-payload lv-hello lv-exitcode lv-compute lv-syscalls)
# Leak-detection test programs (expected results: programs/LEAK-PROGRAMS.md).
leak_programs=(lv-leak-basic lv-alloc-clean lv-leak-threads lv-leak-realloc lv-leak-loop lv-leak-tree lv-leak-cxx
               lv-leak-hold lv-grow-cache lv-root-rules lv-heuristics)
# Hostile-guest programs: attack the monitor from user space (programs/LEAK-PROGRAMS.md).
hostile_programs=(lv-hostile)
# Benchmarks (allocator breakpoints; reachability scans), built like the leak programs
# (programs/LEAK-PROGRAMS.md).
bench_programs=(lv-bench-malloc lv-bench-realistic lv-scan-bench)

log() { echo "[guest-image] $*"; }
die() { echo "[guest-image] error: $*" >&2; exit 1; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else "$@"; fi
}
for tool in apt-cache apt-get dpkg-deb python3 lz4 gcc g++ cpio gzip file make strip sha256sum; do
    command -v "$tool" >/dev/null || die "missing $tool (run scripts/setup.sh)"
done
mkdir -p "$out" "$cache/debs"

# --- Kernel -------------------------------------------------------------------
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
meta_version=$(candidate "$meta")
if [ -z "$meta_version" ] || [ "$meta_version" = "(none)" ]; then
    log "apt does not know $meta yet; running apt-get update"
    as_root apt-get update -qq
    meta_version=$(candidate "$meta")
fi
[ -n "$meta_version" ] && [ "$meta_version" != "(none)" ] || die "no candidate for $meta"
image_pkg=$(apt-cache depends "$meta=$meta_version" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }')
[ -n "$image_pkg" ] || die "cannot resolve the kernel package $meta $meta_version depends on"
image_version=$(candidate "$image_pkg")
release=${image_pkg#linux-image-}
stamp="package=$image_pkg
version=$image_version
release=$release"

kernel_outputs=(bzImage vmlinux System.map config)
have_kernel=1
for f in "${kernel_outputs[@]}" version; do [ -s "$out/$f" ] || have_kernel=0; done
for m in "${modules[@]}"; do [ -f "$out/modules/$m.ko" ] || have_kernel=0; done
if [ "$have_kernel" = 1 ] && [ "$(cat "$out/version")" = "$stamp" ]; then
    log "kernel $release ($image_version) is up to date"
else
    log "kernel: $meta $meta_version -> $image_pkg $image_version"
    deb_file() { echo "$cache/debs/${1}_${2//:/%3a}_amd64.deb"; }
    apt_opts=(-qq)
    [ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
    for spec in "$meta=$meta_version" "$image_pkg=$image_version"; do
        if [ ! -s "$(deb_file "${spec%%=*}" "${spec#*=}")" ]; then
            log "downloading ${spec%%=*}"
            (cd "$cache/debs" && apt-get download "${apt_opts[@]}" "$spec")
        fi
    done
    image_deb=$(deb_file "$image_pkg" "$image_version")
    # Drop debs of older kernels.
    find "$cache/debs" -name 'linux-image-*.deb' ! -name "$(basename "$image_deb")" \
        ! -name "$(basename "$(deb_file "$meta" "$meta_version")")" -delete
    [ -s "$image_deb" ] || die "download of $image_pkg produced no $image_deb"

    tmp=$(mktemp -d "$out/.kernel.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    log "unpacking $(basename "$image_deb")"
    dpkg-deb -x "$image_deb" "$tmp"
    rm -f "$out/version"
    cp "$tmp/boot/vmlinuz-$release" "$out/bzImage"
    cp "$tmp/boot/System.map-$release" "$out/System.map"
    cp "$tmp/boot/config-$release" "$out/config"
    python3 "$here/extract-vmlinux.py" "$out/bzImage" "$out/vmlinux.tmp" | sed 's/^/[guest-image] /'
    file -b "$out/vmlinux.tmp" | grep -q '^ELF 64-bit' || die "extracted vmlinux is not an ELF file"
    mv "$out/vmlinux.tmp" "$out/vmlinux"
    rm -rf "$out/modules" && mkdir -p "$out/modules"
    for m in "${modules[@]}"; do
        ko=$(find "$tmp/lib/modules/$release/kernel" -name "$m.ko" -print -quit)
        [ -n "$ko" ] || die "module $m.ko not found in $image_pkg"
        cp "$ko" "$out/modules/"
    done
    if [ "$(wc -c <"$out/System.map")" -lt 1024 ]; then
        log "note: Debian ships a placeholder System.map (the real one is in $image_pkg-dbg)"
    fi
    rm -rf "$tmp"
    trap - EXIT
    printf '%s\n' "$stamp" >"$out/version"
fi

# --- Programs -----------------------------------------------------------------
mkdir -p "$out/guest-bin" "$out/host-bin"
built=0
for p in "${programs[@]}"; do
    src=$here/programs/$p.c
    if [ ! -x "$out/guest-bin/$p" ] || [ "$src" -nt "$out/guest-bin/$p" ]; then
        gcc -static -O2 -g -Wall -Wextra -Werror -o "$out/guest-bin/$p" "$src"
        built=$((built + 1))
    fi
    # The host copy is the identical static binary, so benchmarks compare like with like.
    cp -p "$out/guest-bin/$p" "$out/host-bin/$p"
done
# A program blocked in a known call chain, with and without frame pointers (stack tests).
for variant in fp:-fno-omit-frame-pointer nofp:-fomit-frame-pointer; do
    name=lv-blocked-${variant%%:*}
    if [ ! -x "$out/guest-bin/$name" ] || [ "$here/programs/lv-blocked.c" -nt "$out/guest-bin/$name" ]; then
        gcc -static -O1 -g "${variant#*:}" -Wall -Wextra -Werror -o "$out/guest-bin/$name" "$here/programs/lv-blocked.c"
        built=$((built + 1))
    fi
done
if [ ! -x "$out/host-bin/lv-blocked-dynamic" ] || [ "$here/programs/lv-blocked.c" -nt "$out/host-bin/lv-blocked-dynamic" ]; then
    gcc -O1 -g -fomit-frame-pointer -Wall -Wextra -Werror -o "$out/host-bin/lv-blocked-dynamic" "$here/programs/lv-blocked.c"
    built=$((built + 1))
fi
# A dynamically linked variant for testing host-file bundling into the guest.
if [ ! -x "$out/host-bin/lv-hello-dynamic" ] || [ "$here/programs/lv-hello.c" -nt "$out/host-bin/lv-hello-dynamic" ]; then
    gcc -O2 -g -Wall -Wextra -Werror -o "$out/host-bin/lv-hello-dynamic" "$here/programs/lv-hello.c"
    built=$((built + 1))
fi
# Leak-detection and benchmark programs: static in the image (/usr/bin/NAME), dynamic in
# host-bin/NAME-dynamic (breakpoints in libc.so / libstdc++.so; valgrind on the host).
leak_cflags=(-O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror)
leak_header=$here/programs/lv-prog.h
# Older than its source or than the shared header lv-prog.h.
stale() { [ ! -x "$1" ] || [ "$2" -nt "$1" ] || [ "$leak_header" -nt "$1" ]; }
for p in "${leak_programs[@]}" "${bench_programs[@]}" "${hostile_programs[@]}"; do
    case $p in
    lv-leak-cxx | lv-bench-realistic | lv-heuristics) src=$here/programs/$p.cpp cc=(g++ -std=gnu++17) ;;
    lv-leak-threads | lv-root-rules) src=$here/programs/$p.c cc=(gcc -pthread) ;;
    *) src=$here/programs/$p.c cc=(gcc) ;;
    esac
    if stale "$out/guest-bin/$p" "$src"; then
        "${cc[@]}" -static "${leak_cflags[@]}" -o "$out/guest-bin/$p" "$src"
        built=$((built + 1))
    fi
    if stale "$out/host-bin/$p-dynamic" "$src"; then
        "${cc[@]}" "${leak_cflags[@]}" -o "$out/host-bin/$p-dynamic" "$src"
        built=$((built + 1))
    fi
done
# The same leaks through jemalloc, tcmalloc and mimalloc (Debian's packages, linked dynamically:
# host-bin/lv-leak-NAME, run in the guest with `--add`, which bundles the allocator's library).
for allocator in jemalloc:jemalloc:JEMALLOC tcmalloc:tcmalloc_minimal:TCMALLOC mimalloc:mimalloc:MIMALLOC; do
    IFS=: read -r name library define <<<"$allocator"
    if stale "$out/host-bin/lv-leak-$name" "$here/programs/lv-leak-allocators.c"; then
        gcc "${leak_cflags[@]}" "-DLV_$define" -o "$out/host-bin/lv-leak-$name" "$here/programs/lv-leak-allocators.c" "-l$library"
        built=$((built + 1))
    fi
done
# Leaks at the bottom of long call chains, built like Debian's packages (-O2 -g, no frame
# pointers): stacks only DWARF CFI can follow (host-bin/lv-leak-deep, run with `--add`; valgrind
# on the host runs the same file).
if stale "$out/host-bin/lv-leak-deep" "$here/programs/lv-leak-deep.c"; then
    gcc -O2 -g -fstack-protector-strong -Wall -Wextra -Werror -o "$out/host-bin/lv-leak-deep" "$here/programs/lv-leak-deep.c"
    built=$((built + 1))
fi
# The benchmark programs built with LeakSanitizer, for `bench tracking`'s host peers.
for p in lv-bench-malloc lv-bench-realistic; do
    case $p in
    lv-bench-realistic) src=$here/programs/$p.cpp cc=(g++ -std=gnu++17) ;;
    *) src=$here/programs/$p.c cc=(gcc) ;;
    esac
    if stale "$out/host-bin/$p-lsan" "$src"; then
        "${cc[@]}" "${leak_cflags[@]}" -fsanitize=leak -o "$out/host-bin/$p-lsan" "$src"
        built=$((built + 1))
    fi
done
# jemalloc linked statically into the executable (libjemalloc_pic.a): its malloc interposes on
# glibc's for the whole process, libc's own calls included.
if stale "$out/host-bin/lv-leak-jemalloc-static" "$here/programs/lv-leak-allocators.c"; then
    gcc "${leak_cflags[@]}" -DLV_JEMALLOC -o "$out/host-bin/lv-leak-jemalloc-static" "$here/programs/lv-leak-allocators.c" \
        -Wl,-Bstatic -ljemalloc_pic -Wl,-Bdynamic -lm
    built=$((built + 1))
fi
log "programs: $built rebuilt (${programs[*]} ${leak_programs[*]} ${bench_programs[*]} ${hostile_programs[*]} lv-leak-jemalloc lv-leak-tcmalloc lv-leak-mimalloc lv-leak-jemalloc-static lv-leak-deep)"

# --- Leak-check corpus (issue 17) ---------------------------------------------
# corpus/CORPUS.md: each case at -O0 and -O2, dynamically linked, so that valgrind on the host
# (scripts/corpus-valgrind.sh) and LeakVisor in the guest (bundled with --add) run the same
# binaries → build/default/corpus/NAME-O0, NAME-O2.
mkdir -p "$out/corpus"
corpus_built=0
for src in "$here"/corpus/*.c "$here"/corpus/*.cpp; do
    name=$(basename "${src%.*}")
    case $src in
    *.cpp) cc=(g++ -std=gnu++17) ;;
    *) cc=(gcc) ;;
    esac
    for level in O0 O2; do
        bin=$out/corpus/$name-$level
        if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$here/corpus/corpus.h" -nt "$bin" ]; then
            "${cc[@]}" "-$level" -g -pthread -Wall -Wextra -Werror -o "$bin" "$src"
            corpus_built=$((corpus_built + 1))
        fi
    done
done
log "corpus: $corpus_built of $(find "$out/corpus" -type f | wc -l) builds rebuilt"

# --- Test kernel module -------------------------------------------------------
# lv_leak_kmod (kmod/, expected results in kmod/KMOD-LEAKS.md), built with kbuild against
# Debian's headers package for the exact kernel in version (scripts/setup.sh installs it), with
# the kernel's own compiler (gcc-12). The host keeps the .ko with DWARF in modules/ (file:line
# for module frames); the image gets it stripped of debug sections. Rebuilt only when the
# sources, the recipe or the kernel change (kmod.stamp).
kmod_release=$(sed -n 's/^release=//p' "$out/version")
[ -n "$kmod_release" ] || die "no release= in $out/version"
kmod_headers=/usr/src/linux-headers-$kmod_release
kmod_stamp="release=$kmod_release
sources=$(cat "$here/kmod/Kbuild" "$here/kmod/lv_leak_kmod.c" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -f "$out/modules/lv_leak_kmod.ko" ] && [ "$(cat "$out/kmod.stamp" 2>/dev/null)" = "$kmod_stamp" ]; then
    log "test module lv_leak_kmod is up to date"
else
    [ -f "$kmod_headers/Makefile" ] ||
        die "missing $kmod_headers (run scripts/setup.sh: it installs linux-headers-$kmod_release)"
    kmod_build=$out/kmod-build
    rm -rf "$kmod_build" && mkdir -p "$kmod_build"
    cp "$here/kmod/Kbuild" "$here/kmod/lv_leak_kmod.c" "$kmod_build/"
    log "building lv_leak_kmod.ko against $kmod_headers"
    make -s -C "$kmod_headers" M="$kmod_build" modules 2>&1 |
        grep -v 'Skipping BTF generation' | sed 's/^/[guest-image] /' || true
    [ -s "$kmod_build/lv_leak_kmod.ko" ] || die "kbuild produced no lv_leak_kmod.ko"
    grep -aq "vermagic=$kmod_release " "$kmod_build/lv_leak_kmod.ko" ||
        die "lv_leak_kmod.ko was not built for $kmod_release"
    mkdir -p "$out/modules"
    cp "$kmod_build/lv_leak_kmod.ko" "$out/modules/lv_leak_kmod.ko"
    printf '%s\n' "$kmod_stamp" >"$out/kmod.stamp"
fi

# --- Initramfs ----------------------------------------------------------------
busybox=/bin/busybox
file -b "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    die "$busybox is not the static busybox (install busybox-static)"
root=$out/rootfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,mnt,lib/modules,leakvisor}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
while read -r applet; do
    [ -n "$applet" ] && [ ! -e "$root/$applet" ] && [ ! -L "$root/$applet" ] || continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)
[ -e "$root/bin/sh" ] || ln -s /bin/busybox "$root/bin/sh"
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/lv-load-virtio" "$root/usr/bin/lv-load-virtio"
install -m 0755 "$here/lv-kmod-leaks" "$root/usr/bin/lv-kmod-leaks"
for p in "${programs[@]}" lv-blocked-fp lv-blocked-nofp "${leak_programs[@]}" "${bench_programs[@]}" "${hostile_programs[@]}"; do install -m 0755 "$out/guest-bin/$p" "$root/usr/bin/$p"; done
install -m 0644 "$out/modules/"*.ko "$root/lib/modules/"
# The guest needs no DWARF (the host reads it from modules/): the module loads faster.
strip --strip-debug "$root/lib/modules/lv_leak_kmod.ko"
echo leakvisor >"$root/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
if [ "$(id -u)" = 0 ]; then
    # Early console before devtmpfs is mounted (the kernel's built-in cpio has one too).
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
fi
# Reproducible: fixed mtimes, renumbered inodes, no host device numbers.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio -o -H newc --owner 0:0 --reproducible --quiet) >"$out/initramfs.cpio.tmp"
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
rm -f "$out/initramfs.cpio.gz"
# rootfs/ stays: it is the symbol directory for the image (guest path = rootfs/ + path).

log "done: $out"
(cd "$out" && ls -l bzImage vmlinux System.map config initramfs.cpio | awk '{ printf "[guest-image]   %-18s %10d bytes\n", $9, $5 }')
