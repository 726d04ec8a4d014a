package desired

import "testing"

func TestOneLine(t *testing.T) {
	tests := map[string]string{
		"plain":                     "plain",
		"a: boom\nboom":             "a: boom",
		"first\nsecond\n\nsecond\n": "first; second",
	}
	for in, want := range tests {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
