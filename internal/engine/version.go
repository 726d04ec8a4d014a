package engine

import (
	"runtime/debug"
	"strings"

	"github.com/docker/compose/v5/pkg/api"
)

// composeModule is the Compose SDK's module path.
const composeModule = "github.com/docker/compose/v5"

// The SDK stamps com.docker.compose.version from a variable its own release
// build sets at link time; a program linking the SDK leaves it empty, where
// the compose CLI of the same version writes "5.6.0". It is set here from
// the linked module's version, read from the binary's build info, so the
// label is what compose's own `up` writes.
func init() {
	if api.ComposeVersion == "" {
		api.ComposeVersion = ComposeModuleVersion()
	}
}

// ComposeModuleVersion is the linked Compose SDK's version as compose
// writes it in its version label ("5.6.0"), or "" when the build info does
// not say.
func ComposeModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	return composeVersionOf(bi.Deps)
}

// composeVersionOf finds the Compose SDK among a build's modules (a test
// binary lists none: the engine tests read the label a built binary
// writes).
func composeVersionOf(deps []*debug.Module) string {
	for _, m := range deps {
		if m.Path == composeModule {
			if m.Replace != nil {
				m = m.Replace
			}
			v := strings.TrimPrefix(m.Version, "v")
			if i := strings.IndexAny(v, "-+"); i >= 0 {
				v = v[:i] // compose's label is the version's core
			}
			return v
		}
	}
	return ""
}
