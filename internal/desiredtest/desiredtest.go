// Package desiredtest loads compose files as project "p" for the tests of
// the packages that plan and decide from a desired state, through the
// Compose SDK as the daemon does.
package desiredtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

// Load writes yaml as compose.yaml in a fresh directory and loads it.
func Load(t testing.TB, yaml string) *desired.State {
	t.Helper()
	file := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadFile(t, file)
}

// LoadFile loads the compose file file.
func LoadFile(t testing.TB, file string) *desired.State {
	t.Helper()
	loader, err := engine.Loader()
	if err != nil {
		t.Fatal(err)
	}
	st, err := desired.Load(context.Background(), loader, desired.Options{Files: []string{file}, ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
