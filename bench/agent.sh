#!/usr/bin/env bash
# agent.sh: one agent over 10 projects x 10 services x 2 replicas (200
# containers, healthchecks every 2 s): idle CPU, engine requests and RSS
# over 60 s, then detect-to-act latency against this program's own floor;
# first, convergence from nothing against `docker compose up -d --wait` of
# the same projects at once.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
[ -x bin/docker-compose ] || make compose-cli
go run ./bench/agent -bin bin/reconcile -compose bin/docker-compose "$@"
