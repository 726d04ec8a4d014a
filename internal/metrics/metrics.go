// Package metrics holds the daemon's Prometheus metrics, on a registry of its
// own so that /metrics shows them and the Go runtime's, nothing else.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's counters and gauges.
type Metrics struct {
	Registry *prometheus.Registry

	reconciles *prometheus.CounterVec
	errors     prometheus.Counter
	duration   prometheus.Histogram
	queueDepth prometheus.Gauge
	actions    *prometheus.CounterVec
	drift      *prometheus.GaugeVec
	records    *prometheus.CounterVec
}

// New registers every metric; version and goVersion label reconcile_build_info.
func New(version, goVersion string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconcile_total", Help: "Reconciles of one service, by result (success, error, requeue).",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconcile_errors_total", Help: "Reconciles that failed, panics included.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconcile_duration_seconds", Help: "Time one reconcile of one service took.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconcile_queue_depth", Help: "Services waiting to be reconciled.",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconcile_actions_total", Help: "Operations carried out, by action.",
		}, []string{"action"}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconcile_drift", Help: "Drift items seen in the last diff, by service and kind.",
		}, []string{"service", "kind"}),
	}
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reconcile_events_total", Help: "Event records, by type and reason (RestartBudgetExhausted, ReloadRejected, ...).",
	}, []string{"type", "reason"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reconcile_build_info", Help: "Always 1; labels say which build runs.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version, goVersion).Set(1)
	reg.MustRegister(m.reconciles, m.errors, m.duration, m.queueDepth, m.actions, m.drift, m.records, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CountEngineRequests exports a counter of the HTTP requests sent to the
// engine, read from calls, so that the cost of idling can be measured.
func (m *Metrics) CountEngineRequests(calls func() int64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "reconcile_engine_requests_total", Help: "HTTP requests sent to the Docker Engine, event stream included.",
	}, func() float64 { return float64(calls()) }))
}

// Reconciled counts one reconcile and its duration.
func (m *Metrics) Reconciled(result string, took time.Duration, failed bool) {
	m.reconciles.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
	if failed {
		m.errors.Inc()
	}
}

// Record counts one event record.
func (m *Metrics) Record(typ, reason string) { m.records.WithLabelValues(typ, reason).Inc() }

// QueueDepth sets the queue gauge.
func (m *Metrics) QueueDepth(n int) { m.queueDepth.Set(float64(n)) }

// Action counts one operation carried out.
func (m *Metrics) Action(action string) { m.actions.WithLabelValues(action).Inc() }

// Drift replaces the drift gauges with counts per service and kind.
func (m *Metrics) Drift(counts map[[2]string]int) {
	m.drift.Reset()
	for k, n := range counts {
		m.drift.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
}
