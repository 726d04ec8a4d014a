// Command recover measures detect-to-act latency of the daemon's restart
// controller: a `restart: always` container is killed with `docker kill`
// (which the engine leaves down) -n times; each time it reads the engine's
// `die` event, the daemon's own log of its start call, and the engine's
// `start` event. As the floor, in the same run, a control container is
// killed and started by this program itself the moment its `die` arrives.
//
//	go run ./bench/recover -bin bin/reconcile [-n 25]
package main

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
)

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	n := flag.Int("n", 25, "iterations")
	flag.Parse()
	benchkit.Exit(run(*bin, *n))
}

func run(bin string, n int) error {
	ctx := context.Background()
	p, err := benchkit.NewProject(ctx, "bench-recover", "", `services:
  app:
    image: %[1]s
    restart: always
    x-reconcile: {restart: {reset_after: 500ms}}
  control:
    image: %[1]s
    restart: "no"
`)
	if err != nil {
		return err
	}
	defer p.Close()
	eng, name, dir, file := p.Engine, p.Name, p.Dir, p.File

	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	st := benchkit.FollowEvents(evCtx, eng, make(client.Filters).Add("label", api.ProjectLabel+"="+name))

	cmd := exec.Command(bin, "-f", file, "-p", name, "--state-dir", dir, "--log-level", "debug", "--log-format", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	starts := &benchkit.Timeline{} // the daemon's start calls
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	go benchkit.ReadLog(out, map[string][]string{"start": {`"operation start"`, `"StartContainer"`}}, starts.Add)

	app, control := name+"-app-1", name+"-control-1"
	t0 := time.Now().Add(-time.Hour)
	if _, err := st.Wait(app, "start", t0, 60*time.Second); err != nil {
		return err
	}
	if _, err := st.Wait(control, "start", t0, 60*time.Second); err != nil {
		return err
	}
	time.Sleep(time.Second)

	var toCall, toRunning, floorCall, floor []time.Duration
	for i := range n {
		// the floor: this program reacting to the control's die
		call, running, err := benchkit.Floor(ctx, eng, st, control)
		if err != nil {
			return err
		}
		floorCall, floor = append(floorCall, call), append(floor, running)

		// the daemon reacting to the app's die
		mark := time.Now()
		if _, err := eng.Client.ContainerKill(ctx, app, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			return err
		}
		die, err := st.Wait(app, "die", mark, 10*time.Second)
		if err != nil {
			return err
		}
		called, err := starts.Next("start", die, 10*time.Second)
		if err != nil {
			return fmt.Errorf("iteration %d: %w", i, err)
		}
		started, err := st.Wait(app, "start", die, 10*time.Second)
		if err != nil {
			return err
		}
		toCall = append(toCall, called.Sub(die))
		toRunning = append(toRunning, started.Sub(die))
		time.Sleep(800 * time.Millisecond) // past reset_after: no backoff owed
	}
	fmt.Printf("%d kills of a restart: always container (docker kill: the engine leaves it down)\n", n)
	benchkit.Report("die -> start call (reconciler)", toCall)
	benchkit.Report("die -> start call (floor: this program)", floorCall)
	benchkit.Report("die -> running (reconciler)", toRunning)
	benchkit.Report("die -> running (floor)", floor)
	fmt.Printf("  overhead beyond the floor, die -> start call:     p50 %7.1fms  p99 %7.1fms\n",
		benchkit.MS(benchkit.Pct(toCall, 0.5)-benchkit.Pct(floorCall, 0.5)), benchkit.MS(benchkit.Pct(toCall, 0.99)-benchkit.Pct(floorCall, 0.99)))
	fmt.Println("targets: overhead p50 < 20ms, p99 < 100ms (the engine's start time after the call is the same for both)")
	return nil
}
