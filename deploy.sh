#!/usr/bin/env bash
# deploy.sh — deploy and operate wapi on Kubernetes with kubectl (kustomize
# built in). Every command is safe to run again. See docs/KUBERNETES.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
NAMESPACE=${WAPI_NAMESPACE:-}
OVERLAY=${WAPI_OVERLAY:-}
KDIR=${WAPI_KUSTOMIZE_DIR:-}
IMAGE=${WAPI_IMAGE:-}
CONTEXT=${WAPI_CONTEXT:-}
KUBECTL=${KUBECTL:-kubectl}
ROLLOUT_TIMEOUT=${WAPI_ROLLOUT_TIMEOUT:-300s}
DRY_RUN=0
ASSUME_YES=0
ROTATE=0
REQUIRE_CONNECTED=0
SMOKE_URL=${WAPI_SMOKE_URL:-}
HTTP_TIMEOUT=${WAPI_SMOKE_HTTP_TIMEOUT:-10}
CONNECT_TIMEOUT=${WAPI_SMOKE_CONNECT_TIMEOUT:-60}

DEPLOYMENT=wapi
CONTAINER=wapi
SECRET=wapi-secrets
CONFIGMAP=wapi-config
SERVICE=wapi
WAPICTL=/app/bin/wapictl
SECRET_KEYS="DATABASE_URL DATABASE_AUTH_TOKEN BETTER_AUTH_SECRET"

usage() {
    cat <<'EOF'
Usage: ./deploy.sh [options] COMMAND [args]

Commands:
  apply              render kubernetes/ (kustomize), check that the Secret
                     exists, apply everything and wait for the rollout
  secret             create or update the Secret wapi-secrets from the
                     environment (DATABASE_URL, DATABASE_AUTH_TOKEN,
                     BETTER_AUTH_SECRET) or prompts; BETTER_AUTH_SECRET is kept
                     when it exists, else generated with `openssl rand`
  status             objects, rollout, `wapictl status`, recent events
  logs [ARGS]        follow the server's logs (default: --tail=100 -f;
                     ARGS are passed to `kubectl logs`, e.g. --since=1h)
  backup [DIR]       consistent archive of the session and media stores from
                     the running pod (`wapictl backup`) into DIR (./backups),
                     plus a copy of the ConfigMap
  restore FILE       stop the server, load an archive made by `backup` with
                     `wapictl restore` in a one-off pod, start it again;
                     asks first unless --yes
  rollback [REV]     roll the Deployment back to the previous (or REV)
                     revision and wait
  smoke              check a running deployment, one line per check: the
                     rollout, the image (with --image), GET /healthz and
                     /readyz, a sign-in and an API-key call (when their
                     credentials are in the environment, else reported as
                     skipped) and the WhatsApp session (`wapictl session`;
                     not connected is a warning unless --require-connected);
                     exits 1 when a check fails
  release            apply, then smoke; when either fails, roll the
                     Deployment back to the revision it had before and exit 1
  restart            restart the pod (e.g. after changing the Secret)
  port-forward [PORT]
                     forward localhost:PORT (3000) to the Service
  number add NAME [--host HOST] [--path /PATH]
                     one more WhatsApp number on this cluster: writes the
                     overlay kubernetes/numbers/NAME/ (namespace wapi-NAME
                     unless -n, database wapi_NAME, host NAME.your-domain.com
                     unless --host; --path: a path on a shared host); then
                     ./deploy.sh -k kubernetes/numbers/NAME secret, apply, ...
  number list        the numbers' overlays: namespace, host, path, database
  number remove NAME delete the overlay only; the cluster and the data are
                     left as they are (it says how to delete them)

Options:
  -n, --namespace NS   namespace (default: the one the overlay or -k DIR
                       declares, else wapi; env WAPI_NAMESPACE)
  --overlay NAME       use kubernetes/overlays/NAME (e.g. dev; env WAPI_OVERLAY)
  -k, --kustomize DIR  use the kustomization in DIR, e.g. your own overlay
                       kept outside this repository (env WAPI_KUSTOMIZE_DIR)
  --image REF          run this image instead of your-registry/wapi:latest,
                       e.g. registry.example.com/wapi:1.4.2 (env WAPI_IMAGE)
  --context CTX        kubectl context (env WAPI_CONTEXT)
  --dry-run            print what would be done; change nothing and contact
                       no cluster
  --rotate             (secret) generate a new BETTER_AUTH_SECRET even if one
                       exists (signs everybody out)
  --require-connected  (smoke, release) a WhatsApp session that is not
                       connected within WAPI_SMOKE_CONNECT_TIMEOUT (60 s) fails
  -y, --yes            do not ask for confirmation
  -h, --help           this text

Environment: KUBECTL (kubectl binary), WAPI_ROLLOUT_TIMEOUT (300s),
WAPI_NUMBERS_DIR (where `number` keeps the overlays; kubernetes/numbers).
Smoke test: WAPI_SMOKE_URL (reach the server there, e.g. through the Ingress,
instead of a kubectl port-forward), WAPI_SMOKE_EMAIL and WAPI_SMOKE_PASSWORD
(sign in, GET /api/me, sign out), WAPI_SMOKE_API_KEY (GET /api/me with it),
WAPI_SMOKE_HTTP_TIMEOUT (10 s per request). Never printed.
EOF
}

die() { echo "deploy.sh: $*" >&2; exit 1; }
note() { echo "==> $*" >&2; }

# kubectl with the chosen context. Read-only uses go through k; anything that
# changes the cluster goes through mut, which only prints it under --dry-run.
KARGS=()
k() { "$KUBECTL" ${KARGS[@]+"${KARGS[@]}"} "$@"; }
kn() { k -n "$NAMESPACE" "$@"; }
show() { # print a kubectl command the way a shell would read it
    local out="+ kubectl" a
    for a in ${KARGS[@]+"${KARGS[@]}"} "$@"; do out+=" $(printf '%q' "$a")"; done
    echo "$out"
}
mut() {
    if [ "$DRY_RUN" = 1 ]; then
        show "$@"
        return 0
    fi
    k "$@"
}

need_kubectl() {
    command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl not found (set KUBECTL=/path/to/kubectl)"
}

confirm() { # question
    [ "$ASSUME_YES" = 1 ] && return 0
    [ -t 0 ] || die "$1 — refusing without a terminal; pass --yes"
    local answer
    read -r -p "$1 [y/N] " answer
    case $answer in y | Y | yes | YES) return 0 ;; *) die "aborted" ;; esac
}

TMPDIRS=()
PIDS=()
cleanup() {
    local d p
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    for d in ${TMPDIRS[@]+"${TMPDIRS[@]}"}; do rm -rf -- "$d"; done
    return 0
}
trap cleanup EXIT
mktempdir() { # sets TMP_MADE
    TMP_MADE=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/wapi-deploy.XXXXXX")
    TMPDIRS+=("$TMP_MADE")
}

kustomize_dir() {
    if [ -n "$KDIR" ]; then
        [ -f "$KDIR/kustomization.yaml" ] || die "no kustomization.yaml in $KDIR"
        (cd "$KDIR" && pwd -P)
    elif [ -n "$OVERLAY" ]; then
        local d="$ROOT/kubernetes/overlays/$OVERLAY"
        [ -f "$d/kustomization.yaml" ] || die "no overlay '$OVERLAY' (kubernetes/overlays/$OVERLAY/kustomization.yaml)"
        echo "$d"
    else
        echo "$ROOT/kubernetes"
    fi
}

# relative path from directory $1 to absolute path $2 (kustomize refuses
# absolute resource paths); portable, no realpath --relative-to.
relpath() {
    local from rel="" to=${2#/}
    from=$(cd "$1" && pwd -P)
    while [ "$from" != "/" ]; do
        rel+="../"
        from=$(dirname "$from")
    done
    echo "$rel$to"
}

# the namespace a kustomization sets (its top-level namespace:), or nothing
declared_namespace() { # DIR
    sed -n 's/^namespace:[[:space:]]*\([A-Za-z0-9-]*\)[[:space:]]*\(#.*\)\{0,1\}$/\1/p' "$1/kustomization.yaml" | head -n 1
}

render() { # DIR: the manifests to apply, on stdout
    local dir=$1 declared
    declared=$(declared_namespace "$dir")
    # Overlays list the base's files from the parent folder (see
    # kubernetes/overlays/dev/kustomization.yaml), which needs this flag.
    local flags=(--load-restrictor LoadRestrictionsNone)
    if [ "$NAMESPACE" = "${declared:-wapi}" ] && [ -z "$IMAGE" ]; then
        "$KUBECTL" kustomize "${flags[@]}" "$dir"
        return
    fi
    # Another namespace or image: wrap the kustomization in one that sets them.
    mktempdir
    local wrap=$TMP_MADE
    {
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "namespace: $NAMESPACE"
        echo "resources:"
        echo "  - $(relpath "$wrap" "$dir")"
        if [ -n "$IMAGE" ]; then
            local name=$IMAGE tag="" digest=""
            case $name in
            *@*) digest=${name#*@}; name=${name%%@*} ;;
            esac
            # a tag is a colon after the last slash (not a registry port)
            case ${name##*/} in
            *:*) tag=${name##*:}; name=${name%:*} ;;
            esac
            echo "images:"
            echo "  - name: your-registry/wapi"
            echo "    newName: \"$name\""
            [ -n "$tag" ] && echo "    newTag: \"$tag\""
            [ -n "$digest" ] && echo "    digest: \"$digest\""
        fi
    } >"$wrap/kustomization.yaml"
    "$KUBECTL" kustomize "${flags[@]}" "$wrap"
}

cmd_apply() {
    need_kubectl
    local dir
    dir=$(kustomize_dir) || exit 1
    mktempdir
    local out=$TMP_MADE/manifests.yaml
    render "$dir" >"$out" || die "rendering $dir failed"
    if [ "$DRY_RUN" = 1 ]; then
        echo "# Manifests for namespace $NAMESPACE ($dir):"
        cat "$out"
        echo "# Would run (the manifests above on standard input):"
        show apply -f -
        show -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
        return 0
    fi
    # The base does not carry the Secret (so real credentials are never
    # overwritten); it must exist before the pod can start.
    if ! grep -q "^  name: $SECRET\$" "$out"; then
        kn get secret "$SECRET" >/dev/null 2>&1 ||
            die "Secret $SECRET not found in namespace $NAMESPACE: run ./deploy.sh${OVERLAY:+ --overlay $OVERLAY} -n $NAMESPACE secret first"
    fi
    note "applying $dir to namespace $NAMESPACE"
    k apply -f "$out"
    note "waiting for the rollout (Recreate: the old pod stops before the new one starts)"
    kn rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
}

# value of one key of the existing Secret, or nothing
existing_secret_value() {
    kn get secret "$SECRET" -o go-template="{{with .data}}{{with index . \"$1\"}}{{base64decode .}}{{end}}{{end}}" 2>/dev/null || true
}

cmd_secret() {
    need_kubectl
    local interactive=0 exists=0
    [ -t 0 ] && [ "$DRY_RUN" = 0 ] && interactive=1
    if [ "$DRY_RUN" = 0 ] && kn get secret "$SECRET" >/dev/null 2>&1; then exists=1; fi

    mktempdir
    local dir=$TMP_MADE key value current keys_set=""
    for key in $SECRET_KEYS; do
        current=""
        [ "$exists" = 1 ] && current=$(existing_secret_value "$key")
        if [ -n "${!key+set}" ]; then
            value=${!key}
        elif [ "$key" = BETTER_AUTH_SECRET ]; then
            value=$current
        elif [ "$interactive" = 1 ]; then
            local hint=""
            [ -n "$current" ] && hint=" (empty keeps the current value)"
            if [ "$key" = DATABASE_URL ]; then
                read -r -p "$key, e.g. postgresql://wapi@db.example.com:5432/wapi?sslmode=require$hint: " value
            else
                read -r -s -p "$key, the database password$hint: " value
                echo >&2
            fi
            [ -z "$value" ] && value=$current
        else
            value=$current
        fi
        if [ "$key" = BETTER_AUTH_SECRET ]; then
            if [ "$ROTATE" = 1 ] || [ -z "$value" ]; then
                command -v openssl >/dev/null 2>&1 || die "openssl not found (needed to generate BETTER_AUTH_SECRET)"
                value=$(openssl rand -base64 48 | tr -d '\n')
                if [ "$DRY_RUN" = 1 ]; then
                    note "a new BETTER_AUTH_SECRET would be generated"
                else
                    note "generated a new BETTER_AUTH_SECRET"
                fi
            fi
            [ "${#value}" -ge 32 ] || die "BETTER_AUTH_SECRET must be at least 32 characters"
        fi
        if [ "$key" = DATABASE_URL ] && [ -z "$value" ]; then
            if [ "$DRY_RUN" = 1 ]; then
                value="<DATABASE_URL>"
            else
                die "DATABASE_URL is required: export it or run in a terminal to be asked"
            fi
        fi
        # DATABASE_AUTH_TOKEN may be empty (password inside DATABASE_URL or
        # none): then the key is left out.
        if [ -n "$value" ]; then
            printf '%s' "$value" >"$dir/$key"
            keys_set+="$key "
        fi
    done

    {
        echo "apiVersion: v1"
        echo "kind: Secret"
        echo "metadata:"
        echo "  name: $SECRET"
        echo "  namespace: $NAMESPACE"
        echo "  labels:"
        echo "    app: wapi"
        echo "    app.kubernetes.io/name: wapi"
        echo "    app.kubernetes.io/part-of: wapi"
        echo "type: Opaque"
        echo "data:"
        for key in $SECRET_KEYS; do
            [ -f "$dir/$key" ] || continue
            if [ "$DRY_RUN" = 1 ]; then
                echo "  $key: <redacted>"
            else
                printf '  %s: %s\n' "$key" "$(openssl base64 -A <"$dir/$key")"
            fi
        done
    } >"$dir/secret.yaml"

    if [ "$DRY_RUN" = 1 ]; then
        echo "# Secret that would be applied (values not shown):"
        cat "$dir/secret.yaml"
        echo "# Would run (the Secret above, with its values, on standard input):"
        echo "$(show create namespace "$NAMESPACE")    # only if it does not exist"
        show apply --server-side --force-conflicts --field-manager=wapi-deploy -f -
        return 0
    fi
    command -v openssl >/dev/null 2>&1 || die "openssl not found"
    k get namespace "$NAMESPACE" >/dev/null 2>&1 || k create namespace "$NAMESPACE"
    # Server-side apply: idempotent, and the values are not copied into a
    # last-applied-configuration annotation.
    k apply --server-side --force-conflicts --field-manager=wapi-deploy -f "$dir/secret.yaml"
    note "Secret $SECRET is set in namespace $NAMESPACE (keys: ${keys_set% })"
    if kn get "deployment/$DEPLOYMENT" >/dev/null 2>&1; then
        note "the running pod reads it at start: ./deploy.sh -n $NAMESPACE restart"
    fi
}

cmd_status() {
    need_kubectl
    if [ "$DRY_RUN" = 1 ]; then
        show -n "$NAMESPACE" get deployment,pod,service,ingress,hpa,pvc,cronjob,job,networkpolicy -o wide
        show -n "$NAMESPACE" exec "deployment/$DEPLOYMENT" -c "$CONTAINER" -- "$WAPICTL" status
        return 0
    fi
    kn get deployment,pod,service,ingress,hpa,pvc,cronjob,job,networkpolicy -o wide || true
    echo
    kn rollout status "deployment/$DEPLOYMENT" --timeout=5s || true
    echo
    note "wapictl status"
    kn exec "deployment/$DEPLOYMENT" -c "$CONTAINER" -- "$WAPICTL" status || echo "(the server did not answer)"
    echo
    note "resource use (needs metrics-server)"
    kn top pod -l app=wapi 2>/dev/null || echo "(kubectl top unavailable)"
    echo
    note "recent events"
    kn get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 || true
}

cmd_logs() {
    need_kubectl
    local args=("$@")
    [ ${#args[@]} -eq 0 ] && args=(--tail=100 -f)
    if [ "$DRY_RUN" = 1 ]; then
        show -n "$NAMESPACE" logs "deployment/$DEPLOYMENT" -c "$CONTAINER" "${args[@]}"
        return 0
    fi
    kn logs "deployment/$DEPLOYMENT" -c "$CONTAINER" "${args[@]}"
}

is_gzip() { [ -s "$1" ] && [ "$(od -An -tx1 -N2 "$1" | tr -d ' \n')" = "1f8b" ]; }

cmd_backup() {
    need_kubectl
    local dir=${1:-backups} ts
    ts=$(date -u +%Y%m%dT%H%M%SZ)
    local out="$dir/wapi-backup-$ts.tar.gz" cfg="$dir/wapi-config-$ts.yaml"
    if [ "$DRY_RUN" = 1 ]; then
        echo "$(show -n "$NAMESPACE" exec "deployment/$DEPLOYMENT" -c "$CONTAINER" -- "$WAPICTL" backup --output -) > $out"
        echo "$(show -n "$NAMESPACE" get configmap "$CONFIGMAP" -o yaml) > $cfg"
        return 0
    fi
    mkdir -p "$dir"
    note "backing up the session and media stores of deployment/$DEPLOYMENT in $NAMESPACE"
    if ! kn exec "deployment/$DEPLOYMENT" -c "$CONTAINER" -- "$WAPICTL" backup --output - >"$out.part"; then
        rm -f -- "$out.part"
        die "wapictl backup failed"
    fi
    is_gzip "$out.part" || { rm -f -- "$out.part"; die "the archive is empty or not gzip"; }
    if command -v gzip >/dev/null 2>&1; then
        gzip -t "$out.part" || { rm -f -- "$out.part"; die "the archive is damaged"; }
    fi
    mv -- "$out.part" "$out"
    kn get configmap "$CONFIGMAP" -o yaml >"$cfg"
    note "wrote $out and $cfg (the Secret is not exported)"
}

# The pod spec of the one-off restore: the server's image and security
# settings, both claims, the archive on standard input.
restore_overrides() { # image
    cat <<JSON
{"apiVersion": "v1", "spec": {
  "securityContext": {"runAsNonRoot": true, "runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001,
                      "seccompProfile": {"type": "RuntimeDefault"}},
  "containers": [{"name": "wapi-restore", "image": "$1", "stdin": true, "stdinOnce": true,
    "command": ["$WAPICTL", "restore", "--input", "-", "--force"],
    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]}},
    "volumeMounts": [{"name": "sessions", "mountPath": "/app/whatsapp_sessions"},
                     {"name": "media", "mountPath": "/app/public/media"}]}],
  "volumes": [{"name": "sessions", "persistentVolumeClaim": {"claimName": "whatsapp-sessions"}},
              {"name": "media", "persistentVolumeClaim": {"claimName": "media"}}]}}
JSON
}

# A restore replaces the session store, so the server must be stopped:
# scale to 0, restore in a one-off pod with both claims, scale back to 1.
# wapictl checks the whole archive before it changes anything.
cmd_restore() {
    need_kubectl
    local file=${1:-} image
    [ -n "$file" ] || die "usage: ./deploy.sh restore FILE"
    [ -f "$file" ] || die "no such file: $file"
    is_gzip "$file" || die "$file is not a gzip archive made by ./deploy.sh backup"
    if [ "$DRY_RUN" = 1 ]; then
        image=${IMAGE:-'<the image of deployment/'"$DEPLOYMENT"'>'}
        show -n "$NAMESPACE" scale "deployment/$DEPLOYMENT" --replicas=0
        show -n "$NAMESPACE" wait --for=delete pod -l app=wapi --timeout="$ROLLOUT_TIMEOUT"
        echo "$(show -n "$NAMESPACE" run wapi-restore --rm -i --restart=Never --image="$image" \
            --overrides="$(restore_overrides "$image" | tr -s ' \n' ' ')") < $file"
        show -n "$NAMESPACE" scale "deployment/$DEPLOYMENT" --replicas=1
        show -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
        return 0
    fi
    image=${IMAGE:-$(kn get deployment "$DEPLOYMENT" -o jsonpath='{.spec.template.spec.containers[0].image}')}
    [ -n "$image" ] || die "cannot read the image of deployment/$DEPLOYMENT"
    confirm "Stop the server in namespace $NAMESPACE and replace its WhatsApp session and media with $file?"
    note "stopping the server"
    kn scale "deployment/$DEPLOYMENT" --replicas=0
    kn wait --for=delete pod -l app=wapi --timeout="$ROLLOUT_TIMEOUT" || true
    note "restoring $file"
    if ! kn run wapi-restore --rm -i --restart=Never --image="$image" \
        --overrides="$(restore_overrides "$image")" <"$file"; then
        note "the restore was refused; starting the server again with what it had"
        kn scale "deployment/$DEPLOYMENT" --replicas=1
        die "restore failed (nothing was changed)"
    fi
    note "starting the server"
    kn scale "deployment/$DEPLOYMENT" --replicas=1
    kn rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
}

cmd_rollback() {
    need_kubectl
    local rev=${1:-}
    if [ -n "$rev" ]; then
        case $rev in *[!0-9]*) die "revision must be a number: $rev" ;; esac
    fi
    [ "$DRY_RUN" = 1 ] || kn rollout history "deployment/$DEPLOYMENT"
    mut -n "$NAMESPACE" rollout undo "deployment/$DEPLOYMENT" ${rev:+"--to-revision=$rev"}
    if [ "$DRY_RUN" = 1 ]; then
        show -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
        return 0
    fi
    kn rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
}

cmd_restart() {
    need_kubectl
    mut -n "$NAMESPACE" rollout restart "deployment/$DEPLOYMENT"
    if [ "$DRY_RUN" = 1 ]; then
        show -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
        return 0
    fi
    kn rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
}

cmd_port_forward() {
    need_kubectl
    local port=${1:-3000}
    case $port in '' | *[!0-9]*) die "port must be a number: $port" ;; esac
    if [ "$DRY_RUN" = 1 ]; then
        show -n "$NAMESPACE" port-forward "service/$SERVICE" "$port:80"
        return 0
    fi
    note "http://localhost:$port -> service/$SERVICE in $NAMESPACE (Ctrl-C to stop)"
    kn port-forward "service/$SERVICE" "$port:80"
}

# ---- smoke test and release -------------------------------------------------
# One line per check on stdout: "smoke: pass|FAIL|skip|warn  NAME: detail".
# Credentials come from the environment only, go to curl through files
# (never a command line) and are never printed.
SMOKE_PASS=0 SMOKE_FAIL=0 SMOKE_SKIP=0 SMOKE_WARN=0
smoke_line() { # pass|FAIL|skip|warn NAME DETAIL
    printf 'smoke: %-4s  %s: %s\n' "$1" "$2" "$3"
    case $1 in
    pass) SMOKE_PASS=$((SMOKE_PASS + 1)) ;;
    FAIL) SMOKE_FAIL=$((SMOKE_FAIL + 1)) ;;
    skip) SMOKE_SKIP=$((SMOKE_SKIP + 1)) ;;
    warn) SMOKE_WARN=$((SMOKE_WARN + 1)) ;;
    esac
}

# JSON string of $1 (quotes, backslashes and control characters escaped)
json_str() {
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        '"') out+='\"' ;;
        \\) out+="\\\\" ;;
        [[:cntrl:]]) out+=$(printf '\\u%04x' "'$c") ;;
        *) out+=$c ;;
        esac
    done
    printf '"%s"' "$out"
}

# SMOKE_BASE, SMOKE_DIR: set by cmd_smoke. http METHOD PATH [curl args...]:
# sets HTTP_CODE (000 when no answer) and HTTP_ERR; the body is in
# $SMOKE_DIR/body, the response headers in $SMOKE_DIR/headers.
http() {
    local method=$1 path=$2
    shift 2
    local extra=()
    case $SMOKE_BASE in http://127.0.0.1:*) extra=(--noproxy '*') ;; esac
    HTTP_CODE=$(curl -sS -X "$method" -o "$SMOKE_DIR/body" -D "$SMOKE_DIR/headers" -w '%{http_code}' \
        --max-time "$HTTP_TIMEOUT" ${extra[@]+"${extra[@]}"} "$@" "$SMOKE_BASE$path" 2>"$SMOKE_DIR/curl.err") ||
        true
    HTTP_CODE=${HTTP_CODE:-000}
    HTTP_ERR=$(head -n 1 "$SMOKE_DIR/curl.err")
}
# "HTTP 503: <reason>" / "no answer (<curl error>)" for a failed request
http_why() {
    if [ "$HTTP_CODE" = 000 ]; then
        echo "no answer (${HTTP_ERR:-curl failed})"
        return
    fi
    local why
    why=$(sed -n 's/.*"\(reason\|message\)":"\([^"]*\)".*/\2/p' "$SMOKE_DIR/body" 2>/dev/null | head -n 1)
    echo "HTTP $HTTP_CODE${why:+: $why}"
}
# value of a string member of the JSON body, first match
body_str() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p' "$SMOKE_DIR/body" | head -n 1; }

# Starts `kubectl port-forward service/wapi :80` on 127.0.0.1 (a free local
# port, read from kubectl's "Forwarding from" line); sets SMOKE_BASE.
smoke_port_forward() {
    local log=$SMOKE_DIR/port-forward.log port="" i
    # kubectl itself in the background (not a function: a subshell), so that
    # $! is its pid and cleanup stops it.
    "$KUBECTL" ${KARGS[@]+"${KARGS[@]}"} -n "$NAMESPACE" port-forward "service/$SERVICE" :80 --address 127.0.0.1 \
        >"$log" 2>&1 </dev/null &
    PIDS+=("$!")
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$!" 2>/dev/null || break
        sleep 0.2
    done
    if [ -z "$port" ]; then
        smoke_line FAIL port-forward "$(tail -n 1 "$log" | cut -c1-200)"
        return 1
    fi
    SMOKE_BASE=http://127.0.0.1:$port
}

cmd_smoke() {
    need_kubectl
    local email=${WAPI_SMOKE_EMAIL:-} password=${WAPI_SMOKE_PASSWORD:-} key=${WAPI_SMOKE_API_KEY:-}
    if [ "$DRY_RUN" = 1 ]; then
        show -n "$NAMESPACE" rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT"
        [ -n "$IMAGE" ] && show -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o "jsonpath={.spec.template.spec.containers[?(@.name==\"$CONTAINER\")].image}"
        if [ -z "$SMOKE_URL" ]; then show -n "$NAMESPACE" port-forward "service/$SERVICE" :80 --address 127.0.0.1; fi
        echo "+ curl ${SMOKE_URL:-http://127.0.0.1:PORT}/healthz, /readyz${email:+, sign-in and /api/me}${key:+, /api/me with the API key}"
        show -n "$NAMESPACE" exec "deployment/$DEPLOYMENT" -c "$CONTAINER" -- "$WAPICTL" session status
        return 0
    fi
    command -v curl >/dev/null 2>&1 || die "curl not found (the smoke test's HTTP checks need it)"
    mktempdir
    SMOKE_DIR=$TMP_MADE
    SMOKE_PASS=0 SMOKE_FAIL=0 SMOKE_SKIP=0 SMOKE_WARN=0
    note "smoke test of deployment/$DEPLOYMENT in $NAMESPACE"

    # 1. the rollout is complete: the pod of the current template is Ready
    local out
    if out=$(kn rollout status "deployment/$DEPLOYMENT" --timeout="$ROLLOUT_TIMEOUT" 2>&1); then
        smoke_line pass rollout "$(printf '%s\n' "$out" | tail -n 1)"
    else
        smoke_line FAIL rollout "$(printf '%s\n' "$out" | tail -n 1 | cut -c1-200)"
    fi

    # 2. the image it runs is the one asked for
    if [ -n "$IMAGE" ]; then
        local running
        running=$(kn get deployment "$DEPLOYMENT" -o "jsonpath={.spec.template.spec.containers[?(@.name==\"$CONTAINER\")].image}" 2>&1) || true
        if [ "$running" = "$IMAGE" ]; then
            smoke_line pass image "$running"
        else
            smoke_line FAIL image "deployment/$DEPLOYMENT runs ${running:-nothing}, expected $IMAGE"
        fi
    fi

    # 3. HTTP, through WAPI_SMOKE_URL or a port-forward
    local http_ok=1
    if [ -n "$SMOKE_URL" ]; then
        SMOKE_BASE=${SMOKE_URL%/}
    else
        smoke_port_forward || http_ok=0
    fi
    if [ "$http_ok" = 1 ]; then
        http GET /healthz
        if [ "$HTTP_CODE" = 200 ]; then smoke_line pass healthz "HTTP 200"; else smoke_line FAIL healthz "$(http_why)"; fi
        http GET /readyz
        if [ "$HTTP_CODE" = 200 ]; then smoke_line pass readyz "HTTP 200 (database and supervisor answer)"; else smoke_line FAIL readyz "$(http_why)"; fi

        # sign in, who am I, sign out
        if [ -z "$email$password" ]; then
            smoke_line skip sign-in "WAPI_SMOKE_EMAIL and WAPI_SMOKE_PASSWORD not set"
        elif [ -z "$email" ] || [ -z "$password" ]; then
            smoke_line FAIL sign-in "WAPI_SMOKE_EMAIL and WAPI_SMOKE_PASSWORD must be set together"
        else
            (umask 077 && printf '{"email":%s,"password":%s,"rememberMe":false}' \
                "$(json_str "$email")" "$(json_str "$password")" >"$SMOKE_DIR/signin.json")
            http POST /api/auth/sign-in/email -H 'content-type: application/json' --data-binary "@$SMOKE_DIR/signin.json"
            rm -f -- "$SMOKE_DIR/signin.json"
            local cookie
            cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: *\([^=;]*session_token=[^;]*\).*/\1/p' "$SMOKE_DIR/headers" | head -n 1 | tr -d '\r')
            if [ "$HTTP_CODE" != 200 ]; then
                smoke_line FAIL sign-in "$(http_why)"
            elif [ -z "$cookie" ]; then
                smoke_line FAIL sign-in "HTTP 200 but no session cookie"
            else
                (umask 077 && printf 'Cookie: %s\n' "$cookie" >"$SMOKE_DIR/cookie")
                http GET /api/me -H "@$SMOKE_DIR/cookie"
                if [ "$HTTP_CODE" = 200 ]; then
                    smoke_line pass sign-in "signed in; GET /api/me 200 (role $(body_str role))"
                else
                    smoke_line FAIL sign-in "signed in, but GET /api/me: $(http_why)"
                fi
                # Sign-out needs an Origin the server trusts: its own URL.
                local origin=${SMOKE_URL%/}
                [ -n "$origin" ] || origin=$(kn get configmap "$CONFIGMAP" -o 'jsonpath={.data.BETTER_AUTH_URL}' 2>/dev/null) || true
                http POST /api/auth/sign-out -H "@$SMOKE_DIR/cookie" -H "origin: ${origin%/}" \
                    -H 'content-type: application/json' --data-binary '{}'
                [ "$HTTP_CODE" = 200 ] || smoke_line warn sign-out "$(http_why) (the session stays until it expires)"
                rm -f -- "$SMOKE_DIR/cookie"
            fi
        fi

        # an API key
        if [ -z "$key" ]; then
            smoke_line skip api-key "WAPI_SMOKE_API_KEY not set"
        else
            (umask 077 && printf 'X-Api-Key: %s\n' "$key" >"$SMOKE_DIR/key")
            http GET /api/me -H "@$SMOKE_DIR/key"
            rm -f -- "$SMOKE_DIR/key"
            if [ "$HTTP_CODE" = 200 ]; then
                smoke_line pass api-key "GET /api/me 200 (role $(body_str role))"
            else
                smoke_line FAIL api-key "GET /api/me: $(http_why)"
            fi
        fi
    else
        smoke_line skip http "healthz, readyz, sign-in and api-key not tried (no connection)"
    fi

    # 4. the WhatsApp session, from the supervisor in the pod. While it is
    # still connecting, wait for it (CONNECT_TIMEOUT) when it must connect.
    local state="" t0=$SECONDS
    while :; do
        if out=$(kn exec "deployment/$DEPLOYMENT" -c "$CONTAINER" -- "$WAPICTL" session status 2>&1); then
            state=$(printf '%s\n' "$out" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p' | head -n 1)
        else
            state=""
        fi
        case $state in
        connecting | reconnecting | pairing)
            if [ "$REQUIRE_CONNECTED" = 1 ] && [ $((SECONDS - t0)) -lt "$CONNECT_TIMEOUT" ]; then
                sleep 2
                continue
            fi
            ;;
        esac
        break
    done
    if [ -z "$state" ]; then
        smoke_line FAIL whatsapp "wapictl session status: $(printf '%s\n' "$out" | tail -n 1 | cut -c1-200)"
    elif [ "$state" = connected ]; then
        smoke_line pass whatsapp "session connected"
    elif [ "$REQUIRE_CONNECTED" = 1 ]; then
        smoke_line FAIL whatsapp "session $state, not connected (--require-connected)"
    else
        smoke_line warn whatsapp "session $state, not connected (link it: section 8 of docs/KUBERNETES.md)"
    fi

    local total=$((SMOKE_PASS + SMOKE_FAIL + SMOKE_SKIP + SMOKE_WARN))
    if [ "$SMOKE_FAIL" -gt 0 ]; then
        echo "smoke: FAILED, $SMOKE_FAIL of $total checks ($SMOKE_PASS ok, $SMOKE_SKIP skipped, $SMOKE_WARN warnings)"
        return 1
    fi
    echo "smoke: ok ($SMOKE_PASS ok, $SMOKE_SKIP skipped, $SMOKE_WARN warnings)"
}

deployment_revision() {
    kn get deployment "$DEPLOYMENT" -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}' 2>/dev/null || true
}

# apply, smoke; on failure roll back to the revision from before. Each step
# runs in a subshell of its own (errexit and clean-up included), so that a
# failing step comes back here instead of ending the script.
cmd_release() {
    need_kubectl
    if [ "$DRY_RUN" = 1 ]; then
        echo "# 1. apply:"
        cmd_apply
        echo "# 2. smoke:"
        cmd_smoke
        echo "# 3. only if 1 or 2 fails, back to the revision deployment/$DEPLOYMENT had before:"
        show -n "$NAMESPACE" rollout undo "deployment/$DEPLOYMENT" --to-revision=REVISION_BEFORE
        return 0
    fi
    local before after step="" rc
    before=$(deployment_revision)
    note "deployment/$DEPLOYMENT is at revision ${before:-none (first deploy)}"
    set +e
    (set -e; TMPDIRS=() PIDS=(); trap cleanup EXIT; cmd_apply)
    rc=$?
    if [ "$rc" != 0 ]; then
        step=apply
    else
        (set -e; TMPDIRS=() PIDS=(); trap cleanup EXIT; cmd_smoke)
        rc=$?
        [ "$rc" = 0 ] || step="smoke test"
    fi
    set -e
    if [ -z "$step" ]; then
        note "released: deployment/$DEPLOYMENT at revision $(deployment_revision)"
        return 0
    fi
    after=$(deployment_revision)
    if [ -z "$before" ]; then
        die "$step failed; deployment/$DEPLOYMENT had no earlier revision: nothing to roll back to"
    fi
    if [ "$after" = "$before" ]; then
        die "$step failed; deployment/$DEPLOYMENT is still at revision $before (unchanged): nothing to roll back"
    fi
    note "$step failed: rolling deployment/$DEPLOYMENT back from revision ${after:-?} to $before"
    set +e
    (set -e; trap cleanup EXIT; cmd_rollback "$before")
    rc=$?
    set -e
    [ "$rc" = 0 ] || die "$step failed, and so did the rollback to revision $before: see ./deploy.sh -n $NAMESPACE status"
    die "$step failed; rolled back to revision $before (the ConfigMap and other objects keep what was applied)"
}

# ---- many numbers on one cluster ------------------------------------------------
# One WhatsApp number per pod, each in a namespace of its own. `number add`
# writes an overlay NUMBERS_DIR/NAME/ (kustomization.yaml: the base's files,
# kubernetes/components/number and the label app.kubernetes.io/instance=NAME;
# number.yaml: the number's values). Every other command then works on it
# with -k NUMBERS_DIR/NAME, in the namespace the overlay declares.
NUMBERS_DIR=${WAPI_NUMBERS_DIR:-$ROOT/kubernetes/numbers}
NAMESPACE_GIVEN=""
NUMBER_USAGE="usage: ./deploy.sh [-n NS] number add NAME [--host HOST] [--path /PATH] | number list | number remove NAME"

# absolute path of $1, which need not exist yet (its existing part resolved)
abspath() {
    local p=$1
    case $p in /*) ;; *) p=$PWD/$p ;; esac
    if [ -d "$p" ]; then
        (cd "$p" && pwd -P)
    elif [ "$p" = / ] || [ "$(dirname "$p")" = "$p" ]; then
        echo "$p"
    else
        local parent
        parent=$(abspath "$(dirname "$p")")
        echo "${parent%/}/$(basename "$p")"
    fi
}

# relative path from absolute directory $1 to absolute path $2
relpath_to() {
    local from=${1%/} to=$2 up=""
    while [ "$to" != "$from" ] && [ -n "$from" ] && [ "${to#"$from"/}" = "$to" ]; do
        from=${from%/*}
        up+="../"
    done
    if [ "$to" = "$from" ]; then
        up=${up%/}
        echo "${up:-.}"
    else
        echo "$up${to#"$from"/}"
    fi
}

# shown to the user: relative to the repository when inside it
shown_path() { case $1 in "$ROOT"/*) echo "${1#"$ROOT"/}" ;; *) echo "$1" ;; esac; }

number_check_name() { # NAME
    local n=$1
    if [ ${#n} -gt 40 ] || ! [[ $n =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]]; then
        die "invalid number name '$n': lowercase letters, digits and '-', starting and ending with a letter or digit, at most 40 characters (it names the namespace wapi-NAME and the database wapi_NAME)"
    fi
}

# value of KEY in a number.yaml (written by number_add, one "  key: \"value\"" a line)
number_value() { # FILE KEY
    sed -n "s/^  $2: \"\\(.*\\)\"\$/\\1/p" "$1" | head -n 1
}

# the database a libpq connection string names (URI or key=value), or nothing
url_database() {
    local u=$1 rest db=""
    case $u in
    postgres://* | postgresql://*)
        rest=${u#*://}
        rest=${rest##*@}
        case $rest in *\?*dbname=*) db=${rest#*\?}; db=${db#*dbname=}; db=${db%%&*}; echo "${db%%#*}"; return ;; esac
        rest=${rest%%\?*}
        rest=${rest%%#*}
        case $rest in */*) db=${rest#*/} ;; esac
        echo "$db"
        ;;
    *) printf '%s\n' "$u" | tr ' ' '\n' | sed -n 's/^dbname=//p' | head -n 1 ;;
    esac
}

# `secret` for a number's overlay: a DATABASE_URL from the environment must
# name that number's own database, so that two numbers never share one.
number_check_secret() {
    local dir f want got
    dir=$(kustomize_dir) || exit 1
    f=$dir/number.yaml
    [ -f "$f" ] && [ -n "${DATABASE_URL:-}" ] || return 0
    want=$(number_value "$f" database)
    got=$(url_database "$DATABASE_URL")
    [ "$got" = "$want" ] ||
        die "DATABASE_URL names the database '${got:-(none)}', but number '$(number_value "$f" name)' keeps its data in '$want' (number.yaml): give each number its own database"
}

number_add() {
    local name="" host="" path=""
    while [ $# -gt 0 ]; do
        case $1 in
        --host) [ $# -ge 2 ] || die "--host needs a value"; host=$2; shift ;;
        --host=*) host=${1#*=} ;;
        --path) [ $# -ge 2 ] || die "--path needs a value"; path=$2; shift ;;
        --path=*) path=${1#*=} ;;
        -*) die "number add: unknown option '$1' ($NUMBER_USAGE)" ;;
        *) [ -z "$name" ] || die "number add takes one NAME, got '$name' and '$1'"; name=$1 ;;
        esac
        shift
    done
    [ -n "$name" ] || die "$NUMBER_USAGE"
    number_check_name "$name"
    local ns=${NAMESPACE_GIVEN:-wapi-$name}
    if [ -n "$host" ]; then
        if [ ${#host} -gt 253 ] || ! [[ $host =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$ ]]; then
            die "invalid host '$host': a lowercase DNS name such as wapi.example.com"
        fi
    elif [ -n "$path" ]; then
        host=your-domain.com
    else
        host=$name.your-domain.com
    fi
    if [ -n "$path" ] && ! [[ $path =~ ^/[a-z0-9]([a-z0-9_-]*[a-z0-9])?$ ]]; then
        die "invalid path '$path': one segment such as /sales (lowercase letters, digits, '-', '_')"
    fi
    local db=wapi_${name//-/_} url="https://$host$path" origin="https://$host"
    local numbers dir
    numbers=$(abspath "$NUMBERS_DIR")
    dir=$numbers/$name
    [ -e "$dir" ] && die "number '$name' exists already ($(shown_path "$dir")); choose another name, or remove it first (./deploy.sh number remove $name)"
    # What must stay apart from every other number: namespace, database,
    # public address.
    local f other
    for f in "$numbers"/*/number.yaml; do
        [ -f "$f" ] || continue
        other=$(number_value "$f" name)
        [ "$(number_value "$f" namespace)" = "$ns" ] &&
            die "namespace $ns belongs to number '$other' already: each number needs its own (-n NS)"
        [ "$(number_value "$f" database)" = "$db" ] &&
            die "database $db belongs to number '$other' already"
        [ "$(number_value "$f" host)" = "$host" ] && [ "$(number_value "$f" path)" = "$path" ] &&
            die "https://$host$path is number '$other''s address already: give --host or --path"
        [ "$(number_value "$f" host)" = "$host" ] && { [ -z "$path" ] || [ -z "$(number_value "$f" path)" ]; } &&
            die "host $host is number '$other''s; numbers share a host only with a --path each"
    done

    local base rel r resources=() cmdline="./deploy.sh" opts=""
    base=$(abspath "$ROOT/kubernetes")
    rel=$(relpath_to "$dir" "$base")
    while IFS= read -r r; do resources+=("$rel/$r"); done < <(
        awk '/^resources:/ { on = 1; next } /^[^ #]/ { on = 0 } on && /^  - / { print $2 }' "$base/kustomization.yaml")
    [ ${#resources[@]} -gt 0 ] || die "no resources in $base/kustomization.yaml"
    [ -n "$NAMESPACE_GIVEN" ] && cmdline+=" -n $ns"
    cmdline+=" number add $name"
    [ "$host" != "$name.your-domain.com" ] && [ "$host" != your-domain.com ] && opts+=" --host $host"
    [ -n "$path" ] && opts+=" --path $path"
    local k
    k="-k $(shown_path "$dir")"

    mktempdir
    local out=$TMP_MADE
    {
        echo "# WhatsApp number \"$name\", written by"
        echo "#   $cmdline${opts:+ \\}"
        [ -z "$opts" ] || echo "#    $opts"
        echo "# Everything of this number lives in namespace $ns: its pod, its claims"
        echo "# whatsapp-sessions and media, its backups, its Secret wapi-secrets. Its"
        echo "# data goes to its own database, $db (on a shared PostgreSQL if you like):"
        echo "#   CREATE ROLE $db LOGIN PASSWORD '...';"
        echo "#   CREATE DATABASE $db OWNER $db;"
        echo "# then, from the repository's root (ROLE and DATABASE: $db), with"
        echo "#   DIR=$(shown_path "$dir")"
        echo "#   DATABASE_URL='postgresql://ROLE@DB-HOST:5432/DATABASE?sslmode=require' \\"
        echo "#     DATABASE_AUTH_TOKEN='...' ./deploy.sh -k \"\$DIR\" secret"
        echo "#   ./deploy.sh -k \"\$DIR\" apply"
        echo "# Its values (host, URL, database) are in number.yaml; the component"
        echo "# kubernetes/components/number copies them into the manifests."
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "namespace: $ns"
        echo "resources:"
        echo "  # the production base, file by file (this folder may lie inside it)"
        for r in "${resources[@]}"; do echo "  - $r"; done
        echo "  - number.yaml"
        echo "components:"
        echo "  - $rel/components/number"
        echo "labels:"
        echo "  # includeSelectors stays false: see components/number (DNS egress)"
        echo "  - pairs:"
        echo "      app.kubernetes.io/instance: $name"
        echo "    includeSelectors: false"
        echo "    includeTemplates: true"
        if [ -n "$path" ]; then
            echo "patches:"
            echo "  # A path on a shared host: the Ingress passes $path/... on without"
            echo "  # the prefix (the server has no base-path setting)."
            echo "  - target:"
            echo "      kind: Ingress"
            echo "      name: wapi"
            echo "    patch: |-"
            echo "      - op: replace"
            echo "        path: /spec/rules/0/http/paths/0/path"
            echo "        value: $path(/|\$)(.*)"
            echo "      - op: replace"
            echo "        path: /spec/rules/0/http/paths/0/pathType"
            echo "        value: ImplementationSpecific"
            echo "      - op: add"
            echo "        path: /metadata/annotations/nginx.ingress.kubernetes.io~1use-regex"
            echo "        value: \"true\""
            echo "      - op: add"
            echo "        path: /metadata/annotations/nginx.ingress.kubernetes.io~1rewrite-target"
            echo "        value: /\$2"
        fi
    } >"$out/kustomization.yaml"
    {
        echo "# The values of number \"$name\", written by deploy.sh number add. Read by"
        echo "# kustomize (kubernetes/components/number) and by deploy.sh; local-config:"
        echo "# never part of the rendering, never applied. No secrets here: those are"
        echo "# in the Secret wapi-secrets of namespace $ns (deploy.sh -k DIR secret)."
        echo "apiVersion: v1"
        echo "kind: ConfigMap"
        echo "metadata:"
        echo "  name: wapi-number"
        echo "  annotations:"
        echo "    config.kubernetes.io/local-config: \"true\""
        echo "data:"
        echo "  name: \"$name\""
        echo "  namespace: \"$ns\""
        echo "  host: \"$host\""
        echo "  path: \"$path\""
        echo "  url: \"$url\""
        echo "  origin: \"$origin\""
        echo "  database: \"$db\""
    } >"$out/number.yaml"
    if [ "$DRY_RUN" = 1 ]; then
        echo "# Would write $(shown_path "$dir")/kustomization.yaml:"
        cat "$out/kustomization.yaml"
        echo "# Would write $(shown_path "$dir")/number.yaml:"
        cat "$out/number.yaml"
        return 0
    fi
    mkdir -p "$numbers"
    mkdir "$dir" || die "cannot create $dir"
    cp "$out/kustomization.yaml" "$out/number.yaml" "$dir/"
    note "number $name: $(shown_path "$dir") (namespace $ns, database $db, $url)"
    cat >&2 <<MSG
Next:
  1. its database on your PostgreSQL:  CREATE ROLE $db LOGIN PASSWORD '...'; CREATE DATABASE $db OWNER $db;
  2. its Secret:   DATABASE_URL='postgresql://$db@DB-HOST:5432/$db?sslmode=require' DATABASE_AUTH_TOKEN='...' \\
                     ./deploy.sh $k secret
  3. deploy it:    ./deploy.sh $k apply
  4. link it:      ./deploy.sh $k logs --tail=500 | grep setup_token, then open $url
MSG
}

number_list() {
    local numbers f n=0
    numbers=$(abspath "$NUMBERS_DIR")
    for f in "$numbers"/*/number.yaml; do
        [ -f "$f" ] || continue
        [ "$n" = 0 ] && printf '%-24s %-30s %-32s %-12s %s\n' NAME NAMESPACE HOST PATH DATABASE
        n=$((n + 1))
        printf '%-24s %-30s %-32s %-12s %s\n' "$(number_value "$f" name)" "$(number_value "$f" namespace)" \
            "$(number_value "$f" host)" "$(number_value "$f" path | sed 's/^$/-/')" "$(number_value "$f" database)"
    done
    [ "$n" -gt 0 ] || note "no numbers in $(shown_path "$numbers") (./deploy.sh number add NAME)"
}

# Deletes the overlay only. The cluster keeps the number running, with its
# session, media and Secret; deleting those is a separate, deliberate step.
number_remove() {
    [ $# -eq 1 ] || die "usage: ./deploy.sh number remove NAME"
    number_check_name "$1"
    local numbers dir ns db
    numbers=$(abspath "$NUMBERS_DIR")
    dir=$numbers/$1
    [ -f "$dir/number.yaml" ] || die "no number '$1' in $(shown_path "$numbers") (./deploy.sh number list)"
    ns=$(number_value "$dir/number.yaml" namespace)
    db=$(number_value "$dir/number.yaml" database)
    if [ "$DRY_RUN" = 1 ]; then
        echo "# Would remove $(shown_path "$dir") (the overlay only; nothing in the cluster)"
        return 0
    fi
    rm -rf -- "$dir"
    note "removed $(shown_path "$dir"): the overlay only"
    cat >&2 <<MSG
Nothing in the cluster was changed: namespace $ns still runs number $1, with
its WhatsApp session and media (claims whatsapp-sessions, media, wapi-backups)
and its Secret. To take it down for good, deliberately:
  ./deploy.sh -n $ns backup               keep a last archive of session and media
  kubectl delete namespace $ns            the pod, the Secret, the claims; the volumes
                                          then follow their StorageClass's reclaimPolicy
                                          (Delete: the session and media are gone)
  DROP DATABASE $db;                      its messages, users and webhooks, on PostgreSQL
MSG
}

cmd_number() {
    local sub=${1:-}
    [ $# -gt 0 ] && shift
    case $sub in
    add) number_add "$@" ;;
    list) [ $# -eq 0 ] || die "number list takes no arguments"; number_list ;;
    remove) number_remove "$@" ;;
    '') die "$NUMBER_USAGE" ;;
    *) die "unknown number command '$sub' ($NUMBER_USAGE)" ;;
    esac
}

main() {
    local cmd="" args=()
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help) usage; exit 0 ;;
        -n | --namespace) [ $# -ge 2 ] || die "$1 needs a value"; NAMESPACE=$2; shift ;;
        --namespace=*) NAMESPACE=${1#*=} ;;
        --overlay) [ $# -ge 2 ] || die "$1 needs a value"; OVERLAY=$2; shift ;;
        --overlay=*) OVERLAY=${1#*=} ;;
        -k | --kustomize) [ $# -ge 2 ] || die "$1 needs a value"; KDIR=$2; shift ;;
        --kustomize=*) KDIR=${1#*=} ;;
        --image) [ $# -ge 2 ] || die "$1 needs a value"; IMAGE=$2; shift ;;
        --image=*) IMAGE=${1#*=} ;;
        --context) [ $# -ge 2 ] || die "$1 needs a value"; CONTEXT=$2; shift ;;
        --context=*) CONTEXT=${1#*=} ;;
        --dry-run) DRY_RUN=1 ;;
        --rotate) ROTATE=1 ;;
        --require-connected) REQUIRE_CONNECTED=1 ;;
        -y | --yes) ASSUME_YES=1 ;;
        --)
            shift
            if [ $# -gt 0 ]; then args+=("$@"); fi
            break
            ;;
        *)
            if [ -z "$cmd" ]; then
                cmd=$1
            else
                args+=("$1")
            fi
            ;;
        esac
        shift
    done
    case $OVERLAY in *[!A-Za-z0-9_-]*) die "invalid overlay name: '$OVERLAY'" ;; esac
    [ -n "$OVERLAY" ] && [ -n "$KDIR" ] && die "--overlay and --kustomize exclude each other"
    NAMESPACE_GIVEN=$NAMESPACE # for `number add`: -n or WAPI_NAMESPACE, not a default
    # No -n: the namespace the overlay (or -k DIR) declares, so that e.g.
    # `--overlay staging` never lands in production's namespace.
    if [ -z "$NAMESPACE" ]; then
        if [ -n "$OVERLAY$KDIR" ]; then
            local dir
            dir=$(kustomize_dir) || exit 1
            NAMESPACE=$(declared_namespace "$dir")
        fi
        NAMESPACE=${NAMESPACE:-wapi}
    fi
    case $NAMESPACE in
    '' | *[!a-z0-9-]* | -* | *-) die "invalid namespace: '$NAMESPACE'" ;;
    esac
    case $IMAGE in *[!A-Za-z0-9._/:@-]*) die "invalid image reference: '$IMAGE'" ;; esac
    [ -n "$CONTEXT" ] && KARGS=(--context "$CONTEXT")
    case $cmd in
    apply) cmd_apply ;;
    secret) number_check_secret; cmd_secret ;;
    status) cmd_status ;;
    logs) cmd_logs ${args[@]+"${args[@]}"} ;;
    backup) cmd_backup ${args[@]+"${args[@]}"} ;;
    restore) cmd_restore ${args[@]+"${args[@]}"} ;;
    rollback) cmd_rollback ${args[@]+"${args[@]}"} ;;
    smoke) [ ${#args[@]} -eq 0 ] || die "smoke takes no arguments"; cmd_smoke ;;
    release) [ ${#args[@]} -eq 0 ] || die "release takes no arguments"; cmd_release ;;
    restart) cmd_restart ;;
    port-forward) cmd_port_forward ${args[@]+"${args[@]}"} ;;
    number) cmd_number ${args[@]+"${args[@]}"} ;;
    '') usage >&2; exit 2 ;;
    *) echo "deploy.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
