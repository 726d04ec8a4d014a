#!/usr/bin/env bash
# images.sh: x-reconcile.image_updates against a registry in the bench's own
# process: from a push of a good image to it rolled out, and of a bad one
# (never healthy) to it rolled back.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
go run ./bench/images -bin bin/reconcile "$@"
