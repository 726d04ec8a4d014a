package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix starts the environment variable of each flag: --state-dir is
// RECONCILE_STATE_DIR. Containers and systemd units configure the daemon
// this way; a flag on the command line wins.
const EnvPrefix = "RECONCILE_"

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// flagsFromEnv sets every flag the command line left alone from its
// environment variable, if set. A repeatable flag takes a comma-separated
// list. A value the flag refuses is bad input, named by its variable.
func flagsFromEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		values := []string{v}
		if t := f.Value.Type(); strings.HasSuffix(t, "Array") || strings.HasSuffix(t, "Slice") {
			values = strings.Split(v, ",")
		}
		for _, x := range values {
			if err := fs.Set(f.Name, strings.TrimSpace(x)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
				return
			}
		}
	})
	return errors.Join(errs...)
}
