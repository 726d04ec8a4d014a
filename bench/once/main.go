// Command once measures `reconcile --once` on an already converged project
// against the Compose SDK's own `up` on the same project, in one run: wall
// time per pass and engine API calls per pass, for a project of -services
// services with -replicas replicas each.
//
//	go run ./bench/once [-services 50] [-replicas 2] [-passes 10]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/reconcile-dev/reconcile/bench/benchkit"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/internal/session"
	"github.com/reconcile-dev/reconcile/internal/testimage"
	"github.com/reconcile-dev/reconcile/observed"
)

func main() {
	services := flag.Int("services", 50, "services in the project")
	replicas := flag.Int("replicas", 2, "replicas per service")
	passes := flag.Int("passes", 30, "measured passes of each tool")
	project := flag.String("project", "", "reuse this project name and keep the project afterwards (for profiling)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the reconcile passes to this file")
	flag.Parse()
	benchkit.Exit(run(*services, *replicas, *passes, *project, *cpuprofile))
}

func run(services, replicas, passes int, keep, cpuprofile string) error {
	ctx := context.Background()
	eng, err := engine.Connect(ctx)
	if err != nil {
		return err
	}
	if err := eng.Ping(ctx); err != nil {
		return err
	}
	if err := testimage.Ensure(ctx, eng.Client, testimage.Tag); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-once")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	name := fmt.Sprintf("bench-once-%d", time.Now().UnixNano()%1e6)
	if keep != "" {
		name = keep
	}
	file := filepath.Join(dir, "compose.yaml")
	stateDir := filepath.Join(dir, "state")
	var b strings.Builder
	b.WriteString("services:\n")
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "  svc%02d:\n    image: %s\n    deploy: {replicas: %d}\n", i, testimage.Tag, replicas)
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on: [svc%02d]\n", i-1)
		}
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return err
	}
	defer func() {
		if keep != "" {
			return
		}
		zero := time.Duration(0)
		_ = eng.Compose.Down(context.Background(), name, api.DownOptions{RemoveOrphans: true, Timeout: &zero})
	}()

	loader, err := engine.Loader()
	if err != nil {
		return err
	}
	load := func() (*desired.State, error) {
		return desired.Load(ctx, loader, desired.Options{Files: []string{file}, ProjectName: name})
	}
	d, err := load()
	if err != nil {
		return err
	}
	fmt.Printf("converging %s: %d services x %d replicas = %d containers\n", name, services, replicas, services*replicas)
	start := time.Now()
	if err := composeUp(ctx, eng, d); err != nil {
		return err
	}
	fmt.Printf("initial compose up: %s\n", time.Since(start).Round(time.Millisecond))

	// reconcilePass is what `reconcile --once -p NAME` does, minus process
	// start-up: open a session (load, connect, first snapshot, overlapped),
	// then converge.
	connect := func(ctx context.Context) (*engine.Engine, error) { return eng, eng.Ping(ctx) }
	reconcilePass := func() error {
		sess, err := session.Open(ctx, session.Options{Load: desired.Options{Files: []string{file}, ProjectName: name}, Loader: loader, Connect: connect})
		if err != nil {
			return err
		}
		quiet := slog.New(slog.DiscardHandler)
		p, err := daemon.New(daemon.Config{
			Engine: eng, Loader: loader, Log: quiet, Records: record.New(quiet, clock.Real{}, record.DefaultKeep),
			StateDir: stateDir, Workers: 4, Once: true,
		}, sess.Desired, desired.Options{Files: []string{file}, ProjectName: name}, nil)
		if err != nil {
			return err
		}
		out, err := p.Converge(ctx, 0)
		if err != nil {
			return err
		}
		if !out.Converged || out.Acted != 0 {
			return fmt.Errorf("the project was not converged: %d operations", out.Acted)
		}
		return nil
	}
	// composePass is the SDK's own: load, then up (the compose CLI pings too).
	composePass := func() error {
		if err := eng.Ping(ctx); err != nil {
			return err
		}
		d, err := load()
		if err != nil {
			return err
		}
		return composeUp(ctx, eng, d)
	}
	// warm both paths once, then alternate so drift in the machine's load
	// affects both alike
	for _, f := range []func() error{reconcilePass, composePass} {
		if err := f(); err != nil {
			return err
		}
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		for i := 0; i < 50; i++ {
			if err := reconcilePass(); err != nil {
				return err
			}
		}
		pprof.StopCPUProfile()
	}
	var rt, ct []time.Duration
	var rc, cc []int64
	for i := 0; i < passes; i++ {
		for _, m := range []struct {
			f     func() error
			times *[]time.Duration
			calls *[]int64
		}{{reconcilePass, &rt, &rc}, {composePass, &ct, &cc}} {
			before, t0 := eng.Calls(), time.Now()
			if err := m.f(); err != nil {
				return err
			}
			*m.times = append(*m.times, time.Since(t0))
			*m.calls = append(*m.calls, eng.Calls()-before)
		}
	}
	rm, cm := median(rt), median(ct)
	fmt.Printf("reconcile --once (converged): median %s  min %s  max %s  engine calls/pass %s\n", rm, minD(rt), maxD(rt), rangeOf(rc))
	fmt.Printf("compose up      (converged): median %s  min %s  max %s  engine calls/pass %s\n", cm, minD(ct), maxD(ct), rangeOf(cc))
	fmt.Printf("time ratio reconcile/compose: %.3f (target <= 0.5)\n", float64(rm)/float64(cm))
	fmt.Printf("engine calls per reconcile pass for any project size: %d list calls\n", observed.ListCallsPerPass)
	return nil
}

func composeUp(ctx context.Context, eng *engine.Engine, d *desired.State) error {
	return eng.Compose.Up(ctx, d.Project, api.UpOptions{
		Create: api.CreateOptions{Recreate: api.RecreateDiverged, RecreateDependencies: api.RecreateDiverged, IgnoreOrphans: true, QuietPull: true},
		Start:  api.StartOptions{Project: d.Project},
	})
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Microsecond)
}

func minD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = min(m, d)
	}
	return m.Round(time.Microsecond)
}

func maxD(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m.Round(time.Microsecond)
}

func rangeOf(xs []int64) string {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}
