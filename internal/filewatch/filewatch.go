// Package filewatch reports changes of content in a set of files and
// directories. It watches directories rather than files, because editors
// save by writing a new file and renaming it over the old one, which ends a
// watch on the file itself; it debounces bursts of writes; and it compares
// content hashes, so that a touch or a save without a change is no change.
package filewatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

// Debounce defaults: react once writes have been quiet for 500 ms, and at
// the latest 2 s after the first of a burst.
const (
	DefaultQuiet = 500 * time.Millisecond
	DefaultMax   = 2 * time.Second
)

// Watcher watches a set of paths; Set replaces the set.
type Watcher struct {
	Quiet, Max time.Duration
	Clock      clock.Clock
	Log        *slog.Logger

	fs     *fsnotify.Watcher
	kick   chan struct{}
	mu     sync.Mutex
	hashes map[string]string // path -> content hash ("" when missing)
	isDir  map[string]bool
	dirs   map[string]bool // directories under an fsnotify watch
}

// New starts an fsnotify watcher; Close releases it.
func New(clk clock.Clock, log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("starting file watcher: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		Quiet: DefaultQuiet, Max: DefaultMax, Clock: clk, Log: log,
		fs: fw, kick: make(chan struct{}, 1),
		hashes: map[string]string{}, isDir: map[string]bool{}, dirs: map[string]bool{},
	}, nil
}

// Close stops watching.
func (w *Watcher) Close() error { return w.fs.Close() }

// Set makes paths the watched set, taking their current content as the
// baseline: a path already watched keeps its baseline, so a change made
// while the set was being replaced is still reported.
func (w *Watcher) Set(paths []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	hashes, isDir, dirs := map[string]string{}, map[string]bool{}, map[string]bool{}
	var errs []error
	for _, p := range paths {
		p = filepath.Clean(p)
		if h, ok := w.hashes[p]; ok {
			hashes[p] = h
		} else {
			h, err := HashBounded(p)
			if err != nil {
				errs = append(errs, err) // over the caps: not watched at all
				continue
			}
			hashes[p] = h
		}
		st, err := os.Stat(p)
		dir := err == nil && st.IsDir()
		isDir[p] = dir
		if dir {
			dirs[p] = true
		} else {
			dirs[filepath.Dir(p)] = true
		}
	}
	for d := range dirs {
		if w.dirs[d] {
			continue
		}
		if err := w.fs.Add(d); err != nil {
			errs = append(errs, fmt.Errorf("watching directory %s: %w", d, err))
			delete(dirs, d)
		}
	}
	for d := range w.dirs {
		if !dirs[d] {
			_ = w.fs.Remove(d)
		}
	}
	w.hashes, w.isDir, w.dirs = hashes, isDir, dirs
	return errors.Join(errs...)
}

// Run calls onChange with the paths whose content changed, once per
// debounced burst, until ctx ends.
func (w *Watcher) Run(ctx context.Context, onChange func(changed []string)) {
	go w.pump(ctx)
	Debounce(ctx, w.kick, w.Clock, w.Quiet, w.Max, func() {
		if changed := w.Changed(); len(changed) > 0 {
			onChange(changed)
		}
	})
}

// pump turns fsnotify events on watched paths into kicks.
func (w *Watcher) pump(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if w.relevant(filepath.Clean(ev.Name)) {
				select {
				case w.kick <- struct{}{}:
				default:
				}
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.Log.Warn("file watcher error", "error", err)
		}
	}
}

func (w *Watcher) relevant(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.hashes[name]; ok {
		return true
	}
	for p, dir := range w.isDir {
		if dir && (filepath.Dir(name) == p || isUnder(name, p)) {
			return true
		}
	}
	return false
}

// Accept takes the current content of the watched paths that are path or
// contain it as the baseline: the caller wrote path itself and does not
// want to hear of it.
func (w *Watcher) Accept(path string) {
	path = filepath.Clean(path)
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range w.hashes {
		if p == path || isUnder(path, p) {
			w.hashes[p] = Hash(p)
		}
	}
}

// Changed rehashes every watched path and returns those whose content
// differs from the baseline, which it moves forward.
func (w *Watcher) Changed() []string {
	w.mu.Lock()
	paths := make([]string, 0, len(w.hashes))
	for p := range w.hashes {
		paths = append(paths, p)
	}
	w.mu.Unlock()
	sort.Strings(paths)
	var changed []string
	for _, p := range paths {
		h := Hash(p)
		w.mu.Lock()
		if old, ok := w.hashes[p]; ok && old != h {
			w.hashes[p] = h
			changed = append(changed, p)
		}
		w.mu.Unlock()
	}
	return changed
}

// Debounce calls fire after kicks have been quiet for quiet, or max after
// the first kick of a burst, whichever comes first.
func Debounce(ctx context.Context, kicks <-chan struct{}, clk clock.Clock, quiet, max time.Duration, fire func()) {
	var quietC, maxC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-kicks:
			quietC = clk.After(quiet)
			if maxC == nil {
				maxC = clk.After(max)
			}
			continue
		case <-quietC:
		case <-maxC:
		}
		quietC, maxC = nil, nil
		fire()
	}
}

// Hash is a digest of a file's content, or of every file under a directory
// (names and contents), within the caps of HashBounded; "" when the path
// does not exist, and a mark that never matches a content when it is over
// the caps.
func Hash(path string) string {
	h, err := HashBounded(path)
	if err != nil {
		return "over-caps"
	}
	return h
}

func isUnder(name, dir string) bool {
	rel, err := filepath.Rel(dir, name)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
