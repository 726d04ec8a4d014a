// Package reconciler is the daemon's loop: a work queue of service names
// and a Controller that reconciles one service at a time. Inputs (engine
// events, file edits, SIGHUP, the resync ticker) only enqueue; a worker
// looks at the state as it is now, whatever queued it.
//
// Where things are:
//
//	reconciler/plan       what to do: Diff (pure), Plan, Operation, drift, status
//	reconciler/workqueue  the work queue and its rate limiters
//	reconciler/execute    where a plan is carried out: Executor, and Converger for --once
//	reconciler            the per-service Controller: snapshots, decisions, reports
//	controllers/restarts  where a restart is decided (decide.go) and counted (account.go)
//	controllers/upstreams load-balancer files and draining
//	controllers/reloads   config reloads
//	observed              snapshots from lists; Event, the one decoded engine event
//
// One `docker kill` of a `restart: always` replica, hop by hop:
//
//  1. observed.Watcher.session reads the engine's `kill` (signal 9), then
//     `die` (exit 137) message and hands it to Watcher.handle, which calls
//     observed.Decode once: an observed.Event{Action: die, Service, Number,
//     ExitCode: 137, ...}. handle times the hop and recovers a panic.
//  2. The daemon's OnEvent (cmd/reconcile daemon.watchEngine) passes the
//     Event to restarts.Restarts.Event (learn.go), which notes the kill and
//     the exit under a lock and marks the state file dirty
//     (statedir.Saver.Mark: the write happens on the saver's goroutine);
//     to Controller.Observed, which bumps the snapshot generation and keeps
//     the event's Fact (stopped, exit 137) for a list that lags; and to
//     Controller.Enqueue, which queues the service and its dependents.
//     Nothing else runs on the reader.
//  3. A worker in Controller.Run takes the key (processNext) and calls
//     Reconcile: Controller.Snapshot lists afresh (4 calls), patches it with
//     the Fact and shows it to restarts.Restarts.Listed; plan.Diff finds the
//     container exited and plans OpStartContainer; Plan.ForService keeps
//     this service's part.
//  4. Controller.decide asks each Guard in turn: upstreams.Upstreams.Review
//     (nothing listed to drain) and restarts.Restarts.Review (decide.go:
//     mayStart sees a kill, not a stop, within budget and backoff) return a
//     Decision that holds nothing; Decision.Apply gives the plan to run.
//     No state changed.
//  5. execute.Executor.Execute runs the start: OnBegin reaches
//     Controller.actionBegins, and restarts.Restarts.Begin marks the start
//     as the reconciler's own; ContainerStart is called.
//  6. The engine's `start` event comes back through steps 1 and 2:
//     Restarts.Event sees the mark and does not count it as the engine's.
//  7. The executor's OnDone reaches Controller.actionDone: the Started
//     record, the action metric, and restarts.Restarts.Done (account.go),
//     which counts the restart against the budget. processNext turns the
//     Result into queue work (nothing more to do: Forget).
package reconciler
