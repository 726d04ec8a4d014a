#!/usr/bin/env bash
# git.sh: a daemon following a git repository served over smart HTTP (git
# http-backend): from a push to CommitApplied, to the new container started
# and healthy, polling and by webhook.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
make -s images
go run ./bench/git -bin bin/reconcile "$@"
