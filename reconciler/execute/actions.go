package execute

import (
	"context"
	"fmt"
	"time"

	"github.com/reconcile-dev/reconcile/internal/engine"
	"github.com/reconcile-dev/reconcile/internal/safefile"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// DefaultExecTimeout bounds an OpExec that gives no timeout of its own.
const DefaultExecTimeout = 30 * time.Second

// ExecError is an OpExec whose command ran and exited non-zero: what it
// said is kept for the policy that ran it, which masks it before it shows
// it anywhere.
type ExecError struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

func (e *ExecError) Error() string { return fmt.Sprintf("exit code %d", e.ExitCode) }

// exec runs op.Command in op's container within op.Timeout.
func (e *Executor) exec(ctx context.Context, op plan.Operation) error {
	timeout := op.Timeout
	if timeout <= 0 {
		timeout = DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if e.Exec == nil {
		return fmt.Errorf("running a command in %s: no exec client", op.Container)
	}
	res, err := engine.Exec(ctx, e.Exec, op.ContainerID, op.Command)
	if err != nil {
		return fmt.Errorf("running a command in %s: %w", op.Container, err)
	}
	if res.ExitCode != 0 {
		return &ExecError{ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr}
	}
	return nil
}

// writeFile replaces op.File with op.Content atomically (a temporary file,
// then a rename), except where the file is itself the source of a bind
// mount (InPlace): a rename would leave the container with the old file.
// The directory is often one a container may write, so a link planted
// there is never followed (safefile).
func writeFile(op plan.Operation) error {
	if op.InPlace {
		return safefile.Overwrite(op.File, op.Content)
	}
	return safefile.Replace(op.File, op.Content, 0o644)
}
