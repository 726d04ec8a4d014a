package desired

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// orElse separates the messages a refusal may equally say.
const orElse = "\x00"

// TestRefusalsArePlaced: refusals that once named no line (the parser's "at
// <unknown position>", compose's "invalid hostPort: 99999", an extends
// cycle, a missing include or extends file, a kernel file as an env file)
// name the file and line to edit, and the key.
func TestRefusalsArePlaced(t *testing.T) {
	const head = "services:\n  a:\n    image: x\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"a control character", map[string]string{"compose.yaml": head + "    command: \"a\x01b\"\n"},
			"compose.yaml:4: column 16: control character U+0001"},
		{"a byte that is not UTF-8", map[string]string{"compose.yaml": head + "    command: \xff\n"},
			"compose.yaml:4: column 14: byte 0xFF is not UTF-8"},
		{"a host port out of range", map[string]string{"compose.yaml": head + "    ports: [\"99999:80\"]\n"},
			`compose.yaml:4: service "a": ports: invalid hostPort: 99999`},
		{"a container port out of range", map[string]string{"compose.yaml": head + "    ports:\n      - \"80:80\"\n      - \"81:70000\"\n"},
			`compose.yaml:6: service "a": ports: invalid containerPort: 70000`},
		{"an interpolated port out of range", map[string]string{"compose.yaml": head + "    ports:\n      - \"80:80\"\n      - \"${P}:80\"\n", ".env": "P=70000\n"},
			`compose.yaml:6: service "a": ports: invalid hostPort`},
		// either end of a cycle in one file is the place: compose-go walks
		// the services in a map's order (seen both ways on one machine)
		{"an extends cycle", map[string]string{"compose.yaml": "services:\n  a:\n    extends: b\n  b:\n    extends: a\n"},
			`compose.yaml:3: service "a": extends: extends cycle: a -> b -> a` + orElse + `compose.yaml:5: service "b": extends: extends cycle: b -> a -> b`},
		{"an extends cycle across files", map[string]string{
			"compose.yaml": "services:\n  a:\n    extends: {file: other.yaml, service: b}\n",
			"other.yaml":   "services:\n  b:\n    extends: {file: compose.yaml, service: a}\n",
		}, `compose.yaml:3: service "a": extends: extends cycle: a -> b -> a`},
		{"a missing extends file", map[string]string{"compose.yaml": "services:\n  a:\n    extends: {file: missing.yaml, service: b}\n"},
			`compose.yaml:3: service "a": extends.file: missing.yaml not found`},
		{"a missing include", map[string]string{"compose.yaml": "include:\n  - missing.yaml\n" + head},
			"compose.yaml:2: include: missing.yaml not found"},
		{"a missing include of an include", map[string]string{
			"compose.yaml": "include:\n  - sub/inc.yaml\n" + head,
			"sub/inc.yaml": "include:\n  - path: [gone.yaml]\nservices:\n  b: {image: x}\n",
		}, "inc.yaml:2: include.path: " + filepath.Join("sub", "gone.yaml") + " not found (" + filepath.Join("sub", "inc.yaml") + " is named at compose.yaml:2 (include))"},
		{"compose's create-time check", map[string]string{"compose.yaml": head + "    healthcheck:\n      test: [\"CMD\", \"true\"]\n      start_interval: 1s\n"},
			`compose.yaml:6: service "a": healthcheck.start_interval: start_interval requires start_period`},
		{"a kernel file as an env file", map[string]string{"compose.yaml": head + "    env_file: /proc/self/mem\n"},
			`compose.yaml:4: service "a": env_file.0: /proc/self/mem: a file of the kernel's`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			dir := writeFiles(t, tt.files)
			t.Chdir(dir)
			_, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
			if !IsInputError(err) {
				t.Fatalf("error %v: want bad input", err)
			}
			msg := err.Error()
			if !slices.ContainsFunc(strings.Split(tt.want, orElse), func(w string) bool { return strings.Contains(msg, w) }) {
				t.Errorf("error %q\nwant it to say %q", msg, tt.want)
			}
		})
	}
}
