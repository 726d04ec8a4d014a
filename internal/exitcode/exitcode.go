// Package exitcode is the one home of reconcile's exit codes (documented in
// the exit-code table of docs/commands.md) and of the error that carries one, so that
// the daemon's package can say how its failures end the process without
// living in package main.
package exitcode

import (
	"errors"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

// Exit codes, documented in docs/commands.md.
const (
	OK           = 0
	NotConverged = 1 // --once: not converged in time; diff: drift found
	Input        = 2 // invalid input or usage; nothing was touched
	Engine       = 3 // the engine is unreachable, or (--once) failed after acting
	Internal     = 4 // anything else
)

// Error carries the exit code an error maps to.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// With marks err with code; nil stays nil.
func With(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Of maps an error to its exit code: a code given with With wins; input
// errors are Input and engine connection failures Engine wherever they
// come from; fallback otherwise.
func Of(err error, fallback int) int {
	var ee *Error
	switch {
	case err == nil:
		return OK
	case errors.As(err, &ee):
		return ee.Code
	case desired.IsInputError(err):
		return Input
	case errors.Is(err, engine.ErrUnreachable):
		return Engine
	}
	return fallback
}
