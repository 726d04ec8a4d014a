package desired

import (
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/internal/secrets"
)

// projectSecrets is what reconcile never prints of a loaded project: every
// value of every service's environment (env_file entries included), and the
// value of every variable its files interpolate, from the shell or an env
// file, except one used only in an image (a tag shown in diffs).
func projectSecrets(p *types.Project, refs map[string]bool) *secrets.Set {
	var values []string
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		for _, v := range p.Services[name].Environment {
			if v != nil {
				values = append(values, *v)
			}
		}
	}
	for name, secret := range refs {
		if v, ok := p.Environment[name]; ok && secret {
			values = append(values, v)
		}
	}
	return secrets.New(values...)
}

// failureSecrets is what a load that failed must not print: the values of
// the variables the files refer to, as compose would have interpolated them
// (the process's environment, then the env files), so that an error quoting
// an interpolated value (`invalid duration "<value>"`) shows it masked.
func failureSecrets(refs map[string]bool, envFiles []string) *secrets.Set {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var readable []string
	for _, f := range envFiles {
		if boundedFile(f) == nil && fileExists(f) {
			readable = append(readable, f)
		}
	}
	// the shell's value wins over a file's, as in compose; both are masked
	// (a file read in part still gives what it has read)
	fromFiles, _ := dotenv.GetEnvFromFile(env, readable)
	var values []string
	for name, secret := range refs {
		if !secret {
			continue
		}
		for _, src := range []map[string]string{env, fromFiles} {
			if v, ok := src[name]; ok {
				values = append(values, v)
			}
		}
	}
	return secrets.New(values...)
}
