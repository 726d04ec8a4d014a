// Package controllers is the home of the daemon's policies, one package per
// concern, each consulted by the reconcile loop (package reconciler):
//
//   - restarts: learns from engine events why a replica stopped, decides
//     whether it is started again now (a Guard's Review returns a Decision
//     and changes nothing), and counts what the executor reports done.
//   - upstreams: keeps load balancers' upstream files equal to the replicas
//     that may take traffic; holds a replica's stop until it is out of them.
//   - reloads: runs a service's reload action when a file it mounts changes.
//
// The walk of one `die` event from the engine to the start call is in the
// reconciler package's documentation.
package controllers
