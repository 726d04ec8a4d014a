#!/usr/bin/env bash
# rollout.sh: a change of the production example's api under a steady
# request loop through nginx, rolled by reconcile, then recreated all at
# once by compose's own `up -d`: failed requests and duration of each.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
make -s example-images compose-cli
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/rollout -bin bin/reconcile -compose bin/docker-compose "$@"
