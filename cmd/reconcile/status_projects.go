package main

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// statusOfProjects is `reconcile status --projects DIR` and `--discover`:
// the status of every project an agent given the same flags reconciles,
// and of those it would not, with why, in the shape of an agent's /status.
func statusOfProjects(ctx context.Context, g *globals, output string) error {
	type found struct {
		from string
		g    globals
	}
	var sources []found
	dir := ""
	if g.projectsDir != "" {
		abs, err := filepath.Abs(g.projectsDir)
		if err != nil {
			return withCode(exitInput, fmt.Errorf("--projects %s: %w", g.projectsDir, err))
		}
		dir = abs
		dirs, err := desired.ProjectDirs(dir)
		if err != nil {
			return withCode(exitInput, fmt.Errorf("--projects %s: %w", g.projectsDir, err))
		}
		for _, d := range dirs {
			pg := *g
			pg.files, pg.projectName, pg.projectDir, pg.envFiles, pg.profiles = nil, "", d, nil, nil
			sources = append(sources, found{"directory " + d, pg})
		}
	}
	if g.discover {
		eng, err := g.connect(ctx)
		if err != nil {
			return err
		}
		all, err := observed.ObserveAll(ctx, eng.Client, time.Now())
		if err != nil {
			return withCode(exitInternal, err)
		}
		for _, o := range all.Origins() {
			if dir != "" && filepath.Dir(filepath.Clean(o.WorkingDir)) == dir {
				continue // listed under its directory
			}
			if ok, err := path.Match(g.discoverMatch, o.Project); err != nil || !ok {
				continue
			}
			pg := *g
			pg.files, pg.projectName, pg.projectDir, pg.envFiles, pg.profiles = o.ConfigFiles, o.Project, o.WorkingDir, o.EnvFiles, nil
			sources = append(sources, found{"the engine (" + strings.Join(o.ConfigFiles, ",") + ")", pg})
		}
	}
	st := daemon.AgentStatus{Projects: []plan.ProjectStatus{}}
	var froms []string
	for _, s := range sources {
		sess, snap, err := s.g.openObserved(ctx)
		if err != nil {
			if codeOf(err, exitInternal) != exitInput {
				return err // the engine, not the project
			}
			name := s.g.projectName
			if name == "" {
				name = filepath.Base(s.g.projectDir)
			}
			st.Problems = append(st.Problems, daemon.ProjectProblem{Project: name, Source: s.from, Reason: record.ProjectInvalid, Message: desired.OneLine(err.Error())})
			continue
		}
		d := sess.Desired
		if d.Disabled {
			st.Problems = append(st.Problems, daemon.ProjectProblem{Project: d.Project.Name, Source: s.from, Reason: record.ProjectDisabled, Message: "x-reconcile.enabled is false; not reconciled"})
			continue
		}
		ps, err := lookAt(ctx, &s.g, d, sess.Engine, snap)
		if err != nil {
			return err
		}
		st.Projects = append(st.Projects, ps)
		froms = append(froms, s.from)
	}
	if output == "json" {
		return withCode(exitInternal, writeJSON(g.stdout, st))
	}
	for i, ps := range st.Projects {
		fmt.Fprintf(g.stdout, "PROJECT %s (%s)\n", ps.Project, froms[i])
		printStatusTable(g.stdout, ps)
		fmt.Fprintln(g.stdout)
	}
	for _, p := range st.Problems {
		fmt.Fprintf(g.stdout, "NOT RECONCILED %s (%s): %s: %s\n", p.Project, p.Source, p.Reason, p.Message)
	}
	if len(st.Projects)+len(st.Problems) == 0 {
		fmt.Fprintln(g.stdout, "no project found")
	}
	return nil
}
