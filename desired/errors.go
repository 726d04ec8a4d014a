// Package desired owns "what should exist": a compose project loaded exactly
// as `docker compose` loads it (through the Compose SDK), the reconciler's
// per-service policy from `x-reconcile` blocks, and the set of files whose
// content shapes that state.
package desired

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// InputError is bad input: a file, and where it applies a service and a key,
// that the user must fix. The CLI maps it to exit code 2 and guarantees that
// nothing was touched, so every load and validation failure is one.
type InputError struct {
	File    string // the file at fault, as the user named it where possible
	Line    int    // 1-based line of Key in File, 0 when unknown
	Service string // the service concerned, empty for project-level input
	Key     string // dotted path of the offending key, e.g. x-reconcile.restart.delay
	Err     error
	// secrets masks the message: an error of the loader may quote a value
	// it interpolated.
	secrets *secrets.Set
}

// Error renders one line: file[:line]: service "s": key: reason.
func (e *InputError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(DisplayPath(e.File))
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Service != "" {
		fmt.Fprintf(&b, "service %q: ", e.Service)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	// masked before and after the fold: a multi-line value is masked whole,
	// and each of its lines once joined
	return e.secrets.Mask(OneLine(e.secrets.Mask(b.String())))
}

func (e *InputError) Unwrap() error { return e.Err }

// IsInputError reports whether err is (or wraps) an InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

// DisplayPath shows a path relative to the working directory when it lies
// below it, as users wrote it on the command line.
func DisplayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil || !filepath.IsAbs(p) {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

// OneLine folds a multi-line message (joined errors, an engine's repeated
// answer) into one line, dropping repeated lines and lines that an earlier
// one already ends with.
func OneLine(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		dup := l == ""
		for _, p := range parts {
			dup = dup || strings.HasSuffix(p, l)
		}
		if !dup {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
