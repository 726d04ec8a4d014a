// Package metrics holds the daemon's Prometheus metrics, on a registry of its
// own so that /metrics shows them and the Go runtime's, nothing else.
package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reconcile-dev/reconcile/internal/record"
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
	// onReader is how long each engine event held the event stream's
	// reader; readerMax the longest, in nanoseconds: the engine drops a
	// subscriber that lags 100 ms, so the worst case is the figure to watch.
	onReader   prometheus.Histogram
	readerMax  atomic.Int64
	saveErrors prometheus.Counter
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
	m.onReader = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "reconcile_event_reader_seconds", Help: "Time one engine event spent on the event stream's reader (the engine drops a reader that lags 100 ms).",
		Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .05, .1},
	})
	readerMax := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reconcile_event_reader_max_seconds", Help: "The longest time one engine event spent on the event stream's reader since start.",
	}, func() float64 { return float64(m.readerMax.Load()) / float64(time.Second) })
	m.saveErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "reconcile_state_save_errors_total", Help: "Writes of the restart state file that failed (each is retried).",
	})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reconcile_build_info", Help: "Always 1; labels say which build runs.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version, goVersion).Set(1)
	reg.MustRegister(m.reconciles, m.errors, m.duration, m.queueDepth, m.actions, m.drift, m.records, m.onReader, readerMax, m.saveErrors, info,
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
func (m *Metrics) Record(typ record.Type, reason record.Reason) {
	m.records.WithLabelValues(string(typ), string(reason)).Inc()
}

// EventHandled observes how long one engine event held the reader.
func (m *Metrics) EventHandled(took time.Duration) {
	m.onReader.Observe(took.Seconds())
	for {
		old := m.readerMax.Load()
		if int64(took) <= old || m.readerMax.CompareAndSwap(old, int64(took)) {
			return
		}
	}
}

// StateSaveFailed counts a failed write of the restart state.
func (m *Metrics) StateSaveFailed() { m.saveErrors.Inc() }

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
