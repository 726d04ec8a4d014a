package imageupdates

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/reconcile-dev/reconcile/desired"
	"github.com/reconcile-dev/reconcile/internal/clock"
	"github.com/reconcile-dev/reconcile/internal/record"
	"github.com/reconcile-dev/reconcile/observed/registry"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	hour := time.Hour
	for _, tc := range []struct {
		name    string
		e       Entry
		digest  string
		created time.Time
		minAge  time.Duration
		want    Decision
	}{
		{"the baseline runs", Entry{Baseline: "a"}, "a", now.Add(-48 * hour), 0, Decision{}},
		{"the pin runs", Entry{Baseline: "a", Pinned: "b"}, "b", now.Add(-48 * hour), 0, Decision{}},
		{"new and old enough", Entry{Baseline: "a"}, "b", now.Add(-25 * hour), 24 * hour, Decision{Action: Update}},
		{"new, too young", Entry{Baseline: "a"}, "b", now.Add(-hour), 24 * hour, Decision{Action: Wait, Until: now.Add(23 * hour)}},
		{"failed before", Entry{Baseline: "a", Failed: []string{"b"}}, "b", now.Add(-48 * hour), 0, Decision{}},
		{"a rollout under way", Entry{Baseline: "a", Pinned: "b", Rolling: true}, "c", now.Add(-48 * hour), 0, Decision{}},
		{"undated, first seen long ago", Entry{Baseline: "a", FirstSeen: map[string]time.Time{"b": now.Add(-2 * hour)}}, "b", time.Time{}, hour, Decision{Action: Update}},
		{"undated, seen now", Entry{Baseline: "a"}, "b", time.Time{}, hour, Decision{Action: Wait, Until: now.Add(hour)}},
		{"no min_age", Entry{Baseline: "a"}, "b", now, 0, Decision{Action: Update}},
	} {
		if got := Decide(&tc.e, tc.digest, tc.created, now, tc.minAge); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

type fakeRegistry struct {
	tag registry.Tag
	err error
	// by tag, for the semver policy (tag used otherwise)
	byTag map[string]registry.Tag
}

func (f *fakeRegistry) Resolve(_ context.Context, image string) (registry.Tag, error) {
	if f.byTag != nil {
		_, tag := split(image)
		t, ok := f.byTag[tag]
		if !ok {
			return registry.Tag{}, errors.New("no such tag " + tag)
		}
		return t, nil
	}
	return f.tag, f.err
}

func (f *fakeRegistry) Tags(context.Context, string) ([]string, error) {
	var out []string
	for t := range f.byTag {
		out = append(out, t)
	}
	return out, f.err
}

type fakeLocal string

func (f fakeLocal) LocalDigest(context.Context, string) (string, error) { return string(f), nil }

type recorded struct {
	reason  record.Reason
	service string
	message string
}

type recs []recorded

func (r *recs) Event(reason record.Reason, service, _, message string) {
	*r = append(*r, recorded{reason, service, message})
}

func (r recs) reasons() []record.Reason {
	var out []record.Reason
	for _, x := range r {
		out = append(out, x.reason)
	}
	return out
}

func state(image string) *desired.State {
	web := &desired.Service{Name: "web", Config: types.ServiceConfig{}, Policy: desired.Policy{Images: &desired.ImageUpdates{Policy: "digest", MinAge: time.Hour, Interval: time.Minute}}}
	web.Config.Image = image
	db := &desired.Service{Name: "db"}
	db.Config.Image = "postgres:15"
	return &desired.State{Order: []string{"web", "db"}, Services: map[string]*desired.Service{"web": web, "db": db},
		Project: &types.Project{Services: types.Services{"web": web.Config, "db": db.Config}}}
}

// TestUpdaterPinsRollsBackAndRemembers: a new digest is waited for until
// min_age, then pinned and applied; its rollout's verdict (complete,
// rolled back) is learnt from the records; a failed digest is not tried
// again; the pins outlive a restart (the file).
func TestUpdaterPinsRollsBackAndRemembers(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	reg := &fakeRegistry{tag: registry.Tag{Digest: "sha256:aaa", Created: clk.Now().Add(-48 * time.Hour)}}
	var rs recs
	var applied []string
	file := filepath.Join(t.TempDir(), "p.images.json")
	u := &Updater{Registry: reg, Local: fakeLocal("sha256:aaa"), Records: &rs, Clock: clk, File: file, Apply: func(why string) { applied = append(applied, why) }}
	if err := u.Load(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := state("reg.example/app:stable")

	u.Check(ctx, d) // the baseline: nothing to do
	if len(rs) != 0 || len(applied) != 0 {
		t.Fatalf("baseline: records %v, applied %v", rs, applied)
	}
	// a new digest, an hour's min_age not reached: waited for, said once
	reg.tag = registry.Tag{Digest: "sha256:bbb", Created: clk.Now().Add(-30 * time.Minute)}
	clk.Advance(time.Minute)
	u.Check(ctx, d)
	clk.Advance(time.Minute)
	u.Check(ctx, d)
	if !slices.Equal(rs.reasons(), []record.Reason{record.ImageUpdateWaiting}) || len(applied) != 0 {
		t.Fatalf("young digest: %v, applied %v", rs, applied)
	}
	// not asked again before the interval
	reg.err = errors.New("must not be asked")
	clk.Advance(30 * time.Second)
	u.Check(ctx, d)
	reg.err = nil
	// old enough: pinned, applied, the desired image pinned on load
	clk.Advance(30 * time.Minute)
	u.Check(ctx, d)
	if len(applied) != 1 || rs[len(rs)-1].reason != record.ImageUpdateStarted {
		t.Fatalf("ripe digest: %v, applied %v", rs, applied)
	}
	u.Override(d)
	if got := d.Services["web"].Config.Image; got != "reg.example/app:stable@sha256:bbb" {
		t.Fatalf("pinned image %q", got)
	}
	if got := d.Project.Services["web"].Image; got != "reg.example/app:stable@sha256:bbb" {
		t.Fatalf("the project's own copy, which the SDK creates from, is %q", got)
	}
	if got := d.Services["db"].Config.Image; got != "postgres:15" {
		t.Errorf("a service that does not follow its tag was changed: %q", got)
	}
	st := plan.ProjectStatus{Services: []plan.ServiceStatus{{Service: "web"}, {Service: "db"}}}
	u.Annotate(&st)
	if st.Services[0].ImageUpdate != "sha256:bbb" || st.Services[1].ImageUpdate != "" {
		t.Errorf("status while rolling out: %+v", st.Services)
	}
	// another project's, another service's, another reason's records change nothing
	u.Observe(record.Record{Reason: record.RolloutComplete, Service: "db"})
	u.Observe(record.Record{Reason: record.Created, Service: "web"})
	// complete: the last good digest
	u.Observe(record.Record{Reason: record.RolloutComplete, Service: "web"})
	if rs[len(rs)-1].reason != record.ImageUpdated {
		t.Fatalf("complete: %v", rs)
	}
	// a third digest fails: rolled back, back to bbb, never tried again
	reg.tag = registry.Tag{Digest: "sha256:ccc", Created: clk.Now().Add(-2 * time.Hour)}
	clk.Advance(time.Minute)
	u.Check(ctx, d)
	u.Observe(record.Record{Reason: record.RolledBack, Service: "web"})
	if rs[len(rs)-1].reason != record.ImageUpdateFailed || len(applied) != 3 {
		t.Fatalf("rolled back: %v, applied %v", rs, applied)
	}
	d = state("reg.example/app:stable")
	u.Override(d)
	if got := d.Services["web"].Config.Image; got != "reg.example/app:stable@sha256:bbb" {
		t.Fatalf("after the rollback the image is %q, want the last good digest", got)
	}
	n := len(rs)
	clk.Advance(time.Hour)
	u.Check(ctx, d)
	if len(rs) != n || len(applied) != 3 {
		t.Errorf("a failed digest was tried again: %v", rs[n:])
	}
	// a restarted daemon pins what was pinned, and remembers the failure
	again := &Updater{Registry: reg, Records: &rs, Clock: clk, File: file, Apply: func(string) { t.Error("applied on a failed digest") }}
	if err := again.Load(); err != nil {
		t.Fatal(err)
	}
	d = state("reg.example/app:stable")
	again.Override(d)
	if got := d.Services["web"].Config.Image; got != "reg.example/app:stable@sha256:bbb" {
		t.Errorf("after a restart: %q", got)
	}
	again.Check(ctx, d)
}

func TestUnreachableRegistryIsSaidOnce(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	reg := &fakeRegistry{err: errors.New("connection refused")}
	var rs recs
	u := &Updater{Registry: reg, Records: &rs, Clock: clk, File: filepath.Join(t.TempDir(), "f"), Apply: func(string) {}}
	_ = u.Load()
	d := state("reg.example/app:stable")
	for range 3 {
		clk.Advance(time.Minute)
		u.Check(context.Background(), d)
	}
	if !slices.Equal(rs.reasons(), []record.Reason{record.RegistryUnreachable}) {
		t.Errorf("%v: want one RegistryUnreachable", rs)
	}
}

func TestLocalDigestOf(t *testing.T) {
	for _, tc := range []struct {
		image string
		rds   []string
		want  string
	}{
		{"127.0.0.1:5000/app:stable", []string{"127.0.0.1:5000/app@sha256:" + sixtyFour("a")}, "sha256:" + sixtyFour("a")},
		{"nginx:1.25", []string{"nginx@sha256:" + sixtyFour("b")}, "sha256:" + sixtyFour("b")},
		{"nginx:1.25", []string{"other/nginx@sha256:" + sixtyFour("b")}, ""},
		{"app:local", nil, ""},
	} {
		if got := LocalDigestOf(tc.image, tc.rds); got != tc.want {
			t.Errorf("LocalDigestOf(%s, %v) = %q, want %q", tc.image, tc.rds, got, tc.want)
		}
	}
}

func sixtyFour(c string) string {
	out := ""
	for range 64 {
		out += c
	}
	return out
}

func TestNewestVersion(t *testing.T) {
	for _, tc := range []struct {
		current string
		tags    []string
		want    string
	}{
		{"1.2.3", []string{"1.2.3", "1.2.4", "1.10.0", "latest", "2.0.0-rc1"}, "1.10.0"},
		{"v1.2", []string{"v1.2", "v1.3", "v1.3.1", "1.4"}, "1.4"},
		{"1.25-alpine", []string{"1.25-alpine", "1.27-alpine", "1.28", "1.29-bookworm"}, "1.27-alpine"},
		{"1.2.3", []string{"1.2.2", "1.0"}, ""},
		{"latest", []string{"1.0.0"}, ""},
		{"2.0.0-rc1", []string{"2.0.0-rc2", "2.0.0"}, ""}, // rc2 is another variant
	} {
		if got := NewestVersion(tc.current, tc.tags); got != tc.want {
			t.Errorf("NewestVersion(%s, %v) = %q, want %q", tc.current, tc.tags, got, tc.want)
		}
	}
}

// TestSemverPolicyMovesToAHigherTag: the semver policy pins the highest
// version tag above the running one; a failed one is not tried again, and
// the service goes back to the last good tag.
func TestSemverPolicyMovesToAHigherTag(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	old := clk.Now().Add(-48 * time.Hour)
	reg := &fakeRegistry{byTag: map[string]registry.Tag{"1.0.0": {Digest: "sha256:a10", Created: old}, "latest": {Digest: "sha256:lat", Created: old}}}
	var rs recs
	var applied int
	u := &Updater{Registry: reg, Records: &rs, Clock: clk, File: filepath.Join(t.TempDir(), "f"), Apply: func(string) { applied++ }}
	_ = u.Load()
	d := state("reg.example/app:1.0.0")
	d.Services["web"].Policy.Images.Policy = desired.ImagePolicySemver
	u.Check(context.Background(), d)
	if applied != 0 {
		t.Fatalf("nothing higher, yet applied: %v", rs)
	}
	reg.byTag["1.1.0"] = registry.Tag{Digest: "sha256:a11", Created: old}
	reg.byTag["2.0.0-rc1"] = registry.Tag{Digest: "sha256:rc", Created: old}
	clk.Advance(time.Minute)
	u.Check(context.Background(), d)
	u.Override(d)
	if got := d.Services["web"].Config.Image; applied != 1 || got != "reg.example/app:1.1.0@sha256:a11" {
		t.Fatalf("1.1.0: applied %d, image %q", applied, got)
	}
	u.Observe(record.Record{Reason: record.RolloutComplete, Service: "web"})
	reg.byTag["1.2.0"] = registry.Tag{Digest: "sha256:a12", Created: old}
	clk.Advance(time.Minute)
	u.Check(context.Background(), d)
	u.Observe(record.Record{Reason: record.RolledBack, Service: "web"})
	d = state("reg.example/app:1.0.0")
	d.Services["web"].Policy.Images.Policy = desired.ImagePolicySemver
	u.Override(d)
	if got := d.Services["web"].Config.Image; got != "reg.example/app:1.1.0@sha256:a11" {
		t.Fatalf("after 1.2.0 failed: %q, want back on 1.1.0", got)
	}
	n := applied
	clk.Advance(time.Minute)
	u.Check(context.Background(), d)
	if applied != n {
		t.Errorf("1.2.0 tried again: %v", rs)
	}
}
