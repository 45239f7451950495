package webhookserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// postKey sends the widget's key-save request with a signed token.
func postKey(t *testing.T, h *harness, token, apiKey string) response {
	t.Helper()
	return h.request(http.MethodPost, "/widget", "application/json", `{"apiKey":"`+apiKey+`"}`,
		map[string]string{"X-Auth-Token": token})
}

// assertNoWidgetKey: the tenant's binding received no key.
func assertNoWidgetKey(t *testing.T, f *tenantFixture) {
	t.Helper()
	if s, ok := f.widgetKeySecret(t); ok {
		t.Errorf("tenant %s got a widget key Secret: %v", f.Namespace, s.Data)
	}
}

// TestCrossTenantWidgetSharedNamespacedSecretIsRefused: tenants a and b
// each hold a copy of one Kommo integration's secret in their namespace.
// a's admin signs a token for b's account with that copy to store a's own
// Unisender key in b's binding: refused with 403 naming KommoApp, and b's
// Secrets are unchanged. (Without the check the signature verifies with
// b's copy and b's binding gets a's key.)
func TestCrossTenantWidgetSharedNamespacedSecretIsRefused(t *testing.T) {
	clientID, secret := "shared-"+randomHex(t, 6), "cs-"+randomHex(t, 24)
	a := newTenant(t, tenantOpts{allowWidgetKey: true, accountID: 7001, clientID: clientID, clientSecret: secret})
	b := newTenant(t, tenantOpts{allowWidgetKey: true, accountID: 7002, clientID: clientID, clientSecret: secret})
	h := newHarness(t, harnessOpts{})

	forged := a.token().with("account_id", b.AccountID).sign(t)
	resp := postKey(t, h, forged, "a-unisender-key")
	if resp.Status != http.StatusForbidden || !strings.Contains(resp.Body, "KommoApp") {
		t.Fatalf("token for b signed with the shared copy: status %d (%s), want 403 naming KommoApp", resp.Status, resp.Body)
	}
	// Even a's own account cannot be told apart from a forgery now.
	if resp := postKey(t, h, a.token().sign(t), "a-unisender-key"); resp.Status != http.StatusForbidden {
		t.Fatalf("token for a: status %d (%s), want 403", resp.Status, resp.Body)
	}
	assertNoWidgetKey(t, a)
	assertNoWidgetKey(t, b)
}

// newApp declares a KommoApp whose secret is in the operator's namespace.
func newApp(t *testing.T) (*v1alpha1.KommoApp, string) {
	t.Helper()
	_, c := cluster(t)
	ctx := context.Background()
	name, secret := "app-"+randomHex(t, 4), "app-secret-"+randomHex(t, 24)
	must(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name},
		Data:       map[string][]byte{"client-secret": []byte(secret)},
	}))
	app := &v1alpha1.KommoApp{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.KommoAppSpec{ClientID: "app-" + randomHex(t, 8), RedirectURI: "https://hooks.example.test/oauth/callback",
			ClientSecretRef: v1alpha1.SecretKeySelector{Name: name, Key: "client-secret"}},
	}
	must(t, c.Create(ctx, app))
	t.Cleanup(func() { _ = c.Delete(context.Background(), app) })
	return app, secret
}

// TestCrossTenantWidgetViaAppWritesOnlyTheSignedAccount: tenants a and b
// use one KommoApp, whose secret no tenant reads. A token Kommo issued for
// a's account (naming b's subdomain) writes a's binding only; a token for
// b's account signed by tenant a with a copy of the app's client id and a
// secret of its own is refused; b's Secrets are unchanged.
func TestCrossTenantWidgetViaAppWritesOnlyTheSignedAccount(t *testing.T) {
	app, appSecret := newApp(t)
	a := newTenant(t, tenantOpts{allowWidgetKey: true, accountID: 7101, app: app})
	b := newTenant(t, tenantOpts{allowWidgetKey: true, accountID: 7102, app: app})
	// Tenant a also declares the app's client id with a secret it knows.
	rogue := newTenant(t, tenantOpts{allowWidgetKey: true, accountID: 7101, clientID: app.Spec.ClientID})
	h := newHarness(t, harnessOpts{})

	a.ClientSecret = appSecret // what Kommo signs with
	resp := postKey(t, h, a.token().with("subdomain", "b-subdomain").sign(t), "a-unisender-key")
	if resp.Status != http.StatusOK || strings.Contains(resp.Body, b.Namespace) {
		t.Fatalf("a's token: status %d (%s), want 200 naming a's binding only", resp.Status, resp.Body)
	}
	if s, ok := a.widgetKeySecret(t); !ok || string(s.Data["apiKey"]) != "a-unisender-key" {
		t.Fatal("a's binding did not get a's key")
	}
	forged := rogue.token().with("account_id", b.AccountID).sign(t)
	if resp := postKey(t, h, forged, "a-unisender-key"); resp.Status != http.StatusUnauthorized {
		t.Fatalf("token for b signed with a's own secret: status %d (%s), want 401", resp.Status, resp.Body)
	}
	assertNoWidgetKey(t, b)
}

// TestCrossTenantOAuthStateForgedReplayedExpired: the callback refuses a
// state signed with another key, an expired one, and one already used
// (after the reconciler spent its code); the code Secret keeps what it
// held.
func TestCrossTenantOAuthStateForgedReplayedExpired(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	h := newHarness(t, harnessOpts{})
	_, c := cluster(t)
	get := func(q string) response {
		return h.request(http.MethodGet, "/oauth/callback?"+q, "", "", nil)
	}
	forgedState, err := tokens.NewCallbackState([]byte(strings.Repeat("z", 32)), keyOf(f), time.Now().Add(time.Hour))
	must(t, err)
	if resp := get(f.callbackQueryWith("code-forged", forgedState).Encode()); resp.Status != http.StatusBadRequest {
		t.Fatalf("forged state: status %d", resp.Status)
	}
	expired := f.callbackQueryWith("code-expired", f.state(t, time.Now().Add(-time.Second)))
	if resp := get(expired.Encode()); resp.Status != http.StatusBadRequest || !strings.Contains(resp.Body, "expired") {
		t.Fatalf("expired state: status %d (%s)", resp.Status, resp.Body)
	}
	if _, ok := f.oauthCodeSecret(t); ok {
		t.Fatal("a refused state stored a code")
	}

	q := f.callbackQuery(t, "code-1")
	if resp := get(q.Encode()); resp.Status != http.StatusOK {
		t.Fatalf("valid state: status %d (%s)", resp.Status, resp.Body)
	}
	// The reconciler spends the code: it empties the Secret.
	s, _ := f.oauthCodeSecret(t)
	delete(s.Data, tokens.OAuthCodeKey)
	must(t, c.Update(context.Background(), s))
	q.Set("code", "code-replayed")
	if resp := get(q.Encode()); resp.Status != http.StatusBadRequest || !strings.Contains(resp.Body, "already used") {
		t.Fatalf("replayed state: status %d (%s)", resp.Status, resp.Body)
	}
	if s, _ := f.oauthCodeSecret(t); len(s.Data[tokens.OAuthCodeKey]) != 0 {
		t.Fatalf("the replay stored code %q", s.Data[tokens.OAuthCodeKey])
	}
}

// TestCrossTenantOAuthSecondCallbackWhilePendingIsRefused: while the code
// Secret holds an unspent code, another callback (another valid state,
// whoever's account it is for) is refused and the pending code stays; an
// integration with working tokens refuses callbacks too.
func TestCrossTenantOAuthSecondCallbackWhilePendingIsRefused(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	h := newHarness(t, harnessOpts{})
	get := func(code string) response {
		return h.request(http.MethodGet, "/oauth/callback?"+f.callbackQuery(t, code).Encode(), "", "", nil)
	}
	if resp := get("code-first"); resp.Status != http.StatusOK {
		t.Fatalf("first callback: status %d (%s)", resp.Status, resp.Body)
	}
	resp := get("code-second")
	if resp.Status != http.StatusConflict || !strings.Contains(resp.Body, "not spent yet") {
		t.Fatalf("second callback: status %d (%s), want 409", resp.Status, resp.Body)
	}
	if s, _ := f.oauthCodeSecret(t); string(s.Data[tokens.OAuthCodeKey]) != "code-first" {
		t.Fatalf("pending code replaced by %q", s.Data[tokens.OAuthCodeKey])
	}

	g := newTenant(t, tenantOpts{})
	k, c := cluster(t)
	ki := g.Integration.DeepCopy()
	must(t, c.Get(context.Background(), keyOf(g), ki))
	for _, typ := range []string{v1alpha1.ConditionAuthorized, v1alpha1.ConditionReady} {
		ki.Status.Conditions = append(ki.Status.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ReasonSucceeded, Message: "ok", LastTransitionTime: metav1.Now()})
	}
	must(t, c.Status().Update(context.Background(), ki))
	waitFor(t, "the cache to see Authorized", func() bool {
		got, err := k.Integration(context.Background(), keyOf(g))
		return err == nil && len(got.Status.Conditions) == 2
	})
	if resp := h.request(http.MethodGet, "/oauth/callback?"+g.callbackQuery(t, "code-x").Encode(), "", "", nil); resp.Status != http.StatusConflict {
		t.Fatalf("callback for an authorized integration: status %d (%s)", resp.Status, resp.Body)
	}
	if _, ok := g.oauthCodeSecret(t); ok {
		t.Fatal("a code was stored for an integration with working tokens")
	}
}

func keyOf(f *tenantFixture) types.NamespacedName {
	return types.NamespacedName{Namespace: f.Namespace, Name: f.Integration.Name}
}
