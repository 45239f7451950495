package webhookserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

const kommoOrigin = "https://acme.kommo.com"

func (h *harness) postWidgetKey(f *tenantFixture, body string) response {
	h.t.Helper()
	return h.request(http.MethodPost, "/widget", "application/json", body, map[string]string{
		"X-Auth-Token": f.token().sign(h.t), "Origin": kommoOrigin,
	})
}

// TestWidgetStoresTheKeyWhereTheBindingReadsIt: a verified admin's key
// lands in <binding>-widget-key (key apiKey), labelled managed and owned by
// the binding; a second save replaces it.
func TestWidgetStoresTheKeyWhereTheBindingReadsIt(t *testing.T) {
	f := newTenant(t, tenantOpts{allowWidgetKey: true})
	h := newHarness(t, harnessOpts{})

	resp := h.postWidgetKey(f, `{"apiKey":"key-one-0123456789","listTitle":"Newsletter","listID":17}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != kommoOrigin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, kommoOrigin)
	}
	s, ok := f.widgetKeySecret(t)
	if !ok {
		t.Fatal("no widget-key Secret")
	}
	if got := string(s.Data["apiKey"]); got != "key-one-0123456789" {
		t.Errorf("apiKey %q", got)
	}
	if got := string(s.Data[webhookserver.WidgetListTitleKey]); got != "Newsletter" {
		t.Errorf("listTitle %q", got)
	}
	if got := string(s.Data[webhookserver.WidgetListIDKey]); got != "17" {
		t.Errorf("listID %q", got)
	}
	if s.Labels[tokens.ManagedLabel] != tokens.ManagedLabelValue {
		t.Errorf("labels %v, want the managed label", s.Labels)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != f.Binding.UID || s.OwnerReferences[0].Kind != "UnisenderBinding" {
		t.Errorf("owner references %+v, want the binding", s.OwnerReferences)
	}

	resp = h.postWidgetKey(f, `{"apiKey":"key-two-0123456789"}`)
	if resp.Status != http.StatusOK {
		t.Fatalf("second save: status %d (%s)", resp.Status, resp.Body)
	}
	s, _ = f.widgetKeySecret(t)
	if got := string(s.Data["apiKey"]); got != "key-two-0123456789" {
		t.Errorf("after the second save apiKey %q", got)
	}
	if _, kept := s.Data[webhookserver.WidgetListTitleKey]; kept {
		t.Error("the second save kept the first save's list title")
	}
}

// TestWidgetLeavesAForeignSecretAlone: a user Secret that happens to carry
// the widget-key name is not overwritten.
func TestWidgetLeavesAForeignSecretAlone(t *testing.T) {
	f := newTenant(t, tenantOpts{allowWidgetKey: true})
	_, c := cluster(t)
	must(t, c.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: f.Binding.Name + "-widget-key"},
		Data:       map[string][]byte{"apiKey": []byte("the user's own")},
	}))
	h := newHarness(t, harnessOpts{})
	if resp := h.postWidgetKey(f, `{"apiKey":"from-the-widget"}`); resp.Status != http.StatusConflict {
		t.Fatalf("status %d (%s), want 409", resp.Status, resp.Body)
	}
	s, _ := f.widgetKeySecret(t)
	if got := string(s.Data["apiKey"]); got != "the user's own" {
		t.Errorf("the user's Secret now holds %q", got)
	}
}

// TestWidgetPreflight: Kommo account origins get the CORS grant for the
// token header; the list of origins is configurable.
func TestWidgetPreflight(t *testing.T) {
	h := newHarness(t, harnessOpts{config: func(c *webhookserver.Config) {
		c.AllowedOrigins = append(c.AllowedOrigins, "https://127.0.0.1:8443")
	}})
	for _, origin := range []string{"https://acme.kommo.com", "https://shop.amocrm.ru", "https://x.amocrm.com", "https://127.0.0.1:8443"} {
		for _, path := range []string{"/widget", "/widget/status"} {
			resp := h.request(http.MethodOptions, path, "", "", map[string]string{
				"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-auth-token, content-type"})
			if resp.Status != http.StatusNoContent {
				t.Errorf("%s %s: status %d, want 204", origin, path, resp.Status)
				continue
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("%s: Allow-Origin %q", origin, got)
			}
			if got := resp.Header.Get("Access-Control-Allow-Headers"); got != "X-Auth-Token, Content-Type" {
				t.Errorf("%s: Allow-Headers %q", origin, got)
			}
		}
	}
	for _, origin := range []string{"https://kommo.com.evil.test", "http://acme.kommo.com", "https://evilkommo.com", "https://acme.kommo.com:444", "null"} {
		resp := h.request(http.MethodOptions, "/widget", "", "", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"})
		if resp.Status != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: status %d Allow-Origin %q, want 403 and no grant", origin, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// TestWidgetStatusShowsTheBinding: the status panel gets the binding's
// readiness, list, import progress and the message of what stops it.
func TestWidgetStatusShowsTheBinding(t *testing.T) {
	f := newTenant(t, tenantOpts{allowWidgetKey: true})
	_, c := cluster(t)
	k, _ := cluster(t)
	b := f.Binding.DeepCopy()
	b.Status.ListID = 4242
	b.Status.Import = &v1alpha1.ImportStatus{Phase: v1alpha1.ImportRunning, Imported: 300, Total: 1200}
	meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonInvalidAPIKey, Message: "Unisender refused the API key in Secret \"newsletter-widget-key\""})
	must(t, c.Status().Update(context.Background(), b))
	waitFor(t, "the status in the cache", func() bool {
		bs, err := k.BindingsOf(context.Background(), f.Integration)
		return err == nil && len(bs) == 1 && bs[0].Status.ListID == 4242
	})
	h := newHarness(t, harnessOpts{})
	resp := h.request(http.MethodGet, "/widget/status", "", "", map[string]string{"X-Auth-Token": f.token().sign(t), "Origin": kommoOrigin})
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d (%s)", resp.Status, resp.Body)
	}
	var got webhookserver.WidgetStatus
	must(t, json.Unmarshal([]byte(resp.Body), &got))
	want := webhookserver.WidgetStatus{
		Connected: false, Binding: f.TenantID(), ListID: 4242, ListTitle: "Kommo contacts",
		Import:    &webhookserver.WidgetImportStatus{Phase: "Running", Imported: 300, Total: 1200},
		LastError: "Unisender refused the API key in Secret \"newsletter-widget-key\"",
	}
	if got.Connected != want.Connected || got.Binding != want.Binding || got.ListID != want.ListID ||
		got.ListTitle != want.ListTitle || got.LastError != want.LastError || got.Import == nil || *got.Import != *want.Import {
		t.Errorf("status %+v (import %+v), want %+v (import %+v)", got, got.Import, want, want.Import)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != kommoOrigin {
		t.Errorf("no CORS grant on the status answer")
	}

	b.Status.Import = &v1alpha1.ImportStatus{Phase: v1alpha1.ImportCompleted, Imported: 1200, Total: 1200}
	meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonSucceeded, Message: "synced"})
	must(t, c.Status().Update(context.Background(), b))
	waitFor(t, "the ready status in the cache", func() bool {
		bs, err := k.BindingsOf(context.Background(), f.Integration)
		return err == nil && len(bs) == 1 && meta.IsStatusConditionTrue(bs[0].Status.Conditions, v1alpha1.ConditionReady)
	})
	resp = h.request(http.MethodGet, "/widget/status", "", "", map[string]string{"X-Auth-Token": f.token().sign(t)})
	got = webhookserver.WidgetStatus{}
	must(t, json.Unmarshal([]byte(resp.Body), &got))
	if !got.Connected || got.LastError != "" || got.Import == nil || !got.Import.Completed {
		t.Errorf("ready binding: status %+v (import %+v), want connected, completed, no error", got, got.Import)
	}
}

// TestWidgetTokenReplayedToAnotherReplicaIsRefused: two servers (replicas,
// each with its own in-memory replay set) over one cluster. A token that
// stored a key through the first is refused by the second, and the key
// stays the first one's.
func TestWidgetTokenReplayedToAnotherReplicaIsRefused(t *testing.T) {
	f := newTenant(t, tenantOpts{allowWidgetKey: true})
	first, second := newHarness(t, harnessOpts{}), newHarness(t, harnessOpts{})
	token := f.token().sign(t)
	post := func(h *harness, body string) response {
		return h.request(http.MethodPost, "/widget", "application/json", body, map[string]string{
			"X-Auth-Token": token, "Origin": kommoOrigin,
		})
	}

	if resp := post(first, `{"apiKey":"key-one-0123456789"}`); resp.Status != http.StatusOK {
		t.Fatalf("first replica: status %d (%s), want 200", resp.Status, resp.Body)
	}
	resp := post(second, `{"apiKey":"key-two-0123456789"}`)
	if resp.Status != http.StatusUnauthorized || !strings.Contains(resp.Body, "already used") {
		t.Fatalf("replay to the second replica: status %d (%s), want 401 already used", resp.Status, resp.Body)
	}
	s, _ := f.widgetKeySecret(t)
	if got := string(s.Data["apiKey"]); got != "key-one-0123456789" {
		t.Errorf("apiKey %q after the replay, want the first request's", got)
	}
	if resp := second.postWidgetKey(f, `{"apiKey":"key-two-0123456789"}`); resp.Status != http.StatusOK {
		t.Fatalf("a fresh token on the second replica: status %d (%s), want 200", resp.Status, resp.Body)
	}
}
