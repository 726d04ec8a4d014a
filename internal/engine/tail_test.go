package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

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

// failingExecer refuses every exec, as an engine refuses one in a
// container that is not running.
type failingExecer struct{ Execer }

func (failingExecer) ExecCreate(context.Context, string, client.ExecCreateOptions) (client.ExecCreateResult, error) {
	return client.ExecCreateResult{}, errors.New("container is not running")
}

// TestExecErrorsNameTheCommandsFirstWordOnly: an exec's arguments may carry
// an interpolated value, so an error names only the program.
func TestExecErrorsNameTheCommandsFirstWordOnly(t *testing.T) {
	_, err := Exec(context.Background(), failingExecer{}, "ctr", []string{"/bin/reload", "--token=c4n4ry-t0ken"})
	if err == nil {
		t.Fatal("no error from a refused exec")
	}
	if msg := err.Error(); strings.Contains(msg, "c4n4ry") || !strings.Contains(msg, `"/bin/reload"`) {
		t.Errorf("error %q: want the program named, its arguments not", msg)
	}
}
