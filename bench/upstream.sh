#!/usr/bin/env bash
# upstream.sh: from a replica's health_status change to the upstream file
# rewritten and the load balancer's reload started.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/upstream "$@"
