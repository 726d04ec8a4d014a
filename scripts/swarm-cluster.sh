#!/usr/bin/env bash
# swarm-cluster.sh: a real multi-node Docker Swarm on one machine, for
# reconcile's cluster tests and benchmark.
#
#   scripts/swarm-cluster.sh up [WORKERS]   the host's engine becomes the
#                                           manager; WORKERS (default 2)
#                                           dockerd instances join it
#   scripts/swarm-cluster.sh down           everything removed, the host's
#                                           engine left as it was found
#   scripts/swarm-cluster.sh env            the workers' sockets, for tests
#
# Each worker is a dockerd in its own network namespace (a veth pair into
# the bridge rcbr0, 10.99.0.0/24; the manager advertises 10.99.0.1) and UTS
# namespace (its own hostname, workerN), with its own data root, exec root,
# socket and config file, on the vfs storage driver. The images the tests
# use are copied into each worker with docker save | load (this machine has
# no registry). Swarm's VIPs and routing mesh need IPVS, which this kernel
# lacks: services use endpoint_mode: dnsrr and host-mode ports.
#
# Needs root (ip netns, iptables, dockerd), as the engine itself does.
set -euo pipefail

BASE=${RECONCILE_CLUSTER_DIR:-/tmp/reconcile-cluster}
BRIDGE=rcbr0
NET=10.99.0
IMAGES=${RECONCILE_CLUSTER_IMAGES:-reconcile-testapp:latest}

worker_sock() { echo "unix://$BASE/w$1/docker.sock"; }

up() {
  local n=${1:-2}
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
    echo "the host's engine is in a swarm already: scripts/swarm-cluster.sh down first (or docker swarm leave --force)" >&2
    exit 1
  fi
  mkdir -p "$BASE"
  ip link add "$BRIDGE" type bridge 2>/dev/null || true
  ip addr replace "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # bridged traffic between the namespaces crosses iptables' FORWARD,
  # whose policy the engine sets to DROP
  iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null || iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  docker swarm init --advertise-addr "$NET.1" --listen-addr "$NET.1:2377" >/dev/null
  local token
  token=$(docker swarm join-token -q worker)
  for i in $(seq 1 "$n"); do
    local ns=rcw$i dir=$BASE/w$i addr=$NET.$((10 + i))
    mkdir -p "$dir"
    ip netns add "$ns"
    ip link add "rcw$i-h" type veth peer name "rcw$i-c"
    ip link set "rcw$i-h" master "$BRIDGE" up
    ip link set "rcw$i-c" netns "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "rcw$i-c" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$NET.1"
    echo '{}' > "$dir/daemon.json"
    # nsenter, not ip netns exec: that remounts /sys and hides the cgroups.
    # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (as moby's own swarm tests run
    # their daemons): a task runs the image the node has, without first
    # trying a registry this machine cannot reach (each try waits for DNS
    # timeouts inside the namespace: 20-30 s a task)
    nsenter --net=/run/netns/"$ns" unshare --uts sh -c "hostname worker$i; DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 exec dockerd \
      --config-file $dir/daemon.json --data-root $dir/data --exec-root $dir/exec \
      --pidfile $dir/docker.pid -H $(worker_sock "$i") --storage-driver vfs \
      --cgroup-parent /rcw$i --bip 172.31.$((200 + i)).1/24" >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 100); do
      docker -H "$(worker_sock "$i")" info >/dev/null 2>&1 && break
      sleep 0.2
    done
    for img in $IMAGES; do
      docker save "$img" | docker -H "$(worker_sock "$i")" load >/dev/null
    done
    docker -H "$(worker_sock "$i")" swarm join --token "$token" --advertise-addr "$addr" "$NET.1:2377" >/dev/null
  done
  docker node ls
}

down() {
  docker swarm leave --force >/dev/null 2>&1 || true
  for dir in "$BASE"/w*; do
    [ -d "$dir" ] || continue
    local i=${dir##*/w}
    if [ -f "$dir/docker.pid" ]; then
      kill "$(cat "$dir/docker.pid")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$dir/docker.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.2; done
    fi
    ip netns del "rcw$i" 2>/dev/null || true
    ip link del "rcw$i-h" 2>/dev/null || true
    # vfs layers and the exec root's mounts
    grep -o "$dir/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$dir"
  done
  iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  docker network rm docker_gwbridge >/dev/null 2>&1 || true
}

env_() {
  local socks=()
  for dir in "$BASE"/w*; do
    [ -S "$dir/docker.sock" ] && socks+=("unix://$dir/docker.sock")
  done
  echo "RECONCILE_CLUSTER_WORKERS=$(IFS=,; echo "${socks[*]}")"
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  down) down ;;
  env) env_ ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
