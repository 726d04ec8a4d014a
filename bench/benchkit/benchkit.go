// Package benchkit is what the benchmark programs share: a project of the
// test image in a temporary directory, torn down afterwards; percentiles;
// and timestamps read from the daemon's JSON log.
package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

// Project is a compose project written for a benchmark.
type Project struct {
	Engine *engine.Engine
	Dir    string
	Name   string
	File   string
	keep   bool
}

// NewProject connects to the engine, makes sure the test image exists, and
// writes compose (where %[1]s is the test image) to a fresh directory as
// project prefix-NNNNNN, or as name when name is not empty (kept afterwards).
func NewProject(ctx context.Context, prefix, name, compose string) (*Project, error) {
	eng, err := engine.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := eng.Ping(ctx); err != nil {
		return nil, err
	}
	if err := testimage.Ensure(ctx, eng.Client, testimage.Tag); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("creating the project directory: %w", err)
	}
	p := &Project{Engine: eng, Dir: dir, Name: name, keep: name != ""}
	if p.Name == "" {
		p.Name = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e6)
	}
	p.File = filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(p.File, []byte(fmt.Sprintf(compose, testimage.Tag)), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", p.File, err)
	}
	return p, nil
}

// Close removes the project's containers and networks (unless it is kept)
// and its directory.
func (p *Project) Close() {
	if !p.keep {
		zero := time.Duration(0)
		_ = p.Engine.Compose.Down(context.Background(), p.Name, api.DownOptions{RemoveOrphans: true, Timeout: &zero})
	}
	os.RemoveAll(p.Dir)
}

// Pct is the p-th percentile (0..1) of ds.
func Pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// Report prints p50, p99 and max of ds.
func Report(what string, ds []time.Duration) {
	fmt.Printf("  %-48s p50 %7.1fms  p99 %7.1fms  max %7.1fms\n", what, MS(Pct(ds, 0.5)), MS(Pct(ds, 0.99)), MS(Pct(ds, 1)))
}

// MS is d in milliseconds.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// ReadLog calls found with the time of every line of the daemon's JSON log
// that contains each of the markers of a kind.
func ReadLog(r io.Reader, kinds map[string][]string, found func(kind string, at time.Time)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		for kind, markers := range kinds {
			all := true
			for _, m := range markers {
				all = all && strings.Contains(line, m)
			}
			if !all {
				continue
			}
			var rec struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil {
				found(kind, rec.Time)
			}
		}
	}
}

// Exit ends a benchmark's main: with status 1 and the error when it failed.
func Exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// FreePort is a loopback TCP port free at the time of the call.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, nil
}

// Metric reads one unlabelled metric from a daemon's /metrics at base.
func Metric(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}
