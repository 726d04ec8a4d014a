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
	"github.com/reconcile-dev/reconcile/internal/exitcode"
)

// Exit codes: their one home is internal/exitcode.
const (
	exitOK           = exitcode.OK
	exitNotConverged = exitcode.NotConverged
	exitInput        = exitcode.Input
	exitEngine       = exitcode.Engine
	exitInternal     = exitcode.Internal
)

// withCode marks err with an exit code.
func withCode(code int, err error) error { return exitcode.With(code, err) }

// codeOf maps an error to its exit code (exitcode.Of).
func codeOf(err error, fallback int) int { return exitcode.Of(err, fallback) }

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
	silent := errors.Is(err, errSilent)
	if !silent {
		fmt.Fprintln(root.ErrOrStderr(), "reconcile: "+desired.OneLine(err.Error()))
	}
	return codeOf(err, exitInput)
}

// errSilent is an exit code whose explanation was already printed.
var errSilent = errors.New("")
