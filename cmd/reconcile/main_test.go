package main

import (
	"os"
	"testing"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestMain leaves the single-node swarm the Swarm tests made, once they
// all ran: the engine as it was found. `make test` runs them alone, after
// every other engine test (test-swarm): a leave breaks name resolution in
// the compose projects running then (moby/moby#45144).
func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.LeaveSwarm()
	os.Exit(code)
}
