#!/usr/bin/env bash
# storm.sh: 60 replicas killed at once beside the daemon: the longest time
# one engine event held the daemon's event reader, and the time until all
# are running again against a parallel docker start of the same 60.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/storm -bin bin/reconcile "$@"
