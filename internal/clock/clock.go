// Package clock injects time into code that waits, backs off or debounces, so
// that tests control it instead of sleeping.
package clock

import "time"

// Clock tells the time and wakes callers up.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Real is the system clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
