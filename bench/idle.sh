#!/usr/bin/env bash
# idle.sh: the daemon idling beside a converged project of 50 containers
# (25 services x 2, healthchecks every 2 s) for 60 s: CPU, engine calls, RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/idle -bin bin/reconcile "$@"
