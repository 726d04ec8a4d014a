package restarts

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"

	"github.com/moby/moby/api/types/events"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

var zeroTime = time.Unix(1_000_000, 0)

func load(t *testing.T, yaml string) *desired.State {
	t.Helper()
	return desiredtest.Load(t, yaml)
}

type memStore struct {
	mu   sync.Mutex
	data []byte
}

func (m *memStore) Load() ([]byte, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.data, nil }
func (m *memStore) Save(b []byte) error   { m.mu.Lock(); defer m.mu.Unlock(); m.data = b; return nil }

type memRecorder struct{ reasons []string }

func (m *memRecorder) Event(reason record.Reason, _, _, _ string) {
	m.reasons = append(m.reasons, string(reason))
}

// rig drives a Restarts through events and reviews on a fake clock, with
// one container per service whose state the test sets.
type rig struct {
	t     *testing.T
	d     *desired.State
	clk   *clock.Fake
	store *memStore
	rec   *memRecorder
	r     *Restarts
	ctrs  map[string]*observed.Container
	// exp is the controller's part: it tells the policy which events are
	// the reconciler's own.
	exp reconciler.Expectations
}

func newRig(t *testing.T, yaml string) *rig {
	g := &rig{t: t, d: load(t, yaml), clk: clock.NewFake(time.Unix(1_000_000, 0)), store: &memStore{}, rec: &memRecorder{}, ctrs: map[string]*observed.Container{}}
	g.restart()
	for _, name := range g.d.Order {
		g.ctrs[name] = &observed.Container{
			ID: "id-" + name, Name: "p-" + name + "-1", Service: name, Number: 1, State: observed.StateRunning,
			ConfigHash: plan.ExpectedHash(g.d.Services[name].Config, nil), Networks: map[string]string{"p_default": "n"},
		}
	}
	return g
}

// restart is a new reconciler process over the same state file.
func (g *rig) restart() {
	if g.r != nil {
		if err := g.r.Close(); err != nil { // what a SIGKILL would leave: the writer is ms behind
			g.t.Fatal(err)
		}
	}
	r, err := New(g.clk, g.store, nil, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { r.Close() })
	g.r = r
}

func (g *rig) event(service, action string, attrs ...string) {
	a := map[string]string{api.ServiceLabel: service, api.ContainerNumberLabel: "1"}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	msg := events.Message{Type: "container", Action: events.Action(action), Actor: events.Actor{ID: "id-" + service, Attributes: a}, TimeNano: g.clk.Now().UnixNano()}
	g.r.Learn(g.exp.Observe(observed.Decode(msg, g.clk.Now()), g.clk.Now()), g.d)
}

// the engine's events for each cause, and the state the container ends in
func (g *rig) dockerKill(s string) {
	g.event(s, "kill", "signal", "9")
	g.event(s, "die", "exitCode", "137")
	g.set(s, "exited", 137)
}

func (g *rig) dockerStop(s string) {
	g.event(s, "kill", "signal", "15")
	g.event(s, "die", "exitCode", "143")
	g.event(s, "stop")
	g.set(s, "exited", 143)
}

func (g *rig) crash(s string, code int) {
	g.event(s, "die", "exitCode", strconv.Itoa(code))
	g.set(s, "exited", code)
}

func (g *rig) started(s string) {
	g.event(s, "start")
	g.set(s, "running", 0)
}

func (g *rig) set(s, state string, code int) {
	c := g.ctrs[s]
	c.State, c.ExitCode = state, code
	if state != "running" {
		c.Health = ""
	}
}

// review runs the guard on the service's plan and returns the operations
// it lets through and how soon it wants another look.
func (g *rig) snapshot() *observed.Snapshot {
	snap := &observed.Snapshot{Project: "p", Images: map[string]string{}, Networks: []observed.Network{{ID: "n", Name: "p_default", Key: "default"}}}
	for _, name := range g.d.Order {
		if c := g.ctrs[name]; c != nil { // nil: removed
			snap.Containers = append(snap.Containers, *c)
		}
	}
	return snap
}

// It does what the controller does around a review: shows the policy the
// fresh list, records the decision's reports, and reports each allowed
// operation begun and done, as the executor would.
//
// The engine-policy switches (SetRestartPolicy) are applied but left out
// of the string; reviewAll lists them too, for the tests about them.
func (g *rig) review(s string) (string, time.Duration) {
	return g.reviewOps(s, false)
}

func (g *rig) reviewAll(s string) (string, time.Duration) {
	return g.reviewOps(s, true)
}

func (g *rig) reviewOps(s string, all bool) (string, time.Duration) {
	snap := g.snapshot()
	g.r.Listed(snap)
	p := plan.Diff(g.d, snap, plan.Options{}).Plan.ForService(s)
	dec := g.r.Review(reconciler.Review{Desired: g.d, Snapshot: snap, Service: s, Plan: p, Now: g.clk.Now()})
	for _, rep := range dec.Reports {
		g.rec.Event(rep.Reason, s, rep.Container, rep.Message)
	}
	allowed := dec.Apply(p)
	var ops []string
	for _, n := range allowed.Nodes {
		g.exp.Expect(n.Op, g.clk.Now())
		g.r.Begin(n.Op, g.clk.Now())
		g.exp.Done(n.Op, nil)
		g.r.Done(n.Op, nil, g.clk.Now())
		if n.Op.Type == plan.OpSetRestartPolicy && !all {
			continue
		}
		ops = append(ops, n.Op.Type.String()+" "+n.Op.Service)
	}
	return strings.Join(ops, ","), dec.RequeueAfter
}

func TestRestartPolicyMatrix(t *testing.T) {
	const start, none = "StartContainer api", ""
	tests := []struct {
		policy string
		cause  func(g *rig)
		want   string
	}{
		{"restart: \"no\"", func(g *rig) { g.dockerKill("api") }, none},
		{"restart: \"no\"", func(g *rig) { g.crash("api", 1) }, none},
		{"restart: always", func(g *rig) { g.dockerKill("api") }, start},
		{"restart: always", func(g *rig) { g.dockerStop("api") }, none},
		{"restart: always", func(g *rig) { g.crash("api", 0) }, start},
		{"restart: unless-stopped", func(g *rig) { g.dockerKill("api") }, start},
		{"restart: unless-stopped", func(g *rig) { g.dockerStop("api") }, none},
		{"restart: on-failure:3", func(g *rig) { g.dockerKill("api") }, start},
		{"restart: on-failure:3", func(g *rig) { g.crash("api", 0) }, none},
		{"restart: on-failure:3", func(g *rig) { g.crash("api", 2) }, start},
		{"restart: on-failure:3", func(g *rig) { g.dockerStop("api") }, none},
		{"deploy: {restart_policy: {condition: on-failure, max_attempts: 2}}", func(g *rig) { g.dockerKill("api") }, start},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			g := newRig(t, "services:\n  api:\n    image: a\n    "+tt.policy+"\n")
			g.started("api")
			tt.cause(g)
			if got, _ := g.review("api"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOnFailureKilledFourTimesRestartsThreeTimesWithBackoff(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:3\n")
	g.started("api")
	waits := []time.Duration{0, time.Second, 2 * time.Second}
	for i, wait := range waits {
		g.dockerKill("api")
		ops, after := g.review("api")
		if wait > 0 {
			if ops != "" || after != wait {
				t.Fatalf("kill %d: %q after %s; want a wait of %s", i+1, ops, after, wait)
			}
			g.clk.Advance(wait)
			ops, _ = g.review("api")
		}
		if ops != "StartContainer api" {
			t.Fatalf("kill %d: %q, want a start", i+1, ops)
		}
		g.started("api")
	}
	g.dockerKill("api")
	g.clk.Advance(time.Hour)
	if ops, after := g.review("api"); ops != "" || after != 0 {
		t.Fatalf("fourth kill: %q, requeue %s; want it left down", ops, after)
	}
	if !slices.Contains(g.rec.reasons, "RestartBudgetExhausted") {
		t.Errorf("records %v: want RestartBudgetExhausted", g.rec.reasons)
	}
	st := plan.ProjectStatus{Services: []plan.ServiceStatus{{Service: "api", Health: plan.Degraded, Containers: []plan.ContainerStatus{{Name: "p-api-1", Number: 1, State: "exited"}}}}}
	g.r.Annotate(&st, g.d, g.clk.Now())
	ss := st.Services[0]
	if ss.Reason != "RestartBudgetExhausted" || ss.RestartsUsed != 3 || ss.RestartsAllowed != 3 || !strings.Contains(ss.LastExit, "signal 9") {
		t.Errorf("status %+v", ss)
	}
}

func TestBudgetAndBackoffSurviveARestartOfTheReconciler(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:3\n")
	g.started("api")
	g.dockerKill("api")
	if ops, _ := g.review("api"); ops == "" {
		t.Fatal("first kill not restarted")
	}
	g.started("api")
	g.dockerKill("api")
	if _, after := g.review("api"); after != time.Second {
		t.Fatalf("want a backoff of 1s, got %s", after)
	}
	g.clk.Advance(300 * time.Millisecond)
	g.restart() // SIGKILLed and started again
	if ops, after := g.review("api"); ops != "" || after != 700*time.Millisecond {
		t.Fatalf("after restart: %q in %s; want the remaining 700ms of backoff", ops, after)
	}
	slot := g.r.Slots()["api#1"]
	if used := slot.used(g.clk.Now(), g.d.Services["api"].Policy.Restart); used != 1 {
		t.Fatalf("restarts used %d after the reconciler restarted, want 1", used)
	}
}

func TestStopGraceWaitsForTheStopEvent(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n")
	g.started("api")
	// docker kill -s TERM: a polite signal, but no stop event follows
	g.event("api", "kill", "signal", "15")
	g.event("api", "die", "exitCode", "143")
	g.set("api", "exited", 143)
	if ops, after := g.review("api"); ops != "" || after != DefaultStopGrace {
		t.Fatalf("%q in %s: want a wait for a stop event", ops, after)
	}
	g.clk.Advance(DefaultStopGrace)
	if ops, _ := g.review("api"); ops != "StartContainer api" {
		t.Fatalf("no stop came: %q, want a start", ops)
	}
}

// TestAStopWhoseGraceRanOutIsAStop: docker stop sends its signal, then
// SIGKILL when the grace runs out, then its stop event; the SIGKILL is not
// a docker kill, so the die waits for the stop, which leaves it down.
func TestAStopWhoseGraceRanOutIsAStop(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n")
	g.started("api")
	g.event("api", "kill", "signal", "15")
	g.clk.Advance(10 * time.Second) // the grace
	g.event("api", "kill", "signal", "9")
	g.event("api", "die", "exitCode", "137")
	g.set("api", "exited", 137)
	if ops, after := g.review("api"); ops != "" || after != DefaultStopGrace {
		t.Fatalf("%q in %s: want a wait for a stop event", ops, after)
	}
	g.event("api", "stop")
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("a stop whose grace ran out: %q, want it left down", ops)
	}
}

func TestEngineRestartsAreCountedAndBudgetResetsAfterAHealthyRun(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n    healthcheck: {test: [CMD, x], interval: 1s}\n")
	g.started("api")
	for range 2 { // crashes the engine restarts itself
		g.crash("api", 1)
		g.started("api")
	}
	if n := len(g.r.Slots()["api#1"].Restarts); n != 2 {
		t.Fatalf("engine restarts counted %d, want 2", n)
	}
	g.event("api", "health_status: healthy")
	g.clk.Advance(desired.DefaultResetAfter)
	g.crash("api", 1)
	if n := len(g.r.Slots()["api#1"].Restarts); n != 0 {
		t.Fatalf("a healthy run of %s left %d restarts counted", desired.DefaultResetAfter, n)
	}
}

func TestUnknownExitAtStartUpMirrorsTheEngine(t *testing.T) {
	for policy, want := range map[string]string{"always": "StartContainer api", "unless-stopped": "", "on-failure": ""} {
		t.Run(policy, func(t *testing.T) {
			g := newRig(t, "services:\n  api:\n    image: a\n    restart: "+policy+"\n")
			g.set("api", "exited", 1) // exited while no reconciler watched
			g.r.Relisted(g.snapshot())
			if ops, _ := g.review("api"); ops != want {
				t.Errorf("%q, want %q", ops, want)
			}
		})
	}
}

func TestAnExitListedBeforeItsEventsWaitsForThem(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n")
	g.started("api")
	g.set("api", "exited", 0) // a docker stop: the list shows it before the events arrive
	if ops, after := g.review("api"); ops != "" || after != 100*time.Millisecond {
		t.Fatalf("%q in %s: want a short wait for the die event", ops, after)
	}
	g.clk.Advance(100 * time.Millisecond)
	g.dockerStop("api") // the events arrive: a graceful stop
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("%q: a docker stop must stay down", ops)
	}
	if !slices.Contains(g.rec.reasons, "StoppedByUser") {
		t.Errorf("records %v", g.rec.reasons)
	}

	// events that never come (lost): after EventWait the cause is unknown
	g2 := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n")
	g2.started("api")
	g2.set("api", "exited", 1)
	g2.review("api")
	g2.clk.Advance(EventWait)
	if ops, _ := g2.review("api"); ops != "StartContainer api" {
		t.Fatalf("%q: after %s without events, always restarts", ops, EventWait)
	}
}

func TestUnhealthyIsRestartedUnderTheBudget(t *testing.T) {
	for _, tt := range []struct {
		extra string
		want  string
	}{
		{"", "RestartContainer api"},
		{"    x-reconcile: {restart: {on_unhealthy: false}}\n", ""},
	} {
		g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n    healthcheck: {test: [CMD, x], interval: 1s}\n"+tt.extra)
		g.started("api")
		g.ctrs["api"].Health = "unhealthy"
		if ops, _ := g.review("api"); ops != tt.want {
			t.Errorf("%q: %q, want %q", tt.extra, ops, tt.want)
		}
	}
}

func TestCascadeWaitsForTheDependencyToBeHealthyAgain(t *testing.T) {
	g := newRig(t, `
services:
  db:
    image: a
    restart: always
    healthcheck: {test: [CMD, x], interval: 1s}
  api:
    image: a
    depends_on: {db: {condition: service_healthy, restart: true}}
  web:
    image: a
    depends_on: {db: {condition: service_healthy}}
`)
	for _, s := range []string{"db", "api", "web"} {
		g.started(s)
	}
	g.ctrs["db"].Health = "healthy"
	g.event("db", "health_status: healthy")
	g.clk.Advance(time.Second)
	g.crash("db", 1)
	g.started("db")                 // the engine restarted it
	g.ctrs["db"].Health = "healthy" // a list that still shows the old health
	if ops, after := g.review("api"); ops != "" || after != time.Second {
		t.Fatalf("api before db is healthy again: %q in %s", ops, after)
	}
	g.clk.Advance(time.Second)
	g.event("db", "health_status: healthy")
	if ops, _ := g.review("api"); ops != "RestartContainer api" {
		t.Fatalf("api after db is healthy again: %q, want a restart", ops)
	}
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("api restarted twice: %q", ops)
	}
	if ops, _ := g.review("web"); ops != "" {
		t.Fatalf("web has no restart: true but got %q", ops)
	}
}

func TestStatusShowsNextAttempt(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:5\n")
	g.started("api")
	g.dockerKill("api")
	g.review("api")
	g.started("api")
	g.dockerKill("api")
	g.review("api")
	st := plan.ProjectStatus{Services: []plan.ServiceStatus{{Service: "api", Containers: []plan.ContainerStatus{{Number: 1, State: "exited"}}}}}
	g.r.Annotate(&st, g.d, g.clk.Now())
	ss := st.Services[0]
	if ss.NextAttempt == nil || !ss.NextAttempt.Equal(g.clk.Now().Add(time.Second)) || ss.RestartsUsed != 1 || ss.RestartsAllowed != 5 {
		t.Errorf("status %+v", ss)
	}
}

func TestReviewDecidesAndChangesNothing(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:3\n")
	g.started("api")
	g.dockerKill("api")
	before := g.r.Slots()
	snap := g.snapshot()
	p := plan.Diff(g.d, snap, plan.Options{}).Plan.ForService("api")
	in := reconciler.Review{Desired: g.d, Snapshot: snap, Service: "api", Plan: p, Now: g.clk.Now()}
	first, second := g.r.Review(in), g.r.Review(in)
	if len(first.Hold) != 0 || len(second.Hold) != 0 {
		t.Fatalf("a docker kill within budget must be allowed, twice alike: %+v, %+v", first, second)
	}
	if after := g.r.Slots(); !reflect.DeepEqual(before, after) {
		t.Errorf("Review changed the restart state:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestOnlyARestartTheExecutorReportsDoneIsCounted(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:3\n")
	g.started("api")
	g.dockerKill("api")
	start := plan.Operation{Type: plan.OpStartContainer, Service: "api", Number: 1, ContainerID: "id-api", ResourceID: plan.ReplicaID("api", 1)}
	g.exp.Expect(start, g.clk.Now())
	g.r.Begin(start, g.clk.Now())
	g.exp.Done(start, errors.New("engine said no"))
	g.r.Done(start, errors.New("engine said no"), g.clk.Now())
	if n := len(g.r.Slots()["api#1"].Restarts); n != 0 {
		t.Fatalf("a failed start counted %d restarts, want 0", n)
	}
	// the retry goes ahead at once: the failure cost no budget and no backoff
	if ops, after := g.review("api"); ops != "StartContainer api" || after != 0 {
		t.Fatalf("after a failed start: %q in %s, want a start now", ops, after)
	}
	if n := len(g.r.Slots()["api#1"].Restarts); n != 1 {
		t.Fatalf("a start reported done counted %d restarts, want 1", n)
	}
	g.started("api") // the start event of that start: ours, not counted again
	if n := len(g.r.Slots()["api#1"].Restarts); n != 1 {
		t.Fatalf("the start event of the reconciler's own start counted again: %d", n)
	}
}

func TestACrashLoopKeepsOneReportPerOccurrence(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:1\n")
	g.started("api")
	g.dockerKill("api")
	g.review("api")
	g.started("api")
	g.dockerKill("api")
	snap := g.snapshot()
	p := plan.Diff(g.d, snap, plan.Options{}).Plan.ForService("api")
	in := reconciler.Review{Desired: g.d, Snapshot: snap, Service: "api", Plan: p, Now: g.clk.Now()}
	a, b := g.r.Review(in), g.r.Review(in)
	if len(a.Reports) != 1 || a.Reports[0].Reason != record.RestartBudgetExhausted || a.Reports[0] != b.Reports[0] {
		t.Errorf("reports %+v then %+v: want one RestartBudgetExhausted, the same occurrence each time", a.Reports, b.Reports)
	}
}

func TestASpentBudgetEndsTheEnginesOwnRestartLoop(t *testing.T) {
	for _, policy := range []string{"always", "unless-stopped"} {
		t.Run(policy, func(t *testing.T) {
			g := newRig(t, "services:\n  api:\n    image: a\n    restart: "+policy+"\n    x-reconcile: {restart: {max_attempts: 3}}\n")
			g.started("api")
			for range 3 { // crashes the engine restarts by itself
				g.crash("api", 1)
				g.set("api", "restarting", 1) // what the engine shows until its backoff ends
				if ops, _ := g.review("api"); ops != "" {
					t.Fatalf("within budget: %q, want the engine left to restart it", ops)
				}
				g.started("api")
			}
			g.crash("api", 1) // the fourth: the engine would restart it again
			g.set("api", "restarting", 1)
			if ops, _ := g.review("api"); ops != "StopContainer api" {
				t.Fatalf("budget spent: %q, want the engine's loop ended", ops)
			}
			// the stop's events are the reconciler's own, not the user's
			g.event("api", "kill", "signal", "15")
			g.event("api", "die", "exitCode", "1")
			g.event("api", "stop")
			g.set("api", "exited", 1)
			slot := g.r.Slots()["api#1"]
			if !slot.HeldDown || slot.StoppedByUser {
				t.Fatalf("slot %+v: want held down, not stopped by the user", slot)
			}
			g.clk.Advance(time.Hour)
			if ops, _ := g.review("api"); ops != "" {
				t.Fatalf("held down: %q, want it left down", ops)
			}
			n := 0
			for _, r := range g.rec.reasons {
				if r == "RestartBudgetExhausted" {
					n++
				}
			}
			// the rig records every report; the controller records one per
			// occurrence: the same occurrence each time here
			snap := g.snapshot()
			p := plan.Diff(g.d, snap, plan.Options{}).Plan.ForService("api")
			dec := g.r.Review(reconciler.Review{Desired: g.d, Snapshot: snap, Service: "api", Plan: p, Now: g.clk.Now()})
			if n == 0 || len(dec.Reports) != 1 || dec.Reports[0].Occurrence != report(record.RestartBudgetExhausted, *g.ctrs["api"], slot.spentAt(), "").Occurrence {
				t.Errorf("reports %+v (%d so far): want one RestartBudgetExhausted occurrence for the whole exhaustion", dec.Reports, n)
			}
			st := plan.ProjectStatus{Services: []plan.ServiceStatus{{Service: "api", Containers: []plan.ContainerStatus{{Number: 1, State: "exited"}}}}}
			g.r.Annotate(&st, g.d, g.clk.Now())
			if st.Services[0].Reason != "RestartBudgetExhausted" {
				t.Errorf("status %+v", st.Services[0])
			}
			// the user starts it: a fresh budget, and the engine restarts
			// its next crash again
			g.started("api")
			if s := g.r.Slots()["api#1"]; s.HeldDown || len(s.Restarts) != 0 {
				t.Fatalf("after the user's start: %+v, want a fresh budget", s)
			}
			g.crash("api", 1)
			g.set("api", "restarting", 1)
			if ops, _ := g.review("api"); ops != "" {
				t.Fatalf("fresh budget: %q, want the engine left to restart it", ops)
			}
		})
	}
}

func TestADockerKillIsNotTakenForTheEnginesLoop(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n    x-reconcile: {restart: {max_attempts: 1}}\n")
	g.started("api")
	g.dockerKill("api")
	g.review("api") // within budget: started
	g.started("api")
	g.dockerKill("api") // the engine leaves it down: nothing to stop
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("%q: a killed container is already down", ops)
	}
}

// asideStore is a memStore that can move its content aside, as the state
// file does.
type asideStore struct {
	memStore
	moved []byte
}

func (a *asideStore) MoveAside(time.Time) (string, error) {
	a.moved, a.data = a.data, nil
	return "state.json.corrupt", nil
}

func TestAnUnreadableStateFileIsMovedAsideAndCountsStartAnew(t *testing.T) {
	for name, data := range map[string]string{
		"garbage":     "\x00\x01not json",
		"truncated":   `{"slots": [{"service": "api", "number": 1, "restarts": ["2026-`,
		"wrong shape": `{"slots": 5}`,
		"no replica":  `{"slots": [{"service": "", "number": 0}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			st := &asideStore{memStore: memStore{data: []byte(data)}}
			r, err := New(clock.NewFake(zeroTime), st, nil, nil)
			if err != nil {
				t.Fatalf("New: %v; want the daemon to start", err)
			}
			defer r.Close()
			if r.Discarded != "state.json.corrupt" || r.DiscardedBecause == nil || string(st.moved) != data || len(r.Slots()) != 0 {
				t.Errorf("discarded %q (%v), moved %q, slots %d: want the file kept aside and no counts", r.Discarded, r.DiscardedBecause, st.moved, len(r.Slots()))
			}
		})
	}
	// a store that cannot move a file aside (status reads, never writes)
	if _, err := New(clock.NewFake(zeroTime), &memStore{data: []byte("garbage")}, nil, nil); err == nil {
		t.Error("a read-only store with an unreadable state: want an error, not a silent reset")
	}
	// a good file from before a field was dropped still reads
	old := &asideStore{memStore: memStore{data: []byte(`{"slots": [{"service": "api", "number": 1, "exhausted": true, "restarts": ["2026-11-28T10:00:00Z"]}]}`)}}
	r, err := New(clock.NewFake(zeroTime), old, nil, nil)
	if err != nil || r.Discarded != "" || len(r.Slots()["api#1"].Restarts) != 1 {
		t.Errorf("an older state file: %v, discarded %q", err, r.Discarded)
	}
	r.Close()
}

func TestAUsersStartAfterASpentBudgetIsNotTheEngines(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:3\n")
	g.started("api")
	for range 3 {
		g.dockerKill("api")
		g.clk.Advance(time.Minute) // past any backoff
		g.review("api")
		g.started("api")
	}
	g.dockerKill("api") // the fourth: the budget is spent, left down
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("%q: want it left down", ops)
	}
	g.started("api") // the user's docker start: not a restart to stop
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("after the user's start: %q, want it left running", ops)
	}
	if s := g.r.Slots()["api#1"]; len(s.Restarts) != 0 || s.OverBudget {
		t.Errorf("slot %+v: the user's start is neither counted nor over budget", s)
	}
}

func TestAContainerBeingStoppedIsNotRestartedForItsHealth(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n    healthcheck: {test: [CMD, x], interval: 1s}\n")
	g.started("api")
	g.event("api", "kill", "signal", "15") // docker stop: SIGTERM sent
	g.ctrs["api"].Health = "unhealthy"     // the stopping process fails its check
	g.event("api", "health_status: unhealthy")
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("%q: a container being stopped must not be restarted", ops)
	}
	g.event("api", "die", "exitCode", "0")
	g.event("api", "stop")
	g.set("api", "exited", 0)
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("%q: the user's stop holds", ops)
	}
}

func TestAReplicaStoppedThenRemovedIsLeftAbsent(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n")
	hash := g.ctrs["api"].ConfigHash
	g.started("api")
	g.dockerStop("api")                                  // docker compose down: a graceful stop...
	g.event("api", "destroy", api.ConfigHashLabel, hash) // ...then the removal
	delete(g.ctrs, "api")
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("%q: a replica the user took down must not be created again", ops)
	}
	if !slices.Contains(g.rec.reasons, "RemovedByUser") {
		t.Errorf("records %v: want RemovedByUser", g.rec.reasons)
	}
	// a docker rm -f of a running replica is repaired, as before
	g2 := newRig(t, "services:\n  api:\n    image: a\n    restart: always\n")
	g2.started("api")
	g2.event("api", "kill", "signal", "9")
	g2.event("api", "die", "exitCode", "137")
	g2.event("api", "destroy", api.ConfigHashLabel, g2.ctrs["api"].ConfigHash)
	delete(g2.ctrs, "api")
	if ops, _ := g2.review("api"); ops != "CreateContainer api" {
		t.Fatalf("%q: a removed replica the user had not stopped is created again", ops)
	}
	// a new definition ends the hold
	g.d.Services["api"].Config.Environment = types.NewMappingWithEquals([]string{"NEW=1"})
	if ops, _ := g.review("api"); ops != "CreateContainer api" {
		t.Fatalf("%q: a changed definition is created", ops)
	}
}

// TestTheLastRestartOfABudgetIsTakenFromTheEngine: once the engine's own
// restarts leave one in the budget, the replica's restart policy is turned
// off; the reconciler makes the last restart itself, the crash after it is
// left down without a stop racing the engine, and a start by the user
// brings the compose file's policy back.
func TestTheLastRestartOfABudgetIsTakenFromTheEngine(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:5\n    x-reconcile: {restart: {max_attempts: 3}}\n")
	g.started("api")
	policyOps := func() []plan.Operation {
		snap := g.snapshot()
		p := plan.Diff(g.d, snap, plan.Options{}).Plan.ForService("api")
		dec := g.r.Review(reconciler.Review{Desired: g.d, Snapshot: snap, Service: "api", Plan: p, Now: g.clk.Now()})
		return dec.Add
	}
	for i := range 2 { // two crashes the engine restarts by itself
		g.crash("api", 1)
		g.set("api", "restarting", 1)
		if ops, _ := g.review("api"); ops != "" {
			t.Fatalf("crash %d: %q, want the engine left to restart it", i+1, ops)
		}
		g.started("api")
	}
	add := policyOps()
	if len(add) != 1 || add[0].Type != plan.OpSetRestartPolicy || add[0].RestartPolicy != "no" {
		t.Fatalf("one restart left: %+v, want the container's restart policy turned off", add)
	}
	if ops, _ := g.reviewAll("api"); ops != "SetRestartPolicy api" || !g.r.Slots()["api#1"].EngineRestartsOff {
		t.Fatalf("%q, slot %+v", ops, g.r.Slots()["api#1"])
	}
	if ops, _ := g.reviewAll("api"); ops != "" {
		t.Fatalf("set once: %q", ops)
	}
	// the third crash: the engine, told "no", leaves it; the reconciler
	// makes the last restart after its backoff
	g.crash("api", 1)
	ops, after := g.review("api")
	if ops != "" || after <= 0 {
		t.Fatalf("the third crash: %q after %s, want the backoff waited", ops, after)
	}
	g.clk.Advance(after)
	if ops, _ := g.review("api"); ops != "StartContainer api" {
		t.Fatalf("the last restart: %q, want the reconciler to make it", ops)
	}
	g.started("api")
	// the fourth crash: left down, no stop needed
	g.crash("api", 1)
	g.clk.Advance(time.Hour)
	if ops, _ := g.review("api"); ops != "" {
		t.Fatalf("budget spent: %q, want it left down", ops)
	}
	if n := strings.Count(strings.Join(g.rec.reasons, ","), "RestartBudgetExhausted"); n == 0 {
		t.Error("no RestartBudgetExhausted record")
	}
	// the user starts it: a fresh budget and the compose file's policy
	g.started("api")
	add = policyOps()
	if len(add) != 1 || add[0].RestartPolicy != "on-failure" || add[0].RestartRetries != 5 {
		t.Fatalf("after the user's start: %+v, want on-failure:5 back", add)
	}
	g.review("api")
	if g.r.Slots()["api#1"].EngineRestartsOff {
		t.Error("the policy is still marked off after it was restored")
	}
}

func TestOwnRemovalsAreNeverAPersonsDown(t *testing.T) {
	remove := plan.Operation{Type: plan.OpRemoveContainer, Service: "api", Number: 1, ContainerID: "id-api", ResourceID: plan.ReplicaID("api", 1)}
	recreate := remove
	recreate.Type = plan.OpRecreateContainer
	tests := []struct {
		name string
		ours *plan.Operation // the operation of ours the events come from; nil: a person's
		// want: the replica is created again, and its slot (budget
		// included) is kept
		wantCreate, wantBudget bool
	}{
		{"a person's stop then rm: left absent, and remembered", nil, false, true},
		{"our prune of an extra replica (or an orphan, or a rollout's old replica)", &remove, true, false},
		{"our recreate: the replica lives on, and its budget with it", &recreate, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:3\n")
			g.started("api")
			g.dockerKill("api")
			g.review("api") // one restart used
			g.started("api")
			if tt.ours != nil {
				g.exp.Expect(*tt.ours, g.clk.Now())
			}
			g.dockerStop("api")
			g.event("api", "destroy")
			g.ctrs["api"] = nil
			ops, _ := g.review("api")
			if created := ops == "CreateContainer api"; created != tt.wantCreate {
				t.Errorf("after the removal: %q, want created again %v", ops, tt.wantCreate)
			}
			slot, ok := g.r.Slots()["api#1"]
			if kept := ok && len(slot.Restarts) == 1; kept != tt.wantBudget {
				t.Errorf("slot %+v (%v): want the budget kept %v", slot, ok, tt.wantBudget)
			}
			left := g.r.LeftDown(g.d, "api", g.snapshot(), g.clk.Now())
			if absent := left.Absent == 1; absent == tt.wantCreate {
				t.Errorf("left down %+v: a person's removal is left absent, ours is not", left)
			}
		})
	}
}

func TestLeftDownNamesTheReplicasLeftDownOnPurpose(t *testing.T) {
	g := newRig(t, "services:\n  api:\n    image: a\n    restart: on-failure:1\n  web:\n    image: w\n    restart: always\n")
	g.started("api")
	g.started("web")
	g.dockerKill("api")
	g.review("api") // the one restart
	g.started("api")
	g.dockerKill("api") // spent: left down
	g.review("api")
	g.dockerStop("web") // a person's stop
	for svc, want := range map[string]string{"api": "RestartBudgetExhausted", "web": "StoppedByUser"} {
		left := g.r.LeftDown(g.d, svc, g.snapshot(), g.clk.Now())
		if got := left.Containers["id-"+svc]; got != want {
			t.Errorf("%s left down %+v, want %s", svc, left, want)
		}
	}
	g.started("web") // started again: no longer left down
	if left := g.r.LeftDown(g.d, "web", g.snapshot(), g.clk.Now()); !left.Empty() {
		t.Errorf("web running, left down %+v", left)
	}
}
