// Package secrets is the one place that decides what reconcile never prints:
// the values of a project's environment and of the variables its compose
// files interpolate. Every string that leaves the process from a project
// (records, and through them logs, /events, the dashboard and
// notifications; diff; hook and exec output; load errors) is passed through
// a Set's Mask after interpolation and before any cut, so that no value
// escapes whole or in part.
package secrets

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Masked is what stands for a value that is never printed.
const Masked = "***"

// MinLen is the shortest value masked in free text: a shorter one ("1",
// "on") would garble every message and guards nothing.
const MinLen = 4

// Set is the values to mask. The zero value and nil mask nothing. A Set is
// filled while a project loads and only read afterwards, from any
// goroutine.
type Set struct {
	values []string // longest first, so a value containing another is masked whole
}

// New returns a Set of values (those shorter than MinLen are ignored).
func New(values ...string) *Set {
	s := &Set{}
	s.Add(values...)
	return s
}

// Add adds values to the set. Each value and each of its lines is masked:
// a multi-line value is often printed folded onto one line. One call sorts
// once: give every value of a project in one call.
func (s *Set) Add(values ...string) {
	seen := make(map[string]bool, len(s.values))
	for _, v := range s.values {
		seen[v] = true
	}
	for _, v := range values {
		for _, part := range append([]string{v}, strings.Split(v, "\n")...) {
			part = strings.TrimSpace(part)
			if len(part) < MinLen || ordinary(part) || seen[part] {
				continue
			}
			seen[part] = true
			s.values = append(s.values, part)
		}
	}
	slices.SortStableFunc(s.values, func(a, b string) int { return len(b) - len(a) })
}

// ordinary reports a value that reads as a word of any message: a number
// (a port, a count) or a boolean. Masking it would garble every record that
// names a port, and such a value guards nothing.
func ordinary(v string) bool {
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return true
	}
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "null", "none":
		return true
	}
	return false
}

// Len is how many values the set masks.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.values)
}

// Mask replaces every value of the set in text with Masked.
func (s *Set) Mask(text string) string {
	if s == nil {
		return text
	}
	for _, v := range s.values {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Masked)
		}
	}
	return text
}

// reVariable finds the variables a raw compose value refers to: $NAME and
// ${NAME...} (with a default, an error message or an alternative).
var reVariable = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))`)

// Referenced lists the names of the variables text refers to, in order of
// first reference. `$$` escapes are not references.
func Referenced(text string) []string {
	text = strings.ReplaceAll(text, "$$", "")
	var names []string
	for _, m := range reVariable.FindAllStringSubmatch(text, -1) {
		if name := m[1] + m[2]; !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// MaskReferences writes every variable reference in text as Masked: a raw
// command as the file spells it, shown without the values it takes.
func MaskReferences(text string) string {
	return reVariable.ReplaceAllString(text, Masked)
}
