package desired

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mutations turn one line of a valid compose file into a likely mistake.
var mutations = []struct {
	name  string
	apply func(line string) (string, bool)
}{
	{"delete", func(l string) (string, bool) { return "", true }},
	{"unknown key", func(l string) (string, bool) {
		k, _, ok := strings.Cut(l, ":")
		return k + "x: 1", ok && strings.TrimSpace(k) != "" && !strings.HasPrefix(strings.TrimSpace(k), "-")
	}},
	{"wrong type", func(l string) (string, bool) {
		k, v, ok := strings.Cut(l, ":")
		return k + ": [1, 2]", ok && strings.TrimSpace(v) != ""
	}},
	{"number", func(l string) (string, bool) {
		k, v, ok := strings.Cut(l, ":")
		return k + ": -7", ok && strings.TrimSpace(v) != ""
	}},
	{"empty mapping", func(l string) (string, bool) {
		k, _, ok := strings.Cut(l, ":")
		return k + ": {}", ok
	}},
	{"indent", func(l string) (string, bool) { return " " + l, strings.TrimSpace(l) != "" }},
	{"tab", func(l string) (string, bool) { return "\t" + strings.TrimLeft(l, " "), strings.HasPrefix(l, " ") }},
	{"unclosed", func(l string) (string, bool) {
		k, _, ok := strings.Cut(l, ":")
		return k + ": [a, {b", ok
	}},
	{"required variable", func(l string) (string, bool) {
		k, v, ok := strings.Cut(l, ":")
		return k + ": ${RECONCILE_FUZZ_UNSET?must be set}", ok && strings.TrimSpace(v) != ""
	}},
	{"bad interpolation", func(l string) (string, bool) {
		k, v, ok := strings.Cut(l, ":")
		return k + ": ${", ok && strings.TrimSpace(v) != ""
	}},
	{"dangling alias", func(l string) (string, bool) {
		k, v, ok := strings.Cut(l, ":")
		return k + ": *nowhere", ok && strings.TrimSpace(v) != ""
	}},
}

// TestEveryInputErrorNamesFileAndLine mutates every line of the included
// examples' compose files in each of the ways above and loads the result:
// every failure is an *InputError of one line naming the file, and the line
// when it concerns a key (issue: 158 of 466 fuzzed runs named neither).
func TestEveryInputErrorNamesFileAndLine(t *testing.T) {
	clearComposeEnv(t)
	sources, err := filepath.Glob("../examples/*/*.y*ml")
	if err != nil || len(sources) == 0 {
		t.Fatalf("no example compose files: %v", err)
	}
	runs, failures := 0, 0
	for _, src := range sources {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, line := range lines {
			for _, m := range mutations {
				mutated, ok := m.apply(line)
				if !ok {
					continue
				}
				changed := append(append(append([]string{}, lines[:i]...), mutated), lines[i+1:]...)
				dir := t.TempDir()
				file := filepath.Join(dir, "compose.yaml")
				if err := os.WriteFile(file, []byte(strings.Join(changed, "\n")), 0o644); err != nil {
					t.Fatal(err)
				}
				runs++
				_, err := Load(context.Background(), loader(t), Options{Files: []string{file}, ProjectName: "p", ProjectDir: filepath.Dir(src), Timeout: time.Minute})
				if err == nil {
					continue
				}
				failures++
				where := fmt.Sprintf("%s line %d %s (%q)", filepath.Base(src), i+1, m.name, mutated)
				var ie *InputError
				if !errors.As(err, &ie) {
					t.Errorf("%s: %v (%T) is not an *InputError", where, err, err)
					continue
				}
				msg := err.Error()
				switch {
				case strings.Contains(msg, "\n"):
					t.Errorf("%s: more than one line: %q", where, msg)
				case ie.File == "":
					t.Errorf("%s: names no file: %q", where, msg)
				case ie.Line == 0:
					t.Errorf("%s: names no line: %q", where, msg)
				}
			}
		}
	}
	t.Logf("%d mutated files, %d refused", runs, failures)
	if failures == 0 {
		t.Fatal("no mutation was refused: the test checks nothing")
	}
}
