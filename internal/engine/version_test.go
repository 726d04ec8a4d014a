package engine

import (
	"runtime/debug"
	"testing"
)

// TestTheComposeVersionLabelIsTheLinkedSDKs: compose's CLI stamps the core
// of its version into every container and network it makes; reconcile,
// linking the SDK, stamps the same, from its build's module list. (That the
// built binary writes it is TestParityWithComposeUp's.)
func TestTheComposeVersionLabelIsTheLinkedSDKs(t *testing.T) {
	other := &debug.Module{Path: "github.com/spf13/cobra", Version: "v1.10.2"}
	tests := []struct {
		name string
		deps []*debug.Module
		want string
	}{
		{"a release", []*debug.Module{other, {Path: composeModule, Version: "v5.6.0"}}, "5.6.0"},
		{"a pre-release: its core", []*debug.Module{{Path: composeModule, Version: "v5.7.0-rc.1"}}, "5.7.0"},
		{"replaced", []*debug.Module{{Path: composeModule, Version: "v5.6.0", Replace: &debug.Module{Path: "../compose", Version: "v5.6.1"}}}, "5.6.1"},
		{"not linked (a test binary)", []*debug.Module{other}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := composeVersionOf(tt.deps); got != tt.want {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}
