package engine

import "testing"

// TestExecOutputKeepsItsLastBytesOnly: a command that prints without end
// costs bounded memory; what is kept is its end, where errors are.
func TestExecOutputKeepsItsLastBytesOnly(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		max    int
		want   string
	}{
		{"under the cap", []string{"ab", "cd"}, 8, "abcd"},
		{"over across writes", []string{"abcdef", "ghij"}, 4, "ghij"},
		{"one write over", []string{"abcdefghij"}, 3, "hij"},
		{"a write keeps the end of what came before", []string{"abcdef", "gh"}, 4, "efgh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := &tail{max: tt.max}
			for _, w := range tt.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write %q: %d, %v", w, n, err)
				}
			}
			if got := tl.String(); got != tt.want {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}
