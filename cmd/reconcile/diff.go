package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func newDiffCommand(g *globals) *cobra.Command {
	exitCode := true
	output := "text"
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show drift between the compose files and the engine, and the plan, without acting",
		Long: `diff compares the compose files with what the engine runs and prints every
difference and the plan that would converge them. Secrets are never printed: a
changed variable shows as its key with a masked value, and an environment value
or an interpolated one shows as *** wherever it appears (a command, a label).

Exit code: 0 in sync, 1 drift found (0 with --exit-code=false), 2 bad input
(as --once: an image the plan needs that is neither present nor pullable, a
missing external network or volume), 3 engine unreachable, 4 any other error.

-o json prints one JSON document (schema reconcile.dev/report/v1, in
docs/commands.md): the drift, each item with what differs, and the plan.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			if g.swarm {
				if output != "text" {
					return withCode(exitInput, errors.New("diff --swarm prints text only"))
				}
				return swarmDiff(ctx, g, exitCode)
			}
			sess, snap, err := g.openObserved(ctx)
			if err != nil {
				return err
			}
			d, eng := sess.Desired, sess.Engine
			res := plan.Diff(d, snap, plan.Options{RemoveOrphans: g.removeOrphans})
			// --once's verdict on what it could not get or find, without
			// acting: bad input, exit 2
			if err := execute.CheckExternals(d, snap, res.Plan); err != nil {
				return err
			}
			checkCtx, cancel := context.WithTimeout(ctx, imageCheckTimeout)
			err = execute.CheckImages(checkCtx, d, snap, res.Plan, eng.Client)
			cancel()
			if err != nil {
				return err
			}
			details := map[string][]string{}
			for _, dr := range res.Drift {
				if dr.Kind != plan.DriftConfigDiverged {
					continue
				}
				cfg, err := observed.InspectConfig(ctx, eng.Client, dr.ContainerID)
				if err != nil {
					g.log.Warn("cannot explain divergence", "container", dr.Container, "error", err)
					continue
				}
				details[dr.ContainerID] = plan.Explain(d.Services[dr.Service], cfg)
			}
			// rendered whole, then masked whole: nothing of the project's
			// secrets is printed, whichever part of the report quotes it
			var out bytes.Buffer
			if output == "json" {
				if err := writeJSON(&out, plan.NewReport("diff", d.Project.Name, res, details)); err != nil {
					return withCode(exitInternal, err)
				}
			} else {
				printDiff(&out, d.Project.Name, res, details)
			}
			if _, err := io.WriteString(g.stdout, d.Secrets.Mask(out.String())); err != nil {
				return withCode(exitInternal, fmt.Errorf("writing the diff: %w", err))
			}
			if !res.InSync() && exitCode {
				return withCode(exitNotConverged, errSilent)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&exitCode, "exit-code", true, "exit 1 when there is drift")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text, or json (the report schema in docs/commands.md)")
	return cmd
}

// checkOutput refuses an -o value other than text or json.
func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return withCode(exitInput, fmt.Errorf("-o %q: want text or json", output))
	}
	return nil
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// imageCheckTimeout bounds diff's question to a registry.
const imageCheckTimeout = 15 * time.Second

// printDiff prints the drift, one line per item with what changed below it
// (details, by container ID), and the plan.
func printDiff(w io.Writer, project string, res *plan.Result, details map[string][]string) {
	if res.InSync() {
		fmt.Fprintf(w, "project %s is in sync with its compose files\n", project)
		return
	}
	fmt.Fprintf(w, "project %s: %d drift item(s)\n", project, len(res.Drift))
	for _, d := range res.Drift {
		note := ""
		if !d.Actionable {
			note = " (reported only)"
		}
		svc := d.Service
		if svc == "" {
			svc = "-"
		}
		fmt.Fprintf(w, "  %-18s %-12s %s: %s%s\n", d.Kind, svc, d.Subject(), d.Cause, note)
		for _, line := range details[d.ContainerID] {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
	if res.Plan.Empty() {
		fmt.Fprintln(w, "plan: nothing to do")
		return
	}
	fmt.Fprintln(w, "plan:")
	for _, line := range strings.Split(strings.TrimRight(res.Plan.String(), "\n"), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
}
