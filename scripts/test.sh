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
# Every fuzz target for a short while (issue 11; docs/fuzzing.md): a crash fails the run.
echo "[test] fuzzing the guest-data parsers (${LEAKVISOR_FUZZ_SECONDS:-20} s per target)"
scripts/fuzz.sh "${LEAKVISOR_FUZZ_SECONDS:-20}"
echo "[test] running the test suite (the guest boot test takes several minutes on an emulated-CPL0 host)"
swift test --skip-build
