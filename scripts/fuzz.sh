#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, release, -sanitize=fuzzer) and runs each for a while.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, every target)
#
# Targets: kernel-view page-walker btf kallsyms orc elf-segments virtio control report.
# Seeds are made at run time from the guest image (scripts/fuzz-seeds.py; no kernel bytes are
# committed), new inputs go to .build-fuzz/corpus/TARGET, crash inputs to .build-fuzz/crashes/.
# Prints executions, coverage and the outcome per target; exits 1 if any target crashed, hung
# or ran out of memory. Reproduce a crash with
#   FUZZ_TARGET=TARGET .build-fuzz/release/leakvisor-fuzz CRASH_FILE
# LEAKVISOR_FUZZ_BINARY=path runs an already built binary instead of building;
# LEAKVISOR_FUZZ_VMLINUX and LEAKVISOR_FUZZ_PROGRAM choose the kernel and the ELF program seeds come from.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

seconds=${1:-30}
shift || true
all=(kernel-view page-walker btf kallsyms orc elf-segments virtio control report)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

scratch=.build-fuzz
vmlinux=${LEAKVISOR_FUZZ_VMLINUX:-guest-images/build/default/vmlinux}
program=${LEAKVISOR_FUZZ_PROGRAM:-guest-images/build/default/guest-bin/lv-hello}

binary=${LEAKVISOR_FUZZ_BINARY:-}
if [ -z "$binary" ]; then
    echo "[fuzz] building the fuzz targets (release, -sanitize=fuzzer)"
    start=$(date +%s)
    binary=$scratch/release/leakvisor-fuzz
    rm -f "$binary"
    (cd Fuzz && swift build -c release --scratch-path "../$scratch" -Xswiftc -sanitize=fuzzer -Xswiftc -enable-testing \
        -Xswiftc -use-ld=lld 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]') || true
    [ -x "$binary" ] || { echo "[fuzz] build failed" >&2; exit 1; }
    echo "[fuzz] built in $(( $(date +%s) - start )) s"
fi

seeds=$scratch/seeds
if [ ! -d "$seeds" ] || [ "$vmlinux" -nt "$seeds" ] || [ scripts/fuzz-seeds.py -nt "$seeds" ]; then
    rm -rf "$seeds"
    python3 scripts/fuzz-seeds.py "$seeds" "$vmlinux" "$program"
fi
mkdir -p "$scratch/crashes" "$scratch/logs"

failed=0
printf '%-13s %12s %8s %8s %7s  %s\n' target executions cov ft exec/s outcome
for target in "${targets[@]}"; do
    if [ "$target" = kernel-view ] && [ ! -f "$vmlinux" ]; then
        printf '%-13s %s\n' "$target" "skipped: no $vmlinux (set LEAKVISOR_FUZZ_VMLINUX)"
        continue
    fi
    corpus=$scratch/corpus/$target
    mkdir -p "$corpus" "$seeds/$target"
    log=$scratch/logs/$target.log
    status=0
    FUZZ_TARGET=$target LEAKVISOR_FUZZ_VMLINUX=$vmlinux SWIFT_BACKTRACE=enable=no \
        "$binary" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$scratch/crashes/$target-" "$corpus" "$seeds/$target" > "$log" 2>&1 || status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        outcome="no crash in ${seconds} s"
    else
        failed=1
        artifact=$(sed -n "s/.*Test unit written to //p" "$log" | tail -1)
        why=$(grep -m1 -E 'ERROR: libFuzzer|SUMMARY: libFuzzer|Swift runtime failure|Fatal error' "$log" || echo "exit status $status")
        outcome="FAILED ($why) input: ${artifact:-none}, log: $log"
    fi
    printf '%-13s %12s %8s %8s %7s  %s\n' "$target" "${executions:-?}" "${cov:-?}" "${ft:-?}" "${rate:-?}" "$outcome"
done
exit $failed
