package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/reconcile-dev/reconcile/controllers/restarts"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/statedir"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func newStatusCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where each service stands: replicas, sync and health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return withCode(exitInput, fmt.Errorf("-o %q: want table or json", output))
			}
			ctx := cmd.Context()
			sess, snap, err := g.openObserved(ctx)
			if err != nil {
				return err
			}
			d, eng := sess.Desired, sess.Engine
			if err := observed.Enrich(ctx, eng.Client, snap); err != nil {
				return withCode(exitInternal, err)
			}
			st := plan.Status(d, snap, plan.Diff(d, snap, plan.Options{RemoveOrphans: g.removeOrphans}))
			// what a daemon of this project knows of restarts, from its state file
			if dir, err := g.stateDirectory(); err == nil {
				if r, err := restarts.New(clock.Real{}, statedir.ReadOnly(statedir.StateFile(dir, d.Project.Name)), nil, nil); err == nil {
					r.Annotate(&st, d, time.Now())
					_ = r.Close() // read only: nothing is owed
				}
			}
			if output == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return withCode(exitInternal, enc.Encode(st))
			}
			printStatusTable(g.stdout, st)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// printStatusTable prints one line per service.
func printStatusTable(w io.Writer, st plan.ProjectStatus) {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Service, strconv.Itoa(s.Desired), strconv.Itoa(s.Running),
			strconv.Itoa(s.Healthy), s.Sync, s.Health, restarts, reason)
	}
	_ = tw.Flush()
}
