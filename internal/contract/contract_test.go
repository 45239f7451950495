package contract

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

// The contract outlives a release: Kommo holds webhook URLs registered by
// an older manager, and clusters hold Secrets an older webhook server
// wrote. A change here strands them, so it must be deliberate.
func TestNamesAreStable(t *testing.T) {
	for got, want := range map[string]string{
		WebhookPathPrefix:           "/kommo/webhooks/",
		UnisenderHookPathPrefix:     "/unisender/hooks/",
		WebhookSecretKey:            "secret",
		WebhookSecretName("news"):   "news-webhook",
		WidgetKeySecretKey:          "apiKey",
		WidgetKeySecretName("news"): "news-widget-key",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}

func TestSchemeKnowsBothSides(t *testing.T) {
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []runtime.Object{&corev1.Secret{}, &v1alpha1.KommoIntegration{}, &v1alpha1.UnisenderBinding{}, &v1alpha1.KommoApp{}} {
		if kinds, _, err := s.ObjectKinds(obj); err != nil || len(kinds) == 0 {
			t.Errorf("%T: %v", obj, err)
		}
	}
}
