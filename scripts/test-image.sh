#!/usr/bin/env bash
# Runs the wapi image the way the pod runs it and checks it from outside:
# podman (runc), read-only root, all capabilities dropped, no new privileges,
# uid/gid 1001, the pod's ulimits, the two stores as volumes and a tmpfs /tmp,
# against a private PostgreSQL on this machine (its unix socket bind-mounted).
# Checks /healthz, /readyz, sign-up and sign-in, the image's HEALTHCHECK,
# `wapictl backup` inside the running container (what the CronJob does), an
# offline `wapictl restore` in a one-off container, and a clean exit 0 on TERM.
# Prints PASS/FAIL lines and "N passed, N failed"; exits 1 on any failure.
#
#   scripts/test-image.sh            (after scripts/image.sh; as root)
#   WAPI_IMAGE=name:tag scripts/test-image.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
IMAGE=${WAPI_IMAGE:-localhost/wapi:latest}
PODMAN=(podman --runtime runc)

passed=0 failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1${2:+ ($2)}"; failed=$((failed + 1)); }
check() { # name, condition command...
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit
}

[ "$(id -u)" = 0 ] || { fail "run as root (podman uses the system's container storage)"; finish; }
for c in podman runc curl python3; do
    command -v "$c" >/dev/null 2>&1 || { fail "$c not installed (scripts/image.sh installs podman and runc)"; finish; }
done
podman image exists "$IMAGE" || { fail "no image $IMAGE (make image)"; finish; }

T=$(mktemp -d /tmp/wapi-test-image.XXXXXX)
chmod 0755 "$T"
NAME=wapi-test-image-$$
RESTORE=wapi-test-restore-$$
export WAPI_DEVDB_DIR=$T/pg
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    "${PODMAN[@]}" rm -f -i -v -t 0 "$NAME" "$RESTORE" >/dev/null 2>&1
    scripts/devdb.sh stop >/dev/null 2>&1
    rm -rf "$T" "/tmp/wapi-pg-$(echo -n "$T/pg" | md5sum | cut -c1-12)"
}
trap cleanup EXIT

# PostgreSQL listens on a unix socket only; the container reaches it through
# a bind mount of the socket's folder.
url=$(scripts/devdb.sh start) || { fail "start a private PostgreSQL"; finish; }
sock=$(sed -n 's/.*host=\([^&]*\).*/\1/p' <<<"$url")
chmod 0755 "$sock"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
mkdir -p "$T/sessions" "$T/media" "$T/sessions2" "$T/media2"
chown 1001:1001 "$T/sessions" "$T/media" "$T/sessions2" "$T/media2"
secret=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | cut -c1-48)

# The pod's security settings, one for one. --network host: no CNI set-up
# needed, and the checks reach the server on loopback. The WhatsApp
# connection is not started: there is no network to WhatsApp here.
# shellcheck disable=SC2054 # the commas belong to the --tmpfs option
run_args=(--read-only --read-only-tmpfs=false --cap-drop=ALL --security-opt no-new-privileges
    --user 1001:1001 --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
    --network host --tmpfs /tmp:rw,size=64m,mode=1777
    -v "$sock:/run/wapi-pg"
    -e NODE_ENV=production -e "BETTER_AUTH_URL=$base" -e "BETTER_AUTH_SECRET=$secret"
    -e "DATABASE_URL=postgresql:///wapi?host=/run/wapi-pg&user=wapi"
    -e "PORT=$port" -e WAPI_WORKERS=2 -e WAPI_WHATSAPP_AUTOSTART=false)

t0=$(date +%s.%N)
# --health-interval=disable: no systemd timer (none here); `podman
# healthcheck run` below runs the image's check by hand.
if ! "${PODMAN[@]}" run -d --name "$NAME" "${run_args[@]}" --health-interval=disable \
    -v "$T/sessions:/app/whatsapp_sessions" -v "$T/media:/app/public/media" "$IMAGE" >"$T/cid" 2>"$T/run.err"; then
    fail "container starts" "$(tr '\n' ' ' <"$T/run.err")"
    finish
fi

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@"; }
up=0
for _ in $(seq 1 300); do
    [ "$(code "$base/healthz")" = 200 ] && { up=1; break; }
    [ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ] || break
    sleep 0.1
done
startup=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
if [ "$up" = 1 ]; then pass "/healthz 200 (${startup}s after podman run)"; else fail "/healthz 200" "not up"; fi
ready=0
for _ in $(seq 1 100); do
    [ "$(code "$base/readyz")" = 200 ] && { ready=1; break; }
    sleep 0.1
done
check "/readyz 200 (PostgreSQL reached through the socket, schema migrated)" [ "$ready" = 1 ]

auth() { # path, json → status; body in $T/body, cookies in $T/jar
    curl -s -o "$T/body" -w '%{http_code}' --max-time 10 -b "$T/jar" -c "$T/jar" \
        -H 'Content-Type: application/json' -H "Origin: $base" -X POST --data "$2" "$base$1"
}
# Production: the first account needs the one-time token the server logged.
st=$(auth /api/auth/sign-up/email '{"email":"admin@example.com","password":"correct horse battery","name":"Admin"}')
check "sign-up without the setup token: 403 (status $st)" bash -c "[ '$st' = 403 ] && grep -q SETUP_TOKEN_REQUIRED '$T/body'"
token=$("${PODMAN[@]}" logs "$NAME" 2>&1 | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        t = json.loads(line).get("setup_token")
    except ValueError:
        continue
    if t:
        print(t)' | tail -n 1)
st=$(auth /api/auth/sign-up/email '{"email":"admin@example.com","password":"correct horse battery","name":"Admin","setupToken":"'"$token"'"}')
check "sign-up with the setup token from the log: 200, the admin (status $st)" \
    bash -c "[ '$st' = 200 ] && grep -q '\"role\":\"admin\"' '$T/body'"
rm -f "$T/jar"
st=$(auth /api/auth/sign-in/email '{"email":"admin@example.com","password":"correct horse battery"}')
check "sign-in 200 with a session cookie (status $st)" \
    bash -c "[ '$st' = 200 ] && grep -q 'admin@example.com' '$T/body' && grep -qi 'session_token' '$T/jar'"
st=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 5 -b "$T/jar" "$base/api/auth/get-session")
check "get-session with that cookie names the user (status $st)" \
    bash -c "[ '$st' = 200 ] && grep -q 'admin@example.com' '$T/body'"
st=$(auth /api/auth/sign-in/email '{"email":"admin@example.com","password":"wrong password!!"}')
check "sign-in with a wrong password 401 (status $st)" [ "$st" = 401 ]

ids=$("${PODMAN[@]}" exec "$NAME" /bin/cat /proc/1/status 2>&1 | awk '/^Uid:|^Gid:/ { printf "%s%s", sep, $2; sep = ":" }')
check "PID 1 (the supervisor) runs as 1001:1001 (got $ids)" [ "$ids" = 1001:1001 ]
check "the root filesystem is read-only" \
    bash -c "! ${PODMAN[*]} exec $NAME /bin/bash -c 'echo x > /app/x' 2>/dev/null"
check "the image's HEALTHCHECK passes" "${PODMAN[@]}" healthcheck run "$NAME"
check "wapictl status in the container answers" bash -c "${PODMAN[*]} exec $NAME /app/bin/wapictl status >/dev/null"

# What the backup CronJob runs, with a media file and a session store in place.
head -c 100000 /dev/urandom >"$T/media/probe.bin"
chown 1001:1001 "$T/media/probe.bin"
printf 'not a real store\n' >"$T/sessions/creds.bin"
chown 1001:1001 "$T/sessions/creds.bin"
"${PODMAN[@]}" exec "$NAME" /app/bin/wapictl backup --output - >"$T/backup.tar.gz" 2>"$T/backup.err"
rc=$?
check "wapictl backup --output - in the running container: a complete gzip tar (rc $rc)" \
    bash -c "[ $rc = 0 ] && gzip -t '$T/backup.tar.gz' && tar tzf '$T/backup.tar.gz' | grep -qx 'media/probe.bin' &&
             tar tzf '$T/backup.tar.gz' | grep -qx 'whatsapp_sessions/creds.bin'"

# Clean stop: TERM to PID 1, exit status 0, well within the grace period.
t1=$(date +%s.%N)
"${PODMAN[@]}" stop -t 40 "$NAME" >/dev/null 2>&1
took=$(python3 -c "import time; print(f'{time.time() - $t1:.1f}')")
ec=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$NAME" 2>/dev/null)
check "podman stop: TERM, exit 0 in ${took}s (exit $ec)" \
    bash -c "[ '$ec' = 0 ] && python3 -c 'import sys; sys.exit(0 if $took < 30 else 1)'"
"${PODMAN[@]}" logs "$NAME" >"$T/server.log" 2>&1
check "no write outside the volumes and /tmp was attempted (no EROFS in the log)" \
    bash -c "! grep -qi 'read-only file system' '$T/server.log'"
check "no error lines in the server log" bash -c "! grep -q '\"level\":\"error\"' '$T/server.log'"

# Offline restore in a one-off container (the server stopped), into fresh volumes.
"${PODMAN[@]}" run --rm -i --name "$RESTORE" "${run_args[@]}" \
    -v "$T/sessions2:/app/whatsapp_sessions" -v "$T/media2:/app/public/media" \
    --entrypoint /app/bin/wapictl "$IMAGE" restore --input - <"$T/backup.tar.gz" >"$T/restore.out" 2>&1
rc=$?
check "wapictl restore --input - in a one-off container (rc $rc)" \
    bash -c "[ $rc = 0 ] && cmp -s '$T/media/probe.bin' '$T/media2/probe.bin' && cmp -s '$T/sessions/creds.bin' '$T/sessions2/creds.bin'"
if [ "$failed" -gt 0 ]; then
    echo "--- server log (last 30 lines)"
    tail -n 30 "$T/server.log"
    [ -s "$T/restore.out" ] && { echo "--- restore"; cat "$T/restore.out"; }
fi
finish
