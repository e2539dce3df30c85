#!/usr/bin/env bash
# deploy.sh — deploy and operate wapi on Kubernetes with kubectl (kustomize
# built in). Every command is safe to run again. See docs/KUBERNETES.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
NAMESPACE=${WAPI_NAMESPACE:-wapi}
OVERLAY=${WAPI_OVERLAY:-}
KDIR=${WAPI_KUSTOMIZE_DIR:-}
IMAGE=${WAPI_IMAGE:-}
CONTEXT=${WAPI_CONTEXT:-}
KUBECTL=${KUBECTL:-kubectl}
ROLLOUT_TIMEOUT=${WAPI_ROLLOUT_TIMEOUT:-300s}
DRY_RUN=0
ASSUME_YES=0
ROTATE=0

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
  restart            restart the pod (e.g. after changing the Secret)
  port-forward [PORT]
                     forward localhost:PORT (3000) to the Service

Options:
  -n, --namespace NS   namespace (default: wapi; env WAPI_NAMESPACE)
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
  -y, --yes            do not ask for confirmation
  -h, --help           this text

Environment: KUBECTL (kubectl binary), WAPI_ROLLOUT_TIMEOUT (300s).
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
cleanup() {
    local d
    for d in ${TMPDIRS[@]+"${TMPDIRS[@]}"}; do rm -rf -- "$d"; done
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

render() { # DIR: the manifests to apply, on stdout
    local dir=$1
    # Overlays list the base's files from the parent folder (see
    # kubernetes/overlays/dev/kustomization.yaml), which needs this flag.
    local flags=(--load-restrictor LoadRestrictionsNone)
    if [ "$NAMESPACE" = wapi ] && [ -z "$IMAGE" ]; then
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
    case $NAMESPACE in
    '' | *[!a-z0-9-]* | -* | *-) die "invalid namespace: '$NAMESPACE'" ;;
    esac
    case $OVERLAY in *[!A-Za-z0-9_-]*) die "invalid overlay name: '$OVERLAY'" ;; esac
    [ -n "$OVERLAY" ] && [ -n "$KDIR" ] && die "--overlay and --kustomize exclude each other"
    case $IMAGE in *[!A-Za-z0-9._/:@-]*) die "invalid image reference: '$IMAGE'" ;; esac
    [ -n "$CONTEXT" ] && KARGS=(--context "$CONTEXT")
    case $cmd in
    apply) cmd_apply ;;
    secret) cmd_secret ;;
    status) cmd_status ;;
    logs) cmd_logs ${args[@]+"${args[@]}"} ;;
    backup) cmd_backup ${args[@]+"${args[@]}"} ;;
    restore) cmd_restore ${args[@]+"${args[@]}"} ;;
    rollback) cmd_rollback ${args[@]+"${args[@]}"} ;;
    restart) cmd_restart ;;
    port-forward) cmd_port_forward ${args[@]+"${args[@]}"} ;;
    '') usage >&2; exit 2 ;;
    *) echo "deploy.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
