#!/usr/bin/env bash
# hostile.sh: time and peak memory of `reconcile diff` on alias bombs, a
# merge-key bomb, 10,000 services, and the largest inputs the limits accept.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/hostile -bin bin/reconcile "$@"
