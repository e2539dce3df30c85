#!/usr/bin/env bash
# Runs every libFuzzer target for N seconds (default 60) from its corpus folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
make --no-print-directory fuzzers >/dev/null
for f in build/fuzz/fuzz_*; do
    n=$(basename "$f")
    mkdir -p "var/fuzz/$n"
    seeds=()
    [ -d "tests/fuzz/corpus/$n" ] && seeds=("tests/fuzz/corpus/$n")
    echo "== $n ($secs s)"
    "$f" -max_total_time="$secs" -print_final_stats=1 "var/fuzz/$n" "${seeds[@]}" 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' || true
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL: $n"; exit 1; }
done
