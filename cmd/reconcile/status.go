package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/logging"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func newStatusCommand(g *globals) *cobra.Command {
	var output string
	var watch bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where each service stands: replicas, sync and health",
		Long: `status shows each service's replicas, sync and health, with the restart
figures a daemon of the project keeps in its state file.

With --watch it redraws the table as the project changes (on each engine event
of the project, and every second for countdowns) until interrupted; with
-o json it prints one JSON document per change instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return withCode(exitInput, fmt.Errorf("-o %q: want table or json", output))
			}
			ctx := cmd.Context()
			if g.swarm {
				if watch {
					return withCode(exitInput, errors.New("status --swarm looks once (no --watch yet): a daemon's dashboard follows the stack"))
				}
				return swarmStatus(ctx, g, output)
			}
			if g.projectsDir != "" || g.discover {
				if watch {
					return withCode(exitInput, errors.New("--watch shows one project: with --projects or --discover, run it per project (-p NAME), or open an agent's dashboard"))
				}
				return statusOfProjects(ctx, g, output)
			}
			sess, snap, err := g.openObserved(ctx)
			if err != nil {
				return err
			}
			d, eng := sess.Desired, sess.Engine
			look := func(snap *observed.Snapshot) (plan.ProjectStatus, error) {
				st, err := lookAt(ctx, g, d, eng, snap)
				st.Revision = g.revision()
				return st, err
			}
			render := func(st plan.ProjectStatus) string {
				var b strings.Builder
				if output == "json" {
					_ = json.NewEncoder(&b).Encode(st)
				} else {
					printStatusTable(&b, st)
				}
				return b.String()
			}
			st, err := look(snap)
			if err != nil {
				return err
			}
			if !watch {
				if output == "json" {
					return withCode(exitInternal, writeJSON(g.stdout, st))
				}
				printStatusTable(g.stdout, st)
				return nil
			}
			w := &statusWatch{out: g.stdout, tty: logging.IsTerminal(g.stdout) && output == "table"}
			w.show(render(st), d.Project.Name)
			changed := projectEvents(ctx, eng.Client, d.Project.Name)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-changed:
					time.Sleep(statusWatchDebounce) // a burst of events is one redraw
				case <-tick.C:
				}
				snap, err := observer(eng, d.Project.Name)(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					g.log.Warn("observing the project", "error", err)
					continue
				}
				if st, err = look(snap); err != nil {
					g.log.Warn("looking at the project", "error", err)
					continue
				}
				w.show(render(st), d.Project.Name)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "redraw as the project changes, until interrupted")
	return cmd
}

// lookAt is a project's status from a snapshot, with the restart figures a
// daemon of the project keeps in its state file.
func lookAt(ctx context.Context, g *globals, d *desired.State, eng *engine.Engine, snap *observed.Snapshot) (plan.ProjectStatus, error) {
	if err := observed.Enrich(ctx, eng.Client, snap); err != nil {
		return plan.ProjectStatus{}, withCode(exitInternal, err)
	}
	st := plan.Status(d, snap, plan.Diff(d, snap, plan.Options{RemoveOrphans: g.removeOrphans}))
	if dir, err := g.stateDirectory(); err == nil {
		daemon.AnnotateFromState(&st, d, dir, time.Now())
	}
	return st, nil
}

// statusWatchDebounce gathers a burst of engine events into one redraw.
const statusWatchDebounce = 100 * time.Millisecond

// statusWatch prints a status each time it differs from the last one: on a
// terminal it redraws the screen, elsewhere it appends.
type statusWatch struct {
	out  io.Writer
	tty  bool
	last string
}

func (w *statusWatch) show(text, project string) {
	if text == w.last {
		return
	}
	w.last = text
	if w.tty {
		fmt.Fprintf(w.out, "\x1b[H\x1b[2J%s  %s\n\n%s", project, time.Now().Format("15:04:05"), text)
		return
	}
	fmt.Fprint(w.out, text)
	if !strings.HasSuffix(text, "}\n") {
		fmt.Fprintln(w.out)
	}
}

// projectEvents wakes the returned channel on each engine event of the
// project's containers, until ctx ends. It is a hint to look again; a lost
// event is made up for by the watch's one-second tick.
func projectEvents(ctx context.Context, c client.APIClient, project string) <-chan struct{} {
	wake := make(chan struct{}, 1)
	res := c.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+project)})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-res.Messages:
				if !ok {
					return
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			case <-res.Err:
				return // the tick goes on
			}
		}
	}()
	return wake
}

// printStatusTable prints one line per service.
func printStatusTable(w io.Writer, st plan.ProjectStatus) {
	if st.Revision != "" {
		fmt.Fprintf(w, "commit %s\n", st.Revision)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tDESIRED\tRUNNING\tHEALTHY\tSYNC\tHEALTH\tRESTARTS\tREASON")
	for _, s := range st.Services {
		restarts := strconv.Itoa(s.RestartsUsed)
		if s.RestartsAllowed > 0 {
			restarts += "/" + strconv.Itoa(s.RestartsAllowed)
		}
		reason := s.Reason
		if s.LastExit != "" && s.Running < s.Desired {
			reason = strings.TrimPrefix(reason+"; last exit: "+s.LastExit, "; ")
		}
		if s.NextAttempt != nil {
			reason += fmt.Sprintf("; next attempt in %s", time.Until(*s.NextAttempt).Round(100*time.Millisecond))
		}
		if s.ImageUpdate != "" {
			reason = strings.TrimPrefix(reason+"; image update to "+s.ImageUpdate+" rolling out", "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, strconv.Itoa(s.Desired), strconv.Itoa(s.Running),
			strconv.Itoa(s.Healthy), s.Sync, s.Health, restarts, reason)
	}
	_ = tw.Flush()
}
