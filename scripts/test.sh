#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), build, unit tests and the integration tests that
# boot the real default guest image. `.ci/run` calls exactly this.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
echo "[test] building"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -x .build/debug/leakvisor || { echo "[test] build failed" >&2; exit 1; }
echo "[test] running the test suite (the guest boot test takes several minutes on an emulated-CPL0 host)"
swift test --skip-build
