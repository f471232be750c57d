#!/usr/bin/env bash
# The leak-check corpus's reference classes (guest-images/default/corpus/CORPUS.md): runs valgrind
# memcheck on the host over every corpus build (guest-images/build/default/corpus/, made by the
# image recipe) and prints, per build, valgrind's leak summary as one line of expected.tsv.
#
#   scripts/corpus-valgrind.sh            print the table (redirect it into expected.tsv)
#   scripts/corpus-valgrind.sh --check    compare with the committed expected.tsv; exit 1 on a difference
#
# valgrind runs with glibc's and libstdc++'s exit-time frees off (--run-libc-freeres=no
# --run-cxx-freeres=no), so that it sees the heap the native process has at exit_group, which is
# what LeakVisor scans; its default leak-check heuristics (all) stay on.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
corpus=$repo/guest-images/default/corpus
builds=$repo/guest-images/build/default/corpus
[ -d "$builds" ] || { echo "corpus-valgrind: no $builds (run guest-images/default/build.sh)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "corpus-valgrind: valgrind is not installed (scripts/setup.sh)" >&2; exit 2; }
mode=${1:-print}
case $mode in print | --check) ;; *) echo "usage: $0 [--check]" >&2; exit 2 ;; esac

# One build's line: name, then bytes/blocks for definitely lost, indirectly lost, possibly lost,
# still reachable, then the heuristics (name:bytes/blocks,...; - for none), then the exit status.
summarize() {
    local bin=$1 log status=0
    log=$(mktemp)
    (cd /tmp && valgrind --leak-check=full --show-leak-kinds=all --run-libc-freeres=no --run-cxx-freeres=no \
        --error-exitcode=0 "$bin" >/dev/null 2>"$log") || status=$?
    awk -v name="$(basename "$bin")" -v status="$status" '
        function total(line) { gsub(/,/, "", line); match(line, /[0-9]+ bytes in [0-9]+ blocks/)
            split(substr(line, RSTART, RLENGTH), f, " "); return f[1] "/" f[4] }
        /definitely lost:/ { d = total($0) }
        /indirectly lost:/ { i = total($0) }
        /possibly lost:/   { p = total($0) }
        /still reachable:/ { r = total($0) }
        /of which reachable via heuristic:/ { inh = 1; next }
        /suppressed:/ { inh = 0; next }
        inh && /: [0-9,]+ bytes in/ { sub(/^==[0-9]+==[ ]+/, ""); split($0, kv, /[ ]*:[ ]*/)
            h = h (h == "" ? "" : ",") kv[1] ":" total($0); next }
        { inh = 0 }
        END { if (d == "") d = i = p = r = "0/0"
              printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, d, i, p, r, (h == "" ? "-" : h), status }' "$log"
    rm -f "$log"
}

table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
    echo "# Written by scripts/corpus-valgrind.sh with $(valgrind --version) on $(. /etc/os-release && echo "$PRETTY_NAME")."
    echo "# build	definitely-lost	indirectly-lost	possibly-lost	still-reachable	reachable-via-heuristic	exit-status   (bytes/blocks)"
    for bin in "$builds"/*; do
        [ -x "$bin" ] && summarize "$bin"
    done
} >"$table"
if [ "$mode" = print ]; then
    cat "$table"
elif diff <(grep -v '^#' "$corpus/expected.tsv") <(grep -v '^#' "$table"); then
    echo "corpus-valgrind: valgrind agrees with expected.tsv ($(grep -vc '^#' "$table") builds)"
else
    echo "corpus-valgrind: valgrind differs from expected.tsv (above: < committed, > valgrind now)" >&2
    exit 1
fi
