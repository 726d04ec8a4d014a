package execute

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// TestTheExecutorCarriesOutAReloadsAndAnUpstreamsSteps: an exec fails on a
// non-zero exit with what it said kept for its policy, a signal goes through
// the engine's kill API, and a file is written atomically or, where it is a
// bind mount's own source, in place (the same inode).
func TestTheExecutorCarriesOutAReloadsAndAnUpstreamsSteps(t *testing.T) {
	d := load(t, "services:\n  lb:\n    image: x\n")
	dir := t.TempDir()
	inPlace, atomic := filepath.Join(dir, "mounted.conf"), filepath.Join(dir, "dir.conf")
	for _, f := range []string{inPlace, atomic} {
		if err := os.WriteFile(f, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inode := func(f string) uint64 {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		return inodeOf(st)
	}
	before := map[string]uint64{inPlace: inode(inPlace), atomic: inode(atomic)}
	tests := []struct {
		name     string
		op       plan.Operation
		code     int
		wantCode int // an *ExecError with this code; 0: no error
		calls    []string
	}{
		{"an exec that exits 0", plan.Operation{Type: plan.OpExec, Command: []string{"nginx", "-t"}}, 0, 0, nil},
		{"an exec that exits 1", plan.Operation{Type: plan.OpExec, Command: []string{"nginx", "-t"}}, 1, 1, nil},
		{"a signal", plan.Operation{Type: plan.OpSignal, Signal: "SIGHUP"}, 0, 0, []string{"kill id-lb-1 SIGHUP"}},
		{"a file in place", plan.Operation{Type: plan.OpWriteFile, File: inPlace, Content: []byte("new\n"), InPlace: true}, 0, 0, nil},
		{"a file replaced", plan.Operation{Type: plan.OpWriteFile, File: atomic, Content: []byte("new\n")}, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(d)
			c := w.add("lb", 1, "running")
			eng := &fakeEngine{w: w}
			ex := &fakeExec{code: tt.code, stderr: "emerg: bad line"}
			e := &Executor{Desired: d, Compose: eng, Engine: eng, Exec: ex, Observe: eng.observe}
			op := tt.op
			op.ResourceID, op.Service, op.Container, op.ContainerID = "x", "lb", c.Name, c.ID
			p := &plan.Plan{}
			p.Add(op)
			err := e.Execute(context.Background(), p)
			var ee *ExecError
			switch {
			case tt.wantCode != 0 && (!errors.As(err, &ee) || ee.ExitCode != tt.wantCode || ee.Stderr != "emerg: bad line"):
				t.Fatalf("error %v, want an ExecError with exit %d and its output", err, tt.wantCode)
			case tt.wantCode == 0 && err != nil:
				t.Fatal(err)
			}
			if tt.op.Type == plan.OpExec && (len(ex.calls) != 1 || !slices.Equal(ex.calls[0].Cmd, tt.op.Command)) {
				t.Errorf("execs %+v", ex.calls)
			}
			if !slices.Equal(eng.calls, tt.calls) {
				t.Errorf("engine calls %q, want %q", eng.calls, tt.calls)
			}
			if f := tt.op.File; f != "" {
				if b, _ := os.ReadFile(f); string(b) != "new\n" {
					t.Errorf("%s holds %q", f, b)
				}
				if same := inode(f) == before[f]; same != tt.op.InPlace {
					t.Errorf("%s: same inode %v, want %v (a bind mount's source keeps its inode)", f, same, tt.op.InPlace)
				}
			}
		})
	}
}
func inodeOf(st os.FileInfo) uint64 { return st.Sys().(*syscall.Stat_t).Ino }
