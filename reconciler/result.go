package reconciler

import (
	"errors"
	"time"

	"github.com/reconcile-dev/reconcile/internal/record"
)

// Result is what one reconcile asks of the work queue, as controller-runtime's
// reconcile.Result: nothing (the service is done until something changes),
// or another look after RequeueAfter (a backoff, a wait on a dependency).
type Result struct {
	RequeueAfter time.Duration
}

// terminalError marks an error that retrying cannot fix, with the reason it
// is recorded under.
type terminalError struct {
	reason record.Reason
	err    error
}

func (t *terminalError) Error() string { return t.err.Error() }
func (t *terminalError) Unwrap() error { return t.err }

// TerminalError marks err as one retrying cannot fix (a missing image, a
// bad file): it is recorded once under reason (ReconcileFailed when empty)
// and the service waits for the next change (an edit, an event, a resync)
// instead of being retried with backoff.
func TerminalError(reason record.Reason, err error) error {
	if err == nil {
		return nil
	}
	if reason == "" {
		reason = record.ReconcileFailed
	}
	return &terminalError{reason: reason, err: err}
}

// terminalReason is the reason a terminal error is recorded under.
func terminalReason(err error) record.Reason {
	var t *terminalError
	if errors.As(err, &t) {
		return t.reason
	}
	return record.ReconcileFailed
}

// IsTerminal reports whether err was marked with TerminalError.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}
