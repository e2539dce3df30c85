#!/usr/bin/env bash
# make bench: numbers, not assertions. Uses DATABASE_URL or the private PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$(scripts/devdb.sh start)
fi
export TEST_DATABASE_URL=$DATABASE_URL
python3 tests/bench/bench.py
python3 tests/bench/bench_wa.py
