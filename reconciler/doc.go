// Package reconciler is reconcile's loop: a work queue of service names
// and a Controller that reconciles one service at a time. Inputs (engine
// events, file edits, SIGHUP, the resync ticker) only enqueue; a worker
// looks at the state as it is now, whatever queued it. The daemon and
// `reconcile --once` run the same Controller (internal/daemon builds it for
// both).
//
// Where things are:
//
//	reconciler/plan       what to do: Diff (pure), Plan, Operation, drift, status, readiness
//	reconciler/workqueue  the work queue and its rate limiters
//	reconciler/execute    where a plan is carried out: Executor
//	reconciler            the per-service Controller: policies (policy.go), expectations
//	                      (expectations.go), snapshots, decisions, reports, outcomes
//	controllers/restarts  where a restart is decided (decide.go), counted (account.go),
//	                      learnt (learn.go); what it leaves down (status.go), all in
//	                      controllers/restarts
//	controllers/upstreams load-balancer files and draining
//	controllers/rollouts  rolling updates and rollbacks
//	controllers/reloads   config reloads
//	observed              snapshots from lists; Event, the one decoded engine event
//	internal/daemon       one project's loop, wired: internal/daemon/project.go (both modes),
//	                      internal/daemon/once.go (--once)
//
// One `docker kill` of a `restart: always` replica, hop by hop:
//
//  1. observed.Watcher.session (observed/watch.go) reads the engine's `kill`
//     (signal 9), then `die` (exit 137) message and hands it to
//     Watcher.handle, which calls observed.Decode (observed/event.go) once:
//     an observed.Event{Action: die, Service, Number, ExitCode: 137, ...}.
//     handle times the hop and recovers a panic.
//  2. The daemon's OnEvent (internal/daemon/host.go, host.watchEngine) looks
//     the project up and calls daemon.Project.Event (internal/daemon/
//     project.go), which calls Controller.Event (controller.go). There
//     Expectations.Observe (expectations.go) tags the event: no operation of
//     ours on that container is under way, so Seen.Ours is false. Each
//     registered Policy's Learn gets the Seen: restarts.Restarts.Learn
//     (controllers/restarts/learn.go) notes the kill and the exit under a
//     lock and marks the state file dirty (statedir.Saver.Mark: the write
//     happens on the saver's goroutine). Controller.Observed (snapshots.go)
//     bumps the snapshot generation and keeps the event's Fact (stopped,
//     exit 137) for a list that lags; Controller.Enqueue queues the service
//     and its dependents. Nothing else runs on the reader.
//  3. A worker in Controller.Run takes the key (processNext) and calls
//     Reconcile (reconcile.go): Controller.Snapshot lists afresh (4 calls),
//     patches it with the Fact and shows it to the Listed policies;
//     plan.Diff (plan/diff.go) finds the container exited and plans
//     OpStartContainer; Plan.ForService keeps this service's part.
//  4. Controller.decide asks each policy's Decide in registration order:
//     rollouts (nothing changed), upstreams.Upstreams.Review (nothing
//     listed to drain) and restarts.Restarts.Review (controllers/restarts/decide.go: mayStart
//     sees a kill, not a stop, within budget and backoff) return Decisions
//     that hold nothing; Decision.Apply gives the plan to run. No state
//     changed. Were a dependency of the service's waited for, readiness
//     would set aside its replicas left down on purpose
//     (Controller.dependenciesReady, plan.CheckReadiness).
//  5. execute.Executor.Execute (execute/executor.go) runs the start: OnBegin
//     reaches Controller.actionBegins, which remembers the start in the
//     Expectations (the container's `start` is now expected) and tells each
//     Account policy (restarts.Restarts.Begin, controllers/restarts/account.go); then
//     ContainerStart is called.
//  6. The engine's `start` event comes back through steps 1 and 2:
//     Expectations.Observe finds it expected, tags it Ours and forgets the
//     expectation; Restarts.Learn does not count it as the engine's.
//  7. The executor's OnDone reaches Controller.actionDone: the Started
//     record, the action metric, and restarts.Restarts.Done (controllers/restarts/account.go),
//     which counts the restart against the budget. processNext turns the
//     Result into queue work (nothing more to do: Forget) and notes the
//     outcome (outcomes.go), which `--once` reads to know when it is done.
package reconciler
