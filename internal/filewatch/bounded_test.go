package filewatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHashingIsBoundedWhateverIsMounted: what monitoring agents mount
// read-only (the host's root, /sys, /proc, devices) is not hashed, and
// returns at once; a configuration directory is; one over the caps is
// refused without reading it all; a FIFO in a directory is never opened.
func TestHashingIsBoundedWhateverIsMounted(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	big := filepath.Join(dir, "big")
	deep := filepath.Join(dir, "deep")
	for _, d := range []string{conf, big, deep} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(conf, "nginx.conf"), []byte("events {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(conf, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range MaxFiles + 1 {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := deep
	for range MaxDepth + 1 {
		p = filepath.Join(p, "d")
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		overCaps bool
	}{
		{"a configuration directory (a FIFO in it is never opened)", conf, false},
		{"a configuration file", filepath.Join(conf, "nginx.conf"), false},
		{"a missing path", filepath.Join(dir, "none"), false},
		{"the host's root (node-exporter's /:/rootfs:ro)", "/", true},
		{"/sys", "/sys", true},
		{"/proc", "/proc", true},
		{"a device (/dev/kmsg)", "/dev/kmsg", true},
		{"a FIFO", filepath.Join(conf, "pipe"), true},
		{"more files than the cap", big, true},
		{"deeper than the cap", deep, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			h, err := HashBounded(tt.path)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if over := errors.Is(err, ErrTooLarge); over != tt.overCaps {
				t.Fatalf("over the caps: %v (%v), want %v", over, err, tt.overCaps)
			}
			if tt.overCaps && h != "" {
				t.Errorf("a hash %q of what is over the caps", h)
			}
		})
	}
	// a watcher leaves a path over the caps out, and says which
	w, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Set([]string{conf, "/"})
	var over *OverCapsError
	if !errors.As(err, &over) || over.Path != "/" {
		t.Fatalf("Set: %v, want / over the caps", err)
	}
	if _, watched := w.hashes["/"]; watched {
		t.Error("/ is watched")
	}
	if _, watched := w.hashes[conf]; !watched {
		t.Error("the configuration directory is not watched")
	}
}
