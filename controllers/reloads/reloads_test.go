package reloads

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed"
	"github.com/reconcile-dev/reconcile/reconciler"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func loadFile(t *testing.T, file string) *desired.State {
	t.Helper()
	return desiredtest.LoadFile(t, file)
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

// fakeActor does what the executor would, as the test says: an exec whose
// command is in fail exits with that code.
type fakeActor struct {
	ops  []string
	fail map[string]int
}

func (a *fakeActor) Act(_ context.Context, ops ...plan.Operation) error {
	for _, op := range ops {
		a.ops = append(a.ops, op.Type.String()+" "+op.Container+" "+strings.Join(op.Command, " ")+op.Signal)
		if st, ok := op.Payload.(Step); !ok || st.Why == "" {
			return fmt.Errorf("%s without the reload's step", op.Type)
		}
		if code, ok := a.fail[strings.Join(op.Command, " ")]; ok && op.Type == plan.OpExec {
			return &execute.ExecError{ExitCode: code, Stderr: "bad line 3"}
		}
	}
	return nil
}

type recorder struct{ reasons []string }

func (r *recorder) Event(reason record.Reason, _, _, _ string) {
	r.reasons = append(r.reasons, string(reason))
}

func TestAReloadRunsInTheServicesReconcileThroughTheExecutor(t *testing.T) {
	tests := []struct {
		name    string
		policy  string
		fail    map[string]int
		want    []string
		records []string
	}{
		{"check, then exec on each replica", `{check: ["t", "check"], exec: ["t", "reload"]}`, nil,
			[]string{"Exec p-app-1 t check", "Exec p-app-2 t check", "Exec p-app-1 t reload", "Exec p-app-2 t reload"},
			[]string{"Reloaded", "Reloaded"}},
		{"a failed check reloads nothing", `{check: ["t", "check"], exec: ["t", "reload"]}`, map[string]int{"t check": 1},
			[]string{"Exec p-app-1 t check"}, []string{"ReloadRejected"}},
		{"a failed reload is said per replica", `{exec: ["t", "reload"]}`, map[string]int{"t reload": 2},
			[]string{"Exec p-app-1 t reload", "Exec p-app-2 t reload"}, []string{"ReloadFailed", "ReloadFailed"}},
		{"a signal goes through the engine", `{signal: SIGHUP}`, nil,
			[]string{"Signal p-app-1 SIGHUP", "Signal p-app-2 SIGHUP"}, []string{"Reloaded", "Reloaded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "compose.yaml")
			if err := os.WriteFile(file, []byte("services:\n  app:\n    image: a\n    deploy: {replicas: 2}\n    x-reconcile: {reload: "+tt.policy+"}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			d := loadFile(t, file)
			snap := &observed.Snapshot{Containers: []observed.Container{
				{ID: "1", Name: "p-app-1", Service: "app", Number: 1, State: observed.StateRunning},
				{ID: "2", Name: "p-app-2", Service: "app", Number: 2, State: observed.StateRunning},
			}}
			rec := &recorder{}
			r := &Reloads{Records: rec, Observe: func(context.Context) (*observed.Snapshot, error) { return snap, nil }}
			act := &fakeActor{fail: tt.fail}
			in := reconciler.Review{Desired: d, Snapshot: snap, Service: "app"}
			// nothing owed: nothing done
			if _, err := r.Sync(context.Background(), in, act); err != nil || len(act.ops) != 0 {
				t.Fatalf("nothing owed: %v, %v", act.ops, err)
			}
			r.Changed("app", "changed: app.conf")
			if _, err := r.Sync(context.Background(), in, act); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(act.ops, tt.want) {
				t.Errorf("asked the executor for %q, want %q", act.ops, tt.want)
			}
			if !slices.Equal(rec.reasons, tt.records) {
				t.Errorf("records %v, want %v", rec.reasons, tt.records)
			}
			// done: not again until the next change
			n := len(act.ops)
			if _, err := r.Sync(context.Background(), in, act); err != nil || len(act.ops) != n {
				t.Errorf("a second look reloaded again: %v", act.ops[n:])
			}
		})
	}
}
