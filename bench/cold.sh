#!/usr/bin/env bash
# cold.sh: a cold reconcile --once against docker compose up -d --wait of the
# same file (the real compose CLI), on a stack with healthchecks and one
# without; prints the medians and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
[ -x bin/docker-compose ] || make compose-cli
go run ./bench/cold -bin bin/reconcile -compose bin/docker-compose "$@"
