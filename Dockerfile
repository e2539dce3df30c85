# wapi container image: a multi-stage Debian bookworm build.
#
#   make image                 builds it with buildah (scripts/image.sh; no Docker engine needed)
#   docker build -t wapi .     the same with Docker, from the official debian:bookworm-slim
#
# The runtime stage holds the three binaries, conf/ and the runtime libraries,
# runs as uid/gid 1001 (the pod's runAsUser) and works on a read-only root
# filesystem: it writes only to the two volumes and /tmp (run dir /tmp/wapi).
# The dashboard's files and the SQL migrations are compiled into the binaries.

# The base for both stages. scripts/image.sh passes a local bookworm image made
# with debootstrap when no registry is reachable.
ARG BASE=debian:bookworm-slim

# Build arguments are declared after the package layers, so a new version or
# CI setting does not invalidate them in the layer cache.
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc make libc6-dev binutils pkg-config protobuf-c-compiler \
      libh2o-evloop-dev libpq-dev libssl-dev libyajl-dev libevent-dev libconfig-dev \
      libsignal-protocol-c-dev libprotobuf-c-dev libwslay-dev libqrencode-dev zlib1g-dev \
      libunistring-dev libcurl4-openssl-dev libopusfile-dev libmagic-dev \
      libjpeg62-turbo-dev libpng-dev libwebp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY scripts/embed-sql.sh scripts/embed-assets.sh scripts/
COPY common/ common/
COPY supervisor/ supervisor/
COPY workers/ workers/
COPY docs/openapi.json docs/
ARG WAPI_VERSION=dev
# -Werror, as in CI (scripts/image.sh passes the CI of `make test`).
ARG CI=true
# Only the three binaries (the test programs are not shipped).
RUN make CI="${CI}" WAPI_VERSION="${WAPI_VERSION}" -j"$(nproc)" build/wapi build/wapi-worker build/wapictl \
 && strip --strip-debug build/wapi build/wapi-worker build/wapictl

FROM ${BASE}
# The runtime halves of the -dev packages above (see scripts/bootstrap.sh),
# and the CA bundle: the WhatsApp socket and HTTPS webhooks verify TLS.
# libmagic1 brings libmagic-mgc, the database media uploads are typed with.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libh2o-evloop0.13 libpq5 libssl3 libyajl2 \
      libevent-2.1-7 libevent-core-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 \
      libconfig9 libsignal-protocol-c2.3.2 libprotobuf-c1 libwslay1 libqrencode4 zlib1g libunistring2 libcurl4 libopusfile0 \
      libjpeg62-turbo libpng16-16 libwebp7 libmagic1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd -g 1001 wapi \
 && useradd -u 1001 -g 1001 -d /app -M -s /usr/sbin/nologin wapi \
 && install -d -o root -g root -m 0755 /app /app/bin /app/public \
 && install -d -o 1001 -g 1001 -m 0750 /app/whatsapp_sessions /app/public/media
COPY --from=build /src/build/wapi /src/build/wapi-worker /src/build/wapictl /app/bin/
COPY conf/ /app/conf/
ARG WAPI_VERSION=dev
LABEL org.opencontainers.image.title="wapi" \
      org.opencontainers.image.description="Self-hosted WhatsApp HTTP API" \
      org.opencontainers.image.version="${WAPI_VERSION}"
WORKDIR /app
# The pod's paths (the ConfigMap sets the same): both stores on volumes, the
# control socket on the /tmp emptyDir; nothing is written anywhere else.
ENV WAPI_CONFIG=/app/conf/wapi.conf \
    WAPI_PATHS_SESSIONS=/app/whatsapp_sessions \
    WAPI_PATHS_MEDIA=/app/public/media \
    WAPI_PATHS_RUN=/tmp/wapi
VOLUME ["/app/whatsapp_sessions", "/app/public/media"]
EXPOSE 3000
# Numeric, so Kubernetes can check runAsNonRoot against the image.
USER 1001:1001
# Liveness as the pod's probe sees it: GET /healthz on the listen port, with
# bash's /dev/tcp (no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-3000} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 4 _ code _ <&3 && [ \"$code\" = 200 ]"]
# The supervisor is PID 1: it reaps every child and drains on TERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/bin/wapi"]
