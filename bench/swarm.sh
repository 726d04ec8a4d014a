#!/usr/bin/env bash
# swarm.sh: reconcile --swarm --once against docker stack deploy + polling,
# on a 10-service stack over a three-node cluster made on this machine
# (scripts/swarm-cluster.sh), and the daemon's idle cost on a swarm. Needs
# root, as the cluster script does; leaves the engine as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/ensure-engine.sh
go build -o bin/reconcile ./cmd/reconcile
make -s images
scripts/swarm-cluster.sh up 2
trap 'scripts/swarm-cluster.sh down' EXIT
go run ./bench/swarm -bin bin/reconcile "$@"
