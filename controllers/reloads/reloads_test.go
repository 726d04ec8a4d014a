package reloads

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
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
