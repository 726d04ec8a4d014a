package execute

import (
	"errors"
	"fmt"
	"testing"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func TestClassifyTellsWhatWaitingCannotFix(t *testing.T) {
	op := plan.Operation{Type: plan.OpStartContainer, Container: "p-app-1", ContainerID: "abc123"}
	tests := []struct {
		name string
		err  error
		want string // permanent kind, "" for retryable, "gone" for ErrGone
	}{
		{"compose pre_start", errors.New(`compose up of service app: service "app" pre_start[0] exited with code 3`), PermanentHook},
		{"compose post_start", errors.New("compose up of service app: app hook exited with status 4: no"), PermanentHook},
		{"our post_start", &HookError{Service: "app", Hook: "post_start", ExitCode: 1}, PermanentHook},
		{"missing joined container", errors.New("Error response from daemon: No such container: db-other"), PermanentRefused},
		{"our container went away", fmt.Errorf("starting: %w", engineErr{"Error response from daemon: No such container: abc123", "notfound"}), "gone"},
		{"our container by name", engineErr{"Error response from daemon: No such container: p-app-1", "notfound"}, "gone"},
		{"our container being removed (docker rm -f)", engineErr{"Error response from daemon: container is marked for removal and cannot be started", "conflict"}, "gone"},
		{"no gpu", errors.New(`could not select device driver "" with capabilities: [[gpu]]`), PermanentRefused},
		{"unknown runtime", errors.New("Error response from daemon: unknown or invalid runtime name: nvidia"), PermanentRefused},
		{"not implemented", fmt.Errorf("x: %w", cerrdefs.ErrNotImplemented), PermanentRefused},
		{"no command", engineErr{"Error response from daemon: No command specified", "invalid"}, PermanentInvalid},
		{"a bad request", fmt.Errorf("creating: %w", engineErr{"Error response from daemon: invalid mount config", "invalid"}), PermanentInvalid},
		{"not a reference", errors.New("invalid reference format: repository name must be lowercase"), PermanentInvalid},
		{"compose's create-time check", errors.New("healthcheck.start_interval requires healthcheck.start_period to be set"), PermanentInvalid},
		{"compose's address check", errors.New("invalid IPv4 address: ParseAddr(\"10.0.0\"): IPv4 address too short"), PermanentInvalid},
		{"engine away", errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"), ""},
		{"conflict", fmt.Errorf("x: %w", cerrdefs.ErrConflict), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			err := classify(op, tt.err)
			if p := AsPermanent(err); p != nil {
				got = p.Kind
			}
			if errors.Is(err, ErrGone) {
				got = "gone"
			}
			if got != tt.want {
				t.Errorf("classify(%q) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// engineErr is an engine answer as the moby client gives it: the daemon's
// words, of a kind errdefs tells by a marker method.
type engineErr struct{ msg, kind string }

func (e engineErr) Error() string { return e.msg }

// Is makes the kind errdefs' own: errors.Is(err, cerrdefs.ErrNotFound).
func (e engineErr) Is(target error) bool {
	return e.kind == "notfound" && target == cerrdefs.ErrNotFound || e.kind == "conflict" && target == cerrdefs.ErrConflict ||
		e.kind == "invalid" && target == cerrdefs.ErrInvalidArgument
}
