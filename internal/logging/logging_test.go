package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	tests := []struct {
		opts  Options
		check func(t *testing.T, out string)
	}{
		{Options{}, func(t *testing.T, out string) { // not a terminal: JSON
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil || m["msg"] != "converged" || m["service"] != "api" {
				t.Errorf("auto format off a terminal should be JSON: %q", out)
			}
		}},
		{Options{Format: "text"}, func(t *testing.T, out string) {
			if !strings.Contains(out, " INF converged service=api took=1s cause=\"two words\" op.kind=x\n") {
				t.Errorf("text line: %q", out)
			}
			if strings.Contains(out, "\x1b[") {
				t.Errorf("colour written to a non-terminal: %q", out)
			}
		}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log, err := New(&buf, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		log.With("service", "api").Info("converged", "took", "1s", "cause", "two words", slog.Group("op", "kind", "x"))
		log.Debug("hidden at info level")
		tt.check(t, buf.String())
		if strings.Contains(buf.String(), "hidden") {
			t.Errorf("debug line written at info level: %q", buf.String())
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Format: "xml"}, {Level: "loud"}} {
		if _, err := New(&bytes.Buffer{}, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestLevelColours(t *testing.T) {
	h := &textHandler{color: true}
	if got := h.levelText(slog.LevelError); got != "\x1b[31mERR\x1b[0m" {
		t.Errorf("error level = %q", got)
	}
	h.color = false
	if got := h.levelText(slog.LevelWarn); got != "WRN" {
		t.Errorf("warn level = %q", got)
	}
}

// TestControlCharactersNeverReachTheTerminal: a record's text can carry
// what a container printed or a file was named; an escape sequence in it
// would recolour, retitle or rewrite the operator's terminal.
func TestControlCharactersNeverReachTheTerminal(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text, café", "plain text, café"},
		{"\x1b]0;pwned\x07title", `\x1b]0;pwned\x07title`},
		{"over\rwritten", `over\x0dwritten`},
		{"bell\x07", `bell\x07`},
	} {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var out strings.Builder
	log, err := New(&out, Options{Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("exited: \x1b[2Jcleared", "container", "api\x1b[31m-1")
	if strings.ContainsRune(out.String(), '\x1b') {
		t.Errorf("an escape reached the text log: %q", out.String())
	}
}
