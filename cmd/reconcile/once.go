package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// runOnce converges the project and maps the outcome to an exit code: 0
// converged, 1 not converged within timeout, 2 bad input, 3 engine
// unreachable.
func runOnce(ctx context.Context, g *globals, timeout, settle time.Duration) error {
	_, err := converge(ctx, g, timeout, settle)
	return err
}

// runOnceJSON is runOnce with its outcome also printed as one report on
// stdout (plan.Report), whatever the exit code: a CI step reads one
// document. The human lines still go to stderr.
func runOnceJSON(ctx context.Context, g *globals, timeout, settle time.Duration) error {
	table := g.stdout
	g.stdout = io.Discard // the status table is in the report
	start := time.Now()
	rep, err := converge(ctx, g, timeout, settle)
	g.stdout = table
	rep.Schema, rep.Command = plan.ReportSchema, "once"
	if rep.Drift == nil {
		rep.Drift, rep.Plan = []plan.DriftReport{}, []plan.StepReport{}
	}
	if rep.Outcome == nil {
		rep.Outcome = &plan.OutcomeReport{}
	}
	rep.Outcome.ExitCode = codeOf(err, exitInput)
	rep.Outcome.DurationMS = time.Since(start).Milliseconds()
	if err != nil && !errors.Is(err, errSilent) && len(rep.Outcome.Errors) == 0 {
		rep.Outcome.Errors = []string{desired.OneLine(err.Error())}
	}
	if rep.Outcome.Errors == nil {
		rep.Outcome.Errors = []string{}
	}
	if werr := writeJSON(g.stdout, rep); werr != nil && err == nil {
		return withCode(exitInternal, werr)
	}
	return err
}

// converge is --once: the daemon's own project loop (daemon.Project, with
// the same controller, policies and executor), run until the project
// converges; it returns the report (the last drift and plan, and the
// outcome) with the run's error.
func converge(ctx context.Context, g *globals, timeout, settle time.Duration) (plan.Report, error) {
	var rep plan.Report
	sess, err := g.open(ctx)
	if err != nil {
		return rep, err
	}
	d, eng := sess.Desired, sess.Engine
	log := g.log.With("project", d.Project.Name)
	dir, err := g.stateDirectory()
	if err != nil {
		return rep, withCode(exitInput, err)
	}
	opts, err := g.options()
	if err != nil {
		return rep, err
	}
	if err := daemon.LocalOnly(d, eng); err != nil {
		return rep, err
	}
	// one reconciler per project: a daemon (or another --once) holding
	// the project is said, not raced
	locks, err := daemon.LockProject(dir, "", "", d.Project.Name)
	if err != nil {
		return rep, withCode(exitInput, err)
	}
	loader, err := engine.Loader()
	if err != nil {
		return rep, err
	}
	p, err := daemon.New(daemon.Config{
		Engine:   eng,
		Loader:   loader,
		Log:      g.log,
		Records:  record.New(log, clock.Real{}, record.DefaultKeep),
		StateDir: dir,
		Options:  plan.Options{RemoveOrphans: g.removeOrphans},
		Workers:  onceWorkers,
		Once:     true,
	}, d, opts, locks)
	if err != nil {
		return rep, withCode(exitInternal, err)
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	out, err := p.Converge(runCtx, settle)
	rep.Project = d.Project.Name
	if out.Result != nil {
		rep = plan.NewReport("once", d.Project.Name, out.Result, nil)
		rep.InSync = out.Result.InSync()
	}
	rep.Outcome = &plan.OutcomeReport{Converged: out.Converged, PlansApplied: out.Acted, Status: out.Status, Errors: flatten(out.Errors)}
	if err != nil {
		return rep, onceFailure(out, err, d)
	}
	if err := ctx.Err(); err != nil {
		return rep, withCode(exitNotConverged, fmt.Errorf("interrupted before convergence: %w", err))
	}
	printStatusTable(g.stdout, out.Status)
	if out.Converged {
		log.Info("converged", "took", time.Since(start).Round(time.Millisecond).String(), "operations", out.Acted, "engine_calls", eng.Calls())
		return rep, nil
	}
	fmt.Fprintf(g.stderr, "not converged within %s:\n", timeout)
	for _, s := range out.Status.Services {
		if s.Health != plan.Healthy || s.Sync != plan.Synced {
			fmt.Fprintf(g.stderr, "  %s: %s/%s: %s\n", s.Service, s.Sync, s.Health, s.Reason)
		}
	}
	for _, e := range flatten(out.Errors) {
		fmt.Fprintf(g.stderr, "  error: %v\n", e)
	}
	return rep, withCode(exitNotConverged, errSilent)
}

// onceWorkers bounds how many services --once reconciles at once: the
// daemon's default --workers.
const onceWorkers = 4

// onceFailure maps a converge run that failed to its exit code: bad input
// is 2 only while nothing was touched; once an operation ran, bad input
// found late is 1 (not converged); a service that cannot converge without
// a change is 1; an engine failure is 3. So 2 always means "nothing
// touched".
func onceFailure(out daemon.Outcome, err error, d *desired.State) error {
	if located := invalidDefinition(err, d); located != nil {
		err = located
	}
	switch {
	case desired.IsInputError(err) && out.Acted == 0:
		return withCode(exitInput, err)
	case desired.IsInputError(err):
		return withCode(exitNotConverged, fmt.Errorf("after %d operation(s): %w", out.Acted, err))
	case daemon.IsStuck(err):
		return withCode(exitNotConverged, fmt.Errorf("not converged, and waiting cannot fix it: %w", err))
	}
	return withCode(exitEngine, fmt.Errorf("the engine failed: %w", err))
}

// invalidDefinition turns a run stuck on a definition the engine or
// compose refused as invalid (a bad request: No command specified, a
// reference that is not one, compose's create-time checks) into bad input
// at the service's line, or nil for any other end.
func invalidDefinition(err error, d *desired.State) error {
	var stuck *daemon.StuckError
	p := execute.AsPermanent(err)
	if d == nil || !errors.As(err, &stuck) || p == nil || p.Kind != execute.PermanentInvalid {
		return nil
	}
	svc, ok := d.Services[stuck.Service]
	if !ok {
		return nil
	}
	key := ""
	switch msg := p.Err.Error(); {
	case strings.Contains(msg, "No command specified") && svc.Config.Command != nil:
		key = "command"
	case strings.Contains(msg, "No command specified") && svc.Config.Entrypoint != nil:
		key = "entrypoint"
	case strings.Contains(msg, "healthcheck"):
		key = "healthcheck"
	case strings.Contains(msg, "reference format"):
		key = "image"
	}
	return d.InputError(stuck.Service, key, p.Err)
}

// flatten unpacks joined errors so each failure prints on its own line, once
// however many passes met it.
func flatten(errs []error) []string {
	var out []string
	seen := map[string]bool{}
	var walk func([]error)
	walk = func(errs []error) {
		for _, err := range errs {
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				walk(j.Unwrap())
				continue
			}
			if msg := err.Error(); !seen[msg] {
				seen[msg] = true
				out = append(out, msg)
			}
		}
	}
	walk(errs)
	return out
}
