package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/reconcile-dev/reconcile/internal/enginetest"
	"github.com/reconcile-dev/reconcile/reconciler/plan"
)

// decodeReport reads stdout as exactly one report, refusing fields the
// documented schema does not have.
func decodeReport(t *testing.T, r result) plan.Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	var rep plan.Report
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not one report: %v\n%s", err, r)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one document:\n%s", r.Stdout)
	}
	if rep.Schema != plan.ReportSchema {
		t.Errorf("schema %q, want %q", rep.Schema, plan.ReportSchema)
	}
	return rep
}

// TestReportsForCI: diff -o json and --once -o json print one documented
// report on stdout, with the same exit codes as their text forms.
func TestReportsForCI(t *testing.T) {
	t.Parallel()
	p := enginetest.NewProject(t, `
services:
  db:
    image: {{.Image}}
    environment: {DB_PASSWORD: s3cret-value}
  api:
    image: {{.Image}}
    deploy: {replicas: 2}
    depends_on: [db]
`)
	args := []string{"-f", p.File, "-p", p.Name}

	d := reconcile(t, p.Dir, nil, append([]string{"diff", "-o", "json"}, args...)...)
	if d.Code != exitNotConverged {
		t.Fatalf("diff -o json on a fresh project: %s; want exit 1", d)
	}
	rep := decodeReport(t, d)
	if rep.Command != "diff" || rep.Project != p.Name || rep.InSync || rep.Outcome != nil {
		t.Errorf("report header %+v", rep)
	}
	var kinds []string
	for _, dr := range rep.Drift {
		kinds = append(kinds, dr.Kind+" "+dr.Subject)
	}
	for _, want := range []string{"ReplicaMissing db #1", "ReplicaMissing api #1", "ReplicaMissing api #2"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("drift %v lacks %q", kinds, want)
		}
	}
	byResource := map[string]plan.StepReport{}
	for _, s := range rep.Plan {
		byResource[s.Resource] = s
	}
	api1, db1 := byResource["service:api:1"], byResource["service:db:1"]
	if api1.Op != "CreateContainer" || api1.Group != "up:api" || len(api1.After) == 0 || db1.Op != "CreateContainer" {
		t.Errorf("plan steps api:1 %+v, db:1 %+v", api1, db1)
	}

	o := reconcile(t, p.Dir, nil, append([]string{"--once", "-o", "json", "--timeout", "90s"}, args...)...)
	if o.Code != 0 {
		t.Fatalf("--once -o json: %s", o)
	}
	rep = decodeReport(t, o)
	if rep.Command != "once" || !rep.InSync || rep.Outcome == nil {
		t.Fatalf("report %+v", rep)
	}
	out := rep.Outcome
	if !out.Converged || out.ExitCode != 0 || out.PlansApplied < 1 || len(out.Errors) != 0 || len(out.Status.Services) != 2 {
		t.Errorf("outcome %+v", out)
	}
	if bytes.Contains([]byte(o.Stdout+d.Stdout), []byte("s3cret-value")) {
		t.Error("a secret value is in a report")
	}

	// bad input: exit 2, and still one report saying why
	p.Rewrite("services:\n  api:\n    image: {{.Image}}\n    depends_on: [nope]\n")
	b := reconcile(t, p.Dir, nil, append([]string{"--once", "-o", "json"}, args...)...)
	if b.Code != exitInput {
		t.Fatalf("--once -o json on bad input: %s; want exit 2", b)
	}
	rep = decodeReport(t, b)
	if rep.Outcome == nil || rep.Outcome.ExitCode != exitInput || len(rep.Outcome.Errors) != 1 || !strings.Contains(rep.Outcome.Errors[0], "compose.yaml:4") {
		t.Errorf("bad-input report %+v", rep.Outcome)
	}
}
