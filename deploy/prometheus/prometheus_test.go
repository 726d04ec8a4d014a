// Package prometheus_test holds deploy/prometheus's alert rules and Grafana
// dashboard to what Prometheus parses and to the metrics reconcile exports.
package prometheus_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/reconcile-dev/reconcile/internal/metrics"
	"github.com/reconcile-dev/reconcile/internal/record"
)

// exported are the metric names an agent's /metrics serves, with the
// suffixes a histogram's series carry.
func exported(t *testing.T) []string {
	t.Helper()
	m := metrics.New("test", "go")
	// every vector gets a series, so that Gather lists it
	p := m.For("p")
	p.Reconciled("success", 0, false)
	p.QueueDepth(0)
	p.Action("start")
	p.Drift(map[[2]string]int{{"api", "ContainerMissing"}: 1})
	p.Tasks(map[[2]string]int{{"api", "node-1"}: 2}) // --swarm
	m.Record(record.Warning, record.RestartBudgetExhausted, "p")
	m.CountEngineRequests(func() int64 { return 0 }) // as the daemon does
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"up"} // Prometheus's own, per scraped agent
	for _, f := range families {
		names = append(names, f.GetName())
		if f.GetType().String() == "HISTOGRAM" {
			names = append(names, f.GetName()+"_bucket", f.GetName()+"_sum", f.GetName()+"_count")
		}
	}
	return names
}

// checkExpr parses expr as Prometheus does and fails on any metric it
// names that reconcile does not export, and on any record reason it
// matches that is not in the catalogue.
func checkExpr(t *testing.T, where, expr string, names []string) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return
	}
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if !slices.Contains(names, vs.Name) {
			t.Errorf("%s: %s is not a metric reconcile exports", where, vs.Name)
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != "reason" {
				continue
			}
			for _, r := range strings.Split(m.Value, "|") {
				if !record.Reason(r).Known() {
					t.Errorf("%s: reason %q is not in the records' catalogue", where, r)
				}
			}
		}
		return nil
	})
}

func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("rules.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("Prometheus refuses rules.yml: %v", errs)
	}
	names := exported(t)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkExpr(t, r.Alert, r.Expr, names)
		}
	}
	// the four, and failing reconciles
	for _, want := range []string{"ReconcileAgentDown", "ReconcileRestartBudgetSpent", "ReconcileDriftPersisting", "ReconcileRolledBack", "ReconcileFailing"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s in %v", want, alerts)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.UID == "" || len(d.Panels) < 6 {
		t.Fatalf("dashboard.json: uid %q, %d panels", d.UID, len(d.Panels))
	}
	names := exported(t)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			// Grafana's variables, as Grafana substitutes them
			checkExpr(t, p.Title, strings.ReplaceAll(tg.Expr, "$instance", ".*"), names)
		}
	}
}
