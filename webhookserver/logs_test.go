package webhookserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
)

// TestNoSecretInLogsOrMetrics (invariant 6): every route is driven through
// success and failure — a stored webhook, wrong secrets, a beanstalkd that
// is down, widget keys stored and refused, OAuth codes stored and refused —
// with the server logging at every verbosity; then neither the log nor
// /metrics may contain the webhook secret, the client secret, the API key,
// the OAuth code or a token.
func TestNoSecretInLogsOrMetrics(t *testing.T) {
	f := newTenant(t, tenantOpts{allowWidgetKey: true})
	noWidget := newTenant(t, tenantOpts{allowWidgetKey: false})
	logs := &logBuffer{}
	h := newHarness(t, harnessOpts{logs: logs})
	bs := privateBeanstalkd(t)
	down := newHarness(t, harnessOpts{logs: logs, beanstalkd: bs.Addr()})
	bs.Kill()

	const apiKey = "apikey-6f1d2c3b4a5968778695a4b3c2d1e0f0"
	code := "def50200" + randomHex(t, 40)
	var tokensSent []string
	tok := func(k kommoToken) map[string]string {
		s := k.sign(t)
		tokensSent = append(tokensSent, s)
		return map[string]string{"X-Auth-Token": s}
	}
	add := fixtureBody(t, fixtures.AddContact)
	widgetBody := `{"apiKey":"` + apiKey + `"}`

	steps := []struct {
		name string
		resp func() response
		want int
	}{
		{"webhook stored", func() response { return h.postForm(f.WebhookPath(), add) }, 200},
		{"webhook wrong secret", func() response {
			return h.postForm("/kommo/webhooks/"+f.Segment()+"/"+noWidget.WebhookSecret, add)
		}, 404},
		{"webhook malformed", func() response { return h.postForm(f.WebhookPath(), "account%5Bid%5D=x") }, 400},
		{"webhook queue down", func() response { return down.postForm(f.WebhookPath(), add) }, 503},
		{"readyz queue down", func() response { return down.request(http.MethodGet, "/readyz", "", "", nil) }, 503},
		{"widget key stored", func() response {
			return h.request(http.MethodPost, "/widget", "application/json", widgetBody, tok(f.token()))
		}, 200},
		{"widget wrong secret", func() response {
			k := f.token()
			k.Key = []byte(noWidget.ClientSecret)
			return h.request(http.MethodPost, "/widget", "application/json", widgetBody, tok(k))
		}, 401},
		{"widget not allowed", func() response {
			return h.request(http.MethodPost, "/widget", "application/json", widgetBody, tok(noWidget.token()))
		}, 403},
		{"widget status", func() response {
			return h.request(http.MethodGet, "/widget/status", "", "", tok(f.token()))
		}, 200},
		{"oauth code stored", func() response {
			return h.request(http.MethodGet, "/oauth/callback?"+f.callbackQuery(t, code).Encode(), "", "", nil)
		}, 200},
		{"oauth wrong state", func() response {
			q := noWidget.callbackQuery(t, code)
			q.Set("state", f.callbackQuery(t, code).Get("state"))
			return h.request(http.MethodGet, "/oauth/callback?"+q.Encode(), "", "", nil)
		}, 400},
	}
	for _, s := range steps {
		if got := s.resp(); got.Status != s.want {
			t.Errorf("%s: status %d (%s), want %d", s.name, got.Status, got.Body, s.want)
		}
	}
	metrics := h.request(http.MethodGet, "/metrics", "", "", nil).Body + down.request(http.MethodGet, "/metrics", "", "", nil).Body
	log := logs.String()
	if !strings.Contains(log, "Unisender API key stored") || !strings.Contains(log, "enqueue failed") {
		t.Fatalf("the log misses the lines this test exercises:\n%s", log)
	}
	if !strings.Contains(metrics, "kommo_unisender_webhook_requests_total") {
		t.Fatal("no webhook metrics")
	}
	secrets := map[string]string{
		"webhook secret": f.WebhookSecret, "other webhook secret": noWidget.WebhookSecret,
		"client secret": f.ClientSecret, "other client secret": noWidget.ClientSecret,
		"API key": apiKey, "OAuth code": code,
	}
	for i, s := range tokensSent {
		secrets["token "+string(rune('a'+i))] = s
	}
	for what, secret := range secrets {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains the %s", what)
		}
		if strings.Contains(metrics, secret) {
			t.Errorf("/metrics contains the %s", what)
		}
	}
	t.Logf("log:\n%s", log)
	t.Logf("scanned %d log bytes and %d metrics bytes for %d secrets", len(log), len(metrics), len(secrets))
}
