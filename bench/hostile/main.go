// Command hostile runs `reconcile diff` on inputs built to exhaust a compose
// loader, and on the largest inputs the limits accept, and prints for each
// the wall time, the process's peak memory (max RSS), the exit code and
// the one line it printed. Before the limits, the billion laughs took
// 1.6 GB and 10 s and 10,000 services 450 MB and 7 s.
//
//	go run ./bench/hostile -bin bin/reconcile
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/reconcile-dev/reconcile/bench/benchkit"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/hostile"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

// gnuTime measures a command's peak memory.
const gnuTime = "/usr/bin/time"

func main() {
	bin := flag.String("bin", "bin/reconcile", "the reconcile binary")
	flag.Parse()
	benchkit.Exit(run(*bin))
}

func run(bin string) error {
	ctx := context.Background()
	eng, err := engine.Connect(ctx)
	if err != nil {
		return err
	}
	// the accepted inputs go on to compare against the engine, as a real
	// diff would: their image must exist
	if err := testimage.Ensure(ctx, eng.Client, testimage.Tag); err != nil {
		return err
	}
	if _, err := os.Stat(gnuTime); err != nil {
		return fmt.Errorf("%s is needed to measure peak memory (Debian: apt-get install time): %w", gnuTime, err)
	}
	img := testimage.Tag
	inputs := []struct{ name, compose string }{
		{"billion laughs (9^9)", hostile.Laughs(8, img)},
		{"merge-key bomb", hostile.MergeBomb(12, img)},
		{"10,000 services", "services:\n" + hostile.Services(10000, "s", img)},
		{"largest accepted aliases (~45k nodes)", hostile.Expanded(img)},
		{"1,000 services (the limit)", "services:\n" + hostile.Services(1000, "s", img)},
	}
	dir, err := os.MkdirTemp("", "hostile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("%-40s %9s %10s %5s  %s\n", "input", "wall", "max RSS", "exit", "message")
	for i, in := range inputs {
		file := filepath.Join(dir, fmt.Sprintf("in%d", i), "compose.yaml")
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(in.compose), 0o644); err != nil {
			return err
		}
		// GNU time forks the command from its own small process: a child
		// of this one would report this process's peak as its own (Go
		// starts children sharing its memory until they exec)
		rssFile := file + ".rss"
		cmd := exec.Command(gnuTime, "-f", "%M", "-o", rssFile, bin, "diff", "-f", file, "-p", fmt.Sprintf("hostile%d", i))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			return fmt.Errorf("running %s: %w", bin, err)
		}
		rssText, err := os.ReadFile(rssFile)
		if err != nil {
			return fmt.Errorf("reading the peak memory: %w", err)
		}
		rss, err := strconv.Atoi(lastLine(string(rssText))) // KiB
		if err != nil {
			return fmt.Errorf("reading the peak memory from %q: %w", rssText, err)
		}
		msg := strings.TrimPrefix(firstLine(out.String()), "reconcile: "+file)
		if len(msg) > 90 {
			msg = msg[:90] + "..."
		}
		fmt.Printf("%-40s %7.0fms %7.1fMiB %5d  %s\n", in.name, benchkit.MS(wall), float64(rss)/1024, code, msg)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
