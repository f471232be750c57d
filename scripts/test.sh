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
# The suite's snapshot: one cold boot of the default image, made fresh for this run (the image
# or the monitor may have changed); every test's `leakvisor run` restores it (issue 13). It boots
# while the fuzzers run. Its progress lines, off a terminal, must be one plain line per stage.
export LEAKVISOR_SNAPSHOT_DIR="$repo/.build/test-snapshots"
rm -rf "$LEAKVISOR_SNAPSHOT_DIR"
echo "[test] booting the default image once for the suite's snapshot (minutes on an emulated-CPL0 host)"
.build/debug/leakvisor run --timeout 1500 -- true >"$repo/.build/test-snapshot.log" 2>&1 &
snapshot_boot=$!
# Every fuzz target for a short while (issue 11; docs/fuzzing.md): a crash fails the run.
echo "[test] fuzzing the guest-data parsers (${LEAKVISOR_FUZZ_SECONDS:-20} s per target)"
scripts/fuzz.sh "${LEAKVISOR_FUZZ_SECONDS:-20}"
if ! wait "$snapshot_boot"; then
    echo "[test] the snapshot boot failed:" >&2; cat "$repo/.build/test-snapshot.log" >&2; exit 1
fi
for stage in "boot: loading the kernel and initramfs" "boot: kernel starting" "boot: user space reached after" "snapshot: saved "; do
    grep -q "leakvisor: $stage" "$repo/.build/test-snapshot.log" || {
        echo "[test] the snapshot boot did not print '$stage':" >&2; cat "$repo/.build/test-snapshot.log" >&2; exit 1; }
done
grep -q $'\r' "$repo/.build/test-snapshot.log" && { echo "[test] progress updated in place off a terminal" >&2; exit 1; }
grep "leakvisor: boot: user space\|leakvisor: snapshot:" "$repo/.build/test-snapshot.log" | sed 's/^/[test] /'
echo "[test] running the test suite"
swift test --skip-build
