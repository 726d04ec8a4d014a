package execute

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func converger(w *world, f *fakeEngine) *Converger {
	return &Converger{Desired: w.d, Observe: f.observe, Executor: f.executor(w), Poll: time.Millisecond, Settle: 20 * time.Millisecond, Clock: clock.Real{}}
}

func TestConvergeFreshProject(t *testing.T) {
	w := newWorld(load(t, stack))
	f := &fakeEngine{w: w, upState: map[string]string{"db": "running:healthy", "migrate": "exited:0"}}
	out, err := converger(w, f).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !out.Converged || out.Applied != 1 || len(out.Errors) != 0 {
		t.Errorf("outcome: converged %v, applied %d, errors %v", out.Converged, out.Applied, out.Errors)
	}
}

func TestConvergeBoundsActionsOnACrashLoop(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a, restart: always}\n"))
	f := &fakeEngine{w: w, upState: map[string]string{"app": "exited:1"}}
	// the fake's start leaves the container running; make it crash again
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c := converger(w, f)
	c.Observe = func(ctx context.Context) (*observed.Snapshot, error) {
		snap, err := f.observe(ctx)
		for i := range snap.Containers {
			snap.Containers[i].State, snap.Containers[i].ExitCode = "exited", 1
		}
		return snap, err
	}
	out, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Converged {
		t.Fatal("a crashing container cannot converge")
	}
	if out.Applied != 3 {
		t.Errorf("applied %d plans, want the default bound of 3", out.Applied)
	}
	if got := out.Status.Services[0].Health; got != plan.Degraded {
		t.Errorf("health = %s, want Degraded", got)
	}
}

type failingImages struct{ calls []string }

func (f *failingImages) Pull(_ context.Context, p *types.Project, _ api.PullOptions) error {
	f.calls = append(f.calls, "pull "+strings.Join(p.ServiceNames(), ","))
	return errors.New("dial tcp: lookup registry-1.docker.io: no such host")
}

func (f *failingImages) Build(context.Context, *types.Project, api.BuildOptions) error {
	f.calls = append(f.calls, "build")
	return errors.New("unexpected build")
}

func TestConvergeStopsOnAnImageThatCannotBePulled(t *testing.T) {
	w := newWorld(load(t, stack))
	w.snap.Images = map[string]string{"db:latest": "sha256:1", "app:latest": "sha256:2"} // web's image is missing
	f := &fakeEngine{w: w}
	imgs := &failingImages{}
	c := converger(w, f)
	c.Images = imgs
	_, err := c.Run(context.Background())
	var ie *desired.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an InputError", err)
	}
	if ie.Service != "web" || ie.Key != "image" || !strings.Contains(ie.File, "compose.yaml") || ie.Line == 0 {
		t.Errorf("error does not name file, line, service and key: %+v (%v)", ie, err)
	}
	if len(f.calls) != 0 {
		t.Errorf("the engine was touched before the image check: %v", f.calls)
	}
	if strings.Join(imgs.calls, ";") != "pull web" {
		t.Errorf("image calls = %v", imgs.calls)
	}
}

func TestConvergenceMustHoldForTheSettleTime(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a, restart: \"no\"}\n"))
	f := &fakeEngine{w: w}
	c := converger(w, f)
	c.Settle = 50 * time.Millisecond
	looks := 0
	c.Observe = func(ctx context.Context) (*observed.Snapshot, error) {
		snap, err := f.observe(ctx)
		looks++
		if looks > 2 { // up returned it running; a moment later it died (exit 3)
			for i := range snap.Containers {
				snap.Containers[i].State, snap.Containers[i].ExitCode = "exited", 3
			}
		}
		return snap, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Converged {
		t.Fatal("a container that died right after it started counted as converged")
	}
}

// recordingImages builds and pulls nothing but notes the calls.
type recordingImages struct{ calls []string }

func (r *recordingImages) Pull(_ context.Context, p *types.Project, _ api.PullOptions) error {
	r.calls = append(r.calls, "pull "+strings.Join(p.ServiceNames(), ","))
	return errors.New("no registry")
}

func (r *recordingImages) Build(_ context.Context, _ *types.Project, o api.BuildOptions) error {
	r.calls = append(r.calls, "build "+strings.Join(o.Services, ","))
	return nil
}

func TestAnImageOneServiceBuildsIsBuiltForAnotherThatUsesIt(t *testing.T) {
	w := newWorld(load(t, "services:\n  bar: {image: shared:1}\n  foo: {image: shared:1, build: .}\n"))
	p := w.diff(plan.Options{}).Plan.ForService("bar") // bar alone, as the daemon reconciles it
	imgs := &recordingImages{}
	if err := EnsureImages(context.Background(), w.d, w.snap, p, imgs); err != nil {
		t.Fatalf("bar's image is foo's build: %v", err)
	}
	if got := strings.Join(imgs.calls, ";"); got != "build foo" {
		t.Errorf("image calls %q, want foo built and nothing pulled", got)
	}
	imgs.calls = nil
	if err := EnsureImages(context.Background(), w.d, w.snap, w.diff(plan.Options{}).Plan, imgs); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(imgs.calls, ";"); got != "build foo" {
		t.Errorf("the whole project: image calls %q, want one build of foo", got)
	}
}

func TestAMissingExternalNetworkOrVolumeEndsTheRunBeforeAnythingIsTouched(t *testing.T) {
	for name, compose := range map[string]string{
		"network": "services:\n  app: {image: a, networks: [shared]}\nnetworks:\n  shared: {external: true, name: corp-net}\n",
		"volume":  "services:\n  app: {image: a, volumes: [\"data:/data\"]}\nvolumes:\n  data: {external: true}\n",
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(load(t, compose))
			w.snap.Networks = slices.DeleteFunc(w.snap.Networks, func(n observed.Network) bool { return n.Name == "corp-net" })
			w.snap.Volumes = nil
			f := &fakeEngine{w: w}
			_, err := converger(w, f).Run(context.Background())
			var ie *desired.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), "does not exist") || !strings.HasSuffix(ie.Key, ".external") || ie.Line == 0 {
				t.Fatalf("err %v: want an input error naming the external %s's key and line", err, name)
			}
			if len(f.calls) != 0 {
				t.Errorf("calls %v: nothing may be touched", f.calls)
			}
		})
	}
}
