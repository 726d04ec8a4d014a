#!/usr/bin/env bash
# build.sh: local stand-ins for the official postgres, redis and nginx images,
# built from Debian's packages: these machines can pull no image.
#
#   1. debootstrap a minimal Debian with postgresql, redis-server, nginx-light
#      and curl, from the mirror this machine's apt already uses;
#   2. prepare it (rootfs.sh: directories, owners, nginx layout) and docker
#      import it as the base image;
#   3. thin Dockerfiles give each image the entrypoint, command and settings
#      of the official one (the postgres entrypoint runs
#      /docker-entrypoint-initdb.d/* on first start only).
#
# Images already built are reused; FORCE=1 rebuilds them.
set -euo pipefail
cd "$(dirname "$0")"

# one build at a time: test packages running in parallel may all ask for it
exec 9>"${TMPDIR:-/tmp}/reconcile-images.lock"
flock 9

BASE=${BASE_IMAGE:-reconcile-debian:bookworm}
POSTGRES=${LOCAL_POSTGRES_IMAGE:-reconcile-postgres:15}
REDIS=${LOCAL_REDIS_IMAGE:-reconcile-redis:7}
NGINX=${LOCAL_NGINX_IMAGE:-reconcile-nginx:1.22}

PACKAGES=postgresql,redis-server,nginx-light,curl

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# have says whether image $1 exists with label dev.reconcile.source = $2: an
# image built from other sources (an older entrypoint, say) is rebuilt.
have() {
  [ "${FORCE:-0}" != 1 ] || return 1
  [ "$(docker image inspect -f '{{ index .Config.Labels "dev.reconcile.source" }}' "$1" 2>/dev/null)" = "$2" ]
}

# source_sum is a checksum of a build directory's files.
source_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

# mirror_and_suite prints the first non-security Debian mirror and suite of
# this machine's apt sources (deb822 .sources files or one-line .list files).
mirror_and_suite() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk '
      /^[ \t]*$/ { if (uri != "" && suite != "" && uri !~ /security/ && types ~ /(^| )deb( |$)/) { print uri, suite; exit } uri = suite = types = ""; next }
      /^Types:/  { types = $0; sub(/^Types:[ \t]*/, "", types) }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { suite = $2 }
      END        { if (uri != "" && suite != "" && uri !~ /security/ && types ~ /(^| )deb( |$)/) print uri, suite }
    ' "$f" | head -n1 && return 0
  done
  grep -hE '^deb[ \t]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -v security | sed -E 's/\[[^]]*\] *//' | awk '{ print $2, $3; exit }'
}

# files copied into the base: entrypoints and configuration; the thin
# Dockerfiles then hold only metadata, and build in seconds (a COPY step
# costs half a minute on fuse-overlayfs, which diffs the whole 450 MB base)
BASE_FILES="rootfs.sh postgres/docker-entrypoint.sh redis/docker-entrypoint.sh nginx/nginx.conf nginx/default.conf"
# shellcheck disable=SC2086
BASE_SOURCE="$PACKAGES-$(cat $BASE_FILES | sha256sum | cut -c1-12)"
if ! have "$BASE" "$BASE_SOURCE"; then
  read -r MIRROR SUITE < <(mirror_and_suite) || true
  if [ -z "${MIRROR:-}" ] || [ -z "${SUITE:-}" ]; then
    echo "build.sh: no Debian mirror found in /etc/apt/sources.list*" >&2
    exit 1
  fi
  if ! command -v debootstrap >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  ROOTFS=$(mktemp -d /tmp/reconcile-rootfs.XXXXXX)
  trap 'as_root rm -rf "$ROOTFS"' EXIT
  echo "build.sh: debootstrap $SUITE from $MIRROR (about a minute)" >&2
  as_root debootstrap --variant=minbase --include="$PACKAGES" \
    "$SUITE" "$ROOTFS" "$MIRROR" >/tmp/reconcile-debootstrap.log 2>&1 \
    || { tail -20 /tmp/reconcile-debootstrap.log >&2; exit 1; }
  as_root install -m 755 postgres/docker-entrypoint.sh "$ROOTFS/usr/local/bin/postgres-entrypoint.sh"
  as_root install -m 755 redis/docker-entrypoint.sh "$ROOTFS/usr/local/bin/redis-entrypoint.sh"
  as_root install -m 644 nginx/nginx.conf "$ROOTFS/etc/nginx/nginx.conf"
  as_root install -D -m 644 nginx/default.conf "$ROOTFS/etc/nginx/conf.d/default.conf"
  as_root cp rootfs.sh "$ROOTFS/tmp/rootfs.sh"
  as_root chroot "$ROOTFS" /bin/sh /tmp/rootfs.sh
  as_root rm -f "$ROOTFS/tmp/rootfs.sh"
  as_root tar -C "$ROOTFS" -c . | docker import --change "LABEL dev.reconcile.source=$BASE_SOURCE" - "$BASE" >/dev/null
  echo "build.sh: imported $BASE" >&2
fi

build() {
  local tag=$1 dir=$2 sum
  sum="$(source_sum "$dir")-$(docker image inspect -f '{{.Id}}' "$BASE" | cut -c8-19)"
  if have "$tag" "$sum"; then
    echo "build.sh: $tag already built" >&2
    return
  fi
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE" --label "dev.reconcile.source=$sum" -t "$tag" "$dir" >/dev/null 2>/tmp/reconcile-build.log \
    || { cat /tmp/reconcile-build.log >&2; exit 1; }
  echo "build.sh: built $tag" >&2
}
build "$POSTGRES" postgres
build "$REDIS" redis
build "$NGINX" nginx
