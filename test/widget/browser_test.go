package widget_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

var kube *testenv.Kube

// TestMain starts a private kube-apiserver for the browser test; under
// -short only the archive tests run.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(testenv.RunWithKube(m, []string{"../../config/crd/bases"}, &kube))
}

// tenantFixture is one Kommo account connected through a KommoIntegration,
// and a binding that accepts a key from the widget.
type tenantFixture struct {
	Namespace    string
	Integration  string
	Binding      string
	ClientID     string
	ClientSecret []byte
	AccountID    int64
	Subdomain    string
	RedirectURI  string
	// The binding's status: its Unisender list and import progress.
	ListID      int64
	Imported    int64
	ImportTotal int64
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// createTenant creates the namespace, the integration with its client
// secret and Kommo account id, and a binding with allowWidgetKey.
func createTenant(ctx context.Context, t *testing.T, c client.Client) tenantFixture {
	t.Helper()
	f := tenantFixture{
		Namespace:    "widget-" + randomHex(t, 4),
		Integration:  "kommo",
		Binding:      "newsletter",
		ClientID:     "6b3c1f0e-2d4a-4c8e-9f11-" + randomHex(t, 6),
		ClientSecret: []byte(randomHex(t, 32)),
		AccountID:    31337001,
		Subdomain:    "acme",
		RedirectURI:  "https://hooks.example.test/oauth/callback",
		ListID:       4242,
		Imported:     37,
		ImportTotal:  120,
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.Namespace}}))
	must(c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: "kommo-credentials"},
		Data:       map[string][]byte{"client-secret": f.ClientSecret, "long-lived-token": []byte("unused")},
	}))
	ki := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: f.Integration},
		Spec: v1alpha1.KommoIntegrationSpec{
			Subdomain:         f.Subdomain,
			ClientID:          f.ClientID,
			ClientSecretRef:   &v1alpha1.SecretKeySelector{Name: "kommo-credentials", Key: "client-secret"},
			RedirectURI:       f.RedirectURI,
			LongLivedTokenRef: &v1alpha1.SecretKeySelector{Name: "kommo-credentials", Key: "long-lived-token"},
		},
	}
	must(c.Create(ctx, ki))
	ki.Status.AccountID = f.AccountID
	must(c.Status().Update(ctx, ki))
	b := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: f.Binding},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: f.Integration},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"},
			List:            v1alpha1.ListSelector{Title: "Kommo contacts"},
			AllowWidgetKey:  true,
		},
	}
	must(c.Create(ctx, b))
	// The status the operator would have written mid-import, for the
	// widget's status panel to show.
	b.Status.ListID = f.ListID
	b.Status.Import = &v1alpha1.ImportStatus{Phase: v1alpha1.ImportRunning, Imported: f.Imported, Total: f.ImportTotal}
	must(c.Status().Update(ctx, b))
	return f
}

// token is the JWT Kommo would mint for this tenant's admin right now.
func (f tenantFixture) token() kommoToken {
	u := strings.SplitN(f.RedirectURI, "/", 4) // scheme:, "", host, path
	return kommoToken{
		Secret:     f.ClientSecret,
		Issuer:     "https://" + f.Subdomain + ".kommo.com",
		Audience:   u[0] + "//" + u[2],
		AccountID:  f.AccountID,
		UserID:     7,
		ClientUUID: f.ClientID,
		Subdomain:  f.Subdomain,
		IssuedAt:   time.Now(),
	}
}

// widgetKey reads the Secret the binding takes a widget key from; ok is
// false while it does not exist.
func widgetKey(ctx context.Context, t *testing.T, c client.Client, f tenantFixture) (string, bool) {
	t.Helper()
	var s corev1.Secret
	err := c.Get(ctx, types.NamespacedName{Namespace: f.Namespace, Name: f.Binding + "-widget-key"}, &s)
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(s.Data["apiKey"]), true
}

func TestWidgetSavesTheKeyFromTheBrowser(t *testing.T) {
	if kube == nil {
		t.Skip("-short: no control plane")
	}
	requireHarnessDeps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.New(kube.Config, client.Options{Scheme: newScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	f := createTenant(ctx, t, c)
	// The host page runs at https://acme.kommo.com:<port>; the server allows
	// exactly that origin, and the page is told the server's address.
	h, page := startHost(t, f.Subdomain, "")
	page.server = startWidgetServer(ctx, t, f.Namespace, page.harness)
	const apiKey = "6x1kqz8y3unisender0api0key0for0widget0test"

	t.Run("wrong client secret", func(t *testing.T) {
		page.t = t
		k := f.token()
		k.Secret = []byte("not-the-client-secret-of-this-integration")
		h.setToken(k)
		page.open()
		state, msg := page.save(apiKey, "")
		if state != "error" || !strings.Contains(msg, "signature") || !strings.Contains(msg, "invalid") {
			t.Errorf("the form shows %s %q, want the signature error", state, msg)
		}
		if _, ok := widgetKey(ctx, t, c, f); ok {
			t.Error("a request signed with a wrong secret stored a key")
		}
	})
	t.Run("expired token", func(t *testing.T) {
		page.t = t
		k := f.token()
		k.IssuedAt = time.Now().Add(-31 * time.Minute)
		h.setToken(k)
		page.open()
		state, msg := page.save(apiKey, "")
		if state != "error" || !strings.Contains(msg, "expired") {
			t.Errorf("the form shows %s %q, want the expired-token error", state, msg)
		}
		if _, ok := widgetKey(ctx, t, c, f); ok {
			t.Error("an expired token stored a key")
		}
	})
	t.Run("valid token", func(t *testing.T) {
		page.t = t
		h.setToken(f.token())
		page.open()
		state, msg := page.save(apiKey, "Kommo contacts")
		page.screenshot("settings.png")
		if state != "success" {
			t.Fatalf("the form shows %s %q, want success", state, msg)
		}
		got, ok := widgetKey(ctx, t, c, f)
		if !ok || got != apiKey {
			t.Fatalf("Secret %s-widget-key holds %d bytes (exists %v), want the typed key", f.Binding, len(got), ok)
		}
		// The status panel shows what /widget/status reports of the binding
		// (it is reloaded after the save, with the same data).
		page.do(chromedp.WaitVisible(chromedp.CSS(`.kus-widget-status[data-loaded=true]`)))
		status := page.text(`.kus-widget-status`)
		if strings.Contains(status, apiKey) {
			t.Error("the status block shows the API key")
		}
		for _, want := range []string{
			fmt.Sprintf("Kommo contacts (#%d)", f.ListID),
			fmt.Sprintf("%d / %d", f.Imported, f.ImportTotal),
		} {
			if !strings.Contains(status, want) {
				t.Errorf("the status block shows %q, want it to include %q", status, want)
			}
		}
	})
}
