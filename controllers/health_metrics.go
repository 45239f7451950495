package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// HealthMetrics are the sync health figures of every binding, as the
// health reporter last read them (the same figures as the status), and
// what needs a human: integrations Stalled, keys refused, webhooks
// re-registered. Labels name objects and reasons only.
type HealthMetrics struct {
	contacts, inList, pending, deadLetters, lastApplied *prometheus.GaugeVec
	refused, excluded                                   *prometheus.GaugeVec
	keyValid, stalled                                   *prometheus.GaugeVec
	statusWrites, reregistered                          *prometheus.CounterVec
}

func bindingGauge(name, help string, extra ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, append([]string{"namespace", "name"}, extra...))
}

// NewHealthMetrics creates the series and registers them with reg.
func NewHealthMetrics(reg prometheus.Registerer) *HealthMetrics {
	m := &HealthMetrics{
		contacts:    bindingGauge("kommo_unisender_binding_contacts_synced", "Live Kommo contacts in the binding's sync state."),
		inList:      bindingGauge("kommo_unisender_binding_in_list", "Distinct addresses of the binding's contacts in its Unisender list (refused ones are not)."),
		pending:     bindingGauge("kommo_unisender_binding_invitations_pending", "Double opt-in invitations of the binding not sent yet."),
		deadLetters: bindingGauge("kommo_unisender_binding_dead_letters", "Buried webhook jobs of the binding not requeued (kommo-unisender deadletters list)."),
		lastApplied: bindingGauge("kommo_unisender_binding_last_applied_timestamp_seconds", "When a contact change of the binding last went through (Unix seconds; 0: never)."),
		refused:     bindingGauge("kommo_unisender_binding_refused", "Addresses Unisender refused in imports, by Unisender's reason code (kommo-unisender report).", "reason"),
		excluded:    bindingGauge("kommo_unisender_binding_excluded", "Contacts the sync left out, by reason: no_email, company.", "reason"),
		keyValid:    bindingGauge("kommo_unisender_binding_key_valid", "1 when the binding's Unisender API key was accepted, 0 when it was refused or cannot be read."),
		stalled:     bindingGauge("kommo_unisender_integration_stalled", "1 while a KommoIntegration is Stalled (a human must act: revoked token, invalid client, blocked account)."),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_binding_health_writes_total",
			Help: "Writes of a binding's status.health (at most one per refresh interval, only when the figures changed).",
		}, []string{"namespace", "name"}),
		reregistered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_webhook_reregistrations_total",
			Help: "Kommo webhooks found disabled or gone and registered again: Kommo's events in between were lost (a resync catches up).",
		}, []string{"namespace", "name"}),
	}
	reg.MustRegister(m.contacts, m.inList, m.pending, m.deadLetters, m.lastApplied, m.refused, m.excluded,
		m.keyValid, m.stalled, m.statusWrites, m.reregistered)
	return m
}

var (
	defaultHealthMetricsOnce sync.Once
	defaultHealthMetrics     *HealthMetrics
)

// DefaultHealthMetrics returns the series registered with
// controller-runtime's registry, created once per process.
func DefaultHealthMetrics() *HealthMetrics {
	defaultHealthMetricsOnce.Do(func() { defaultHealthMetrics = NewHealthMetrics(ctrlmetrics.Registry) })
	return defaultHealthMetrics
}

// figures sets a binding's health series.
func (m *HealthMetrics) figures(t tenant.Key, h store.Health, keyValid bool) {
	l := []string{t.Namespace, t.Name}
	m.contacts.WithLabelValues(l...).Set(float64(h.ContactsSynced))
	m.inList.WithLabelValues(l...).Set(float64(h.ListMembers))
	m.pending.WithLabelValues(l...).Set(float64(h.InvitationsPending))
	m.deadLetters.WithLabelValues(l...).Set(float64(h.DeadLetters))
	m.lastApplied.WithLabelValues(l...).Set(unixOrZero(h))
	m.keyValid.WithLabelValues(l...).Set(boolGauge(keyValid))
	m.reregistered.WithLabelValues(l...).Add(0) // the series exists before the first re-registration, for rate()
	byReason(m.refused, t, h.Refused)
	byReason(m.excluded, t, h.Excluded)
}

// forget drops the series of a binding that is gone.
func (m *HealthMetrics) forget(t tenant.Key) {
	l := prometheus.Labels{"namespace": t.Namespace, "name": t.Name}
	for _, v := range []*prometheus.GaugeVec{m.contacts, m.inList, m.pending, m.deadLetters, m.lastApplied, m.keyValid, m.refused, m.excluded} {
		v.DeletePartialMatch(l)
	}
	m.reregistered.DeletePartialMatch(l)
	m.statusWrites.DeletePartialMatch(l)
}

// byReason replaces a binding's series of a by-reason gauge: a reason no
// longer counted disappears.
func byReason(v *prometheus.GaugeVec, t tenant.Key, counts map[string]int64) {
	v.DeletePartialMatch(prometheus.Labels{"namespace": t.Namespace, "name": t.Name})
	for reason, n := range counts {
		v.WithLabelValues(t.Namespace, t.Name, reason).Set(float64(n))
	}
}

func unixOrZero(h store.Health) float64 {
	if h.LastAppliedAt.IsZero() {
		return 0
	}
	return float64(h.LastAppliedAt.UnixMicro()) / 1e6
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *HealthMetrics) wroteStatus(t tenant.Key) {
	if m != nil {
		m.statusWrites.WithLabelValues(t.Namespace, t.Name).Inc()
	}
}

func (m *HealthMetrics) webhookReregistered(t tenant.Key) {
	if m != nil {
		m.reregistered.WithLabelValues(t.Namespace, t.Name).Inc()
	}
}
