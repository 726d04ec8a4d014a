package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsExposeWhatTheDaemonCounts(t *testing.T) {
	m := New("v1.2.3", "go1.26")
	p := m.For("shop")
	p.Reconciled("success", 20*time.Millisecond, false)
	p.Reconciled("error", time.Second, true)
	p.Action("CreateContainer")
	p.QueueDepth(3)
	m.Record("Warning", "RestartBudgetExhausted", "shop")
	p.Drift(map[[2]string]int{{"api", "ReplicaMissing"}: 2})
	p.Drift(map[[2]string]int{{"web", "Exited"}: 1}) // replaces, does not add
	// another project's series live beside them, and go when it is let go
	other := m.For("blog")
	other.Drift(map[[2]string]int{{"db", "Exited"}: 1})
	other.Action("StartContainer")
	m.Record("Normal", "Started", "blog")
	m.Forget("blog")
	m.For("quiet") // a project with nothing counted yet still has its error series
	calls := int64(7)
	m.CountEngineRequests(func() int64 { return calls })

	want := `
# HELP reconcile_drift Drift items seen in the last diff, by service and kind.
# TYPE reconcile_drift gauge
reconcile_drift{kind="Exited",project="shop",service="web"} 1
# HELP reconcile_engine_requests_total HTTP requests sent to the Docker Engine, event stream included.
# TYPE reconcile_engine_requests_total counter
reconcile_engine_requests_total 7
# HELP reconcile_errors_total Reconciles that failed, panics included.
# TYPE reconcile_errors_total counter
reconcile_errors_total{project="quiet"} 0
reconcile_errors_total{project="shop"} 1
# HELP reconcile_events_total Event records, by type and reason (RestartBudgetExhausted, ReloadRejected, ...).
# TYPE reconcile_events_total counter
reconcile_events_total{project="shop",reason="RestartBudgetExhausted",type="Warning"} 1
# HELP reconcile_queue_depth Services waiting to be reconciled.
# TYPE reconcile_queue_depth gauge
reconcile_queue_depth{project="quiet"} 0
reconcile_queue_depth{project="shop"} 3
# HELP reconcile_total Reconciles of one service, by result (success, error, requeue).
# TYPE reconcile_total counter
reconcile_total{project="shop",result="error"} 1
reconcile_total{project="shop",result="success"} 1
# HELP reconcile_actions_total Operations carried out, by action.
# TYPE reconcile_actions_total counter
reconcile_actions_total{action="CreateContainer",project="shop"} 1
# HELP reconcile_build_info Always 1; labels say which build runs.
# TYPE reconcile_build_info gauge
reconcile_build_info{goversion="go1.26",version="v1.2.3"} 1
`
	names := []string{"reconcile_drift", "reconcile_engine_requests_total", "reconcile_errors_total", "reconcile_events_total",
		"reconcile_queue_depth", "reconcile_total", "reconcile_actions_total", "reconcile_build_info"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("duration histogram: %d series", n)
	}
}
