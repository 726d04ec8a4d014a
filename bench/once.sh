#!/usr/bin/env bash
# once.sh: reconcile --once against compose up on a converged project of
# 50 services x 2 replicas; prints times, their ratio and engine calls.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go run ./bench/once "$@"
