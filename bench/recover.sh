#!/usr/bin/env bash
# recover.sh: detect-to-act latency of restarts (docker kill of a
# restart: always container), against an immediate docker start as floor.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/recover "$@"
