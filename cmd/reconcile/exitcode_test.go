package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/daemon"
	"github.com/reconcile-dev/reconcile/internal/desiredtest"
	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/reconciler/execute"
)

func TestOnceExitCodes(t *testing.T) {
	input := &desired.InputError{File: "compose.yaml", Line: 3, Service: "db", Key: "image", Err: errors.New("image x is not present and cannot be pulled")}
	engineDown := errors.New("listing containers of project p: connection refused")
	d := desiredtest.Load(t, "services:\n  app:\n    image: x\n    entrypoint: []\n")
	noCommand := &daemon.StuckError{Service: "app", Err: &execute.PermanentError{Kind: execute.PermanentInvalid, Err: errors.New("Error response from daemon: No command specified")}}
	refused := &daemon.StuckError{Service: "app", Err: &execute.PermanentError{Kind: execute.PermanentRefused, Err: errors.New("No such container: db-other")}}
	tests := []struct {
		name    string
		applied int
		err     error
		want    int
	}{
		{"bad input before acting: nothing touched", 0, input, exitInput},
		{"bad input found after a plan ran", 1, input, exitNotConverged},
		{"engine failure before acting", 0, engineDown, exitEngine},
		{"engine failure after acting", 2, engineDown, exitEngine},
		{"wrapped input error after acting", 1, fmt.Errorf("pass 2: %w", input), exitNotConverged},
		{"a definition the engine refuses as invalid, nothing touched", 0, noCommand, exitInput},
		{"a definition the engine refuses as invalid, after a network", 1, noCommand, exitNotConverged},
		{"a joined container missing: not converged", 0, refused, exitNotConverged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := onceFailure(daemon.Outcome{Acted: tt.applied}, tt.err, d)
			if got := codeOf(err, exitInternal); got != tt.want {
				t.Errorf("exit %d, want %d (%v)", got, tt.want, err)
			}
			if tt.err == noCommand && !strings.Contains(err.Error(), `:4: service "app": entrypoint: Error response from daemon: No command specified`) {
				t.Errorf("%v: want the service's line and key", err)
			}
		})
	}
}

func TestCodeOfLetsACommandsOwnMappingWin(t *testing.T) {
	input := &desired.InputError{Key: "--scale", Err: errors.New("bad")}
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{input, exitInput},
		{fmt.Errorf("%w: dial unix: no such file", engine.ErrUnreachable), exitEngine},
		{withCode(exitNotConverged, input), exitNotConverged},
		{errors.New("something else"), exitInternal},
	} {
		if got := codeOf(tt.err, exitInternal); got != tt.want {
			t.Errorf("%v: exit %d, want %d", tt.err, got, tt.want)
		}
	}
}
