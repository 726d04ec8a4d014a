package main

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/docker/compose/v5/pkg/api"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/internal/testimage"
)

// parityStacks cover dependencies (with a health condition and restart:
// true), replicas, custom networks, named volumes, a container_name, env
// files, labels, an image built by one service and used by another, and
// pre_start and post_start hooks.
var parityStacks = map[string]string{
	"dependencies": `
services:
  db:
    image: {{.Image}}
    healthcheck: {test: ["CMD", "/testapp", "health"], interval: 1s, timeout: 3s, retries: 3}
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    depends_on:
      db: {condition: service_healthy, restart: true}
  worker:
    image: {{.Image}}
    depends_on: [api]
`,
	"build-hooks": `
services:
  built:
    build: {context: ./img}
    image: {{.Name}}-built:1
    post_start:
      - command: ["/testapp", "ctl", "healthy"]
  user:
    image: {{.Name}}-built:1
    depends_on: [built]
    pre_start:
      - command: ["exit", "0"]
`,
	"resources": `
services:
  front:
    image: {{.Image}}
    container_name: {{.Name}}-front
    networks: [edge, inner]
    labels: {tier: front}
  back:
    image: {{.Image}}
    networks: [inner]
    volumes: ["data:/data", "./conf:/conf:ro"]
    environment: {MODE: prod}
    env_file: [app.env]
networks: {edge: {}, inner: {internal: true}}
volumes: {data: {}}
`,
}

// labelsOf returns each container's labels by name.
func labelsOf(t *testing.T, p *enginetest.Project) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for name, id := range p.IDs() {
		labels := p.Inspect(id).Config.Labels
		// compose joins depends_on entries in map order
		if dep, ok := labels["com.docker.compose.depends_on"]; ok {
			parts := strings.Split(dep, ",")
			slices.Sort(parts)
			labels["com.docker.compose.depends_on"] = strings.Join(parts, ",")
		}
		out[name] = labels
	}
	return out
}

// TestParityWithComposeUp: for each stack, `reconcile --once` and the real
// `docker compose up` (v5.6.0, built from the module) make the same
// containers with the same names, labels and config hashes in the same
// project, and each tool afterwards changes nothing in the other's work.
func TestParityWithComposeUp(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(parityStacks)) {
		stack := parityStacks[name]
		t.Run(name, func(t *testing.T) {
			p := enginetest.NewProject(t, stack)
			p.Write("conf/app.conf", "v1\n")
			p.Write("app.env", "TOKEN=abc\n")
			p.Write("img/Dockerfile", "FROM "+testimage.Tag+"\nLABEL built.by=parity\n")

			// reconcile first, then compose's up: compose changes nothing
			once(t, p)
			byReconcile := labelsOf(t, p)
			before := p.IDs()
			if r := p.Compose("up", "-d", "--wait"); r.Code != 0 {
				t.Fatalf("compose up after reconcile: %s", r)
			}
			if after := p.IDs(); !maps.Equal(before, after) {
				t.Errorf("compose up changed reconcile's containers:\nbefore %v\nafter  %v", before, after)
			}

			// compose from scratch, then reconcile: nothing to do
			if r := p.Compose("down"); r.Code != 0 {
				t.Fatalf("compose down: %s", r)
			}
			if r := p.Compose("up", "-d", "--wait"); r.Code != 0 {
				t.Fatalf("compose up: %s", r)
			}
			byCompose := labelsOf(t, p)
			before = p.IDs()
			if r := reconcile(t, p.Dir, nil, "diff", "-f", p.File, "-p", p.Name); r.Code != 0 {
				t.Errorf("diff after compose up: %s; want in sync", r)
			}
			once(t, p)
			if after := p.IDs(); !maps.Equal(before, after) {
				t.Errorf("reconcile changed compose's containers:\nbefore %v\nafter  %v", before, after)
			}

			// the same containers, labels and hashes; the version label is
			// compose's release (the CLI is built as compose's release
			// build stamps it, make compose-cli), not left empty
			for n, la := range byReconcile {
				if v := la[api.VersionLabel]; !regexp.MustCompile(`^5\.\d+\.\d+$`).MatchString(v) {
					t.Errorf("%s: %s is %q, want the SDK's version, as compose writes it", n, api.VersionLabel, v)
				}
			}
			if a, b := slices.Sorted(maps.Keys(byReconcile)), slices.Sorted(maps.Keys(byCompose)); !slices.Equal(a, b) {
				t.Fatalf("containers: reconcile %v, compose %v", a, b)
			}
			for n, la := range byReconcile {
				lb := byCompose[n]
				for _, k := range slices.Sorted(maps.Keys(lb)) {
					if la[k] != lb[k] {
						t.Errorf("%s: label %s: reconcile %q, compose %q", n, k, la[k], lb[k])
					}
				}
				for k := range la {
					if _, ok := lb[k]; !ok {
						t.Errorf("%s: label %s only on reconcile's container", n, k)
					}
				}
			}
		})
	}
}
