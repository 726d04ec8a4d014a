package desired

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Bounds every input of FuzzLoad must keep: the loader's worst case inside
// the limits is about 2 s and 70 MiB (bench/hostile.sh).
const (
	fuzzMaxTime  = 10 * time.Second
	fuzzMaxAlloc = 512 << 20
)

// FuzzLoad feeds the loader any bytes as a compose file: each must load, or
// be refused as bad input in one line naming the file, in bounded time and
// memory, without a panic. Seeded with the examples, compose's own e2e
// fixtures, and the hostile and mistaken inputs of the other tests. `make
// test` runs it for a bounded time (FUZZTIME); `go test` runs the seeds.
func FuzzLoad(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	clearComposeEnv(f)
	l := loader(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := Load(context.Background(), l, Options{Files: []string{file}, ProjectName: "fuzz", Timeout: fuzzMaxTime / 2})
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if took > fuzzMaxTime {
			t.Errorf("took %s", took)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > fuzzMaxAlloc {
			t.Errorf("allocated %d MiB", alloc>>20)
		}
		if err == nil {
			return
		}
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Fatalf("not bad input (%T): %v", err, err)
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("more than one line: %q", msg)
		}
		if ie.File == "" && ie.Key == "" {
			t.Errorf("names neither a file nor a flag: %q", msg)
		}
	})
}

// fuzzSeeds are the compose files the repository and compose's module hold,
// and the inputs other tests build to break the loader.
func fuzzSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	add := func(root string) {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || len(seeds) > 200 {
				return nil
			}
			if n := d.Name(); strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") {
				if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
					seeds = append(seeds, b)
				}
			}
			return nil
		})
	}
	add("../examples")
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/docker/compose/v5").Output(); err == nil {
		add(filepath.Join(strings.TrimSpace(string(out)), "pkg", "e2e", "fixtures"))
	}
	for _, s := range []string{
		laughs(8), mergeBomb(12), manyServices(MaxServices + 1),
		"services:\n  a:\n    image: x\n    command: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n",
		"services:\n  a:\n    image: x\n    deploy: {replicas: 1000000000}\n",
		"services:\n  a:\n    image: x\n    ports: [\"99999:80\"]\n",
		"services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
		"include: [missing.yaml]\n",
		"services:\n  a:\n    image: x\n    env_file: /proc/self/mem\n",
		"services:\n  a: {image: \"x\x01\"}\n",
		"\xff\xfe\x00",
		"",
		"services: {}\n",
		"x-reconcile: {restart: {delay: nope}}\nservices:\n  a: {image: x}\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	if len(seeds) < 20 {
		f.Fatalf("only %d seeds: the examples or compose's fixtures were not found", len(seeds))
	}
	return seeds
}
