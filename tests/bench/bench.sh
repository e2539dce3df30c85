#!/usr/bin/env bash
# make bench: numbers, not assertions. Uses DATABASE_URL or the private PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The private PostgreSQL is stopped at the end if this run started it.
if [ -z "${DATABASE_URL:-}" ]; then
    if ! scripts/devdb.sh status >/dev/null 2>&1; then
        trap 'scripts/devdb.sh stop' EXIT
    fi
    DATABASE_URL=$(scripts/devdb.sh start)
fi
export TEST_DATABASE_URL=$DATABASE_URL
# The fake WhatsApp server and Baileys (bench_wa.py, bench_msg.py, bench_inbound.py, bench_groups.py, bench_history.py), pinned by the lockfile.
if [ ! -d tests/wa/node_modules ] || [ tests/wa/package-lock.json -nt tests/wa/node_modules/.package-lock.json ]; then
    (cd tests/wa && npm ci --no-audit --no-fund --loglevel=error)
fi
python3 tests/bench/bench.py
python3 tests/bench/bench_wa.py
python3 tests/bench/bench_msg.py
python3 tests/bench/bench_inbound.py
python3 tests/bench/bench_media.py
python3 tests/bench/bench_groups.py
python3 tests/bench/bench_history.py
