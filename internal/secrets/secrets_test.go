package secrets

import (
	"slices"
	"testing"
)

func TestMask(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{"a value anywhere", []string{"s3cr3t-canary"}, `invalid duration "s3cr3t-canary"`, `invalid duration "***"`},
		{"every occurrence", []string{"tok3n"}, "tok3n and tok3n", "*** and ***"},
		{"short values kept", []string{"on", "1"}, "on 1", "on 1"},
		{"longest first", []string{"abcd", "abcdefgh"}, "x abcdefgh y", "x *** y"},
		{"each line of a multi-line value", []string{"line-one\nline-two"}, "line-one line-two", "*** ***"},
		{"numbers and booleans kept", []string{"3000", "false", "12.50"}, "port 3000 false 12.50", "port 3000 false 12.50"},
		{"nothing to mask", nil, "plain", "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.values...).Mask(tt.in); got != tt.want {
				t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	var nilSet *Set
	if got := nilSet.Mask("x"); got != "x" {
		t.Errorf("nil set changed text: %q", got)
	}
}

func TestReferenced(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"$A ${B} ${C:-x} ${D?err} $A", []string{"A", "B", "C", "D"}},
		{"$$NOT ${E}", []string{"E"}},
		{"none", nil},
	}
	for _, tt := range tests {
		if got := Referenced(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Referenced(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := MaskReferences("curl -H ${TOKEN} $URL"); got != "curl -H *** ***" {
		t.Errorf("MaskReferences = %q", got)
	}
}
