package upstreams

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/controllers/reloads"
	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

type fakeReloader struct{ calls []string }

func (f *fakeReloader) Reload(_ context.Context, _ reconciler.Actor, _ *desired.State, service, why string) error {
	f.calls = append(f.calls, service+": "+why)
	return nil
}

// fileActor does what the executor does with the file writes a sync asks
// for, and keeps what it was asked.
type fileActor struct{ ops []plan.Operation }

func (a *fileActor) Act(_ context.Context, ops ...plan.Operation) error {
	for _, op := range ops {
		a.ops = append(a.ops, op)
		if op.Type != plan.OpWriteFile {
			return fmt.Errorf("unexpected %s", op.Type)
		}
		if err := os.WriteFile(op.File, op.Content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

const lbStack = `
services:
  lb:
    image: a
    volumes: ["./up:/up:ro"]
    x-reconcile:
      upstreams: [{name: api_backend, service: api, port: 3000, file: ./up/api.conf}]
  api:
    image: a
    deploy: {replicas: 3}
    healthcheck: {test: [CMD, x], interval: 1s}
`

var zeroTime = time.Unix(1_000_000, 0)

func loadFile(t *testing.T, file string) *desired.State {
	t.Helper()
	return desiredtest.LoadFile(t, file)
}

type memRecorder struct{ reasons []string }

func (m *memRecorder) Event(reason record.Reason, _, _, _ string) {
	m.reasons = append(m.reasons, string(reason))
}

// rig is the load balancer's project and what the controller would keep:
// the operations the last review of each service held back.
type rig struct {
	d    *desired.State
	rec  *memRecorder
	held map[string][]plan.Operation
}

// review does what the controller does with the guard's decision: applies
// it, remembers what it held and wakes the services it names.
func review(u *Upstreams, g *rig, in reconciler.Review, wake func(string)) (*plan.Plan, time.Duration) {
	dec := u.Review(in)
	g.held[in.Service] = nil
	for _, n := range dec.Hold {
		g.held[in.Service] = append(g.held[in.Service], n.Op)
	}
	for _, s := range dec.Wake {
		wake(s)
	}
	return dec.Apply(in.Plan), dec.RequeueAfter
}

func lbRig(t *testing.T) (*rig, *Upstreams, *fakeReloader, *[]string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "up"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(lbStack), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &rig{d: loadFile(t, file), rec: &memRecorder{}, held: map[string][]plan.Operation{}}
	rel := &fakeReloader{}
	var enqueued []string
	u := &Upstreams{Reloader: rel, Records: g.rec, Enqueue: func(s string) { enqueued = append(enqueued, s) },
		Pending: func(s string) []plan.Operation { return g.held[s] }}
	return g, u, rel, &enqueued
}

func snapWith(g *rig, cs ...observed.Container) *observed.Snapshot {
	return &observed.Snapshot{Project: "p", Containers: cs, Images: map[string]string{}}
}

func api(n int, health string) observed.Container {
	name := "p-api-" + string(rune('0'+n))
	return observed.Container{ID: "id-" + name, Name: name, Service: "api", Number: n, State: "running", Health: health}
}

func TestUpstreamSyncWritesOnlyChangesAndKeepsTheLastList(t *testing.T) {
	g, u, rel, _ := lbRig(t)
	path := g.d.Services["lb"].Policy.Upstreams[0].File
	sync := func(cs ...observed.Container) {
		t.Helper()
		if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, cs...), Service: "lb"}, &fileActor{}); err != nil {
			t.Fatal(err)
		}
	}
	sync(api(1, "healthy"), api(2, "starting"), api(3, "healthy"))
	b, _ := os.ReadFile(path)
	want := "upstream api_backend {\n    server p-api-1:3000;\n    server p-api-3:3000;\n}\n"
	if !strings.HasSuffix(string(b), want) {
		t.Fatalf("file:\n%s\nwant it to end with:\n%s", b, want)
	}
	sync(api(1, "healthy"), api(2, "starting"), api(3, "healthy"))
	if len(rel.calls) != 1 {
		t.Fatalf("reloads %v: an unchanged file must not reload", rel.calls)
	}
	sync(api(1, "unhealthy"), api(2, "unhealthy"), api(3, "unhealthy"))
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Fatal("no healthy replica: the last list must be kept")
	}
	if !slices.Contains(g.rec.reasons, "NoHealthyUpstream") {
		t.Fatalf("records %v", g.rec.reasons)
	}
	st := plan.ProjectStatus{Services: []plan.ServiceStatus{{Service: "lb", Health: plan.Healthy}}}
	u.Annotate(&st, g.d, zeroTime)
	if st.Services[0].Health != plan.Degraded {
		t.Errorf("lb status %+v", st.Services[0])
	}
}

func TestUpstreamReviewDrainsBeforeRemoval(t *testing.T) {
	g, u, _, enqueued := lbRig(t)
	all := []observed.Container{api(1, "healthy"), api(2, "healthy"), api(3, "healthy")}
	if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}, &fileActor{}); err != nil {
		t.Fatal(err)
	}
	removal := &plan.Plan{Nodes: []*plan.Node{{ID: 1, Op: plan.Operation{Type: plan.OpRemoveContainer, Service: "api", Container: "p-api-3", ContainerID: "id-p-api-3"}}}}
	review := func() (*plan.Plan, int) {
		pl, after := review(u, g, reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "api", Plan: removal}, u.Enqueue)
		return pl, int(after)
	}
	pl, after := review()
	if !pl.Empty() || after == 0 || !slices.Equal(*enqueued, []string{"lb"}) {
		t.Fatalf("listed replica: plan %v, requeue %d, enqueued %v; want it held and the lb asked to rewrite", pl, after, *enqueued)
	}
	// the lb rewrites its file without the draining replica
	if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}, &fileActor{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(g.d.Services["lb"].Policy.Upstreams[0].File)
	if strings.Contains(string(b), "p-api-3") {
		t.Fatalf("draining replica still listed:\n%s", b)
	}
	if pl, _ := review(); len(pl.Nodes) != 1 {
		t.Fatal("once out of the file, the removal must go ahead")
	}
	// no removal planned any more: the replica may come back
	removal = &plan.Plan{}
	review()
	if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}, &fileActor{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(g.d.Services["lb"].Policy.Upstreams[0].File); !strings.Contains(string(b), "p-api-3") {
		t.Fatalf("released replica not listed again:\n%s", b)
	}
}

func TestDrainHoldsAReplicaOutUntilReleased(t *testing.T) {
	g, u, _, _ := lbRig(t)
	all := []observed.Container{api(1, "healthy"), api(2, "healthy"), api(3, "healthy")}
	sync := func() {
		if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}, &fileActor{}); err != nil {
			t.Error(err)
		}
	}
	u.Enqueue = func(string) { sync() } // the load balancer's reconcile, at once
	sync()
	file := g.d.Services["lb"].Policy.Upstreams[0].File
	release, err := u.Drain(context.Background(), g.d, "api", all[1])
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); strings.Contains(string(b), "p-api-2") {
		t.Fatalf("drained replica still listed:\n%s", b)
	}
	// a review of the service, which plans nothing for it, keeps it out
	review(u, g, reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "api", Plan: &plan.Plan{}}, func(string) {})
	sync()
	if b, _ := os.ReadFile(file); strings.Contains(string(b), "p-api-2") {
		t.Fatalf("a review let a held replica back:\n%s", b)
	}
	release()
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), "p-api-2") {
		t.Fatalf("released replica not listed again:\n%s", b)
	}
}

type failingReloader struct{ calls, fail int }

func (f *failingReloader) Reload(context.Context, reconciler.Actor, *desired.State, string, string) error {
	f.calls++
	if f.calls <= f.fail {
		return reloads.ErrReloadRejected
	}
	return nil
}

func TestAFailedReloadIsRetriedAndKeepsTheReplicaListed(t *testing.T) {
	g, u, _, _ := lbRig(t)
	rel := &failingReloader{fail: 1}
	u.Reloader = rel
	all := []observed.Container{api(1, "healthy"), api(2, "healthy")}
	sync := func() error {
		_, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}, &fileActor{})
		return err
	}
	if err := sync(); err == nil {
		t.Fatal("a rejected reload must fail the sync")
	}
	u.mu.Lock()
	listed := len(u.listed)
	u.mu.Unlock()
	if listed != 0 {
		t.Fatal("a list the load balancer did not load counted as listed")
	}
	if err := sync(); err != nil || rel.calls != 2 {
		t.Fatalf("retry: %v after %d reloads; want the reload retried without a new write", err, rel.calls)
	}
	if err := sync(); err != nil || rel.calls != 2 {
		t.Fatalf("loaded list reloaded again: %d reloads", rel.calls)
	}
}
