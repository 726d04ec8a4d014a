package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

func TestNameHint(t *testing.T) {
	t.Setenv("COMPOSE_PROJECT_NAME", "fromenv")
	if got := nameHint(desired.Options{ProjectName: "flag"}); got != "flag" {
		t.Errorf("flag: %q", got)
	}
	if got := nameHint(desired.Options{}); got != "fromenv" {
		t.Errorf("env: %q", got)
	}
	os.Unsetenv("COMPOSE_PROJECT_NAME")
	if got := nameHint(desired.Options{}); got != "" {
		t.Errorf("none: %q", got)
	}
}

// TestBadInputWinsOverUnreachableEngine: exit code 2 must not depend on
// whether the engine happens to answer.
func TestBadInputWinsOverUnreachableEngine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	unreachable := func(context.Context) (*engine.Engine, error) { return nil, engine.ErrUnreachable }
	loader, err := engine.Loader()
	if err != nil {
		t.Fatal(err)
	}
	for content, want := range map[string]func(error) bool{
		"services:\n  a: {image: x, depends_on: [b]}\n": desired.IsInputError,
		"services:\n  a: {image: x}\n":                  func(err error) bool { return errors.Is(err, engine.ErrUnreachable) },
	} {
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(context.Background(), Options{Load: desired.Options{Files: []string{file}, ProjectName: "p"}, Loader: loader, Connect: unreachable})
		if !want(err) {
			t.Errorf("%q: err = %v", content, err)
		}
	}
}

func TestFirstSnapshotIsPrefetchedWhenTheNameIsKnown(t *testing.T) {
	p := enginetest.NewProject(t, "services:\n  a: {image: \"{{.Image}}\"}\n")
	loader, err := engine.Loader()
	if err != nil {
		t.Fatal(err)
	}
	connect := func(context.Context) (*engine.Engine, error) { return p.Engine, nil }
	s, err := Open(context.Background(), Options{Load: desired.Options{Files: []string{p.File}, ProjectName: p.Name}, Loader: loader, Connect: connect})
	if err != nil {
		t.Fatal(err)
	}
	if s.First == nil || s.First.Project != p.Name {
		t.Errorf("no prefetched snapshot with -p: %+v", s.First)
	}
	// without a name known in advance, nothing is prefetched
	os.Unsetenv("COMPOSE_PROJECT_NAME")
	s, err = Open(context.Background(), Options{Load: desired.Options{Files: []string{p.File}}, Loader: loader, Connect: connect})
	if err != nil {
		t.Fatal(err)
	}
	if s.First != nil {
		t.Errorf("prefetched a snapshot without knowing the name")
	}
}
