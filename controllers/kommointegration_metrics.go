package controllers

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
)

// TokenMetrics are the KommoIntegration reconciler's series. Labels hold
// grant kinds, condition reasons and object names only — never a secret.
type TokenMetrics struct {
	grants   *prometheus.CounterVec
	failures *prometheus.CounterVec
	expiry   *expiryCollector
}

// NewTokenMetrics creates the series and registers them with reg.
func NewTokenMetrics(reg prometheus.Registerer) *TokenMetrics {
	m := &TokenMetrics{
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_token_refreshes_total",
			Help: "Token grants sent to Kommo by the KommoIntegration reconciler, by grant (refresh_token, authorization_code) and result (success, failure).",
		}, []string{"grant", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_token_refresh_failures_total",
			Help: "Failed token grants by reason: a Stalled reason (TokenRevoked, InvalidClient, AuthorizationCodeInvalid, AccountBlocked) or RefreshFailed for transient failures.",
		}, []string{"grant", "reason"}),
		expiry: &expiryCollector{
			desc: prometheus.NewDesc("kommo_unisender_token_expiry_seconds",
				"Seconds until the stored Kommo access token of a KommoIntegration expires (negative once expired), computed at scrape time.",
				[]string{"namespace", "name"}, nil),
			at:  map[types.NamespacedName]time.Time{},
			now: time.Now,
		},
	}
	reg.MustRegister(m.grants, m.failures, m.expiry)
	return m
}

var (
	defaultTokenMetricsOnce sync.Once
	defaultTokenMetrics     *TokenMetrics
)

// DefaultTokenMetrics returns the series registered with
// controller-runtime's registry (the manager's metrics endpoint), created
// once per process.
func DefaultTokenMetrics() *TokenMetrics {
	defaultTokenMetricsOnce.Do(func() { defaultTokenMetrics = NewTokenMetrics(ctrlmetrics.Registry) })
	return defaultTokenMetrics
}

func (m *TokenMetrics) grantSucceeded(grant string) {
	m.grants.WithLabelValues(grant, "success").Inc()
}

func (m *TokenMetrics) grantFailed(grant string, err error) {
	m.grants.WithLabelValues(grant, "failure").Inc()
	reason := v1alpha1.ReasonRefreshFailed
	var st *outcome.Stalling
	if errors.As(err, &st) {
		reason = st.Reason
	}
	m.failures.WithLabelValues(grant, reason).Inc()
}

func (m *TokenMetrics) setExpiry(key types.NamespacedName, at time.Time) {
	m.expiry.mu.Lock()
	defer m.expiry.mu.Unlock()
	if at.IsZero() {
		delete(m.expiry.at, key)
		return
	}
	m.expiry.at[key] = at
}

func (m *TokenMetrics) forget(key types.NamespacedName) { m.setExpiry(key, time.Time{}) }

// expiryCollector reports time to expiry as of the scrape, so the gauge
// never goes stale between reconciles.
type expiryCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	at   map[types.NamespacedName]time.Time
	now  func() time.Time
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, at := range c.at {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, at.Sub(now).Seconds(), k.Namespace, k.Name)
	}
}
