package desired

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// canary is a value that must never be printed.
const canary = "c4n4ry-v4lue-91"

// TestLoadErrorsMaskInterpolatedValues feeds a canary through each way a
// value reaches a file that compose then refuses: each error must still name
// the file and key, and never the value.
func TestLoadErrorsMaskInterpolatedValues(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		shell map[string]string
		want  string // a part of the message that must stay
	}{
		{"from the shell, into a duration", map[string]string{
			"compose.yaml": "services:\n  app:\n    image: x\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: ${IV}\n",
		}, map[string]string{"IV": canary}, "interval"},
		{"from .env, into a duration", map[string]string{
			"compose.yaml": "services:\n  app:\n    image: x\n    stop_grace_period: ${GRACE}\n",
			".env":         "GRACE=" + canary + "\n",
		}, nil, "compose.yaml"},
		{"from .env, into a port", map[string]string{
			"compose.yaml": "services:\n  app:\n    image: x\n    ports: [\"${PORT}:80\"]\n",
			".env":         "PORT=" + canary + "\n",
		}, nil, "compose.yaml"},
		{"a service's env_file that is not one: a line it cannot read", map[string]string{
			"compose.yaml": "services:\n  app:\n    image: x\n    env_file: [key.pem]\n",
			"key.pem":      "A=1\n" + canary + "+/x\n",
		}, nil, "key.pem: line 2"},
		{"a service's env_file that is not one: an unterminated quote", map[string]string{
			"compose.yaml": "services:\n  app:\n    image: x\n    env_file: [key.pem]\n",
			"key.pem":      "A=\"" + canary + "\n",
		}, nil, "unterminated quoted value"},
		{"from .env, into an x-reconcile key", map[string]string{
			"compose.yaml": "services:\n  app:\n    image: x\n    x-reconcile:\n      restart:\n        delay: ${D}\n",
			".env":         "D=" + canary + "\n",
		}, nil, "x-reconcile.restart.delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearComposeEnv(t)
			for k, v := range tt.shell {
				t.Setenv(k, v)
			}
			dir := writeFiles(t, tt.files)
			_, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
			if err == nil {
				t.Fatal("loaded; want a refusal")
			}
			msg := err.Error()
			if strings.Contains(msg, canary) || strings.Contains(msg, canary[:8]) {
				t.Errorf("the error prints the value: %s", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("the error %q does not say %q", msg, tt.want)
			}
		})
	}
}

// TestProjectSecrets says what a loaded project masks: environment values
// (env_file included) and interpolated values, but not a tag used only in
// an image, nor numbers.
func TestProjectSecrets(t *testing.T) {
	clearComposeEnv(t)
	dir := writeFiles(t, map[string]string{
		"compose.yaml": `
services:
  app:
    image: app:${TAG}
    command: ["serve", "--key=${KEY}"]
    labels: {owner: "${OWNER}"}
    environment: {DB_PASSWORD: inline-pa55word, PORT: "3000"}
    env_file: [app.env]
`,
		"app.env": "API_TOKEN=file-t0ken-value\n",
		".env":    "TAG=v1.2.3-release\nKEY=shell-k3y-value\nOWNER=owner-s3cret\n",
	})
	st, err := Load(context.Background(), loader(t), Options{Files: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		in, want string
	}{
		{"inline-pa55word", "***"},
		{"file-t0ken-value", "***"},
		{"--key=shell-k3y-value", "--key=***"},
		{"owner-s3cret", "***"},
		{"app:v1.2.3-release", "app:v1.2.3-release"},
		{"port 3000", "port 3000"},
	} {
		if got := st.Secrets.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := st.Services["app"].Secrets.Mask(tt.in); got != tt.want {
			t.Errorf("the service's Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
