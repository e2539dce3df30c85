#!/usr/bin/env bash
# Installs the Debian packages wapi needs to build, run and test, when root;
# otherwise prints the exact apt-get line and stops.
set -euo pipefail
PKGS=(gcc make pkg-config ca-certificates curl procps python3 util-linux
      libh2o-evloop-dev libpq-dev libssl-dev libyajl-dev libevent-dev libconfig-dev
      libsignal-protocol-c-dev libprotobuf-c-dev protobuf-c-compiler libwslay-dev libqrencode-dev zlib1g-dev
      libunistring-dev libcurl4-openssl-dev libopusfile-dev libjpeg62-turbo-dev libpng-dev libwebp-dev libmagic-dev
      postgresql
      wrk clang libclang-rt-14-dev shellcheck yamllint chromium gdb openssl opus-tools microsocks tinyproxy)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
need_node=0
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need_node=1
[ "$need_node" = 1 ] && missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "wapi needs these Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
