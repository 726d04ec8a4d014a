// Package swarmloop keeps a stack on a swarm converged to its compose
// files: reconcile's loop for `reconcile --swarm`, the daemon and --once
// alike. As on one host, inputs (the engine's service and node events, file
// edits, the resync ticker) only enqueue service names; a worker lists the
// stack afresh and decides (plan.go, pure) what that one service needs:
// wait for its dependencies, create it, update it back to the compose
// file, or leave it held where Swarm rolled it back. The executor
// (execute.go) is the only code that writes to the swarm, and what it did
// is recorded when it reports back. Specs are docker stack deploy's
// (desired/swarmspec); scheduling, restarts and rolling updates are Swarm's
// own, reported rather than re-implemented.
package swarmloop
