package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/clock"
)

func TestDebounce(t *testing.T) {
	tests := []struct {
		name string
		// steps: "k" kicks, a duration advances the clock
		steps []any
		fires int
	}{
		{"quiet after one kick", []any{"k", 499 * time.Millisecond}, 0},
		{"fires after quiet", []any{"k", 500 * time.Millisecond}, 1},
		{"a burst fires once", []any{"k", 300 * time.Millisecond, "k", 300 * time.Millisecond, "k", 500 * time.Millisecond}, 1},
		{"a long burst fires at max", []any{"k", 400 * time.Millisecond, "k", 400 * time.Millisecond, "k", 400 * time.Millisecond, "k", 400 * time.Millisecond, "k", 400 * time.Millisecond}, 1},
		{"two bursts fire twice", []any{"k", time.Second, "k", time.Second}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(0, 0))
			kicks := make(chan struct{})
			var fires atomic.Int32
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { Debounce(ctx, kicks, clk, DefaultQuiet, DefaultMax, func() { fires.Add(1) }); close(done) }()
			for _, s := range tt.steps {
				switch v := s.(type) {
				case string:
					n := clk.Waiters()
					kicks <- struct{}{}
					waitUntil(t, func() bool { return clk.Waiters() > n })
				case time.Duration:
					clk.Advance(v)
					time.Sleep(5 * time.Millisecond) // let a fire run
				}
			}
			cancel()
			<-done
			if got := int(fires.Load()); got != tt.fires {
				t.Errorf("fired %d times, want %d", got, tt.fires)
			}
		})
	}
}

func TestWatcherReportsContentChangesOnly(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	confDir := filepath.Join(dir, "conf.d")
	must(t, os.WriteFile(file, []byte("a"), 0o644))
	must(t, os.Mkdir(confDir, 0o755))
	must(t, os.WriteFile(filepath.Join(confDir, "x.conf"), []byte("1"), 0o644))

	w, err := New(clock.Real{}, nil)
	must(t, err)
	defer w.Close()
	w.Quiet, w.Max = 20*time.Millisecond, 100*time.Millisecond
	must(t, w.Set([]string{file, confDir}))
	var mu sync.Mutex
	var got [][]string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, func(ch []string) { mu.Lock(); got = append(got, ch); mu.Unlock() })
	changes := func() [][]string { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }

	// a touch: no change
	now := time.Now().Add(time.Minute)
	must(t, os.Chtimes(file, now, now))
	time.Sleep(150 * time.Millisecond)
	if c := changes(); len(c) != 0 {
		t.Fatalf("a touch reported %v", c)
	}
	// an editor's save: write a temp file, rename it over
	tmp := filepath.Join(dir, ".compose.yaml.swp")
	must(t, os.WriteFile(tmp, []byte("b"), 0o644))
	must(t, os.Rename(tmp, file))
	waitUntil(t, func() bool { return len(changes()) == 1 })
	if c := changes()[0]; !slices.Equal(c, []string{file}) {
		t.Fatalf("changed %v, want the compose file", c)
	}
	// a file inside a watched directory
	must(t, os.WriteFile(filepath.Join(confDir, "x.conf"), []byte("2"), 0o644))
	waitUntil(t, func() bool { return len(changes()) == 2 })
	if c := changes()[1]; !slices.Equal(c, []string{confDir}) {
		t.Fatalf("changed %v, want the directory", c)
	}
	// an unrelated file in the same directory
	must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644))
	time.Sleep(150 * time.Millisecond)
	if c := changes(); len(c) != 2 {
		t.Fatalf("an unrelated file reported: %v", c)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3s")
		}
		time.Sleep(time.Millisecond)
	}
}
