#!/usr/bin/env bash
# build.sh: every image the production example needs, built locally: the
# Debian-package stand-ins for postgres, redis and nginx (images/build.sh) and
# the api, a static Go binary in a FROM scratch image.
set -euo pipefail
cd "$(dirname "$0")"
./images/build.sh

API_IMAGE=${API_IMAGE:-reconcile-example-api:latest}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp api/Dockerfile "$ctx/"
(cd api && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/api" .)
DOCKER_BUILDKIT=0 docker build -q -t "$API_IMAGE" "$ctx" >/dev/null 2>"$ctx/build.log" \
  || { cat "$ctx/build.log" >&2; exit 1; }
echo "build.sh: built $API_IMAGE" >&2
