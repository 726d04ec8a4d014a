package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

type memRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (m *memRecorder) Event(reason record.Reason, service, container, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, fmt.Sprintf("%s %s %s %s", reason.Type(), reason, service, container))
}

func (m *memRecorder) reasons() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		out = append(out, strings.Fields(r)[1])
	}
	return out
}

func newController(w *world, f *fakeEngine) (*Controller, *memRecorder, *atomic.Int32) {
	rec := &memRecorder{}
	var observes atomic.Int32
	c := &Controller{
		Observe: func(ctx context.Context) (*observed.Snapshot, error) {
			observes.Add(1)
			return f.observe(ctx)
		},
		Compose: f,
		Engine:  f,
		Records: rec,
		Clock:   clock.Real{},
	}
	c.SetDesired(w.d)
	return c, rec, &observes
}

func TestControllerReconcilesOneServiceAtATime(t *testing.T) {
	w := newWorld(load(t, stack))
	w.snap.Networks, w.snap.Volumes = nil, nil
	f := &fakeEngine{w: w, upState: map[string]string{"db": "running:healthy", "migrate": "exited:0"}}
	c, rec, _ := newController(w, f)
	ctx := context.Background()

	// api waits: db is not there yet, so nothing of api runs
	res, err := c.Reconcile(ctx, "api")
	after := res.RequeueAfter
	if err != nil || after != DefaultDependencyRetry {
		t.Fatalf("api: requeue %s, err %v; want a retry while db is missing", after, err)
	}
	if slices.ContainsFunc(f.calls, func(s string) bool { return strings.HasPrefix(s, "up ") }) {
		t.Fatalf("calls %v: api brought up before its dependencies", f.calls)
	}
	if !slices.Contains(rec.reasons(), "DependencyNotReady") {
		t.Errorf("records %v: want DependencyNotReady", rec.reasons())
	}
	// its networks are created even so: they need no dependency
	if got := strings.Join(f.calls, ","); got != "create network back,create network front" && got != "create network front,create network back" {
		t.Errorf("calls %q, want api's networks created", got)
	}
	for _, key := range []string{"db", "migrate", "api", "web"} {
		c.Invalidate()
		if _, err := c.Reconcile(ctx, key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	ups := slices.DeleteFunc(slices.Clone(f.calls), func(s string) bool { return !strings.HasPrefix(s, "up ") })
	if got := strings.Join(ups, ","); got != "up db,up migrate,up api,up web" {
		t.Errorf("ups %s, want each service once, in order", got)
	}
	for _, want := range []string{"ContainerMissing", "Created", "NetworkCreated"} {
		if !slices.Contains(rec.reasons(), want) {
			t.Errorf("records %v: want %s", rec.reasons(), want)
		}
	}
}

func TestControllerUsesTheCachedSnapshotUntilInvalidated(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n")).running("app")
	f := &fakeEngine{w: w}
	c, _, observes := newController(w, f)
	for range 5 {
		if _, err := c.Reconcile(context.Background(), "app"); err != nil {
			t.Fatal(err)
		}
	}
	if observes.Load() != 1 {
		t.Fatalf("%d observations for 5 idle reconciles, want 1", observes.Load())
	}
	c.Invalidate()
	if _, err := c.Reconcile(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if observes.Load() != 2 {
		t.Fatalf("%d observations after an invalidation, want 2", observes.Load())
	}
}

// TestContainerEventsAloneListContainersAlone: after container events only,
// a look lists the containers and keeps the other lists; our own action, a
// relist or a destroy (compose's down removes networks after containers)
// lists all four again.
func TestContainerEventsAloneListContainersAlone(t *testing.T) {
	tests := []struct {
		name       string
		change     func(c *Controller)
		full, cont int32 // the observations it takes
	}{
		{"a start", func(c *Controller) { c.Observed(observed.Event{Action: observed.ActionStart, ContainerID: "x"}) }, 0, 1},
		{"a health change", func(c *Controller) {
			c.Observed(observed.Event{Action: observed.ActionHealthStatus, Health: observed.HealthHealthy, ContainerID: "x"})
		}, 0, 1},
		{"a destroy", func(c *Controller) { c.Observed(observed.Event{Action: observed.ActionDestroy, ContainerID: "x"}) }, 1, 0},
		{"an action of ours", func(c *Controller) { c.Invalidate() }, 1, 0},
		{"a relist mark", func(c *Controller) { c.Mark() }, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(load(t, "services:\n  app: {image: a}\n")).running("app")
			f := &fakeEngine{w: w}
			c, _, observes := newController(w, f)
			var containers atomic.Int32
			c.ObserveContainers = func(ctx context.Context, base *observed.Snapshot) (*observed.Snapshot, error) {
				containers.Add(1)
				snap, err := f.observe(ctx)
				if err == nil && len(base.Networks) != len(snap.Networks) {
					t.Error("the base's networks were not kept")
				}
				return snap, err
			}
			if _, err := c.Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			tt.change(c)
			if _, err := c.Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			if full, cont := observes.Load()-1, containers.Load(); full != tt.full || cont != tt.cont {
				t.Errorf("%d full lists and %d container lists, want %d and %d", full, cont, tt.full, tt.cont)
			}
		})
	}
}

func TestResyncWithAdoptsTheCallersSnapshot(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n")).running("app")
	f := &fakeEngine{w: w}
	tests := []struct {
		name       string
		eventAfter bool // an engine event between Mark and ResyncWith
		want       int32
	}{
		{"nothing happened since the list: the listing is used", false, 0},
		{"an event came while listing: the next reconcile lists afresh", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, observes := newController(w, f)
			mark := c.Mark()
			snap, _ := f.observe(context.Background())
			if tt.eventAfter {
				c.Observed(observed.Event{Action: observed.ActionDie, Service: "app"})
			}
			c.ResyncWith(snap, mark)
			if n := c.queue().Len(); n != 1 {
				t.Errorf("queued %d services, want app", n)
			}
			if _, err := c.Reconcile(context.Background(), "app"); err != nil {
				t.Fatal(err)
			}
			if got := observes.Load(); got != tt.want {
				t.Errorf("%d observations, want %d", got, tt.want)
			}
		})
	}
}

func TestControllerDryRunReportsAndDoesNotAct(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n"))
	f := &fakeEngine{w: w}
	c, rec, _ := newController(w, f)
	c.DryRun = true
	c.Policies = []Policy{{Name: "panics", Decide: panicGuard{}}} // a guard counts what it allows: a dry run asks none
	if _, err := c.Reconcile(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 {
		t.Fatalf("dry run acted: %v", f.calls)
	}
	if got := rec.reasons(); !slices.Equal(got, []string{"ContainerMissing"}) {
		t.Fatalf("records %v, want one ContainerMissing", got)
	}
	// seen again: not recorded twice
	if _, err := c.Reconcile(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.reasons()); n != 1 {
		t.Fatalf("%d records after a second look, want 1", n)
	}
}

func TestControllerRecordsSyncedOnceDriftIsGone(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n"))
	f := &fakeEngine{w: w}
	c, rec, _ := newController(w, f)
	ctx := context.Background()
	for range 2 {
		if _, err := c.Reconcile(ctx, "app"); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.reasons(); !slices.Equal(got, []string{"ContainerMissing", "Created", "Synced"}) {
		t.Fatalf("records %v", got)
	}
}

type panicGuard struct{}

func (panicGuard) Review(Review) Decision { panic("boom") }

func TestControllerRecoversPanicsAndRetries(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n  other: {image: b}\n"))
	f := &fakeEngine{w: w}
	c, rec, _ := newController(w, f)
	c.Policies = []Policy{{Name: "panics", Decide: panicGuard{}}}
	c.Workers = 2
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, context.Background()); close(done) }()
	waitFor(t, func() bool { return c.Queue.Failures("app") >= 2 && c.Queue.Failures("other") >= 2 })
	cancel()
	<-done
	if !slices.Contains(rec.reasons(), "ReconcilePanic") {
		t.Fatalf("records %v: want ReconcilePanic", rec.reasons())
	}
}

type holdGuard struct{ after time.Duration }

func (g holdGuard) Review(in Review) Decision {
	var hold []*plan.Node
	for _, n := range in.Plan.Nodes {
		if n.Op.Type == plan.OpStartContainer {
			hold = append(hold, n)
		}
	}
	return Decision{Hold: hold, RequeueAfter: g.after}
}

func TestControllerGuardHoldsOperationsBack(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a, deploy: {replicas: 2}}\n"))
	w.add("app", 1, "exited:1")
	f := &fakeEngine{w: w}
	c, _, _ := newController(w, f)
	c.Policies = []Policy{{Name: "holds", Decide: holdGuard{after: 3 * time.Second}}}
	res, err := c.Reconcile(context.Background(), "app")
	after := res.RequeueAfter
	if err != nil {
		t.Fatal(err)
	}
	if after != 3*time.Second {
		t.Errorf("requeue after %s, want the guard's 3s", after)
	}
	if got := strings.Join(f.calls, ","); got != "up app" {
		t.Errorf("calls %q: want the missing replica created and the exited one left alone", got)
	}
}

func TestControllerPatchesASnapshotWithEventsItHasNotCaughtUpWith(t *testing.T) {
	tests := []struct {
		name      string
		fact      observed.Fact
		listed    string // the container as the (stale) list shows it
		state     string // after the patch; "" = gone
		exitCode  int
		health    string
		kept      bool // the fact still waits for the list to catch up
		olderThan time.Duration
	}{
		{"die before the list caught up", observed.Fact{Kind: observed.FactStopped, ExitCode: 137}, "running", "exited", 137, "", true, 0},
		{"list already shows it", observed.Fact{Kind: observed.FactStopped, ExitCode: 137}, "exited:137", "exited", 137, "", false, 0},
		{"start not listed yet", observed.Fact{Kind: observed.FactRunning}, "exited:1", "running", 1, "", true, 0},
		{"destroyed but still listed", observed.Fact{Kind: observed.FactGone}, "running", "", 0, "", true, 0},
		{"health change not listed yet", observed.Fact{Kind: observed.FactUnhealthy}, "running:healthy", "running", 0, "unhealthy", true, 0},
		{"pause not listed yet", observed.Fact{Kind: observed.FactPaused}, "running", "paused", 0, "", true, 0},
		{"unpause not listed yet", observed.Fact{Kind: observed.FactRunning}, "paused", "running", 0, "", true, 0},
		{"a fact too old to trust", observed.Fact{Kind: observed.FactStopped}, "running", "running", 0, "", false, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(load(t, "services:\n  app: {image: a}\n"))
			ctr := w.add("app", 1, tt.listed)
			f := &fakeEngine{w: w}
			c, _, _ := newController(w, f)
			clk := clock.NewFake(time.Unix(0, 0))
			c.Clock = clk
			c.Observed(observed.Event{ContainerID: ctr.ID, Action: actionOf(tt.fact), ExitCode: tt.fact.ExitCode, Health: healthOf(tt.fact)})
			clk.Advance(tt.olderThan)
			snap, err := c.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tt.state == "" {
				if len(snap.Containers) != 0 {
					t.Fatalf("destroyed container still in the snapshot")
				}
			} else {
				got := snap.Containers[0]
				if got.State != tt.state || got.ExitCode != tt.exitCode || got.Health != tt.health {
					t.Errorf("container %s/%d/%q, want %s/%d/%q", got.State, got.ExitCode, got.Health, tt.state, tt.exitCode, tt.health)
				}
			}
			c.snapshots.factMu.Lock()
			_, kept := c.snapshots.facts[ctr.ID]
			c.snapshots.factMu.Unlock()
			if kept != tt.kept {
				t.Errorf("fact kept = %v, want %v", kept, tt.kept)
			}
		})
	}
}

// levels records the levels of log lines.
type levels struct {
	mu  sync.Mutex
	got []slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Message == "reconcile failed" {
		l.got = append(l.got, r.Level)
	}
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

func TestControllerIsQuietAboutFailuresWhileOffline(t *testing.T) {
	for _, tt := range []struct {
		offline bool
		want    slog.Level
	}{{false, slog.LevelError}, {true, slog.LevelDebug}} {
		w := newWorld(load(t, "services:\n  app: {image: a}\n"))
		f := &fakeEngine{w: w}
		c, _, _ := newController(w, f)
		h := &levels{}
		c.Log = slog.New(h)
		c.Observe = func(context.Context) (*observed.Snapshot, error) { return nil, errors.New("connection refused") }
		c.Offline = func() bool { return tt.offline }
		c.processNext(context.Background())
		h.mu.Lock()
		if len(h.got) != 1 || h.got[0] != tt.want {
			t.Errorf("offline %v: levels %v, want [%s]", tt.offline, h.got, tt.want)
		}
		h.mu.Unlock()
	}
}

// actionOf and healthOf make the event that carries a fact.
func actionOf(f observed.Fact) observed.Action {
	switch f.Kind {
	case observed.FactStopped:
		return observed.ActionDie
	case observed.FactRunning:
		return observed.ActionStart
	case observed.FactGone:
		return observed.ActionDestroy
	case observed.FactPaused:
		return observed.ActionPause
	}
	return observed.ActionHealthStatus
}

func healthOf(f observed.Fact) string {
	if f.Kind == observed.FactHealthy || f.Kind == observed.FactUnhealthy {
		return string(f.Kind)
	}
	return ""
}

// accountant records what the executor reported to it.
type accountant struct {
	holdGuard
	mu     sync.Mutex
	events []string
}

func (a *accountant) Begin(op plan.Operation, _ time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, "begin "+op.Type.String()+" "+op.ResourceID)
}

func (a *accountant) Done(op plan.Operation, err error, _ time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, fmt.Sprintf("done %s %s %v", op.Type, op.ResourceID, err != nil))
}

func TestAccountantsHearOnlyWhatRan(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a, deploy: {replicas: 2}}\n"))
	w.add("app", 1, "exited:1")
	f := &fakeEngine{w: w}
	c, _, _ := newController(w, f)
	a := &accountant{holdGuard: holdGuard{after: time.Second}}
	c.Policies = []Policy{{Name: "accounts", Decide: a, Account: a}}
	if _, err := c.Reconcile(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	want := []string{"begin CreateContainer service:app:2", "done CreateContainer service:app:2 false"}
	if !slices.Equal(a.events, want) {
		t.Errorf("accountant heard %v, want %v: the held start is never reported", a.events, want)
	}
	held := c.Pending("app")
	if len(held) != 1 || held[0].Type != plan.OpStartContainer {
		t.Errorf("pending %+v, want the held start", held)
	}
}

// addGuard adds a restart of the first container through the plan builder.
type addGuard struct{}

func (addGuard) Review(in Review) Decision {
	c := in.Snapshot.Containers[0]
	return Decision{Add: []plan.Operation{{Type: plan.OpRestartContainer, ResourceID: plan.ReplicaID(c.Service, c.Number),
		Service: c.Service, Container: c.Name, ContainerID: c.ID, Number: c.Number, Cause: "added"}}}
}

func TestADecisionAddsOperations(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n")).running("app")
	f := &fakeEngine{w: w}
	c, rec, _ := newController(w, f)
	c.Policies = []Policy{{Name: "adds", Decide: addGuard{}}}
	if _, err := c.Reconcile(context.Background(), "app"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, ","); got != "restart id-app-1 timeout=0" {
		t.Errorf("calls %q: want the added restart run", got)
	}
	if !slices.Contains(rec.reasons(), "Restarted") {
		t.Errorf("records %v", rec.reasons())
	}
}

func TestATerminalErrorIsRecordedOnceAndNotRetried(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n"))
	f := &fakeEngine{w: w}
	c, rec, _ := newController(w, f)
	c.Images = missingImages{}
	for range 3 {
		c.queue().Add("app")
		c.processNext(context.Background())
	}
	n := 0
	for _, r := range rec.reasons() {
		if r == "ImageMissing" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("records %v: want ImageMissing once", rec.reasons())
	}
	if c.Queue.Failures("app") != 0 {
		t.Errorf("a terminal error was retried with backoff (%d failures)", c.Queue.Failures("app"))
	}
	if strings.Contains(strings.Join(f.calls, ","), "up app") {
		t.Errorf("calls %v: nothing may be created without its image", f.calls)
	}
}

// missingImages can neither pull nor build.
type missingImages struct{}

func (missingImages) Pull(context.Context, *types.Project, api.PullOptions) error {
	return errors.New("pull access denied")
}
func (missingImages) Build(context.Context, *types.Project, api.BuildOptions) error {
	return errors.New("no build section")
}

func TestReportsKeepOneEntryPerReasonAndContainer(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a}\n"))
	w.add("app", 1, "exited:1")
	c, rec, _ := newController(w, &fakeEngine{w: w})
	for i := range 100 { // a crash loop: a new occurrence each exit
		c.reports.once(c, "app", Report{Reason: "BackOff", Container: "p-app-1", Message: "m", Occurrence: fmt.Sprint(i)})
		c.reports.once(c, "app", Report{Reason: "BackOff", Container: "p-app-1", Message: "m", Occurrence: fmt.Sprint(i)})
	}
	c.reports.mu.Lock()
	entries := len(c.reports.services["app"].last)
	c.reports.mu.Unlock()
	if entries != 1 {
		t.Errorf("%d report entries after 100 occurrences, want 1", entries)
	}
	if n := len(rec.reasons()); n != 100 {
		t.Errorf("%d records, want one per occurrence (100)", n)
	}
}

func TestALastingReportOutlivesAReturnToSync(t *testing.T) {
	tests := []struct {
		lasting bool
		want    int
	}{
		{false, 3}, // told again after each return to sync
		{true, 1},
	}
	for _, tt := range tests {
		w := newWorld(load(t, "services:\n  app: {image: a}\n")).running("app")
		c, rec, _ := newController(w, &fakeEngine{w: w})
		synced := &plan.Result{}
		for range 3 {
			c.reports.once(c, "app", Report{Reason: "RolloutComplete", Message: "m", Occurrence: "h2", Lasting: tt.lasting})
			c.reports.drift(c, "app", synced)
		}
		if n := len(rec.reasons()); n != tt.want {
			t.Errorf("lasting %v: %d records, want %d", tt.lasting, n, tt.want)
		}
	}
}

// countingInspector answers inspects of stopped containers and counts them.
type countingInspector struct{ n atomic.Int32 }

func (c *countingInspector) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	c.n.Add(1)
	return client.ContainerInspectResult{Container: container.InspectResponse{
		State: &container.State{OOMKilled: true, FinishedAt: "2026-01-02T03:04:05Z"},
	}}, nil
}

// TestServedStatusDoesNotMakeTheEngineWork: however many requests ask for
// the status, it comes from the loop's snapshot (no list) and a stopped
// container is inspected once per stop, again only after its next event.
func TestServedStatusDoesNotMakeTheEngineWork(t *testing.T) {
	w := newWorld(load(t, "services:\n  app: {image: a, deploy: {replicas: 2}}\n"))
	w.add("app", 1, "running")
	stopped := w.add("app", 2, "exited:137")
	f := &fakeEngine{w: w}
	c, _, observes := newController(w, f)
	ins := &countingInspector{}
	ctx := context.Background()
	if _, err := c.Reconcile(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	listed := observes.Load()
	for range 50 {
		st, err := c.Served(ctx, ins)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Services) != 1 {
			t.Fatalf("status %+v", st)
		}
	}
	if got := observes.Load() - listed; got != 0 {
		t.Errorf("50 requests listed %d times, want 0 (the loop's snapshot)", got)
	}
	if got := ins.n.Load(); got != 1 {
		t.Errorf("50 requests made %d inspects of the one stopped container, want 1", got)
	}
	st, _ := c.Served(ctx, ins)
	found := false
	for _, r := range st.Services[0].Containers {
		if r.Name == stopped.Name {
			found = strings.HasPrefix(r.LastExit, "OOMKilled")
		}
	}
	if !found {
		t.Errorf("the stopped replica is not explained: %+v", st.Services[0].Containers)
	}
	c.Observed(observed.Event{Action: observed.ActionDie, ContainerID: stopped.ID})
	if _, err := c.Served(ctx, ins); err != nil {
		t.Fatal(err)
	}
	if got := ins.n.Load(); got != 2 {
		t.Errorf("after the container's event, %d inspects in all, want 2", got)
	}
}
