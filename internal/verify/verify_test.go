package verify

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/engine"
)

// loadProduction loads the course's production example, with override
// (when not empty) as a last compose file.
func loadProduction(t *testing.T, override string) *desired.State {
	t.Helper()
	dir, err := filepath.Abs("../../examples/production")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(dir, "docker-compose.yml"), filepath.Join(dir, "docker-compose.prod.yml")}
	if override != "" {
		f := filepath.Join(t.TempDir(), "broken.yml")
		if err := os.WriteFile(f, []byte(override), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	loader, err := engine.Loader()
	if err != nil {
		t.Fatal(err)
	}
	d, err := desired.Load(context.Background(), loader, desired.Options{
		Files: files, ProjectDir: dir, ProjectName: "verify",
		EnvFiles: []string{filepath.Join(dir, "local-images.env")},
	})
	if err != nil {
		t.Fatalf("loading the production example with %q: %v", override, err)
	}
	return d
}

// TestTheProductionExamplePasses: the course's production stack meets
// every item of its checklist.
func TestTheProductionExamplePasses(t *testing.T) {
	for _, it := range Check(loadProduction(t, "")) {
		if it.Result != Pass {
			t.Errorf("%s: %s (%s)", it.ID, it.Result, it.Why)
		}
	}
}

// TestEachBrokenVariantFailsExactlyWhatItBreaks breaks the production
// example one way at a time: each variant fails its item and no other, and
// every item has one. (The --live items' variants break a running stack:
// examples/production, TestEveryLiveCheckCanFail.)
func TestEachBrokenVariantFailsExactlyWhatItBreaks(t *testing.T) {
	tests := []struct {
		fails    string
		override string
	}{
		{"healthchecks", "services:\n  lb:\n    healthcheck: !reset {}\n"},
		{"startup-order", "services:\n  api:\n    depends_on:\n      db: {condition: service_started}\n"},
		{"restart-policies", "services:\n  frontend:\n    restart: \"no\"\n"},
		{"limits", "services:\n  frontend:\n    deploy:\n      resources:\n        limits: !reset {}\n"},
		{"reservations", "services:\n  cache:\n    deploy:\n      resources:\n        reservations: !reset {}\n"},
		{"named-volume", "volumes:\n  db-data:\n    name: !reset \"\"\n"},
		{"tmpfs", "services:\n  cache:\n    tmpfs: !reset []\n"},
		// no bind mount edited by hand left (only the upstream files
		// reconcile writes): the init scripts come from a volume instead
		{"bind-mount", "services:\n  lb:\n    volumes: !override\n      - ./lb/upstreams:/etc/nginx/upstreams:ro\n  frontend:\n    volumes: !reset []\n  cache:\n    volumes: !reset []\n" +
			"  db:\n    volumes: !override\n      - db-data:/var/lib/postgresql/data\n      - initdb:/docker-entrypoint-initdb.d\nvolumes:\n  initdb: {}\n"},
		{"isolation", "services:\n  db:\n    networks: [db-network, frontend-network]\n  cache:\n    networks: [cache-network, frontend-network]\n"},
		{"published-ports", "services:\n  api:\n    ports: [\"127.0.0.1::3000\"]\n"},
		// one service exposed, but not the balancer
		{"published-ports", "services:\n  lb:\n    ports: !reset []\n  api:\n    ports: [\"127.0.0.1::3000\"]\n"},
		// the course's single-backend design: the frontend on the network
		// of the data, apart from other pairs
		{"isolation", "services:\n  frontend:\n    networks: [frontend-network, db-network]\n"},
		{"init-scripts", "services:\n  db:\n    volumes: !override\n      - db-data:/var/lib/postgresql/data\n"},
		{"load-balancing", "services:\n  api:\n    deploy:\n      replicas: 1\n"},
		{"graceful-shutdown", "services:\n  cache:\n    stop_grace_period: !reset \"\"\n"},
		{"logging", "services:\n  cache:\n    logging: !reset {}\n"},
	}
	broken := map[string]bool{}
	for _, tt := range tests {
		broken[tt.fails] = true
	}
	for _, id := range IDs() {
		if !broken[id] {
			t.Errorf("item %s has no broken variant", id)
		}
	}
	for _, tt := range tests {
		t.Run(tt.fails, func(t *testing.T) {
			if !slices.Contains(IDs(), tt.fails) {
				t.Fatalf("no checklist item %q", tt.fails)
			}
			var failed []string
			for _, it := range Check(loadProduction(t, tt.override)) {
				if it.Result == Fail {
					failed = append(failed, it.ID)
				}
			}
			if !slices.Equal(failed, []string{tt.fails}) {
				t.Errorf("failed %v, want exactly [%s]", failed, tt.fails)
			}
		})
	}
}

// TestSegmentation: what the live isolation item holds the wire to is the
// course's rule, not the file's networks: the same pairs whatever networks
// the files give, dependencies reachable and data out of everyone else's
// reach.
func TestSegmentation(t *testing.T) {
	all := func(string) bool { return true }
	want := []string{
		"api→cache reachable", "api→db reachable",
		"cache→db unreachable", "db→cache unreachable",
		"frontend→api reachable", "frontend→cache unreachable", "frontend→db unreachable",
		"lb→api reachable", "lb→cache unreachable", "lb→db unreachable", "lb→frontend reachable",
	}
	tests := []struct {
		name     string
		override string
		running  func(string) bool
		want     []string
	}{
		{"the example", "", all, want},
		// the course's single backend network: the files let the frontend
		// reach the data, the rule still wants it cut off
		{"one backend network", "services:\n  frontend:\n    networks: [frontend-network, db-network, cache-network]\n", all, want},
		{"only what runs", "", func(s string) bool { return s != "cache" }, []string{
			"api→db reachable", "frontend→api reachable", "frontend→db unreachable",
			"lb→api reachable", "lb→db unreachable", "lb→frontend reachable",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range segmentation(loadProduction(t, tt.override), tt.running) {
				got = append(got, p.a.Name+"→"+p.b.Name+" "+word(p.want))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("pairs:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
