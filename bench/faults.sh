#!/usr/bin/env bash
# faults.sh: recovery behind a fault-injecting proxy: after a 20 s engine
# outage (from the first answered ping), and with 20 % of engine calls
# failing, against none failing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/faults -bin bin/reconcile "$@"
