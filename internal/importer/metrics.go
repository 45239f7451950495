package importer

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// Metrics are the importer's Prometheus series, labelled by the tenant's
// namespace and name (never by anything secret). A nil *Metrics records
// nothing.
type Metrics struct {
	calls    *prometheus.CounterVec
	rows     *prometheus.CounterVec
	imported *prometheus.GaugeVec
	seen     *prometheus.GaugeVec
	running  *prometheus.GaugeVec
	swept    *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"namespace", "name"}
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_import_calls_total",
			Help: "importContacts calls made by initial imports and resyncs, by result (ok or error).",
		}, append(labels, "result")),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_import_rows_total",
			Help: "Rows sent by initial imports and resyncs, by outcome (sent, rejected by Unisender's per-row log).",
		}, append(labels, "outcome")),
		imported: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kommo_unisender_import_imported_contacts",
			Help: "Contacts the current or last import run of the binding has committed.",
		}, append(labels, "kind")),
		seen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kommo_unisender_import_seen_contacts",
			Help: "Contacts the current or last import run has listed in Kommo so far (the running total: Kommo has no count).",
		}, append(labels, "kind")),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kommo_unisender_import_running",
			Help: "1 while an import run (initial or resync) of the binding is in progress.",
		}, append(labels, "kind")),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_resync_swept_contacts_total",
			Help: "Contacts a resync's sweep found gone from Kommo, by outcome: deleted (removed as a delete webhook would), or held (too many at once, none removed).",
		}, append(labels, "outcome")),
	}
	reg.MustRegister(m.calls, m.rows, m.imported, m.seen, m.running, m.swept)
	return m
}

var (
	defaultOnce    sync.Once
	defaultMetrics *Metrics
)

// DefaultMetrics returns the series registered with controller-runtime's
// registry (served on the manager's metrics endpoint), created once.
func DefaultMetrics() *Metrics {
	defaultOnce.Do(func() { defaultMetrics = NewMetrics(ctrlmetrics.Registry) })
	return defaultMetrics
}

func (m *Metrics) observeImport(t tenant.Key, calls, rows int, rejected int64, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(t.Namespace, t.Name, result).Add(float64(calls))
	if err == nil {
		m.rows.WithLabelValues(t.Namespace, t.Name, "sent").Add(float64(rows))
		m.rows.WithLabelValues(t.Namespace, t.Name, "rejected").Add(float64(rejected))
	}
}

func (m *Metrics) observeSweep(t tenant.Key, outcome string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.swept.WithLabelValues(t.Namespace, t.Name, outcome).Add(float64(n))
}

// observeProgress sets the gauges of a run.
func (m *Metrics) observeProgress(t tenant.Key, p Progress, running bool) {
	if m == nil {
		return
	}
	kind := string(p.Kind)
	m.imported.WithLabelValues(t.Namespace, t.Name, kind).Set(float64(p.Imported))
	m.seen.WithLabelValues(t.Namespace, t.Name, kind).Set(float64(p.Seen))
	v := 0.0
	if running {
		v = 1
	}
	m.running.WithLabelValues(t.Namespace, t.Name, kind).Set(v)
}

// Forget drops the tenant's series (its binding is gone).
func (m *Metrics) Forget(t tenant.Key) {
	if m == nil {
		return
	}
	match := prometheus.Labels{"namespace": t.Namespace, "name": t.Name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{m.calls, m.rows, m.imported, m.seen, m.running, m.swept} {
		v.DeletePartialMatch(match)
	}
}
