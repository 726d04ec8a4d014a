package execute

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// Why an operation failed in a way that waiting cannot fix.
const (
	PermanentHook    = "hook"    // a lifecycle hook ran and failed
	PermanentRefused = "refused" // the engine refused the container's definition
	// PermanentInvalid: the engine (a bad request, a reference that is not
	// one) or compose's own checks at create time found the service's
	// definition invalid: bad input, to be fixed in the file.
	PermanentInvalid = "invalid"
	// PermanentRolledBack: a rolling update failed and was rolled back (or
	// paused); the definition is not tried again until the file changes.
	PermanentRolledBack = "rolled back"
)

// PermanentError is an operation's failure that retrying will not fix: a
// lifecycle hook that failed, a container the definition joins (ipc,
// network_mode, volumes_from) that does not exist, an option this engine
// does not support. `--once` ends at once on one instead of retrying until
// its timeout; the daemon records it and waits for the next change.
type PermanentError struct {
	Kind string // PermanentHook, PermanentRefused, PermanentInvalid or PermanentRolledBack
	Err  error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// AsPermanent returns the first permanent failure err holds (it may join
// several), or nil.
func AsPermanent(err error) *PermanentError {
	var p *PermanentError
	if errors.As(err, &p) {
		return p
	}
	return nil
}

var (
	// compose's hook failures: pre_start runners, post_start execs
	reComposeHook = regexp.MustCompile(`pre_start\[\d+\] (exited with code|wait error)|hook exited with status \d+|per_replica is not yet supported`)
	// the engine's answers to options it cannot honour, whatever the
	// status code it gives them
	reUnsupported = regexp.MustCompile(`could not select device driver|unknown or invalid runtime name|(kernel|system) does not support|not supported|invalid (mount|volume|IPC|PID) mode|conflicting options`)
	// compose's create-time checks and the engine's refusals of a
	// definition, when they do not come as a typed bad request
	reInvalidDefinition = regexp.MustCompile(`No command specified|invalid reference format|requires healthcheck\.|invalid (DNS|IPv4|IPv6|link-local IP|security-opt|subnet|ip-range|gateway address|auxiliary address|MAC address)\b`)
	// a container another one's definition joins
	reJoined = regexp.MustCompile(`[Nn]o such container: (\S+)|joining network namespace of container|cannot join (IPC|network|PID) of a non running container`)
)

// ErrGone marks an operation whose container went away under it (`docker
// rm -f` between a die and its destroy): not a failure, nothing to record;
// the container's destroy event queues the next look, which plans anew.
var ErrGone = errors.New("the container went away")

// gone reports whether err says op's own container is gone or being
// removed.
func gone(op plan.Operation, err error) bool {
	if op.ContainerID == "" {
		return false
	}
	msg := err.Error()
	switch {
	case cerrdefs.IsConflict(err) && strings.Contains(msg, "marked for removal"),
		strings.Contains(msg, "removal of container") && strings.Contains(msg, "is already in progress"):
		return true
	case cerrdefs.IsNotFound(err):
		m := reJoined.FindStringSubmatch(msg)
		return m == nil || m[1] == "" || m[1] == op.ContainerID || m[1] == op.Container
	}
	return false
}

// classify marks err permanent when it is one of the failures above. A
// NotFound naming the operation's own container is not: the container went
// away meanwhile, and the next look plans it anew.
func classify(op plan.Operation, err error) error {
	if err == nil || AsPermanent(err) != nil {
		return err
	}
	if gone(op, err) {
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	var hook *HookError
	msg := err.Error()
	switch {
	case errors.As(err, &hook), reComposeHook.MatchString(msg):
		return &PermanentError{Kind: PermanentHook, Err: err}
	case reUnsupported.MatchString(msg), cerrdefs.IsNotImplemented(err):
		return &PermanentError{Kind: PermanentRefused, Err: err}
	case reInvalidDefinition.MatchString(msg), cerrdefs.IsInvalidArgument(err) && !reJoined.MatchString(msg):
		return &PermanentError{Kind: PermanentInvalid, Err: err}
	}
	if m := reJoined.FindStringSubmatch(msg); m != nil {
		if m[1] != "" && (m[1] == op.ContainerID || m[1] == op.Container) {
			return err
		}
		return &PermanentError{Kind: PermanentRefused, Err: err}
	}
	return err
}
