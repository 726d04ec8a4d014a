package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

func TestEntriesSeeProjectsComeAndTheirComposeFilesChange(t *testing.T) {
	root := t.TempDir()
	must(t, os.Mkdir(filepath.Join(root, "shop"), 0o755))
	e, err := WatchEntries(root, []string{"compose.yaml"}, clock.Real{}, nil)
	must(t, err)
	defer e.Close()

	tests := []struct {
		name string
		ev   fsnotify.Event
		want bool
	}{
		{"a new subdirectory", fsnotify.Event{Name: filepath.Join(root, "blog"), Op: fsnotify.Create}, true},
		{"a subdirectory removed", fsnotify.Event{Name: filepath.Join(root, "shop"), Op: fsnotify.Remove}, true},
		{"a compose file written", fsnotify.Event{Name: filepath.Join(root, "shop", "compose.yaml"), Op: fsnotify.Write}, true},
		{"another file in a project", fsnotify.Event{Name: filepath.Join(root, "shop", "data.db"), Op: fsnotify.Write}, false},
		{"deeper down", fsnotify.Event{Name: filepath.Join(root, "shop", "conf", "compose.yaml"), Op: fsnotify.Write}, false},
	}
	for _, tt := range tests {
		if got := e.relevant(tt.ev); got != tt.want {
			t.Errorf("%s: relevant = %v, want %v", tt.name, got, tt.want)
		}
	}

	e.Quiet, e.Max = 20*time.Millisecond, 100*time.Millisecond
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx, func() { calls.Add(1) })
	must(t, os.Mkdir(filepath.Join(root, "notes"), 0o755))
	waitUntil(t, func() bool { return calls.Load() >= 1 })
	// the new subdirectory is watched: its compose file appearing is seen
	n := calls.Load()
	must(t, os.WriteFile(filepath.Join(root, "notes", "compose.yaml"), []byte("services: {}"), 0o644))
	waitUntil(t, func() bool { return calls.Load() > n })
}
