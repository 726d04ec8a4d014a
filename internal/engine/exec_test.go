package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

func TestExec(t *testing.T) {
	p := enginetest.NewProject(t, "services:\n  app: {image: \"{{.Image}}\"}\n")
	out := p.Converge(time.Minute)
	if !out.Converged {
		t.Fatalf("not converged: %+v", out.Status)
	}
	id := p.Snapshot().Containers[0].ID
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		cmd    []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"/testapp", "get", "http://127.0.0.1:8080/"}, 0, "hello from", ""},
		{[]string{"/testapp", "dial", "127.0.0.1:1"}, 1, "", "connection refused"},
	}
	for _, tt := range tests {
		res, err := engine.Exec(ctx, p.Engine.Client, id, tt.cmd)
		if err != nil {
			t.Fatalf("%v: %v", tt.cmd, err)
		}
		if res.ExitCode != tt.code || !strings.Contains(res.Stdout, tt.stdout) || !strings.Contains(res.Stderr, tt.stderr) {
			t.Errorf("%v = %+v", tt.cmd, res)
		}
	}
	if _, err := engine.Exec(ctx, p.Engine.Client, "no-such-container", []string{"true"}); err == nil {
		t.Error("exec in a missing container did not fail")
	}
}
