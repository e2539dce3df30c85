#!/usr/bin/env bash
# Runs every suite and ends with one line "N passed, N failed".
# A suite prints "PASS: name" / "FAIL: name ..." lines; one that exits non-zero
# without printing a FAIL counts as one failure, so a crash is never silent.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
export CI=${CI:-}
mkdir -p var/test-logs
LOGDIR=$ROOT/var/test-logs

jobs=$(nproc 2>/dev/null || echo 2)
echo "== build (plain and ASan/UBSan)"
make --no-print-directory -j"$jobs" all >"$LOGDIR/build.log" 2>&1 || { cat "$LOGDIR/build.log"; echo "0 passed, 1 failed"; exit 1; }
make --no-print-directory -j"$jobs" SANITIZE=address,undefined all >"$LOGDIR/build-san.log" 2>&1 || { cat "$LOGDIR/build-san.log"; echo "0 passed, 1 failed"; exit 1; }

# A private PostgreSQL unless the caller gave one.
if [ -z "${DATABASE_URL:-}" ]; then
    scripts/devdb.sh start >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
    DATABASE_URL=$(scripts/devdb.sh url)
    export WAPI_TEST_PRIVATE_PG=1
fi
export TEST_DATABASE_URL=$DATABASE_URL
unset DATABASE_URL

# Node.js tooling for the harnesses, pinned by each folder's lockfile.
for lock in tests/*/package-lock.json; do
    [ -e "$lock" ] || continue
    d=$(dirname "$lock")
    if [ ! -d "$d/node_modules" ] || [ "$lock" -nt "$d/node_modules/.package-lock.json" ]; then
        echo "== npm ci in $d"
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error) >"$LOGDIR/npm-$(basename "$d").log" 2>&1 ||
            { cat "$LOGDIR/npm-$(basename "$d").log"; echo "0 passed, 1 failed"; exit 1; }
    fi
done

passed=0 failed=0
run_suite() { # name, command...
    local name=$1; shift
    local out
    out=$LOGDIR/$(echo "$name" | tr '/ ' '__').log
    local t0=$SECONDS
    "$@" >"$out" 2>&1 </dev/null
    local rc=$?
    local p f
    p=$(grep -c '^PASS: ' "$out")
    f=$(grep -c '^FAIL: ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "FAIL: $name exited with status $rc" >>"$out"
    fi
    passed=$((passed + p)); failed=$((failed + f))
    printf '%-44s %4d passed %3d failed  %3ds\n' "$name" "$p" "$f" $((SECONDS - t0))
    if [ "$f" -gt 0 ]; then grep '^FAIL: ' "$out" | sed 's/^/    /'; echo "    (log: $out)"; tail -n 30 "$out" | sed 's/^/    | /'; fi
}

echo "== suites"
for t in build/tests/test_*; do
    [ -x "$t" ] && run_suite "unit/$(basename "$t")" "$t"
done
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in build/san/tests/test_*; do
    [ -x "$t" ] && run_suite "unit-san/$(basename "$t")" "$t"
done
unset ASAN_OPTIONS UBSAN_OPTIONS
# Every response, SSE event and webhook body the suites see is recorded
# (tests/integration/harness.py) and validated against docs/openapi.json
# once all suites ran.
export WAPI_CONTRACT_LOG=$LOGDIR/contract.jsonl
rm -f "$WAPI_CONTRACT_LOG"
for t in tests/*/t_*; do
    [ -x "$t" ] && run_suite "${t#tests/}" "$t"
done
run_suite contract/recorded-traffic node tests/contract/validate-log.mjs "$WAPI_CONTRACT_LOG"
unset WAPI_CONTRACT_LOG

[ -n "${WAPI_TEST_PRIVATE_PG:-}" ] && scripts/devdb.sh stop >/dev/null 2>&1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
