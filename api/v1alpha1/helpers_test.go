package v1alpha1_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

func TestTokenSource(t *testing.T) {
	cases := map[v1alpha1.TokenSource]v1alpha1.KommoIntegrationSpec{
		v1alpha1.TokenSourceAuthorizationCode: {AuthorizationCodeRef: ref("s", "k")},
		v1alpha1.TokenSourceOAuthCallback:     {OAuthCallback: &v1alpha1.OAuthCallbackSource{}},
		v1alpha1.TokenSourceLongLivedToken:    {LongLivedTokenRef: ref("s", "k")},
		"":                                    {},
	}
	for want, spec := range cases {
		if got := spec.TokenSource(); got != want {
			t.Errorf("TokenSource() = %q, want %q", got, want)
		}
	}
}

func TestAPIBaseURL(t *testing.T) {
	cases := []struct {
		spec v1alpha1.KommoIntegrationSpec
		want string
	}{
		{v1alpha1.KommoIntegrationSpec{Subdomain: "acme"}, "https://acme.kommo.com"},
		{v1alpha1.KommoIntegrationSpec{BaseURL: "https://acme.amocrm.ru/"}, "https://acme.amocrm.ru"},
		{v1alpha1.KommoIntegrationSpec{BaseURL: "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"},
	}
	for _, c := range cases {
		if got := c.spec.APIBaseURL(); got != c.want {
			t.Errorf("APIBaseURL(%+v) = %q, want %q", c.spec, got, c.want)
		}
	}
}

func TestDoubleOptinAPIValue(t *testing.T) {
	cases := map[v1alpha1.DoubleOptin]int{
		v1alpha1.DoubleOptinInvite: 0, v1alpha1.DoubleOptinConsentHeld: 3, v1alpha1.DoubleOptinInviteUnknown: 4, "": 3,
	}
	for d, want := range cases {
		if got := d.APIValue(); got != want {
			t.Errorf("%q.APIValue() = %d, want %d", d, got, want)
		}
	}
}

// TestUnsetFieldsFallBackToDefaults: objects read before a default existed
// (or built in Go) behave like the CRD defaults say.
func TestUnsetFieldsFallBackToDefaults(t *testing.T) {
	var ki v1alpha1.KommoIntegrationSpec
	if ki.RequestsPerSecond() != v1alpha1.DefaultRequestsPerSecond || ki.RefreshBeforeDuration() != v1alpha1.DefaultRefreshBefore {
		t.Errorf("unset integration: rps=%d refreshBefore=%v", ki.RequestsPerSecond(), ki.RefreshBeforeDuration())
	}
	ki.RateLimit.RequestsPerSecond = 3
	ki.RefreshBefore = &metav1.Duration{Duration: 5 * time.Minute}
	if ki.RequestsPerSecond() != 3 || ki.RefreshBeforeDuration() != 5*time.Minute {
		t.Errorf("set integration: rps=%d refreshBefore=%v", ki.RequestsPerSecond(), ki.RefreshBeforeDuration())
	}

	var ub v1alpha1.UnisenderBindingSpec
	if ub.ResyncPeriod() != v1alpha1.DefaultResyncInterval || ub.FieldMapping.NameField() != v1alpha1.DefaultNameField ||
		!ub.FieldMapping.PhoneEnabled() || !ub.FieldMapping.TagsEnabled() || !ub.InitialImport.IsEnabled() {
		t.Errorf("unset binding does not fall back to the defaults: %+v", ub)
	}
	ub.FieldMapping.Phone, ub.FieldMapping.Tags, ub.InitialImport.Enabled = ptr.To(false), ptr.To(false), ptr.To(false)
	if ub.FieldMapping.PhoneEnabled() || ub.FieldMapping.TagsEnabled() || ub.InitialImport.IsEnabled() {
		t.Error("explicit false is not honoured")
	}
}

func TestReconcileRequestedAt(t *testing.T) {
	ki := validIntegration()
	if _, ok := v1alpha1.ReconcileRequestedAt(ki); ok {
		t.Error("requested without the annotation")
	}
	ki.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: "2026-01-02T03:04:05Z"}
	if v, ok := v1alpha1.ReconcileRequestedAt(ki); !ok || v != "2026-01-02T03:04:05Z" {
		t.Errorf("ReconcileRequestedAt = %q, %v", v, ok)
	}
}
