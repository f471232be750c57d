#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), build, a short run of every fuzz target, unit tests
# and the integration tests that boot the real default guest image. `.ci/run` calls exactly this.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
# The monitor first, so the suite's one cold boot starts while the tests and fuzzers build.
echo "[test] building the monitor (set-up took ${SECONDS} s)"
swift build --product leakvisor 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -x .build/debug/leakvisor || { echo "[test] build failed" >&2; exit 1; }
# One cold boot (issue 13), made fresh for this run (the image or the monitor may have changed):
# on a terminal (util-linux `script`), as a user would see it, with the default two vCPUs. It
# saves the suite's snapshot, which every test's `leakvisor run` restores; GuestBootTests checks
# its transcript (the in-place progress line, the snapshot saved, both vCPUs online).
export LEAKVISOR_SNAPSHOT_DIR="$repo/.build/test-snapshots"
export LEAKVISOR_SUITE_TERMINAL_LOG="$repo/.build/test-terminal-boot.log"
rm -rf "$LEAKVISOR_SNAPSHOT_DIR"
echo "[test] booting the default image cold on a terminal (minutes on an emulated-CPL0 host) while the tests and fuzzers build"
script --quiet --flush --return --command \
    ".build/debug/leakvisor run --timeout 1500 -- sh -c 'echo online=\$(cat /sys/devices/system/cpu/online); exit 0'" \
    /dev/null >"$LEAKVISOR_SUITE_TERMINAL_LOG" 2>&1 </dev/null &
cold_boot=$!
# Every fuzz target for a short while (issue 11; docs/fuzzing.md), its build included, at the lowest
# CPU priority beside everything else: it takes the cores only when the builds, the boot and the
# guests leave them idle. A crash fails the run; its table is printed at the end.
fuzz_log="$repo/.build/test-fuzz.log"
echo "[test] fuzzing the guest-data parsers at the lowest priority (${LEAKVISOR_FUZZ_SECONDS:-10} s per target) beside the rest: $fuzz_log"
setsid nice -n 19 scripts/fuzz.sh "${LEAKVISOR_FUZZ_SECONDS:-10}" >"$fuzz_log" 2>&1 </dev/null &
fuzzing=$!
# Its own process group (setsid), stopped with everything it started if this script ends early.
trap '[ -z "${fuzzing:-}" ] || kill -- "-$fuzzing" 2>/dev/null || true' EXIT
echo "[test] building the tests (at ${SECONDS} s)"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
echo "[test] waiting for the cold boot (at ${SECONDS} s)"
if ! wait "$cold_boot"; then
    echo "[test] the cold boot failed:" >&2; cat "$LEAKVISOR_SUITE_TERMINAL_LOG" >&2; exit 1
fi
tr '\r' '\n' <"$LEAKVISOR_SUITE_TERMINAL_LOG" | { grep "leakvisor: boot: user space\|leakvisor: snapshot:" || true; } | sed 's/^/[test] /'
# libvirtd for the libvirt attach tests, started here rather than from inside the test process.
scripts/libvirt-up.sh || echo "[test] libvirtd did not start: the libvirt attach tests will say so" >&2
echo "[test] running the test suite (at ${SECONDS} s)"
tests_started=$SECONDS
status=0
# pipefail (above): a failing `swift test` gives the pipeline its status.
swift test --skip-build 2>&1 | tee .build/test-output.log || status=$?
# Where the suite's time went: the guest runs that held a slot longest (each test prints its runs).
echo "[test] tests took $(( SECONDS - tests_started )) s; the longest guest runs:"
# (A summary only: nothing in it may change the run's status, a closed pipe included.)
{ grep -aoE '^\[run [0-9.]+ s\] .*' .build/test-output.log | sort -t' ' -k2,2 -rn | head -12 | cut -c1-160 | sed 's/^/[test]   /'; } || true
awk '/^\[run [0-9.]+ s\]/ { n++; t += $2 } END { if (n) printf "[test] %d guest runs, %.0f s of guest slots in all\n", n, t }' .build/test-output.log || true
echo "[test] waiting for the fuzz targets (at ${SECONDS} s)"
fuzz_status=0
wait "$fuzzing" || fuzz_status=$?
fuzzing=
sed 's/^/[test] /' "$fuzz_log"
[ "$fuzz_status" -eq 0 ] || { echo "[test] fuzzing failed (exit $fuzz_status)" >&2; [ "$status" -ne 0 ] || status=1; }
echo "[test] done at ${SECONDS} s"
exit "$status"
