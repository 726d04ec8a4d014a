package plan

import (
	"testing"
)

const stack = `
services:
  db:
    image: db
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    volumes: [data:/data]
    networks: [back]
  migrate:
    image: app
    depends_on: {db: {condition: service_healthy}}
    networks: [back]
  api:
    image: app
    deploy: {replicas: 2}
    restart: always
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    networks: [back, front]
  web:
    image: web
    depends_on: [api]
    networks: [front]
networks: {back: {}, front: {}}
volumes: {data: {}}
`

func TestDiff(t *testing.T) {
	tests := []struct {
		name    string
		compose string
		setup   func(w *world)
		opts    Options
		drift   string
		plan    string
	}{
		{
			name:    "fresh project",
			compose: stack,
			setup: func(w *world) {
				w.snap.Networks, w.snap.Volumes = nil, nil
			},
			drift: `
				NetworkMissing p_back: network missing
				NetworkMissing p_front: network missing
				VolumeMissing p_data: volume missing
				ReplicaMissing db #1: replica missing (0 of 1 exist)
				ReplicaMissing migrate #1: replica missing (0 of 1 exist)
				ReplicaMissing api #1: replica missing (0 of 2 exist)
				ReplicaMissing api #2: replica missing (0 of 2 exist)
				ReplicaMissing web #1: replica missing (0 of 1 exist)`,
			plan: `
				[] -> #1 network:p_back, CreateNetwork, network missing
				[] -> #2 network:p_front, CreateNetwork, network missing
				[] -> #3 volume:p_data, CreateVolume, volume missing
				[1,3] -> #4 service:db:1, CreateContainer, replica missing (0 of 1 exist) [up:db]
				[4] -> #5 service:db, WaitCondition, service_healthy (needed by migrate)
				[1,5] -> #6 service:migrate:1, CreateContainer, replica missing (0 of 1 exist) [up:migrate]
				[6] -> #7 service:migrate, WaitCondition, service_completed_successfully (needed by api)
				[1,2,5,7] -> #8 service:api:1, CreateContainer, replica missing (0 of 2 exist) [up:api]
				[1,2,5,7] -> #9 service:api:2, CreateContainer, replica missing (0 of 2 exist) [up:api]
				[8,9] -> #10 service:api, WaitCondition, service_started (needed by web)
				[2,10] -> #11 service:web:1, CreateContainer, replica missing (0 of 1 exist) [up:web]`,
		},
		{
			name:    "pre_start hooks: with every replica down, compose's up starts them and runs the hooks",
			compose: "services:\n  app:\n    image: x\n    deploy: {replicas: 2}\n    pre_start: [{command: [init]}]\n",
			setup: func(w *world) {
				w.add("app", 1, "exited:1")
				w.add("app", 2, "created")
			},
			drift: `
				Exited p-app-1: exited (code 1)
				NotStarted p-app-2: created but not started`,
			plan: `
				[] -> #1 service:app:1, StartContainer, exited (code 1) [up:app]
				[] -> #2 service:app:2, StartContainer, created but not started [up:app]`,
		},
		{
			name:    "pre_start hooks: with a replica running, compose would not run them",
			compose: "services:\n  app:\n    image: x\n    deploy: {replicas: 2}\n    pre_start: [{command: [init]}]\n",
			setup: func(w *world) {
				w.add("app", 1, "running")
				w.add("app", 2, "exited:1")
			},
			drift: `
				Exited p-app-2: exited (code 1)`,
			plan: `
				[] -> #1 service:app:2, StartContainer, exited (code 1)`,
		},
		{
			name:    "converged",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
			},
		},
		{
			name:    "replica removed gets compose's next number, dependency already met",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "web")
				w.add("migrate", 1, "exited:0")
				w.add("api", 2, "running")
			},
			drift: `ReplicaMissing api #3: replica missing (1 of 2 exist)`,
			plan:  `[] -> #1 service:api:3, CreateContainer, replica missing (1 of 2 exist) [up:api]`,
		},
		{
			name:    "dependency not healthy yet is waited for",
			compose: stack,
			setup: func(w *world) {
				w.add("db", 1, "running:starting")
				w.add("migrate", 1, "exited:0")
				w.add("api", 1, "running")
				w.running("web")
			},
			drift: `ReplicaMissing api #2: replica missing (1 of 2 exist)`,
			plan: `
				[] -> #1 service:db, WaitCondition, service_healthy (needed by api)
				[1] -> #2 service:api:2, CreateContainer, replica missing (1 of 2 exist) [up:api]`,
		},
		{
			name:    "config diverged in one service only",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.get("p-web-1").ConfigHash = "old"
			},
			drift: `ConfigDiverged p-web-1: config hash diverged`,
			plan:  `[] -> #1 service:web:1, RecreateContainer, config hash diverged [up:web]`,
		},
		{
			name:    "image rebuilt under the same tag",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.snap.Images["web:latest"] = "sha256:new"
				for i := range w.snap.Containers {
					w.snap.Containers[i].ImageDigest = "sha256:old"
				}
				w.snap.Images["app:latest"], w.snap.Images["db:latest"] = "sha256:old", "sha256:old"
			},
			drift: `ImageChanged p-web-1: image web changed`,
			plan:  `[] -> #1 service:web:1, RecreateContainer, image web changed [up:web]`,
		},
		{
			name:    "exits: a crashed container restarts, a completed one-shot does not",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "web")
				w.add("migrate", 1, "exited:0")
				w.add("api", 1, "exited:0") // restart: always, so exit 0 is not "done"
				w.add("api", 2, "exited:137")
			},
			drift: `
				Exited p-api-1: exited (code 0)
				Exited p-api-2: exited (code 137)`,
			plan: `
				[] -> #1 service:api:1, StartContainer, exited (code 0)
				[] -> #2 service:api:2, StartContainer, exited (code 137)`,
		},
		{
			name:    "a failed one-shot runs again and its dependents wait for it",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "web")
				w.add("migrate", 1, "exited:1")
				w.add("api", 1, "exited:0")
				w.add("api", 2, "running")
			},
			drift: `
				Exited p-migrate-1: exited (code 1)
				Exited p-api-1: exited (code 0)`,
			plan: `
				[] -> #1 service:migrate:1, StartContainer, exited (code 1)
				[1] -> #2 service:migrate, WaitCondition, service_completed_successfully (needed by api)
				[2] -> #3 service:api:1, StartContainer, exited (code 0)`,
		},
		{
			name:    "unhealthy, paused, created",
			compose: stack,
			setup: func(w *world) {
				w.add("db", 1, "running:unhealthy")
				w.add("migrate", 1, "exited:0")
				w.add("api", 1, "paused")
				w.add("api", 2, "created")
				w.running("web")
			},
			drift: `
				Unhealthy p-db-1: unhealthy
				Paused p-api-1: paused
				NotStarted p-api-2: created but not started`,
			plan: `
				[] -> #1 service:db:1, RestartContainer, unhealthy
				[1] -> #2 service:db, WaitCondition, service_healthy (needed by api)
				[2] -> #3 service:api:1, UnpauseContainer, paused
				[2] -> #4 service:api:2, StartContainer, created but not started`,
		},
		{
			name:    "extra replicas are removed highest first, before up",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.add("api", 3, "running")
				w.add("api", 5, "running")
			},
			drift: `
				ExtraReplica p-api-5: extra replica (2 desired)
				ExtraReplica p-api-3: extra replica (2 desired)`,
			plan: `
				[] -> #1 service:api:5, RemoveContainer, extra replica (2 desired)
				[] -> #2 service:api:3, RemoveContainer, extra replica (2 desired)`,
		},
		{
			name:    "an extra replica created and not started is someone's up --scale: left until it runs",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.add("api", 3, "created")
			},
			drift: `ExtraReplica p-api-3: extra replica (2 desired); created, not started yet: removed once it starts (reported)`,
			plan:  ``,
		},
		{
			name:    "obsolete replicas are the first extras, as compose scales down",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "web")
				w.add("migrate", 1, "exited:0")
				w.add("api", 1, "running").ConfigHash = "old"
				w.add("api", 2, "running")
				w.add("api", 3, "running")
			},
			drift: `ExtraReplica p-api-1: extra replica (2 desired)`,
			plan:  `[] -> #1 service:api:1, RemoveContainer, extra replica (2 desired)`,
		},
		{
			name: "prune false only reports extras",
			compose: `
services:
  api:
    image: app
    x-reconcile: {replicas: {prune: false}}`,
			setup: func(w *world) {
				w.running("api")
				w.add("api", 2, "running")
			},
			drift: `ExtraReplica p-api-2: extra replica (1 desired) (reported)`,
		},
		{
			name:    "orphans are reported",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.add("old", 1, "running")
			},
			drift: `Orphan p-old-1: orphan container: service old is not in the compose file (reported)`,
		},
		{
			name:    "orphans are removed with --remove-orphans",
			compose: stack,
			opts:    Options{RemoveOrphans: true},
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.add("old", 1, "running")
			},
			drift: `Orphan p-old-1: orphan container: service old is not in the compose file`,
			plan:  `[] -> #1 container:p-old-1, RemoveContainer, orphan container`,
		},
		{
			name:    "networks: an extra one is disconnected, a missing one recreates",
			compose: stack,
			setup: func(w *world) {
				w.running("db", "api", "web")
				w.add("migrate", 1, "exited:0")
				w.get("p-api-1").Networks["bridge"] = "bridge-id"
				delete(w.get("p-web-1").Networks, "p_front")
			},
			drift: `
				UnexpectedNetwork p-api-1: attached to network bridge the file does not give it
				NetworkDetached p-web-1: not attached to network p_front`,
			plan: `
				[] -> #1 container:p-api-1, DisconnectNetwork, attached to network bridge the file does not give it
				[] -> #2 service:web:1, RecreateContainer, not attached to network p_front [up:web]`,
		},
		{
			name: "optional dependency left out by a profile is not waited for",
			compose: `
services:
  app:
    image: app
    depends_on: {debug: {condition: service_healthy, required: false}}
  debug: {image: dbg, profiles: [debug]}`,
			drift: `ReplicaMissing app #1: replica missing (0 of 1 exist)`,
			plan:  `[] -> #1 service:app:1, CreateContainer, replica missing (0 of 1 exist) [up:app]`,
		},
		{
			name: "optional dependency present is waited for, best effort",
			compose: `
services:
  app:
    image: app
    depends_on: {cache: {condition: service_started, required: false}}
  cache: {image: c}`,
			drift: `
				ReplicaMissing cache #1: replica missing (0 of 1 exist)
				ReplicaMissing app #1: replica missing (0 of 1 exist)`,
			plan: `
				[] -> #1 service:cache:1, CreateContainer, replica missing (0 of 1 exist) [up:cache]
				[1] -> #2 service:cache, WaitCondition, service_started (needed by app), optional
				[2] -> #3 service:app:1, CreateContainer, replica missing (0 of 1 exist) [up:app]`,
		},
		{
			name: "scaled to zero",
			compose: `
services:
  app: {image: app, scale: 0}`,
			setup: func(w *world) {
				w.add("app", 1, "running")
			},
			drift: `ExtraReplica p-app-1: extra replica (0 desired)`,
			plan:  `[] -> #1 service:app:1, RemoveContainer, extra replica (0 desired)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(load(t, tt.compose))
			if tt.setup != nil {
				tt.setup(w)
			}
			res := w.diff(tt.opts)
			if got, want := trimLines(driftText(res)), trimLines(tt.drift); got != want {
				t.Errorf("drift:\n%s\nwant:\n%s", got, want)
			}
			if got, want := trimLines(res.Plan.String()), trimLines(tt.plan); got != want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, want)
			}
			// the same inputs always give the same plan
			if again := Diff(w.d, w.snap, tt.opts).Plan.String(); again != res.Plan.String() {
				t.Errorf("plan not deterministic:\n%s\nthen:\n%s", res.Plan, again)
			}
		})
	}
}

func TestExpectedHashResolvesServiceReferences(t *testing.T) {
	d := load(t, `
services:
  vpn: {image: v}
  app: {image: a, network_mode: "service:vpn"}`)
	w := newWorld(d)
	before := ExpectedHash(d.Services["app"].Config, w.snap.ByService())
	w.add("vpn", 1, "running")
	after := ExpectedHash(d.Services["app"].Config, w.snap.ByService())
	if before == after {
		t.Error("the hash must depend on the container the namespace is shared with, as compose's does")
	}
	w.snap.Containers[0].ID = "other"
	if ExpectedHash(d.Services["app"].Config, w.snap.ByService()) == after {
		t.Error("a new vpn container must change app's expected hash")
	}
}

func TestImageID(t *testing.T) {
	images := map[string]string{"nginx:latest": "sha256:1", "reg.example:5000/team/app:2": "sha256:2", "app@sha256:abc": "sha256:3",
		"127.0.0.1:5000/app:stable": "sha256:old", "127.0.0.1:5000/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": "sha256:old", "127.0.0.1:5000/app@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb": "sha256:new"}
	tests := map[string]string{
		"nginx":                       "sha256:1",
		"docker.io/library/nginx":     "sha256:1",
		"nginx:latest":                "sha256:1",
		"reg.example:5000/team/app:2": "sha256:2",
		"app@sha256:abc":              "sha256:3",
		"missing:1":                   "",
		// pinned by an image update: the digest's image, not the tag's
		"127.0.0.1:5000/app:stable@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb": "sha256:new",
		"127.0.0.1:5000/app:stable@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": "sha256:old",
	}
	for ref, want := range tests {
		if got := ImageID(images, ref); got != want {
			t.Errorf("ImageID(%q) = %q, want %q", ref, got, want)
		}
	}
}
