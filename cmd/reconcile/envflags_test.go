package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlagsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // "listen|files|workers"
		wantErr string
	}{
		{"nothing set", nil, nil, "|[]|4", ""},
		{"from the environment", nil, map[string]string{"RECONCILE_LISTEN": "127.0.0.1:1", "RECONCILE_FILE": "a.yaml, b.yaml", "RECONCILE_WORKERS": "8"}, "127.0.0.1:1|[a.yaml b.yaml]|8", ""},
		{"the command line wins", []string{"--listen", "127.0.0.1:2", "-f", "c.yaml"}, map[string]string{"RECONCILE_LISTEN": "127.0.0.1:1", "RECONCILE_FILE": "a.yaml"}, "127.0.0.1:2|[c.yaml]|4", ""},
		{"a bad value names its variable", nil, map[string]string{"RECONCILE_WORKERS": "many"}, "", `RECONCILE_WORKERS="many"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			listen := fs.String("listen", "", "")
			files := fs.StringArrayP("file", "f", nil, "")
			workers := fs.Int("workers", 4, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := flagsFromEnv(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := *listen + "|" + strings.Join([]string{"[" + strings.Join(*files, " ") + "]"}, "") + "|" + itoa(*workers)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestEveryCommandReadsRECONCILEVariables: the files, env file and output
// of `verify` from the environment, and -o on the command line over
// RECONCILE_OUTPUT.
func TestEveryCommandReadsRECONCILEVariables(t *testing.T) {
	dir, err := filepath.Abs("../../examples/production")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("RECONCILE_FILE", filepath.Join(dir, "docker-compose.yml")+","+filepath.Join(dir, "docker-compose.prod.yml"))
	t.Setenv("RECONCILE_ENV_FILE", filepath.Join(dir, "local-images.env"))
	t.Setenv("RECONCILE_PROJECT_NAME", "from-env")
	t.Setenv("RECONCILE_OUTPUT", "json")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"verify"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"project": "from-env"`) {
		t.Fatalf("verify from the environment: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"verify", "-o", "table"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "RESULT") {
		t.Errorf("-o table over RECONCILE_OUTPUT=json: exit %d\n%s", code, out.String())
	}
}
