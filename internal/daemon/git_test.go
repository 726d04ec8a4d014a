package daemon

import (
	"testing"

	"github.com/reconcile-dev/reconcile/internal/record"
)

// TestRolloutCauses: a rollback marks the commit bad only when the commit
// started that rollout, not an image update of the service.
func TestRolloutCauses(t *testing.T) {
	r := func(reason record.Reason, svc string) record.Record {
		return record.Record{Reason: reason, Service: svc}
	}
	for _, tc := range []struct {
		name string
		recs []record.Record
		want bool // the last record is the commit's rollback
	}{
		{"commit, then its rollout rolled back", []record.Record{r(record.CommitApplied, ""), r(record.RolloutStarted, "api"), r(record.RolledBack, "api")}, true},
		{"an image update's rollout rolled back", []record.Record{r(record.CommitApplied, ""), r(record.ImageUpdateStarted, "api"), r(record.RolloutStarted, "api"), r(record.RolledBack, "api")}, false},
		{"an image update of another service", []record.Record{r(record.CommitApplied, ""), r(record.ImageUpdateStarted, "web"), r(record.RolloutStarted, "api"), r(record.RolledBack, "api")}, true},
		{"a commit after the image update", []record.Record{r(record.ImageUpdateStarted, "api"), r(record.CommitApplied, ""), r(record.RolloutStarted, "api"), r(record.RolledBack, "api")}, true},
		{"no commit applied by this daemon", []record.Record{r(record.RolloutStarted, "api"), r(record.RolledBack, "api")}, false},
		{"completed, then a rollback of nothing started", []record.Record{r(record.CommitApplied, ""), r(record.RolloutStarted, "api"), r(record.RolloutComplete, "api"), r(record.RolledBack, "api")}, false},
	} {
		var c rolloutCauses
		got := false
		for _, rec := range tc.recs {
			got = c.see(rec)
		}
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
