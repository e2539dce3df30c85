#!/usr/bin/env bash
# Builds the wapi container image from the Dockerfile with buildah (runc; no
# Docker engine needed). When no Debian bookworm base image is in local
# storage, it first makes one with debootstrap from the Debian mirror that
# apt on this machine is configured with. Run as root.
#
#   scripts/image.sh                 build localhost/wapi:latest
#   WAPI_IMAGE=name:tag scripts/image.sh
#   WAPI_BASE_IMAGE=debian:bookworm-slim scripts/image.sh   use an image you already have
#   scripts/image.sh --base          only make the base image
#
# Installs buildah, podman, debootstrap and runc (Debian packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${WAPI_IMAGE:-localhost/wapi:latest}
BASE=${WAPI_BASE_IMAGE:-localhost/wapi-base:bookworm}
SUITE=bookworm

say() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

need_packages() {
    local p missing=()
    for p in buildah podman debootstrap runc; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        die "needs these Debian packages; run as root: apt-get update && apt-get install -y ${missing[*]}"
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The mirror apt uses here for SUITE (and SUITE-security), from the one-line
# and deb822 source files; WAPI_DEBIAN_MIRROR overrides it.
apt_uri_for() { # suite
    local suite=$1
    {
        cat /etc/apt/sources.list 2>/dev/null || true
        for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && cat "$f"; done
    } | awk -v s="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == s) { print $i; exit } break } }'
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '
            /^[ \t]*$/ { if (uri != "" && hit) { print uri; done = 1; exit } uri = ""; hit = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
            END { if (!done && uri != "" && hit) print uri }' "$f"
    done
}

make_base() {
    local mirror security root
    mirror=${WAPI_DEBIAN_MIRROR:-$(apt_uri_for "$SUITE" | head -n 1)}
    security=${WAPI_DEBIAN_SECURITY_MIRROR:-$(apt_uri_for "$SUITE-security" | head -n 1)}
    [ -n "$mirror" ] || die "no Debian mirror for $SUITE in /etc/apt/sources.list*; set WAPI_DEBIAN_MIRROR"
    root=$(mktemp -d /var/tmp/wapi-base.XXXXXX)
    # shellcheck disable=SC2064 # expand root now
    trap "rm -rf '$root'" EXIT
    say "making $BASE with debootstrap from $mirror (a few minutes, once)"
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 ||
        { tail -n 30 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed"; }
    rm -f "$root.log"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" "$SUITE" "$SUITE"
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$security" "$SUITE"
        fi
    } >"$root/etc/apt/sources.list.d/debian.sources"
    rm -f "$root/etc/apt/sources.list"
    # What a container runtime provides, and what only debootstrap needed.
    rm -rf "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/* "${root:?}"/run/* "${root:?}"/tmp/* \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root/etc/hostname"
    # Like the official slim images: no recommends, and no manuals,
    # documentation (but the copyright files) or translations, now or from
    # later installs: a third of the base's size.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90wapi-minimal"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/groff/*' \
        'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/locale/*' \
        >"$root/etc/dpkg/dpkg.cfg.d/90wapi-slim"
    find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "${root:?}"/usr/share/man/* "${root:?}"/usr/share/info/* "${root:?}"/usr/share/locale/* \
        "${root:?}"/usr/share/groff/* "${root:?}"/usr/share/lintian/*
    tar -C "$root" --numeric-owner -cf - . |
        podman import --change 'CMD ["/bin/bash"]' --message "debootstrap $SUITE minbase" - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
    say "base image $BASE ready"
}

need_packages
[ "$(id -u)" = 0 ] || die "run as root (buildah and podman use the system's container storage)"

if ! podman image exists "$BASE"; then
    case "$BASE" in
    localhost/*) make_base ;;
    *) die "base image $BASE is not in local storage (pull it first, or unset WAPI_BASE_IMAGE)" ;;
    esac
fi
[ "${1:-}" = --base ] && exit 0

version=$(git describe --always --dirty 2>/dev/null || echo dev)
t0=$SECONDS
say "building $IMAGE ($version) on $BASE"
# --network host: the build's apt-get reaches the mirror the way this machine
# does. --format docker keeps HEALTHCHECK (the OCI format has no field for it).
# --layers: a rebuild with the same sources reuses the package layers.
# CI=true (the default here) builds with -Werror; `make test` passes its own CI.
bud=(buildah bud --runtime runc --format docker --layers --jobs 2 --pull=never --network host
    --build-arg BASE="$BASE" --build-arg WAPI_VERSION="$version" --build-arg CI="${CI-true}" -f Dockerfile)
"${bud[@]}" -t "$IMAGE" . >&2
# Name the build stage too (all cached: a second or two), so its layers stay
# reusable, then drop what earlier builds left behind: untagged images that
# nothing builds on, an hour old or more (never a build running now). Each
# pass frees the parents of the last.
"${bud[@]}" --target build -t "${IMAGE%:*}-build:cache" . >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
    mapfile -t stale < <(podman images -a -q --filter dangling=true --filter until=1h)
    [ ${#stale[@]} -gt 0 ] || break
    podman rmi "${stale[@]}" >/dev/null 2>&1 || break
done
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE in $((SECONDS - t0))s, $((size / 1024 / 1024)) MiB"
