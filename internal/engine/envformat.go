package engine

import (
	"fmt"
	"io"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/docker/cli/pkg/kvfile"
)

// The compose CLI registers the `raw` env_file format (`env_file: [{path:
// app.env, format: raw}]`: values taken as written, as `docker run
// --env-file` reads them) in its command package, not in the SDK that
// loads projects. reconcile registers the same parser, so that it accepts
// what compose accepts and hashes the same environment.
func init() {
	dotenv.RegisterFormat("raw", rawEnv)
}

// rawEnv is the compose CLI's reader of the raw format.
func rawEnv(r io.Reader, filename string, vars map[string]string, lookup func(key string) (string, bool)) error {
	lines, err := kvfile.ParseFromReader(r, lookup)
	if err != nil {
		return fmt.Errorf("failed to parse env_file %s: %w", filename, err)
	}
	for _, line := range lines {
		key, value, _ := strings.Cut(line, "=")
		vars[key] = value
	}
	return nil
}
