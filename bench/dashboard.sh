#!/usr/bin/env bash
# dashboard.sh: the idle daemon beside 50 containers with the dashboard open
# in a headless chromium (run idle.sh for the same without a page), and the
# page's first load over 20 loads.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/idle -bin bin/reconcile -page "$@"
