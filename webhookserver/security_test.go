package webhookserver_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// badRequest is one refused request of the security table.
type badRequest struct {
	name     string
	send     func(h *harness) response
	status   int
	bodyHas  string // a phrase the answer must contain, if set
	sameBody string // another case whose answer body must be identical
}

// TestBadRequestsAreRefusedAndChangeNothing sends requests an attacker,
// a misconfigured client or a broken proxy could send, and checks each
// answer's status and that nothing was queued or stored. A valid request
// for the same tenant at the end proves the refusals are not vacuous.
func TestBadRequestsAreRefusedAndChangeNothing(t *testing.T) {
	f := newTenant(t, tenantOpts{allowWidgetKey: true})
	noWidget := newTenant(t, tenantOpts{allowWidgetKey: false})
	h := newHarness(t, harnessOpts{})
	add := fixtureBody(t, fixtures.AddContact)
	// The add sample as another Kommo account would send it.
	otherForm, err := fixtures.KommoWebhook(fixtures.AddContact)
	must(t, err)
	for k := range otherForm {
		if k == "account[id]" || strings.HasSuffix(k, "[account_id]") {
			otherForm.Set(k, strconv.FormatInt(f.AccountID+1, 10))
		}
	}
	otherAccount := otherForm.Encode()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	widgetBody := `{"apiKey":"0123456789abcdef0123456789abcdef","listTitle":"Kommo"}`
	postWidget := func(tok string) func(h *harness) response {
		return func(h *harness) response {
			return h.request(http.MethodPost, "/widget", "application/json", widgetBody, map[string]string{"X-Auth-Token": tok})
		}
	}
	signedWidget := func(k kommoToken) func(h *harness) response {
		return func(h *harness) response { return postWidget(k.sign(t))(h) }
	}
	now := time.Now()
	replayed := f.token().sign(t)
	webhook := func(path, body string) func(h *harness) response {
		return func(h *harness) response { return h.postForm(path, body) }
	}
	callback := func(q url.Values) func(h *harness) response {
		return func(h *harness) response {
			return h.request(http.MethodGet, "/oauth/callback?"+q.Encode(), "", "", nil)
		}
	}
	wrongState := f.callbackQuery(t, "code-1")
	otherKey, err := tokens.NewCallbackState([]byte(strings.Repeat("x", 32)), client.ObjectKeyFromObject(f.Integration), now.Add(time.Minute))
	must(t, err)
	wrongState.Set("state", otherKey)
	otherIntegrationState := f.callbackQuery(t, "code-2")
	// A state's tag vouches only for the integration it names.
	st := f.callbackQuery(t, "").Get("state")
	otherIntegrationState.Set("state", noWidget.Namespace+"."+noWidget.Integration.Name+st[strings.IndexByte(st, '.')+len(f.Integration.Name)+1:])
	noCode := f.callbackQuery(t, "")
	denied := url.Values{"error": {"access_denied"}, "client_id": {f.ClientID}, "state": {f.callbackQuery(t, "").Get("state")}}

	cases := []badRequest{
		{name: "webhook: wrong secret", status: 404,
			send: webhook("/kommo/webhooks/"+f.Segment()+"/"+strings.Repeat("0", 64), add)},
		{name: "webhook: unknown tenant", status: 404, sameBody: "webhook: wrong secret",
			send: webhook("/kommo/webhooks/"+f.Namespace+".nobody/"+f.WebhookSecret, add)},
		{name: "webhook: malformed tenant segment", status: 404, sameBody: "webhook: wrong secret",
			send: webhook("/kommo/webhooks/no-dot-here/"+f.WebhookSecret, add)},
		{name: "webhook: secret of another tenant", status: 404, sameBody: "webhook: wrong secret",
			send: webhook("/kommo/webhooks/"+f.Segment()+"/"+noWidget.WebhookSecret, add)},
		{name: "webhook: wrong account id", status: 403, send: webhook(f.WebhookPath(), otherAccount)},
		{name: "webhook: oversize body (Content-Length)", status: 413,
			send: webhook(f.WebhookPath(), add+"&pad="+strings.Repeat("x", 1<<20))},
		{name: "webhook: oversize body (chunked)", status: 413, send: func(h *harness) response {
			req, err := http.NewRequest(http.MethodPost, h.URL+f.WebhookPath(),
				strings.NewReader(add+"&pad="+strings.Repeat("x", 1<<20)))
			must(t, err)
			req.ContentLength = -1 // sent chunked: the limit must hold while reading
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return h.do(req)
		}},
		{name: "webhook: wrong content type", status: 415, send: func(h *harness) response {
			return h.request(http.MethodPost, f.WebhookPath(), "application/json", `{"account":{"id":1}}`, nil)
		}},
		{name: "webhook: malformed percent-encoding", status: 400, bodyHas: "malformed form encoding",
			send: webhook(f.WebhookPath(), "account%ZZ%5Bid%5D=1&"+add)},
		{name: "webhook: malformed brackets", status: 400, bodyHas: "contacts[add[0][id]",
			send: webhook(f.WebhookPath(), add+"&"+url.QueryEscape("contacts[add[0][id]")+"=5")},
		{name: "webhook: missing account id", status: 400, bodyHas: "account[id]",
			send: webhook(f.WebhookPath(), "contacts%5Badd%5D%5B0%5D%5Bid%5D=5")},
		{name: "webhook: contact of another account", status: 400, bodyHas: "account_id",
			send: webhook(f.WebhookPath(), add+"&"+url.QueryEscape("contacts[add][7][id]")+"=9&"+
				url.QueryEscape("contacts[add][7][account_id]")+"="+strconv.FormatInt(f.AccountID+5, 10))},
		{name: "webhook: GET", status: 405, send: func(h *harness) response {
			return h.request(http.MethodGet, f.WebhookPath(), "", "", nil)
		}},
		{name: "widget: no token", status: 401, send: postWidget("")},
		{name: "widget: garbage token", status: 401, send: postWidget("not.a.jwt")},
		{name: "widget: signed with another secret", status: 401,
			send: signedWidget(kommoToken{Alg: jwt.SigningMethodHS256, Key: []byte("another-secret"), Claims: f.token().Claims})},
		{name: "widget: expired", status: 401, bodyHas: "expired", send: signedWidget(f.token().
			with("iat", now.Add(-time.Hour).Unix()).with("nbf", now.Add(-time.Hour).Unix()).with("exp", now.Add(-10*time.Minute).Unix()))},
		{name: "widget: not yet valid", status: 401, bodyHas: "not valid yet", send: signedWidget(f.token().
			with("iat", now.Add(10*time.Minute).Unix()).with("nbf", now.Add(10*time.Minute).Unix()).with("exp", now.Add(40*time.Minute).Unix()))},
		{name: "widget: no exp", status: 401, send: func(h *harness) response {
			tok := f.token()
			delete(tok.Claims, "exp")
			return postWidget(tok.sign(t))(h)
		}},
		{name: "widget: lives for a year", status: 401, send: signedWidget(f.token().with("exp", now.Add(365*24*time.Hour).Unix()))},
		{name: "widget: wrong aud", status: 401, send: signedWidget(f.token().with("aud", "https://evil.example.test"))},
		{name: "widget: alg none", status: 401, send: func(h *harness) response {
			s, err := jwt.NewWithClaims(jwt.SigningMethodNone, f.token().Claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
			must(t, err)
			return postWidget(s)(h)
		}},
		{name: "widget: alg HS512 with the right secret", status: 401,
			send: signedWidget(kommoToken{Alg: jwt.SigningMethodHS512, Key: []byte(f.ClientSecret), Claims: f.token().Claims})},
		{name: "widget: alg RS256", status: 401,
			send: signedWidget(kommoToken{Alg: jwt.SigningMethodRS256, Key: rsaKey, Claims: f.token().Claims})},
		{name: "widget: replayed jti", status: 401, bodyHas: "already used", send: func(h *harness) response {
			first := h.request(http.MethodGet, "/widget/status", "", "", map[string]string{"X-Auth-Token": replayed})
			if first.Status != http.StatusOK {
				t.Fatalf("first use of the token: status %d (%s), want 200", first.Status, first.Body)
			}
			return postWidget(replayed)(h)
		}},
		{name: "widget: unknown client_uuid", status: 401, send: signedWidget(f.token().with("client_uuid", "00000000-0000-0000-0000-000000000000"))},
		{name: "widget: another account", status: 401, send: signedWidget(f.token().with("account_id", f.AccountID+1))},
		{name: "widget: not an admin", status: 403, send: signedWidget(f.token().with("is_admin", false))},
		{name: "widget: binding without allowWidgetKey", status: 403, bodyHas: "allowWidgetKey", send: signedWidget(noWidget.token())},
		{name: "widget: wrong content type", status: 415, send: func(h *harness) response {
			return h.request(http.MethodPost, "/widget", "text/plain", widgetBody, map[string]string{"X-Auth-Token": f.token().sign(t)})
		}},
		{name: "widget: API key with a control character", status: 400, send: func(h *harness) response {
			return h.request(http.MethodPost, "/widget", "application/json", `{"apiKey":"abc\ndef"}`,
				map[string]string{"X-Auth-Token": f.token().sign(t)})
		}},
		{name: "widget: preflight from another origin", status: 403, send: func(h *harness) response {
			return h.request(http.MethodOptions, "/widget", "", "", map[string]string{
				"Origin": "https://evil.example.test", "Access-Control-Request-Method": "POST"})
		}},
		{name: "oauth: state signed with another secret", status: 400, send: callback(wrongState)},
		{name: "oauth: state of another integration", status: 400, send: callback(otherIntegrationState)},
		{name: "oauth: no code", status: 400, send: callback(noCode)},
		{name: "oauth: access denied", status: 403, send: callback(denied)},
	}

	bodies := map[string]string{}
	for _, tc := range cases {
		resp := tc.send(h)
		bodies[tc.name] = resp.Body
		t.Logf("%-45s %d %s", tc.name, resp.Status, strings.TrimSpace(resp.Body))
		if resp.Status != tc.status {
			t.Errorf("%s: status %d (%q), want %d", tc.name, resp.Status, resp.Body, tc.status)
		}
		if tc.bodyHas != "" && !strings.Contains(resp.Body, tc.bodyHas) {
			t.Errorf("%s: answer %q does not say %q", tc.name, resp.Body, tc.bodyHas)
		}
		if tc.sameBody != "" && resp.Body != bodies[tc.sameBody] {
			t.Errorf("%s: answer %q differs from %q's %q", tc.name, resp.Body, tc.sameBody, bodies[tc.sameBody])
		}
		assertNothingQueuedOrStored(t, tc.name, h, f, noWidget)
	}
	if len(cases) < 15 {
		t.Fatalf("only %d cases", len(cases))
	}

	// Positive controls: the same tenant, done right, gets through.
	if resp := h.postForm(f.WebhookPath(), add); resp.Status != http.StatusOK {
		t.Errorf("valid webhook: status %d (%s)", resp.Status, resp.Body)
	}
	if resp := postWidget(f.token().sign(t))(h); resp.Status != http.StatusOK {
		t.Errorf("valid widget request: status %d (%s)", resp.Status, resp.Body)
	}
	if resp := callback(f.callbackQuery(t, "code-ok"))(h); resp.Status != http.StatusOK {
		t.Errorf("valid callback: status %d (%s)", resp.Status, resp.Body)
	}
	if n := h.jobsInTube(); n != 1 {
		t.Errorf("%d jobs after the valid webhook, want 1", n)
	}
	if _, ok := f.widgetKeySecret(t); !ok {
		t.Error("the valid widget request stored no key")
	}
	if _, ok := f.oauthCodeSecret(t); !ok {
		t.Error("the valid callback stored no code")
	}
}

func assertNothingQueuedOrStored(t *testing.T, name string, h *harness, tenants ...*tenantFixture) {
	t.Helper()
	if n := h.jobsInTube(); n != 0 {
		t.Fatalf("%s: %d jobs queued, want none", name, n)
	}
	for _, f := range tenants {
		if _, ok := f.widgetKeySecret(t); ok {
			t.Fatalf("%s: a widget key was stored for %s", name, f.TenantID())
		}
		if _, ok := f.oauthCodeSecret(t); ok {
			t.Fatalf("%s: an OAuth code was stored for %s", name, f.Namespace)
		}
	}
}
