#!/usr/bin/env bash
# ensure-engine.sh: make sure a Docker Engine answers before the tests and
# the demo use it.
#
# On a user's machine it only checks: it never installs a package or starts
# a root daemon behind the user's back; it says what is missing and how to
# get it, and exits 1. Under CI (CI=true) as root, it installs Debian's
# docker.io and starts dockerd itself, trying other storage drivers where
# overlay2 is refused. It only ever stops a dockerd it started.
set -euo pipefail

LOG=${RECONCILE_DOCKERD_LOG:-/tmp/reconcile-dockerd.log}

if docker info >/dev/null 2>&1; then
  exit 0
fi

explain() {
  cat >&2 <<EOF
ensure-engine: no Docker Engine answers ($1).
  reconcile's tests and demo need a Docker Engine (Debian's docker.io 20.10 or
  later, API 1.41) and access to its socket, which is root on the host:
    sudo apt-get install docker.io        # if the engine is not installed
    sudo systemctl start docker           # if it is installed but not running
    sudo usermod -aG docker "\$USER"       # then log in again, or run as root
  Or point DOCKER_HOST at an engine you can reach.
EOF
  exit 1
}

if [ "${CI:-}" != "true" ]; then
  if command -v dockerd >/dev/null 2>&1; then
    explain "dockerd is installed but not running, or its socket is not yours"
  fi
  explain "the docker.io package is not installed"
fi
if [ "$(id -u)" -ne 0 ]; then
  explain "CI=true, but not root: cannot start an engine here"
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-engine: CI: installing Debian's docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io fuse-overlayfs >/dev/null
fi

started=""
# start runs a dockerd of our own and waits for it to answer; on failure it
# stops that dockerd (and only that one).
start() {
  echo "ensure-engine: CI: starting dockerd $*" >&2
  nohup dockerd "$@" >"$LOG" 2>&1 &
  started=$!
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$started" 2>/dev/null; then
      break # it exited: try the next storage driver
    fi
    sleep 1
  done
  kill "$started" 2>/dev/null || true
  wait "$started" 2>/dev/null || true
  started=""
  return 1
}

# The configured storage driver first; inside containers overlay2 may be
# refused, so fall back to fuse-overlayfs, then vfs.
if start || start --storage-driver=fuse-overlayfs || start --storage-driver=vfs; then
  exit 0
fi
echo "ensure-engine: dockerd did not come up; the last lines of $LOG:" >&2
tail -20 "$LOG" >&2 || true
exit 1
