package execute

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// fakeExec answers every exec with one exit code and stderr text, and
// remembers the options of each.
type fakeExec struct {
	code   int
	stderr string
	calls  []client.ExecCreateOptions
}

func (f *fakeExec) ExecCreate(_ context.Context, _ string, o client.ExecCreateOptions) (client.ExecCreateResult, error) {
	f.calls = append(f.calls, o)
	return client.ExecCreateResult{ID: "exec"}, nil
}

func (f *fakeExec) ExecAttach(context.Context, string, client.ExecAttachOptions) (client.ExecAttachResult, error) {
	server, conn := net.Pipe()
	go func() {
		// the engine's multiplexed stream: header (stream 2 = stderr, size), payload
		msg := []byte(f.stderr)
		hdr := []byte{2, 0, 0, 0, byte(len(msg) >> 24), byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}
		server.Write(append(hdr, msg...))
		server.Close()
	}()
	return client.ExecAttachResult{HijackedResponse: client.NewHijackedResponse(conn, "")}, nil
}

func (f *fakeExec) ExecInspect(context.Context, string, client.ExecInspectOptions) (client.ExecInspectResult, error) {
	return client.ExecInspectResult{ExitCode: f.code}, nil
}

// TestPostStartHooksRunAfterTheExecutorsOwnStarts: a start or restart of a
// container of a service with post_start hooks runs them, with the hook's
// user, environment and working directory; a failing one fails the
// operation for good, with its output masked.
func TestPostStartHooksRunAfterTheExecutorsOwnStarts(t *testing.T) {
	d := load(t, `
services:
  app:
    image: x
    environment: {DB_PASSWORD: hunter2-secret}
    post_start:
      - command: ["warm", "up"]
        user: "1000"
        working_dir: /srv
        environment: {MODE: hook}
`)
	tests := []struct {
		name    string
		op      plan.OpType
		code    int
		wantErr bool
	}{
		{"start, hook succeeds", plan.OpStartContainer, 0, false},
		{"restart, hook succeeds", plan.OpRestartContainer, 0, false},
		{"start, hook fails", plan.OpStartContainer, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := &fakeExec{code: tt.code, stderr: "cannot reach db with hunter2-secret\n"}
			err := runOnApp(d, tt.op, ex, 0)
			if len(ex.calls) != 1 {
				t.Fatalf("%d hook execs, want 1", len(ex.calls))
			}
			got := ex.calls[0]
			if strings.Join(got.Cmd, " ") != "warm up" || got.User != "1000" || got.WorkingDir != "/srv" || strings.Join(got.Env, ",") != "MODE=hook" {
				t.Errorf("exec options %+v, want the hook's", got)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			perm := AsPermanent(err)
			var hook *HookError
			if perm == nil || perm.Kind != PermanentHook || !errors.As(err, &hook) {
				t.Fatalf("error %v: want a permanent hook failure", err)
			}
			if hook.ExitCode != 5 || strings.Contains(err.Error(), "hunter2-secret") || !strings.Contains(err.Error(), "cannot reach db with ***") {
				t.Errorf("error %q: want exit 5 and the output with the password masked", err)
			}
		})
	}
}

// runOnApp runs one operation of type op on app's exited replica 1, with
// ex running the hooks.
func runOnApp(d *desired.State, op plan.OpType, ex engine.Execer, hookTimeout time.Duration) error {
	w := newWorld(d)
	c := w.add("app", 1, "exited")
	eng := &fakeEngine{w: w}
	e := &Executor{Desired: d, Compose: eng, Engine: eng, Exec: ex, Observe: eng.observe, HookTimeout: hookTimeout}
	p := &plan.Plan{}
	p.Add(plan.Operation{Type: op, ResourceID: plan.ReplicaID("app", 1), Service: "app", Container: c.Name, ContainerID: c.ID, Number: 1})
	return e.Execute(context.Background(), p)
}

// hangingExec runs commands that never end.
type hangingExec struct{ fakeExec }

func (h *hangingExec) ExecAttach(context.Context, string, client.ExecAttachOptions) (client.ExecAttachResult, error) {
	_, conn := net.Pipe() // nothing is ever written, nothing closed
	return client.ExecAttachResult{HijackedResponse: client.NewHijackedResponse(conn, "")}, nil
}

// TestAPostStartHookIsBoundedAndItsOutputMaskedWhole: a hook that never ends
// fails for good after the timeout, instead of holding the service's
// reconcile; and the environment's values are masked before the output is
// cut to its tail, so a value the cut splits does not escape in part.
func TestAPostStartHookIsBoundedAndItsOutputMaskedWhole(t *testing.T) {
	d := load(t, `
services:
  app:
    image: x
    environment: {DB_PASSWORD: hunter2-secret}
    post_start:
      - command: ["warm", "up"]
`)
	run := func(ex engine.Execer) error { return runOnApp(d, plan.OpStartContainer, ex, 200*time.Millisecond) }
	start := time.Now()
	err := run(&hangingExec{})
	var hook *HookError
	if !errors.As(err, &hook) || AsPermanent(err) == nil || !strings.Contains(hook.Output, "post_start timeout") {
		t.Fatalf("a hook that never ends: %v, want a permanent hook failure naming the timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s with a 200ms timeout", took)
	}
	// the secret straddles where the output's tail begins
	out := strings.Repeat("x", 600) + "hunter2-secret" + strings.Repeat("y", hookOutputTail-7)
	err = run(&fakeExec{code: 1, stderr: out})
	if !errors.As(err, &hook) || strings.Contains(hook.Output, "secret") {
		t.Errorf("the output shows part of the value: %v", err)
	}
}
