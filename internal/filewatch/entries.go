package filewatch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

// Entries reports that the entries of a directory changed, two levels deep:
// an agent's projects directory, where what counts is a subdirectory, or a
// file named in Names inside one, appearing, going or being written.
// Nothing is hashed: a project directory may hold large data.
type Entries struct {
	Quiet, Max time.Duration
	Clock      clock.Clock
	Log        *slog.Logger

	root  string
	names []string
	fs    *fsnotify.Watcher
	kick  chan struct{}
}

// WatchEntries starts watching root and its subdirectories; Close releases
// the watch.
func WatchEntries(root string, names []string, clk clock.Clock, log *slog.Logger) (*Entries, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("starting the projects directory's watcher: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Entries{Quiet: DefaultQuiet, Max: DefaultMax, Clock: clk, Log: log, root: filepath.Clean(root), names: names, fs: fw, kick: make(chan struct{}, 1)}
	if err := fw.Add(e.root); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching %s: %w", root, err)
	}
	entries, _ := os.ReadDir(e.root)
	for _, d := range entries {
		if d.IsDir() {
			e.add(filepath.Join(e.root, d.Name()))
		}
	}
	return e, nil
}

func (e *Entries) add(dir string) {
	if err := e.fs.Add(dir); err != nil {
		e.Log.Warn("a project directory cannot be watched; the periodic rescan will see it", "dir", dir, "error", err)
	}
}

// Close stops watching.
func (e *Entries) Close() error { return e.fs.Close() }

// Run calls onChange once per debounced burst of relevant changes, until
// ctx ends.
func (e *Entries) Run(ctx context.Context, onChange func()) {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-e.fs.Events:
				if !ok {
					return
				}
				if !e.relevant(ev) {
					continue
				}
				select {
				case e.kick <- struct{}{}:
				default:
				}
			case err, ok := <-e.fs.Errors:
				if !ok {
					return
				}
				e.Log.Warn("projects directory watcher error", "error", err)
			}
		}
	}()
	Debounce(ctx, e.kick, clock.Or(e.Clock), e.Quiet, e.Max, onChange)
}

// relevant says whether ev is about an entry of root (a new subdirectory is
// watched from now on) or a named file in a subdirectory.
func (e *Entries) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	switch filepath.Dir(name) {
	case e.root:
		if ev.Has(fsnotify.Create) {
			if st, err := os.Stat(name); err == nil && st.IsDir() {
				e.add(name)
			}
		}
		return true
	default:
		return filepath.Dir(filepath.Dir(name)) == e.root && slices.Contains(e.names, filepath.Base(name))
	}
}
