package webhookserver_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// TestOAuthCallbackHandsTheCodeToTheIntegration: with the state the
// KommoIntegration reconciler publishes (tokens.CallbackState), the code
// lands in <integration>-oauth-code, owned by the integration and labelled
// managed, and the page names the integration but not the code.
func TestOAuthCallbackHandsTheCodeToTheIntegration(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	h := newHarness(t, harnessOpts{})
	code := "def50200" + randomHex(t, 40)
	resp := h.request(http.MethodGet, "/oauth/callback?"+f.callbackQuery(t, code).Encode(), "", "", nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d (%s)", resp.Status, resp.Body)
	}
	if strings.Contains(resp.Body, code) || strings.Contains(resp.Body, f.callbackQuery(t, code).Get("state")) {
		t.Error("the page shows the code or the state")
	}
	if !strings.Contains(resp.Body, f.Namespace+"/"+f.Integration.Name) {
		t.Errorf("the page does not name the integration: %s", resp.Body)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v: want no-referrer and no-store", resp.Header)
	}
	s, ok := f.oauthCodeSecret(t)
	if !ok {
		t.Fatal("no code Secret")
	}
	if got := string(s.Data[tokens.OAuthCodeKey]); got != code {
		t.Errorf("stored code %q, want %q", got, code)
	}
	if s.Labels[tokens.ManagedLabel] != tokens.ManagedLabelValue {
		t.Errorf("labels %v", s.Labels)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != f.Integration.UID {
		t.Errorf("owner references %+v, want the integration", s.OwnerReferences)
	}
}

// TestOAuthCallbackFromTheWidgetInstall: Kommo's install GET carries no
// state; it is answered at once and nothing is stored (nothing proves whom
// the code is for).
func TestOAuthCallbackFromTheWidgetInstall(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	h := newHarness(t, harnessOpts{})
	q := url.Values{"code": {"def502-install"}, "referer": {"acme.kommo.com"}, "from_widget": {"1"}, "client_id": {f.ClientID}}
	if resp := h.request(http.MethodGet, "/oauth/callback?"+q.Encode(), "", "", nil); resp.Status != http.StatusOK {
		t.Fatalf("status %d", resp.Status)
	}
	if _, ok := f.oauthCodeSecret(t); ok {
		t.Error("an unverifiable install code was stored")
	}
}
