#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), build, a short run of every fuzz target, unit tests
# and the integration tests that boot the real default guest image. `.ci/run` calls exactly this.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
echo "[test] building"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -x .build/debug/leakvisor || { echo "[test] build failed" >&2; exit 1; }
# Two cold boots run while the fuzzers do (issue 13): the suite's snapshot, made fresh for this
# run (the image or the monitor may have changed), which every test's `leakvisor run` restores;
# and a boot on a terminal (util-linux `script`) for the in-place progress line and two vCPUs.
# GuestBootTests checks both transcripts.
export LEAKVISOR_SNAPSHOT_DIR="$repo/.build/test-snapshots"
export LEAKVISOR_SUITE_BOOT_LOG="$repo/.build/test-snapshot-boot.log"
export LEAKVISOR_SUITE_TERMINAL_LOG="$repo/.build/test-terminal-boot.log"
rm -rf "$LEAKVISOR_SNAPSHOT_DIR"
echo "[test] booting the default image twice, cold (minutes on an emulated-CPL0 host): the suite's snapshot, and a boot on a terminal"
.build/debug/leakvisor run --timeout 1500 -- true >/dev/null 2>"$LEAKVISOR_SUITE_BOOT_LOG" </dev/null &
snapshot_boot=$!
script --quiet --flush --return --command \
    ".build/debug/leakvisor run --no-snapshot --cpus 2 --timeout 1500 -- sh -c 'echo online=\$(cat /sys/devices/system/cpu/online); exit 0'" \
    /dev/null >"$LEAKVISOR_SUITE_TERMINAL_LOG" 2>&1 </dev/null &
terminal_boot=$!
# Every fuzz target for a short while (issue 11; docs/fuzzing.md): a crash fails the run.
echo "[test] fuzzing the guest-data parsers (${LEAKVISOR_FUZZ_SECONDS:-20} s per target)"
scripts/fuzz.sh "${LEAKVISOR_FUZZ_SECONDS:-20}"
for boot in "$snapshot_boot:$LEAKVISOR_SUITE_BOOT_LOG" "$terminal_boot:$LEAKVISOR_SUITE_TERMINAL_LOG"; do
    if ! wait "${boot%%:*}"; then
        echo "[test] a cold boot failed:" >&2; cat "${boot#*:}" >&2; exit 1
    fi
done
grep "leakvisor: boot: user space\|leakvisor: snapshot:" "$LEAKVISOR_SUITE_BOOT_LOG" | sed 's/^/[test] /'
echo "[test] running the test suite"
swift test --skip-build
