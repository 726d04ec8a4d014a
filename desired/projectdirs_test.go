package desired

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestProjectDirsAreTheSubdirectoriesWithAComposeFile(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"shop/compose.yaml":         "services: {}",
		"blog/docker-compose.yml":   "services: {}",
		"notes/README.md":           "not a project",
		".hidden/compose.yaml":      "services: {}",
		"nested/deeper/compose.yml": "services: {}",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "compose.yaml"), []byte("services: {}"), 0o644); err != nil {
		t.Fatal(err) // a file at the root is not a project directory
	}
	if err := os.MkdirAll(filepath.Join(root, "fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo", "compose.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ProjectDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "blog"), filepath.Join(root, "shop")}
	if !slices.Equal(got, want) {
		t.Errorf("ProjectDirs = %v, want %v", got, want)
	}
	if _, err := ProjectDirs(filepath.Join(root, "missing")); err == nil {
		t.Error("a missing projects directory: no error")
	}
}
