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
	errors     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	queueDepth *prometheus.GaugeVec
	actions    *prometheus.CounterVec
	drift      *prometheus.GaugeVec
	records    *prometheus.CounterVec
	// onReader is how long each engine event held the event stream's
	// reader; readerMax the longest, in nanoseconds: the engine drops a
	// subscriber that lags 100 ms, so the worst case is the figure to watch.
	onReader   prometheus.Histogram
	readerMax  atomic.Int64
	saveErrors *prometheus.CounterVec
	// gitCommit and gitFetched are a git source's (--git): the commit in
	// force, and when the remote was last read.
	gitCommit  *prometheus.GaugeVec
	gitFetched prometheus.Gauge
	// tasks are a stack's running tasks per service and node (--swarm).
	tasks *prometheus.GaugeVec
}

// ProjectLabel is the label every per-project metric carries: an agent
// reconciles many projects, and a daemon of one project says which.
const ProjectLabel = "project"

// New registers every metric; version and goVersion label reconcile_build_info.
func New(version, goVersion string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconcile_total", Help: "Reconciles of one service, by result (success, error, requeue).",
		}, []string{ProjectLabel, "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconcile_errors_total", Help: "Reconciles that failed, panics included.",
		}, []string{ProjectLabel}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reconcile_duration_seconds", Help: "Time one reconcile of one service took.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{ProjectLabel}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconcile_queue_depth", Help: "Services waiting to be reconciled.",
		}, []string{ProjectLabel}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconcile_actions_total", Help: "Operations carried out, by action.",
		}, []string{ProjectLabel, "action"}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconcile_drift", Help: "Drift items seen in the last diff, by service and kind.",
		}, []string{ProjectLabel, "service", "kind"}),
	}
	// records about the engine connection, not a project, have project=""
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reconcile_events_total", Help: "Event records, by type and reason (RestartBudgetExhausted, ReloadRejected, ...).",
	}, []string{ProjectLabel, "type", "reason"})
	m.onReader = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "reconcile_event_reader_seconds", Help: "Time one engine event spent on the event stream's reader (the engine drops a reader that lags 100 ms).",
		Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .05, .1},
	})
	readerMax := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reconcile_event_reader_max_seconds", Help: "The longest time one engine event spent on the event stream's reader since start.",
	}, func() float64 { return float64(m.readerMax.Load()) / float64(time.Second) })
	m.saveErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reconcile_state_save_errors_total", Help: "Writes of the restart state file that failed (each is retried).",
	}, []string{ProjectLabel})
	m.gitCommit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reconcile_git_commit_info", Help: "Always 1 (--git): the commit of the git source whose files are in force.",
	}, []string{ProjectLabel, "commit"})
	m.gitFetched = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "reconcile_git_last_fetch_timestamp_seconds", Help: "When the git source's remote was last read successfully (--git); an alert on its age finds an unreachable repository.",
	})
	m.tasks = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reconcile_swarm_tasks", Help: "A stack's running tasks, by service and node (--swarm).",
	}, []string{ProjectLabel, "service", "node"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reconcile_build_info", Help: "Always 1; labels say which build runs.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version, goVersion).Set(1)
	reg.MustRegister(m.reconciles, m.errors, m.duration, m.queueDepth, m.actions, m.drift, m.records, m.onReader, readerMax, m.saveErrors, m.gitCommit, m.gitFetched, m.tasks, info,
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

// Record counts one event record of project ("" for the agent's own).
func (m *Metrics) Record(typ record.Type, reason record.Reason, project string) {
	m.records.WithLabelValues(project, string(typ), string(reason)).Inc()
}

// GitCommit says commit (12 hex digits) of the git source is in force
// for project, and no other.
func (m *Metrics) GitCommit(project, commit string) {
	m.gitCommit.DeletePartialMatch(prometheus.Labels{ProjectLabel: project})
	m.gitCommit.WithLabelValues(project, commit).Set(1)
}

// GitFetched says the git source's remote was read at t.
func (m *Metrics) GitFetched(t time.Time) { m.gitFetched.Set(float64(t.Unix())) }

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

// Project counts what one project's reconciler does, under its label.
type Project struct {
	m    *Metrics
	name string
}

// For returns the metrics of one project. Its error and queue series
// exist from then on, at 0, so that an alert on them has a series to read.
func (m *Metrics) For(project string) *Project {
	m.errors.WithLabelValues(project)
	m.queueDepth.WithLabelValues(project)
	m.saveErrors.WithLabelValues(project)
	return &Project{m: m, name: project}
}

// Forget drops the project's series, once an agent has let it go.
func (m *Metrics) Forget(project string) {
	l := prometheus.Labels{ProjectLabel: project}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.reconciles, m.errors, m.duration, m.queueDepth, m.actions, m.drift, m.records, m.saveErrors, m.tasks,
	} {
		v.DeletePartialMatch(l)
	}
}

// Reconciled counts one reconcile and its duration.
func (p *Project) Reconciled(result string, took time.Duration, failed bool) {
	p.m.reconciles.WithLabelValues(p.name, result).Inc()
	p.m.duration.WithLabelValues(p.name).Observe(took.Seconds())
	if failed {
		p.m.errors.WithLabelValues(p.name).Inc()
	}
}

// StateSaveFailed counts a failed write of the restart state.
func (p *Project) StateSaveFailed() { p.m.saveErrors.WithLabelValues(p.name).Inc() }

// QueueDepth sets the queue gauge.
func (p *Project) QueueDepth(n int) { p.m.queueDepth.WithLabelValues(p.name).Set(float64(n)) }

// Action counts one operation carried out.
func (p *Project) Action(action string) { p.m.actions.WithLabelValues(p.name, action).Inc() }

// Tasks replaces the stack's task gauges with its running tasks per service
// and node (--swarm): where Swarm placed them, and what moved when a node
// went down.
func (p *Project) Tasks(counts map[[2]string]int) {
	p.m.tasks.DeletePartialMatch(prometheus.Labels{ProjectLabel: p.name})
	for k, n := range counts {
		p.m.tasks.WithLabelValues(p.name, k[0], k[1]).Set(float64(n))
	}
}

// Drift replaces the project's drift gauges with counts per service and kind.
func (p *Project) Drift(counts map[[2]string]int) {
	p.m.drift.DeletePartialMatch(prometheus.Labels{ProjectLabel: p.name})
	for k, n := range counts {
		p.m.drift.WithLabelValues(p.name, k[0], k[1]).Set(float64(n))
	}
}
