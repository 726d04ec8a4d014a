package desired

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/reconcile-dev/reconcile/internal/hostile"
)

func laughs(levels int) string    { return hostile.Laughs(levels, "x") }
func mergeBomb(levels int) string { return hostile.MergeBomb(levels, "x") }
func manyServices(n int) string   { return "services:\n" + hostile.Services(n, "s", "x") }

// TestHostileInputIsRefusedBeforeItIsExpanded feeds the loader documents
// built to exhaust it: each is refused with one line naming the file and
// line, without the allocation that expanding it would take (the billion
// laughs took 1.6 GB before the limits).
func TestHostileInputIsRefusedBeforeItIsExpanded(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{name: "billion laughs", files: map[string]string{"compose.yaml": laughs(8)}, want: []string{"compose.yaml:", "expands to more than"}},
		{name: "merge-key bomb", files: map[string]string{"compose.yaml": mergeBomb(12)}, want: []string{"compose.yaml:", "expands to more than"}},
		{name: "bomb in an included file", files: map[string]string{
			"compose.yaml": "include: [sub/inc.yaml]\nservices:\n  a: {image: x}\n",
			"sub/inc.yaml": laughs(8),
		}, want: []string{filepath.Join("sub", "inc.yaml") + ":", "expands to more than"}},
		{name: "bomb in an extended file", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    extends: {file: base.yaml, service: web}\n",
			"base.yaml":    laughs(8),
		}, want: []string{"base.yaml:", "expands to more than"}},
		{name: "too many services", files: map[string]string{"compose.yaml": manyServices(MaxServices + 1)}, want: []string{"compose.yaml:", "more than 1000 services"}},
		{name: "too many services across includes", files: map[string]string{
			"compose.yaml": "include: [more.yaml]\n" + manyServices(600),
			"more.yaml":    "services:\n" + hostile.Services(600, "t", "x"),
		}, want: []string{"more.yaml:", "more than 1000 services"}},
		{name: "file too large", files: map[string]string{"compose.yaml": "services:\n  a: {image: x}\n# " + strings.Repeat("x", MaxFileBytes) + "\n"}, want: []string{"compose.yaml", "more than the limit"}},
		{name: "env file too large", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    image: x\n    env_file: big.env\n",
			"big.env":      "A=" + strings.Repeat("x", MaxFileBytes) + "\n",
		}, want: []string{"compose.yaml:4", "big.env", "more than the limit"}},
		{name: "include chain too deep", files: deepIncludes(maxIncludeDepth + 2), want: []string{"include", "deeper than"}},
		{name: "10,000 nested lists", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    image: x\n    command: " + strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000) + "\n",
		}, want: []string{"compose.yaml:4:", "nested more than 64 deep"}},
		{name: "nested beyond the parser's own limit", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    image: x\n    command: " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n",
		}, want: []string{"compose.yaml:4:", "nested more than 64 deep"}},
		{name: "a megabyte of empty lists", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    image: x\n    command: [" + strings.Repeat("[],", MaxFileBytes/3-20) + "[]]\n",
		}, want: []string{"compose.yaml:4:", "brackets, commas and lines"}},
		{name: "too many networks", files: map[string]string{
			"compose.yaml": "services:\n  a: {image: x}\nnetworks:\n" + manyKeys("n", MaxNetworks+1),
		}, want: []string{"compose.yaml:", "networks: more than 1000 networks"}},
		{name: "too many volumes", files: map[string]string{
			"compose.yaml": "services:\n  a: {image: x}\nvolumes:\n" + manyKeys("v", MaxVolumes+1),
		}, want: []string{"compose.yaml:", "volumes: more than 1000 volumes"}},
		{name: "a billion replicas", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    image: x\n    deploy:\n      replicas: 1000000000\n",
		}, want: []string{"compose.yaml:5:", `service "a": deploy.replicas: 1000000000 replicas, more than the limit of 1000`}},
		{name: "a billion replicas by scale", files: map[string]string{
			"compose.yaml": "services:\n  a:\n    image: x\n    scale: 1000000000\n",
		}, want: []string{"compose.yaml:4:", `service "a": scale:`}},
		{name: "replicas in all beyond the limit", files: map[string]string{
			"compose.yaml": "services:\n" + manyReplicated(6, MaxReplicas),
		}, want: []string{"compose.yaml:", `service "s5": deploy.replicas: the project's replicas come to more than 5000`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			dir := writeFiles(t, tt.files)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Load(context.Background(), loader(t), Options{
				Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p", Timeout: time.Minute,
			})
			runtime.ReadMemStats(&after)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T): want an *InputError", err, err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
			if ie.File == "" {
				t.Errorf("error names no file: %q", msg)
			}
			// the inputs are at most a few MiB on disk; expanding one
			// costs hundreds of MiB
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("refusing it allocated %d MiB", alloc>>20)
			}
		})
	}
}

// manyKeys is n empty entries of a top-level mapping.
func manyKeys(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  %s%d: {}\n", prefix, i)
	}
	return b.String()
}

// manyReplicated is n services of replicas each.
func manyReplicated(n, replicas int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  s%d:\n    image: x\n    deploy: {replicas: %d}\n", i, replicas)
	}
	return b.String()
}

// TestScaleBeyondTheLimitIsRefused: --scale is bounded as the file is.
func TestScaleBeyondTheLimitIsRefused(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{"compose.yaml": "services:\n  a: {image: x}\n"})
	_, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p", Scale: map[string]int{"a": 1_000_000_000}})
	if !IsInputError(err) || !strings.Contains(err.Error(), `service "a": --scale: 1000000000 replicas, more than the limit of 1000`) {
		t.Fatalf("--scale a=1000000000: %v", err)
	}
}

func deepIncludes(n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("inc%d.yaml", i)
		if i == 0 {
			name = "compose.yaml"
		}
		files[name] = fmt.Sprintf("include: [inc%d.yaml]\nservices:\n  s%d: {image: x}\n", i+1, i)
	}
	files[fmt.Sprintf("inc%d.yaml", n)] = "services:\n  last: {image: x}\n"
	return files
}

// TestLimitsLeaveLargeRealProjectsAlone loads what a large real project
// looks like, just inside every limit: it loads.
func TestLimitsLeaveLargeRealProjectsAlone(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{"compose.yaml": hostile.Expanded("x") + hostile.Services(MaxServices-1, "s", "x")})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != MaxServices {
		t.Errorf("%d services loaded, want %d", len(st.Services), MaxServices)
	}
}
