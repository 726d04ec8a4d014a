package secrets

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestHandlerMasksEveryStringOfARecord(t *testing.T) {
	const canary = "c4n4ry-t0ken"
	var h Holder
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil), &h)).With("early", "with "+canary)
	h.Store(New(canary))
	log.Info("message "+canary,
		"string", canary,
		"error", errors.New("exit 1: "+canary),
		slog.Group("g", "inner", canary),
		"count", 3)
	out := buf.String()
	if strings.Contains(out, canary) {
		t.Errorf("the log prints the value: %s", out)
	}
	for _, want := range []string{"message ***", "string=***", `error="exit 1: ***"`, "g.inner=***", "count=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log %q lacks %q", out, want)
		}
	}
	// an attribute given to With before the set was stored is masked too
	if !strings.Contains(out, `early="with ***"`) {
		t.Errorf("the log %q lacks the masked With attribute", out)
	}
}

func TestHolderBeforeAnySet(t *testing.T) {
	var h Holder
	if got := h.Mask("x c4n4ry"); got != "x c4n4ry" {
		t.Errorf("an empty holder changed text: %q", got)
	}
	var nilHolder *Holder
	if got := nilHolder.Mask("x"); got != "x" {
		t.Errorf("a nil holder changed text: %q", got)
	}
}

func TestWriterMasksWithEverySetIncluded(t *testing.T) {
	h := &Holder{}
	var buf bytes.Buffer
	w := Writer(&buf, h)
	h.Include(New("first-s3cret"))
	h.Include(New("second-s3cret"))
	if _, err := w.Write([]byte("a first-s3cret b second-s3cret\n")); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "a *** b ***\n" {
		t.Errorf("wrote %q", got)
	}
}
