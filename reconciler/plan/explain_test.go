package plan

import (
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/observed"
)

func TestExplainMasksEnvironmentValues(t *testing.T) {
	const canaryOld, canaryNew = "canary-old-7f3a", "canary-new-9b2c"
	d := load(t, `
services:
  api:
    image: app:2
    command: [serve, --fast]
    environment: {TOKEN: `+canaryNew+`, SAME: one, ADDED: `+canaryNew+`}
    labels: {tier: back}`)
	cfg := &observed.ContainerConfig{
		Image:    "app:1",
		Env:      map[string]string{"TOKEN": canaryOld, "SAME": "one", "GONE": canaryOld, "PATH": "/bin"},
		ImageEnv: map[string]string{"PATH": "/bin"},
		Command:  []string{"serve"},
		Labels:   map[string]string{"tier": "front"},
	}
	got := strings.Join(Explain(d.Services["api"], cfg), "\n")
	want := strings.Join([]string{
		`image: app:1 -> app:2`,
		`environment.ADDED: added (value ***)`,
		`environment.TOKEN: changed (values ***)`,
		`environment.GONE: removed`,
		`command: ["serve"] -> ["serve", "--fast"]`,
		`labels.tier: "front" -> "back"`,
	}, "\n")
	if got != want {
		t.Errorf("Explain:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "canary") {
		t.Errorf("an environment value leaked: %s", got)
	}
}

func TestExplainFallsBackWhenNothingVisibleChanged(t *testing.T) {
	d := load(t, "services:\n  api: {image: app, ports: [\"80\"]}\n")
	got := Explain(d.Services["api"], &observed.ContainerConfig{Image: "app", Env: map[string]string{}})
	if len(got) != 1 || !strings.Contains(got[0], "other settings") {
		t.Errorf("Explain = %v", got)
	}
}

// TestExplainMasksCommandEntrypointAndLabels: a value interpolated into a
// command, an entrypoint or a label, or held in the environment (now or in
// the container's old one), is not printed where those are shown.
func TestExplainMasksCommandEntrypointAndLabels(t *testing.T) {
	t.Setenv("API_KEY", "k3y-canary-new")
	d := load(t, `
services:
  api:
    image: app
    command: [serve, "--key=${API_KEY}"]
    entrypoint: [/init, "${API_KEY}"]
    environment: {DB_PASSWORD: pw-canary-env}
    labels: {auth: "basic pw-canary-env"}`)
	cfg := &observed.ContainerConfig{
		Image:      "app",
		Env:        map[string]string{"DB_PASSWORD": "pw-canary-env", "OLD_TOKEN": "t0k-canary-old"},
		Command:    []string{"serve", "--key=t0k-canary-old"},
		Entrypoint: []string{"/init"},
		Labels:     map[string]string{"auth": "basic t0k-canary-old"},
	}
	got := strings.Join(Explain(d.Services["api"], cfg), "\n")
	if strings.Contains(got, "canary") {
		t.Errorf("a value leaked:\n%s", got)
	}
	for _, want := range []string{
		`command: ["serve", "--key=***"] -> ["serve", "--key=***"]`,
		`entrypoint: ["/init"] -> ["/init", "***"]`,
		`labels.auth: "basic ***" -> "basic ***"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Explain lacks %q:\n%s", want, got)
		}
	}
}
