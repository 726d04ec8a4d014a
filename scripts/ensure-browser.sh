#!/usr/bin/env bash
# ensure-browser.sh: make sure a chromium is there for the dashboard's
# browser test.
#
# On a user's machine it only checks: it never installs a package behind the
# user's back; it says what is missing and how to get it, and exits 0, since
# the browser test then skips (saying why). Under CI (CI=true) as root, it
# installs Debian's chromium, and without one exits 1: there the browser
# test must run.
set -euo pipefail

for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done

if [ "${CI:-}" != "true" ]; then
  cat >&2 <<'MSG'
ensure-browser: no chromium found; the dashboard's browser test will be skipped.
  To run it:  sudo apt-get install chromium
MSG
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-browser: CI=true, but not root: cannot install chromium" >&2
  exit 1
fi
echo "ensure-browser: CI: installing Debian's chromium" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
