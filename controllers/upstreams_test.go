package controllers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
)

type fakeReloader struct{ calls []string }

func (f *fakeReloader) Reload(_ context.Context, _ *desired.State, service, why string) error {
	f.calls = append(f.calls, service+": "+why)
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
	g := &rig{t: t, d: loadFile(t, file), clk: clock.NewFake(zeroTime), store: &memStore{}, rec: &memRecorder{}, ctrs: map[string]*observed.Container{}}
	rel := &fakeReloader{}
	var enqueued []string
	u := &Upstreams{Reloader: rel, Records: g.rec, Enqueue: func(s string) { enqueued = append(enqueued, s) }}
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
		if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, cs...), Service: "lb"}); err != nil {
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
	st := reconciler.ProjectStatus{Services: []reconciler.ServiceStatus{{Service: "lb", Health: reconciler.Healthy}}}
	u.Annotate(&st, g.d, zeroTime)
	if st.Services[0].Health != reconciler.Degraded {
		t.Errorf("lb status %+v", st.Services[0])
	}
}

func TestUpstreamReviewDrainsBeforeRemoval(t *testing.T) {
	g, u, _, enqueued := lbRig(t)
	all := []observed.Container{api(1, "healthy"), api(2, "healthy"), api(3, "healthy")}
	if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}); err != nil {
		t.Fatal(err)
	}
	removal := &reconciler.Plan{Nodes: []*reconciler.Node{{ID: 1, Op: reconciler.Operation{Type: reconciler.OpRemoveContainer, Service: "api", Container: "p-api-3", ContainerID: "id-p-api-3"}}}}
	review := func() (*reconciler.Plan, int) {
		plan, after := u.Review(reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "api", Plan: removal})
		return plan, int(after)
	}
	plan, after := review()
	if !plan.Empty() || after == 0 || !slices.Equal(*enqueued, []string{"lb"}) {
		t.Fatalf("listed replica: plan %v, requeue %d, enqueued %v; want it held and the lb asked to rewrite", plan, after, *enqueued)
	}
	// the lb rewrites its file without the draining replica
	if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(g.d.Services["lb"].Policy.Upstreams[0].File)
	if strings.Contains(string(b), "p-api-3") {
		t.Fatalf("draining replica still listed:\n%s", b)
	}
	if plan, _ := review(); len(plan.Nodes) != 1 {
		t.Fatal("once out of the file, the removal must go ahead")
	}
	// no removal planned any more: the replica may come back
	removal = &reconciler.Plan{}
	review()
	if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(g.d.Services["lb"].Policy.Upstreams[0].File); !strings.Contains(string(b), "p-api-3") {
		t.Fatalf("released replica not listed again:\n%s", b)
	}
}

func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"conf", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"app.ini", "cfg.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(`
services:
  app:
    image: a
    volumes: ["./conf:/conf:ro", "./data:/data", "./app.ini:/app.ini", "named:/v"]
    configs: [cfg]
  other:
    image: a
    volumes: ["./conf:/etc/other:ro"]
configs:
  cfg: {file: ./cfg.txt}
volumes: {named: {}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	got := ConfigSources(loadFile(t, file))
	want := map[string][]string{
		filepath.Join(dir, "conf"):    {"app", "other"},
		filepath.Join(dir, "app.ini"): {"app"},
		filepath.Join(dir, "cfg.txt"): {"app"},
	}
	if len(got) != len(want) {
		t.Fatalf("sources %v, want %v (a writable directory is data, not configuration)", got, want)
	}
	for p, svcs := range want {
		if !slices.Equal(got[p], svcs) {
			t.Errorf("%s: %v, want %v", p, got[p], svcs)
		}
	}
}

func TestDrainHoldsAReplicaOutUntilReleased(t *testing.T) {
	g, u, _, _ := lbRig(t)
	all := []observed.Container{api(1, "healthy"), api(2, "healthy"), api(3, "healthy")}
	sync := func() {
		if _, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"}); err != nil {
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
	u.Review(reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "api", Plan: &reconciler.Plan{}})
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

func (f *failingReloader) Reload(context.Context, *desired.State, string, string) error {
	f.calls++
	if f.calls <= f.fail {
		return ErrReloadRejected
	}
	return nil
}

func TestAFailedReloadIsRetriedAndKeepsTheReplicaListed(t *testing.T) {
	g, u, _, _ := lbRig(t)
	rel := &failingReloader{fail: 1}
	u.Reloader = rel
	all := []observed.Container{api(1, "healthy"), api(2, "healthy")}
	sync := func() error {
		_, err := u.Sync(context.Background(), reconciler.Review{Desired: g.d, Snapshot: snapWith(g, all...), Service: "lb"})
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
