package main

import (
	"os"
	"testing"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
)

// TestMain leaves the single-node swarm the Swarm tests made, once they
// all ran: the engine as it was found.
func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.LeaveSwarm()
	os.Exit(code)
}
