package webhookserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labelled by tenant ("namespace/name", or empty when the
// request named no tenant that exists: unauthenticated callers cannot grow
// the label set) and status code. No label ever holds a secret.
type metrics struct {
	requests    *prometheus.CounterVec
	events      *prometheus.CounterVec
	duration    prometheus.Histogram
	queueErrors prometheus.Counter
	refused     *prometheus.CounterVec
	routes      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_webhook_requests_total",
			Help: "Kommo webhook requests answered, by tenant and HTTP status.",
		}, []string{"tenant", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_webhook_events_total",
			Help: "Contact events queued from Kommo webhooks, by tenant.",
		}, []string{"tenant"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kommo_unisender_webhook_request_duration_seconds",
			Help:    "Time to answer a Kommo webhook (Kommo gives up after 2 s).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}),
		queueErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kommo_unisender_webhook_queue_errors_total",
			Help: "Webhooks answered 503 because beanstalkd did not store the job.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_webhook_refused_total",
			Help: "Webhooks refused by the admission before their body was read, by tenant and reason (tenant_rate, tenant_in_flight: 429; server_in_flight: 503).",
		}, []string{"tenant", "reason"}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_unisender_webhookserver_requests_total",
			Help: "Requests to the OAuth callback and widget routes, by route and HTTP status.",
		}, []string{"route", "code"}),
	}
	reg.MustRegister(m.requests, m.events, m.duration, m.queueErrors, m.refused, m.routes)
	return m
}

func (m *metrics) observeWebhook(tenant string, code, events int, start time.Time) {
	m.requests.WithLabelValues(tenant, codeLabel(code)).Inc()
	if events > 0 {
		m.events.WithLabelValues(tenant).Add(float64(events))
	}
	m.duration.Observe(time.Since(start).Seconds())
}

// codeLabel is the status code as a label value; the answer of nearly
// every request, 200, without formatting it each time.
func codeLabel(code int) string {
	if code == http.StatusOK {
		return "200"
	}
	return strconv.Itoa(code)
}

func (m *metrics) observeRoute(route string, code int) {
	m.routes.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
