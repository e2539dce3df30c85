#!/usr/bin/env bash
# `make run`: the supervisor in the foreground on http://localhost:3000 (PORT to change).
# With no DATABASE_URL, a private PostgreSQL under var/ is started and, on exit, stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
private=0
if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$(scripts/devdb.sh start)
    export DATABASE_URL
    private=1
fi
# shellcheck disable=SC2317 # reached through the EXIT trap, which shellcheck does not follow
stop_db() { [ "$private" = 1 ] && scripts/devdb.sh stop; }
trap stop_db EXIT
trap ':' INT # Ctrl-C reaches the supervisor (same process group); wait for it, then clean up.
echo "wapi: serving http://localhost:${PORT:-3000} (Ctrl-C to stop)" >&2
set +e
build/wapi -c conf/wapi.conf
rc=$?
set -e
exit "$rc"
