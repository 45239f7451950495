package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// Metrics are the worker's Prometheus series. Tenants label them by
// namespace and name, never by anything secret. A nil *Metrics records
// nothing.
type Metrics struct {
	batches      prometheus.Counter
	batchEvents  prometheus.Histogram
	applies      *prometheus.CounterVec
	applySeconds prometheus.Histogram
	events       *prometheus.CounterVec
	rows         *prometheus.CounterVec
	jobs         *prometheus.CounterVec
	releases     *prometheus.CounterVec
	syncLatency  prometheus.Histogram
	invitations  *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_batches_total",
			Help: "Batches of jobs reserved by the worker.",
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kommo_unisender_worker_batch_events",
			Help:    "Contact events per batch (how well events are coalesced).",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_applies_total",
			Help: "Tenant groups applied to the store and Unisender, by result (ok or error).",
		}, []string{"result"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kommo_unisender_worker_apply_seconds",
			Help:    "Time to apply one tenant group: store transaction and Unisender calls.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_events_total",
			Help: "Contact events applied, by outcome: applied (changed the state), stale (older or duplicate), company (not synced).",
		}, []string{"namespace", "name", "outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_rows_total",
			Help: "Unisender import rows, by outcome: upserted, removed (excluded or deleted), rejected (refused row by row, not retried).",
		}, []string{"namespace", "name", "outcome"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_jobs_total",
			Help: "Jobs settled, by outcome: applied, rechecked, dropped (tenant gone), parked (waiting for the tenant or its lock), buried (dead letter).",
		}, []string{"outcome"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_released_jobs_total",
			Help: "Jobs released back to beanstalkd, by reason: retry, shutdown, park (when parking failed), dead_letter_unrecorded.",
		}, []string{"reason"}),
		syncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kommo_unisender_worker_sync_latency_seconds",
			Help:    "Time from the webhook server receiving an event to the worker applying it.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}),
		invitations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_worker_invitations_total",
			Help: "Double opt-in invitations, by outcome: queued (by a webhook batch), sent, failed (refused, unsubscribed, not in Unisender; never retried), retried (transient failure), skipped (the address left the list first), cancelled (the binding stopped inviting).",
		}, []string{"namespace", "name", "outcome"}),
	}
	reg.MustRegister(m.batches, m.batchEvents, m.applies, m.applySeconds, m.events, m.rows, m.jobs, m.releases, m.syncLatency, m.invitations)
	return m
}

func (m *Metrics) batch(events int) {
	if m == nil {
		return
	}
	m.batches.Inc()
	m.batchEvents.Observe(float64(events))
}

func (m *Metrics) applied(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.applies.WithLabelValues(result).Inc()
	m.applySeconds.Observe(d.Seconds())
}

func (m *Metrics) outcome(t tenant.Key, out syncer.Outcome) {
	if m == nil {
		return
	}
	applied := out.Contacts - out.Stale - out.Companies
	m.events.WithLabelValues(t.Namespace, t.Name, "applied").Add(float64(applied))
	m.events.WithLabelValues(t.Namespace, t.Name, "stale").Add(float64(out.Stale))
	m.events.WithLabelValues(t.Namespace, t.Name, "company").Add(float64(out.Companies))
	m.rows.WithLabelValues(t.Namespace, t.Name, "upserted").Add(float64(out.Upserted))
	m.rows.WithLabelValues(t.Namespace, t.Name, "removed").Add(float64(out.Removed))
	m.rows.WithLabelValues(t.Namespace, t.Name, "rejected").Add(float64(len(out.Rejected)))
	m.invitations.WithLabelValues(t.Namespace, t.Name, "queued").Add(float64(out.Invitations))
}

// invitation counts invitations of a tenant ("namespace/name") that ended
// with an outcome (the invitations.Drainer's Observe hook).
func (m *Metrics) invitation(tenantKey, outcome string, n int) {
	if m == nil {
		return
	}
	k, err := tenant.Parse(tenantKey)
	if err != nil {
		return
	}
	m.invitations.WithLabelValues(k.Namespace, k.Name, outcome).Add(float64(n))
}

func (m *Metrics) job(outcome string) {
	if m != nil {
		m.jobs.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) released(reason string) {
	if m != nil {
		m.releases.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) latency(d time.Duration) {
	if m != nil {
		m.syncLatency.Observe(max(d, 0).Seconds())
	}
}
