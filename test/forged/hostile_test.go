package forged

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// hostile is one request an attacker sends to the running system: whoever
// holds a tenant's webhook URL, another tenant holding a copy of a shared
// client secret, a page on another origin, or anyone on the internet.
type hostile struct {
	name string
	// send makes the request and returns the answer's status.
	send func(t *testing.T, h *hostileRig) int
	want int
	// setup, if set, runs before the fingerprint: what a legitimate user
	// did first (a state's first use before its replay).
	setup func(t *testing.T, h *hostileRig)
	// queues: the request is well-formed and names contacts, so it is
	// answered 2xx and queued; the worker reads Kommo and must change
	// nothing. Otherwise nothing may even reach beanstalkd.
	queues int
}

// TestHostileRequests sends every request of the table to one running
// system (the processes `make dev` runs) and checks, after each, its status
// and that nothing changed: the tenants' Secrets, the integration's
// account, the list's members, the Unisender calls that change membership
// and, for refused requests, beanstalkd's job count.
func TestHostileRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	h := newHostileRig(t, ctx)
	var rows []string
	for _, tc := range hostileRequests() {
		if tc.setup != nil {
			tc.setup(t, h)
		}
		before := h.fingerprint(t)
		q := h.s.queueStats(t)
		got := tc.send(t, h)
		if tc.queues > 0 {
			h.s.waitDrained(t, q, tc.queues)
		}
		after := h.fingerprint(t)
		changed := before.diff(after, tc.queues > 0)
		verdict := "ok"
		if got != tc.want || changed != "" {
			verdict = "FAIL"
			t.Errorf("%s: HTTP %d (want %d); changed: %s", tc.name, got, tc.want, cmp.Or(changed, "nothing"))
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %s | %s |", tc.name, got, cmp.Or(changed, "nothing"), verdict))
	}
	// Besides every credential in the cluster (devtest scans for those),
	// the key the attackers sent and the webhook URL's secret.
	scanned := devtest.AssertNoSecretInLogs(t, h.s.env, h.s.logs, "attacker-unisender-key",
		h.s.hookURL[strings.LastIndexByte(h.s.hookURL, '/')+1:])
	t.Logf("no secret in %d lines the operator's processes logged", scanned)
	t.Logf("%d hostile requests:\n| request | status | changed | |\n|---|---|---|---|\n%s", len(rows), strings.Join(rows, "\n"))
}

func hostileRequests() []hostile {
	return slices.Concat(hostileWebhooks(), hostileWidgetCalls(), hostileOAuthCallbacks())
}

// hostileWebhooks: the Kommo webhook route, sent by whoever holds (or
// guesses) a tenant's URL.
func hostileWebhooks() []hostile {
	return []hostile{
		{name: "webhook: wrong secret of the right length", want: 404, send: func(t *testing.T, h *hostileRig) int {
			u := h.s.hookURL
			last := u[len(u)-1]
			return h.postForm(t, u[:len(u)-1]+string(rune(cmpByte(last == 'a', 'b', 'a'))), h.contactBody())
		}},
		{name: "webhook: unknown tenant with a real secret", want: 404, send: func(t *testing.T, h *hostileRig) int {
			return h.postForm(t, strings.Replace(h.s.hookURL, devenv.SampleNamespace+".", "other.", 1), h.contactBody())
		}},
		{name: "webhook: secret of 10 KiB", want: 404, send: func(t *testing.T, h *hostileRig) int {
			return h.postForm(t, h.hookBase()+strings.Repeat("s", 10<<10), h.contactBody())
		}},
		{name: "webhook: another account's account[id]", want: 403, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			other := strconv.FormatInt(h.s.accountID+1, 10)
			form.Set("account[id]", other)
			h.s.contactForm(form, "update", 0, h.contact.ID, "Forged", "x@forged.example", "")
			form.Set("contacts[update][0][account_id]", other)
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: no account[id]", want: 400, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			form.Del("account[id]")
			h.s.contactForm(form, "update", 0, h.contact.ID, "Forged", "x@forged.example", "")
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: body of 1 MiB + 1 byte", want: 413, send: func(t *testing.T, h *hostileRig) int {
			return h.postForm(t, h.s.hookURL, h.contactBody()+"&pad="+strings.Repeat("a", 1<<20))
		}},
		{name: "webhook: chunked body over 1 MiB (no Content-Length)", want: 413, send: func(t *testing.T, h *hostileRig) int {
			body := io.MultiReader(strings.NewReader(h.contactBody()+"&pad="), strings.NewReader(strings.Repeat("b", 1<<20+10)))
			return h.do(t, http.MethodPost, h.s.hookURL, body, formHeaders())
		}},
		{name: "webhook: 900 KiB of escaped '<' in a name (escape amplification)", want: 200, queues: 1, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			h.s.contactForm(form, "update", 0, h.contact.ID, strings.Repeat("<", 300<<10), "", "")
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: control bytes in every value", want: 200, queues: 1, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			h.s.contactForm(form, "update", 0, h.contact.ID, strings.Repeat("\x00\x01\x1b\u2028", 1000), "\x00@\x01", "")
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: updated_at = 2^63-1 with another address", want: 200, queues: 1, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			h.s.contactForm(form, "update", 0, h.contact.ID, "Pinned", "pinned@forged.example", maxInt64)
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: delete of a contact Kommo still has", want: 200, queues: 1, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			form.Set("contacts[delete][0][id]", strconv.FormatInt(h.contact.ID, 10))
			form.Set("contacts[delete][0][type]", "contact")
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: contact id beyond int64", want: 400, send: func(t *testing.T, h *hostileRig) int {
			form := h.s.form()
			form.Set("contacts[update][0][id]", "99999999999999999999")
			return h.postForm(t, h.s.hookURL, form.Encode())
		}},
		{name: "webhook: malformed percent-encoding", want: 400, send: func(t *testing.T, h *hostileRig) int {
			return h.postForm(t, h.s.hookURL, h.contactBody()+"&x=%zz")
		}},
		{name: "webhook: ';' separators", want: 400, send: func(t *testing.T, h *hostileRig) int {
			return h.postForm(t, h.s.hookURL, h.contactBody()+";x=1")
		}},
		{name: "webhook: 10,001 pairs", want: 400, send: func(t *testing.T, h *hostileRig) int {
			var b strings.Builder
			b.WriteString(h.contactBody())
			for i := range 10_001 {
				fmt.Fprintf(&b, "&p%d=", i)
			}
			return h.postForm(t, h.s.hookURL, b.String())
		}},
		{name: "webhook: JSON content type", want: 415, send: func(t *testing.T, h *hostileRig) int {
			return h.do(t, http.MethodPost, h.s.hookURL, strings.NewReader(`{"contacts":{}}`), http.Header{"Content-Type": {"application/json"}})
		}},
		{name: "webhook: GET of the URL", want: 405, send: func(t *testing.T, h *hostileRig) int {
			return h.do(t, http.MethodGet, h.s.hookURL, nil, nil)
		}},
		{name: "webhook: 384 deliveries, 32 at a time, from the URL holder (over the tenant's burst)", want: 429, queues: 1, send: floodWebhooks},
		{name: "webhook: 100 KiB header", want: 431, send: func(t *testing.T, h *hostileRig) int {
			hdr := formHeaders()
			hdr.Set("X-Pad", strings.Repeat("h", 100<<10))
			return h.do(t, http.MethodPost, h.s.hookURL, strings.NewReader(h.contactBody()), hdr)
		}},
	}
}

// floodWebhooks posts 384 well-formed deliveries, 32 at a time: more than
// the tenant's admission burst (200 jobs by default). It answers 429 when
// every answer was 200 or 429, some were 429 and each 429 said when to
// retry; otherwise the first other status.
func floodWebhooks(t *testing.T, h *hostileRig) int {
	codes := make(chan int, 32*12)
	var wg sync.WaitGroup
	body := h.contactBody()
	for range 32 {
		wg.Go(func() {
			for range 12 {
				req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.s.hookURL, strings.NewReader(body))
				if err != nil {
					codes <- 0
					continue
				}
				req.Header.Set("Content-Type", formContentType)
				resp, err := h.http.Do(req)
				if err != nil {
					codes <- 0
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					codes <- -1
					continue
				}
				codes <- resp.StatusCode
			}
		})
	}
	wg.Wait()
	close(codes)
	counts := map[int]int{}
	for c := range codes {
		counts[c]++
	}
	t.Logf("flood: answers by status %v (-1: a 429 without Retry-After)", counts)
	for c := range counts {
		if c != 200 && c != 429 {
			return c
		}
	}
	if counts[429] == 0 {
		return 200
	}
	return 429
}

// hostileWidgetCalls: the widget routes, called with tokens nobody at
// Kommo issued, or by another tenant holding a copy of a shared secret.
func hostileWidgetCalls() []hostile {
	return []hostile{
		{name: "widget: POST without a token", want: 401, send: func(t *testing.T, h *hostileRig) int {
			return h.widgetPost(t, "")
		}},
		{name: "widget: token signed with another key", want: 401, send: func(t *testing.T, h *hostileRig) int {
			return h.widgetPost(t, h.widgetToken(t, []byte("not-the-client-secret"), nil))
		}},
		{name: "widget: alg none", want: 401, send: func(t *testing.T, h *hostileRig) int {
			tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, h.claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			must(t, err)
			return h.widgetPost(t, tok)
		}},
		{name: "widget: expired token", want: 401, send: func(t *testing.T, h *hostileRig) int {
			return h.widgetPost(t, h.widgetToken(t, nil, func(c jwt.MapClaims) {
				c["iat"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
			}))
		}},
		{name: "widget: token living a year", want: 401, send: func(t *testing.T, h *hostileRig) int {
			return h.widgetPost(t, h.widgetToken(t, nil, func(c jwt.MapClaims) { c["exp"] = time.Now().AddDate(1, 0, 0).Unix() }))
		}},
		{name: "widget: token of a user who is not an admin", want: 403, send: func(t *testing.T, h *hostileRig) int {
			return h.widgetPost(t, h.widgetToken(t, nil, func(c jwt.MapClaims) { c["is_admin"] = false }))
		}},
		{name: "widget: token for another server (aud)", want: 401, send: func(t *testing.T, h *hostileRig) int {
			return h.widgetPost(t, h.widgetToken(t, nil, func(c jwt.MapClaims) { c["aud"] = "https://evil.example" }))
		}},
		{name: "widget: token replayed (status read, then the same token)", want: 401, send: func(t *testing.T, h *hostileRig) int {
			tok := h.widgetToken(t, nil, nil)
			if got := h.do(t, http.MethodGet, h.s.env.WebhookURL+"/widget/status", nil, http.Header{"X-Auth-Token": {tok}}); got != 200 {
				t.Fatalf("the first use of a fresh token got HTTP %d, want 200", got)
			}
			return h.do(t, http.MethodGet, h.s.env.WebhookURL+"/widget/status", nil, http.Header{"X-Auth-Token": {tok}})
		}},
		{name: "widget: tenant 'evil' signs for the demo account with its copy of the shared client secret", want: 403,
			setup: func(t *testing.T, h *hostileRig) { h.createEvilTenant(t) },
			send: func(t *testing.T, h *hostileRig) int {
				return h.widgetPost(t, h.widgetToken(t, []byte(devenv.SandboxClientSecret), nil))
			}},
		{name: "widget: CORS preflight from another origin", want: 403, send: func(t *testing.T, h *hostileRig) int {
			return h.do(t, http.MethodOptions, h.s.env.WebhookURL+"/widget", nil, http.Header{
				"Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"POST"},
				"Access-Control-Request-Headers": {"X-Auth-Token, Content-Type"},
			})
		}},
		{name: "widget: CORS preflight from a look-alike origin", want: 403, send: func(t *testing.T, h *hostileRig) int {
			return h.do(t, http.MethodOptions, h.s.env.WebhookURL+"/widget", nil, http.Header{
				"Origin": {"https://acme.kommo.com.evil.example"}, "Access-Control-Request-Method": {"POST"},
			})
		}},
	}
}

// hostileOAuthCallbacks: the OAuth callback, with states the reconciler
// did not publish.
func hostileOAuthCallbacks() []hostile {
	callback := func(t *testing.T, h *hostileRig, q url.Values) int {
		return h.do(t, http.MethodGet, h.s.env.WebhookURL+"/oauth/callback?"+q.Encode(), nil, nil)
	}
	return []hostile{
		{name: "oauth: random state", want: 400, send: func(t *testing.T, h *hostileRig) int {
			return callback(t, h, url.Values{"code": {"c0de"}, "state": {"demo.acme-callback.AAAAAAAAAAAAAAAAAAAAAA"}})
		}},
		{name: "oauth: state signed with the tenant-readable client secret", want: 400, send: func(t *testing.T, h *hostileRig) int {
			state, err := tokens.NewCallbackState([]byte(devenv.SandboxClientSecret), callbackKey, time.Now().Add(10*time.Minute))
			must(t, err)
			return callback(t, h, url.Values{"code": {"c0de"}, "state": {state}})
		}},
		{name: "oauth: the published state re-aimed at another integration", want: 400, send: func(t *testing.T, h *hostileRig) int {
			state := strings.Replace(h.callbackState(t), "."+callbackIntegration+".", "."+devenv.SampleIntegration+".", 1)
			return callback(t, h, url.Values{"code": {"c0de"}, "state": {state}})
		}},
		{name: "oauth: a state signed with the operator's key, expired a minute ago", want: 400, send: func(t *testing.T, h *hostileRig) int {
			state, err := tokens.NewCallbackState(h.stateKey(t), callbackKey, time.Now().Add(-time.Minute))
			must(t, err)
			return callback(t, h, url.Values{"code": {"c0de"}, "state": {state}})
		}},
		{name: "oauth: a state signed with the operator's key for an integration that takes no callback", want: 400, send: func(t *testing.T, h *hostileRig) int {
			state, err := tokens.NewCallbackState(h.stateKey(t), client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleIntegration}, time.Now().Add(10*time.Minute))
			must(t, err)
			return callback(t, h, url.Values{"code": {"c0de"}, "state": {state}})
		}},
		// The integration it authorized is Ready, so the replay is refused
		// before its used state is even looked at (webhookserver's
		// TestCrossTenantOAuthStateForgedReplayedExpired covers the state).
		{name: "oauth: the published state replayed after the authorization it carried", want: 409,
			setup: func(t *testing.T, h *hostileRig) {
				state := h.callbackState(t)
				var code struct{ Code string }
				h.s.send(t, http.MethodPost, h.s.kommoAdmin("/codes"), map[string]string{"client_id": devenv.SandboxClientID}, &code)
				if got := callback(t, h, url.Values{"code": {code.Code}, "state": {state}}); got != 200 {
					t.Fatalf("the first use of the published state got HTTP %d, want 200", got)
				}
				h.usedState = state
				// Once the reconciler has spent the code the integration is
				// authorized; a replay must not replace its tokens.
				devtest.WaitUntil(t, "the first code to be spent", 30*time.Second, func() (bool, string) {
					var code corev1.Secret
					must(t, h.s.env.Client.Get(h.ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: tokens.OAuthCodeSecretName(callbackIntegration)}, &code))
					return len(code.Data[tokens.OAuthCodeKey]) == 0, fmt.Sprintf("the code Secret holds %d bytes", len(code.Data[tokens.OAuthCodeKey]))
				})
			},
			send: func(t *testing.T, h *hostileRig) int {
				return callback(t, h, url.Values{"code": {"replayed-code"}, "state": {h.usedState}})
			}},
		{name: "oauth: code of 5,000 characters", want: 400, send: func(t *testing.T, h *hostileRig) int {
			return callback(t, h, url.Values{"code": {strings.Repeat("c", 5000)}, "state": {h.callbackState(t)}})
		}},
		{name: "oauth: state without a code", want: 400, send: func(t *testing.T, h *hostileRig) int {
			return callback(t, h, url.Values{"state": {h.callbackState(t)}})
		}},
	}
}

// callbackIntegration is a second integration of the demo tenant that
// takes its first token through /oauth/callback: what a forged or replayed
// state would hand a code to.
const callbackIntegration = "acme-callback"

var callbackKey = client.ObjectKey{Namespace: devenv.SampleNamespace, Name: callbackIntegration}

// hostileRig is the running system seen by the attackers: the sample
// tenant (demo, taking widget keys), a second integration of it waiting
// for the OAuth callback, and a tenant "evil" whose integration holds a
// copy of the same public Kommo integration's client secret.
type hostileRig struct {
	s       *system
	ctx     context.Context
	contact adminContact // a real person of the account, in the list
	aud     string       // the widget tokens' audience
	sample  *v1alpha1.KommoIntegration
	// usedState is a published OAuth state after its legitimate use.
	usedState string
	http      *http.Client
}

func newHostileRig(t *testing.T, ctx context.Context) *hostileRig {
	t.Helper()
	s := start(t, ctx)
	h := &hostileRig{s: s, ctx: ctx, contact: onePerson(t, s), http: &http.Client{Timeout: 10 * time.Second}}
	var ki v1alpha1.KommoIntegration
	must(t, s.env.Client.Get(ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleIntegration}, &ki))
	u, err := url.Parse(ki.Spec.RedirectURI)
	must(t, err)
	h.aud = u.Scheme + "://" + u.Host
	var b v1alpha1.UnisenderBinding
	must(t, s.env.Client.Get(ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleBinding}, &b))
	b.Spec.AllowWidgetKey = true
	must(t, s.env.Client.Update(ctx, &b))
	h.sample = &ki
	h.createCallbackIntegration(t)
	return h
}

// createCallbackIntegration adds the demo tenant's second integration,
// which waits for a code at /oauth/callback.
func (h *hostileRig) createCallbackIntegration(t *testing.T) {
	t.Helper()
	sample := h.sample
	must(t, h.s.env.Client.Create(h.ctx, &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Name: callbackIntegration, Namespace: devenv.SampleNamespace},
		Spec: v1alpha1.KommoIntegrationSpec{
			BaseURL: sample.Spec.BaseURL, ClientID: sample.Spec.ClientID, ClientSecretRef: sample.Spec.ClientSecretRef,
			RedirectURI: sample.Spec.RedirectURI, OAuthCallback: &v1alpha1.OAuthCallbackSource{},
		},
	}))
	h.callbackState(t)
}

// createEvilTenant adds the tenant "evil": its own namespace, its own copy
// of the public integration's client secret, and an integration of that
// client id (it need not be authorized: the copy of the secret is all it
// uses). It comes last among the widget requests: once a client id is
// declared with secrets in two namespaces, every widget write for it is
// refused.
func (h *hostileRig) createEvilTenant(t *testing.T) {
	t.Helper()
	sample := h.sample
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "evil"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kommo-oauth", Namespace: "evil"},
			StringData: map[string]string{"client-secret": devenv.SandboxClientSecret, "code": "not-a-code"}},
		&v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Name: "acme-copy", Namespace: "evil"},
			Spec: v1alpha1.KommoIntegrationSpec{
				BaseURL: sample.Spec.BaseURL, ClientID: sample.Spec.ClientID, RedirectURI: sample.Spec.RedirectURI,
				ClientSecretRef:      &v1alpha1.SecretKeySelector{Name: "kommo-oauth", Key: "client-secret"},
				AuthorizationCodeRef: &v1alpha1.SecretKeySelector{Name: "kommo-oauth", Key: "code"},
			}},
	} {
		must(t, h.s.env.Client.Create(h.ctx, o))
	}
}

// callbackState is the state of the callback integration's published
// authorization URL, once the reconciler has published it.
func (h *hostileRig) callbackState(t *testing.T) string {
	t.Helper()
	var state string
	devtest.WaitUntil(t, "the callback integration's authorization URL", 30*time.Second, func() (bool, string) {
		var ki v1alpha1.KommoIntegration
		must(t, h.s.env.Client.Get(h.ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: callbackIntegration}, &ki))
		u, err := url.Parse(ki.Status.AuthorizationURL)
		if err != nil || ki.Status.AuthorizationURL == "" {
			return false, fmt.Sprintf("status.authorizationURL %q", ki.Status.AuthorizationURL)
		}
		state = u.Query().Get("state")
		return state != "", "no state in " + ki.Status.AuthorizationURL
	})
	return state
}

// stateKey is the operator's OAuth state key (in the operator's namespace,
// "default" in dev): what only an old published state could carry.
func (h *hostileRig) stateKey(t *testing.T) []byte {
	t.Helper()
	var s corev1.Secret
	must(t, h.s.env.Client.Get(h.ctx, client.ObjectKey{Namespace: "default", Name: tokens.StateKeySecretName}, &s))
	return s.Data[tokens.StateKeyKey]
}

// --- requests ---

func formHeaders() http.Header { return http.Header{"Content-Type": {formContentType}} }

const formContentType = "application/x-www-form-urlencoded"

func (h *hostileRig) postForm(t *testing.T, u, body string) int {
	return h.do(t, http.MethodPost, u, strings.NewReader(body), formHeaders())
}

func (h *hostileRig) do(t *testing.T, method, u string, body io.Reader, hdr http.Header) int {
	t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, method, u, body)
	must(t, err)
	maps.Copy(req.Header, hdr)
	resp, err := h.http.Do(req)
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// hookBase is the webhook URL without its secret.
func (h *hostileRig) hookBase() string {
	return h.s.hookURL[:strings.LastIndexByte(h.s.hookURL, '/')+1]
}

// contactBody is a well-formed update naming the rig's contact.
func (h *hostileRig) contactBody() string {
	form := h.s.form()
	h.s.contactForm(form, "update", 0, h.contact.ID, h.contact.Name, h.contact.Emails[0], "")
	return form.Encode()
}

// claims are what Kommo puts in a widget token for an admin of the demo
// account.
func (h *hostileRig) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": h.aud, "aud": h.aud, "jti": strconv.FormatInt(now.UnixNano(), 36),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(),
		"account_id": h.s.accountID, "user_id": 1, "client_uuid": devenv.SandboxClientID,
		"subdomain": devenv.SandboxSubdomain, "is_admin": true,
	}
}

// widgetToken signs the claims (edited by edit) with key, by default the
// sandbox integration's client secret.
func (h *hostileRig) widgetToken(t *testing.T, key []byte, edit func(jwt.MapClaims)) string {
	t.Helper()
	c := h.claims()
	if edit != nil {
		edit(c)
	}
	if key == nil {
		key = []byte(devenv.SandboxClientSecret)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	must(t, err)
	return tok
}

// widgetPost tries to store an attacker's Unisender key.
func (h *hostileRig) widgetPost(t *testing.T, token string) int {
	hdr := http.Header{"Content-Type": {"application/json"}, "Origin": {"https://" + devenv.SandboxSubdomain + ".kommo.com"}}
	if token != "" {
		hdr.Set("X-Auth-Token", token)
	}
	return h.do(t, http.MethodPost, h.s.env.WebhookURL+"/widget", strings.NewReader(`{"apiKey":"attacker-unisender-key"}`), hdr)
}

// --- what must not change ---

// systemPrint is what a hostile request must leave as it was.
type systemPrint struct {
	secrets     map[string]string // namespace/name → digest of the data
	account     int64             // the demo integration's status.accountID
	list        []string          // the list's active addresses
	membership  int               // Unisender calls that can change a list
	jobs        int               // beanstalkd's total jobs
	widgetStore bool              // the demo binding's widget-key Secret exists
}

func (h *hostileRig) fingerprint(t *testing.T) systemPrint {
	t.Helper()
	p := systemPrint{secrets: map[string]string{}, list: h.s.listEmails(t), jobs: h.s.queueStats(t).total}
	for _, ns := range []string{devenv.SampleNamespace, "evil"} {
		var secrets corev1.SecretList
		must(t, h.s.env.Client.List(h.ctx, &secrets, client.InNamespace(ns)))
		for _, s := range secrets.Items {
			p.secrets[ns+"/"+s.Name] = digest(s.Data)
			if strings.HasSuffix(s.Name, "-widget-key") {
				p.widgetStore = true
			}
		}
	}
	var ki v1alpha1.KommoIntegration
	must(t, h.s.env.Client.Get(h.ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleIntegration}, &ki))
	p.account = ki.Status.AccountID
	for method, n := range h.s.unisenderCalls(t) {
		if !strings.HasPrefix(method, "get") {
			p.membership += n
		}
	}
	return p
}

// diff names what differs; with queued the job count may grow (the
// request was accepted), nothing else.
func (p systemPrint) diff(q systemPrint, queued bool) string {
	var out []string
	if !maps.Equal(p.secrets, q.secrets) {
		out = append(out, "Secrets")
	}
	if p.widgetStore != q.widgetStore {
		out = append(out, "a widget-key Secret appeared")
	}
	if p.account != q.account {
		out = append(out, fmt.Sprintf("account %d → %d", p.account, q.account))
	}
	if !slices.Equal(p.list, q.list) {
		out = append(out, fmt.Sprintf("list (%d left, %d came)", len(devtest.Minus(p.list, q.list)), len(devtest.Minus(q.list, p.list))))
	}
	if p.membership != q.membership {
		out = append(out, fmt.Sprintf("%d Unisender writes", q.membership-p.membership))
	}
	if !queued && p.jobs != q.jobs {
		out = append(out, fmt.Sprintf("%d jobs queued", q.jobs-p.jobs))
	}
	return strings.Join(out, ", ")
}

func digest(data map[string][]byte) string {
	m := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		m.Write([]byte(k + "\x00"))
		m.Write(data[k])
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

func cmpByte(cond bool, a, b byte) byte {
	if cond {
		return a
	}
	return b
}
