#!/usr/bin/env bash
# ensure-engine.sh: make sure a Docker Engine answers, installing Debian's
# docker.io and starting dockerd when needed. Tests and the demo call it, so
# a fresh machine needs no other set-up step.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-engine: installing Debian's docker.io" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io fuse-overlayfs >/dev/null
fi

start() {
  echo "ensure-engine: starting dockerd $*" >&2
  as_root sh -c "nohup dockerd $* >/tmp/reconcile-dockerd.log 2>&1 &"
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# The configured storage driver first; inside containers overlay2 may be
# refused, so fall back to fuse-overlayfs, then vfs.
if start || { as_root pkill -x dockerd || true; sleep 2; start --storage-driver=fuse-overlayfs; } \
   || { as_root pkill -x dockerd || true; sleep 2; start --storage-driver=vfs; }; then
  exit 0
fi
echo "ensure-engine: dockerd did not come up; see /tmp/reconcile-dockerd.log" >&2
tail -20 /tmp/reconcile-dockerd.log >&2 || true
exit 1
