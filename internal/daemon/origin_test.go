package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
)

// TestADiscoveredProjectsLabelsNameOnlyItsOwnFiles: any container may carry
// compose's labels; those of a discovered project are vetted before the
// daemon, as root, reads a file they name.
func TestADiscoveredProjectsLabelsNameOnlyItsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	env := filepath.Join(dir, ".env")
	for _, f := range []string{compose, env} {
		if err := os.WriteFile(f, []byte("x: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.env")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts desired.Options
		ok   bool
	}{
		{"its own files", desired.Options{ProjectDir: dir, Files: []string{compose}, EnvFiles: []string{env}}, true},
		{"a relative working directory", desired.Options{ProjectDir: "srv/app", Files: []string{compose}}, false},
		{"a file outside it", desired.Options{ProjectDir: dir, Files: []string{"/etc/shadow"}}, false},
		{"a way out by ..", desired.Options{ProjectDir: dir, Files: []string{filepath.Join(dir, "..", "..", "etc", "passwd")}}, false},
		{"an env file in /proc", desired.Options{ProjectDir: dir, Files: []string{compose}, EnvFiles: []string{"/proc/self/mem"}}, false},
		{"a link planted in it", desired.Options{ProjectDir: dir, Files: []string{link}}, false},
		{"a FIFO in it", desired.Options{ProjectDir: dir, Files: []string{compose}, EnvFiles: []string{fifo}}, false},
		{"a relative file", desired.Options{ProjectDir: dir, Files: []string{"compose.yaml"}}, false},
	} {
		if err := checkOrigin(tt.opts); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want accepted %v", tt.name, err, tt.ok)
		}
	}
}
