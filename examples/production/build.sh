#!/usr/bin/env bash
# build.sh: every image the production example needs, built locally: the
# Debian-package stand-ins for postgres, redis and nginx (images/build.sh) and
# the api, a static Go binary in a FROM scratch image. An image whose sources
# did not change is kept: rebuilding one under the same tag gives it a new ID,
# and reconcile (like compose) then recreates the containers running it.
set -euo pipefail
cd "$(dirname "$0")"
./images/build.sh

API_IMAGE=${API_IMAGE:-reconcile-example-api:latest}
exec 9>"${TMPDIR:-/tmp}/reconcile-example-api.lock"
flock 9
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp api/Dockerfile "$ctx/"
(cd api && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/api" .)
sum=$(cat "$ctx/api" "$ctx/Dockerfile" | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{ index .Config.Labels "dev.reconcile.source" }}' "$API_IMAGE" 2>/dev/null)" = "$sum" ]; then
  echo "build.sh: $API_IMAGE already built" >&2
  exit 0
fi
DOCKER_BUILDKIT=0 docker build -q --label "dev.reconcile.source=$sum" -t "$API_IMAGE" "$ctx" >/dev/null 2>"$ctx/build.log" \
  || { cat "$ctx/build.log" >&2; exit 1; }
echo "build.sh: built $API_IMAGE" >&2
