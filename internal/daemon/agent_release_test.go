package daemon

import (
	"testing"

	"github.com/reconcile-dev/reconcile/observed"
)

// TestADiscoveredProjectIsLetGoAtItsSecondEmptyListingInARow: one listing
// without a container is not enough (a stop-first update of the project's
// only replica removes it a pass before adding its successor); two in a
// row are, and a listing that shows it again starts the count afresh.
func TestADiscoveredProjectIsLetGoAtItsSecondEmptyListingInARow(t *testing.T) {
	present := []observed.Origin{{Project: "shop", WorkingDir: "/srv/shop", ConfigFiles: []string{"/srv/shop/compose.yaml"}}}
	empty := []observed.Origin{}
	steps := []struct {
		name    string
		origins []observed.Origin
		kept    bool
	}{
		{"listed with containers", present, true},
		{"the first listing without", empty, true},
		{"a directory rescan says nothing of it", nil, true},
		{"listed again", present, true},
		{"without, counted afresh", empty, true},
		{"the second listing in a row without", empty, false},
	}
	h := &host{opts: Options{DiscoverMatch: "*"}}
	h.projects.Store(&map[string]*Project{})
	running := &source{key: "engine:shop", p: &Project{}} // a project held: only its presence counts here
	a := &agent{h: h, discover: true, sources: map[string]*source{running.key: running}}
	for _, st := range steps {
		want := a.wanted(st.origins)
		if _, kept := want[running.key]; kept != st.kept {
			t.Fatalf("%s: kept %v, want %v", st.name, kept, st.kept)
		}
		for k := range a.sources { // as scan does with what is not wanted
			if _, ok := want[k]; !ok {
				delete(a.sources, k)
			}
		}
		if st.kept && a.sources[running.key] != running {
			t.Fatalf("%s: the running source was replaced", st.name)
		}
	}
}
