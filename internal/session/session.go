// Package session opens what every reconcile command starts from: the
// desired state, a connection to the engine, and a first snapshot. Loading
// the compose files and the engine's answers take about as long as each
// other, so they overlap when the project's name is known before loading.
package session

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/observed"
)

// Session is an opened project.
type Session struct {
	Desired *desired.State
	Engine  *engine.Engine
	// First is a snapshot taken while loading, or nil when the project's
	// name was not known early enough.
	First *observed.Snapshot
}

// Options say how to load and how to connect.
type Options struct {
	Load   desired.Options
	Loader desired.ProjectLoader
	// Connect returns an engine that answered a ping.
	Connect func(ctx context.Context) (*engine.Engine, error)
}

// Open loads the desired state and connects at the same time. Bad input
// wins over an unreachable engine: the load error is returned first.
func Open(ctx context.Context, opts Options) (*Session, error) {
	hint := nameHint(opts.Load)
	type engineResult struct {
		eng  *engine.Engine
		snap *observed.Snapshot
		err  error
	}
	done := make(chan engineResult, 1)
	go func() {
		var r engineResult
		r.eng, r.err = opts.Connect(ctx)
		if r.err == nil && hint != "" {
			// a failed prefetch only costs the overlap: the snapshot is
			// taken again after loading
			r.snap, _ = observed.Observe(ctx, r.eng.Client, hint, time.Now())
		}
		done <- r
	}()
	// Loading a project makes a burst of short-lived garbage (the loader
	// decodes the YAML model several times); a one-shot command is better
	// off letting the heap grow a little than collecting it again and again.
	gc := debug.SetGCPercent(400)
	d, loadErr := desired.Load(ctx, opts.Loader, opts.Load)
	debug.SetGCPercent(gc)
	r := <-done
	if loadErr != nil {
		return nil, loadErr
	}
	if r.err != nil {
		return nil, r.err
	}
	s := &Session{Desired: d, Engine: r.eng}
	if r.snap != nil && r.snap.Project == d.Project.Name {
		s.First = r.snap
	}
	return s, nil
}

// nameHint is the project name when it is decided before any file is read:
// by the flag, or by COMPOSE_PROJECT_NAME in the environment, which compose
// ranks above .env files, the files' name: and the directory.
func nameHint(o desired.Options) string {
	if o.ProjectName != "" {
		return o.ProjectName
	}
	return os.Getenv("COMPOSE_PROJECT_NAME")
}
