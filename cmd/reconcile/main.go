// Command reconcile keeps a Docker Compose project converged to its compose
// files: `reconcile --once` converges and exits with a code CI can act on,
// `reconcile diff` shows drift and the plan, `reconcile status` where each
// service stands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

// Exit codes, documented in the README.
const (
	exitOK           = 0
	exitNotConverged = 1 // --once: not converged in time; diff: drift found
	exitInput        = 2 // invalid input or usage; nothing was touched
	exitEngine       = 3 // the engine is unreachable, or (--once) failed after acting
	exitInternal     = 4 // diff and status: any other failure
)

// exitError carries the exit code an error maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// codeOf maps an error to its exit code: input errors are 2 and engine
// connection failures 3 wherever they come from; fallback otherwise.
func codeOf(err error, fallback int) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code // a command's own mapping wins
	case desired.IsInputError(err):
		return exitInput
	case errors.Is(err, engine.ErrUnreachable):
		return exitEngine
	}
	return fallback
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns its exit code; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	silent := errors.As(err, &ee) && ee.err == errSilent
	if !silent {
		fmt.Fprintln(stderr, "reconcile: "+desired.OneLine(err.Error()))
	}
	return codeOf(err, exitInput)
}

// errSilent is an exit code whose explanation was already printed.
var errSilent = errors.New("")
