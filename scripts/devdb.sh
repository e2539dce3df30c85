#!/usr/bin/env bash
# A private PostgreSQL for `make run` and `make test`: data under var/pg, a unix
# socket only (no TCP port, no system configuration touched).
#   devdb.sh start | stop | status | url
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$PGBIN" ] || { echo "devdb: no PostgreSQL server found (run make bootstrap)" >&2; exit 1; }
BASE=${WAPI_DEVDB_DIR:-$ROOT/var/pg}
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(runuser -u postgres --)
    # The server runs as postgres: it must reach var/pg. If the checkout is not
    # traversable by that user, keep the cluster in a private /tmp folder instead.
    mkdir -p "$(dirname "$BASE")"
    if ! runuser -u postgres -- test -x "$(dirname "$BASE")"; then
        BASE=/tmp/wapi-pg-$(echo -n "$BASE" | md5sum | cut -c1-12)
    fi
fi
DATA=$BASE/data
SOCK=$BASE/run
LOG=$BASE/server.log

url() { echo "postgresql:///wapi?host=$SOCK&user=wapi"; }

running() { [ -S "$SOCK/.s.PGSQL.5432" ] && "${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
    mkdir -p "$BASE" "$SOCK"
    [ ${#AS[@]} -gt 0 ] && chown postgres: "$BASE" "$SOCK"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        "${AS[@]}" "$PGBIN/initdb" -D "$DATA" -U wapi --auth=trust -E UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 ||
            { cat "$BASE/initdb.log" >&2; exit 1; }
    fi
    if ! running; then
        "${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 \
            -o "-c listen_addresses='' -c unix_socket_directories='$SOCK' -c fsync=on -c max_connections=200" start >/dev/null ||
            { tail -n 20 "$LOG" >&2; exit 1; }
    fi
    "$PGBIN/psql" "postgresql:///postgres?host=$SOCK&user=wapi" -qtAc "SELECT 1 FROM pg_database WHERE datname='wapi'" | grep -q 1 ||
        "$PGBIN/createdb" -h "$SOCK" -U wapi wapi
    url
}

stop() {
    if [ -f "$DATA/PG_VERSION" ]; then
        "${AS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) if running; then echo running; else echo stopped; exit 1; fi ;;
url) url ;;
*) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
