package devenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/config/samples"
)

// Names of the sample tenant's objects.
const (
	SampleNamespace   = "demo"
	SampleIntegration = "acme"
	SampleBinding     = "acme-newsletter"
)

// Tenant names the objects of one sandbox tenant and its Kommo account.
type Tenant struct {
	Namespace, Integration, Binding string
	// Subdomain is the tenant's sandbox Kommo account; it is created when
	// it does not exist yet.
	Subdomain string
	// ListTitle is the Unisender list the binding creates.
	ListTitle string
	// RequestsPerSecond is the integration's spec.rateLimit (0: the
	// default, Kommo's 7).
	RequestsPerSecond int32
	// UnisenderKey, if set, is the tenant's own sandbox Unisender account
	// (created when missing); empty means the sandbox's shared one.
	UnisenderKey string
}

// SampleTenant is the tenant `make dev` applies.
var SampleTenant = Tenant{Namespace: SampleNamespace, Integration: SampleIntegration, Binding: SampleBinding,
	Subdomain: SandboxSubdomain, ListTitle: "Kommo contacts"}

// ApplySampleTenant creates the sample tenant against the sandbox.
func (e *Env) ApplySampleTenant(ctx context.Context) error { return e.ApplyTenant(ctx, SampleTenant) }

// ApplyTenant creates a tenant against the sandbox: its Secrets (client
// secret, a fresh authorization code, the Unisender key), a
// KommoIntegration that exchanges the code, and a UnisenderBinding that
// creates its list and imports the account's contacts.
func (e *Env) ApplyTenant(ctx context.Context, tn Tenant) error {
	if err := e.ensureSandboxAccount(ctx, tn.Subdomain); err != nil {
		return err
	}
	code, err := e.sandboxAuthCode(ctx, tn.Subdomain)
	if err != nil {
		return err
	}
	key := SandboxUnisenderKey
	if tn.UnisenderKey != "" {
		key = tn.UnisenderKey
		if err := SandboxJSON(http.MethodPost, e.UnisenderURL+"/_admin/keys", map[string]string{"key": key}, nil); err != nil {
			return err
		}
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tn.Namespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kommo-oauth", Namespace: tn.Namespace},
			StringData: map[string]string{"client-secret": SandboxClientSecret, "code": code}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unisender", Namespace: tn.Namespace},
			StringData: map[string]string{"api-key": key}},
		&v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Name: tn.Integration, Namespace: tn.Namespace},
			Spec: v1alpha1.KommoIntegrationSpec{
				BaseURL: e.KommoURL + "/_acct/" + tn.Subdomain, ClientID: SandboxClientID,
				ClientSecretRef:      &v1alpha1.SecretKeySelector{Name: "kommo-oauth", Key: "client-secret"},
				RedirectURI:          e.redirectURI(),
				AuthorizationCodeRef: &v1alpha1.SecretKeySelector{Name: "kommo-oauth", Key: "code"},
				RefreshBefore:        e.refreshBefore(),
				RateLimit:            v1alpha1.RateLimit{RequestsPerSecond: tn.RequestsPerSecond},
			}},
		&v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Name: tn.Binding, Namespace: tn.Namespace},
			Spec: v1alpha1.UnisenderBindingSpec{
				IntegrationRef:  v1alpha1.IntegrationReference{Name: tn.Integration},
				APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"},
				List:            v1alpha1.ListSelector{Title: tn.ListTitle},
			}},
	}
	for _, o := range objs {
		if err := e.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// ensureSandboxAccount creates the sandbox Kommo account unless it exists
// (the sample account is seeded at start-up).
func (e *Env) ensureSandboxAccount(ctx context.Context, subdomain string) error {
	var accounts []struct{ Subdomain string }
	if err := SandboxJSON(http.MethodGet, e.KommoURL+"/_admin/accounts", nil, &accounts); err != nil {
		return err
	}
	for _, a := range accounts {
		if a.Subdomain == subdomain {
			return nil
		}
	}
	return SandboxJSON(http.MethodPost, e.KommoURL+"/_admin/accounts", map[string]string{"subdomain": subdomain}, nil)
}

// ApplyRoutedSample adds to the sample tenant the routed bindings of
// config/samples: won deals of the sandbox account go to "Customers", lost
// ones to "Win-back" (the sandbox seeds leads for about one contact in five).
func (e *Env) ApplyRoutedSample(ctx context.Context) error {
	routed, err := RoutedSampleBindings()
	if err != nil {
		return err
	}
	for _, b := range routed {
		if err := e.Client.Create(ctx, b); err != nil {
			return fmt.Errorf("create UnisenderBinding %s: %w", b.Name, err)
		}
	}
	return nil
}

// RoutedSampleBindings are the routed bindings of config/samples (won deals
// to "Customers", lost ones to "Win-back") for the sample tenant: in its
// namespace, on its integration and Unisender key.
func RoutedSampleBindings() ([]*v1alpha1.UnisenderBinding, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(samples.RoutedBindings), 4096)
	var out []*v1alpha1.UnisenderBinding
	for {
		var b v1alpha1.UnisenderBinding
		err := dec.Decode(&b)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("config/samples routed bindings: %w", err)
		}
		if b.Kind != "UnisenderBinding" {
			continue
		}
		b.Namespace = SampleNamespace
		b.Name = strings.Replace(b.Name, "example", SampleIntegration, 1)
		b.Spec.IntegrationRef.Name = SampleIntegration
		b.Spec.APIKeySecretRef = v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"}
		out = append(out, &b)
	}
}

// refreshBefore makes short sandbox token lifetimes refresh a third of the
// way before expiry, so refreshes happen while you watch.
func (e *Env) refreshBefore() *metav1.Duration {
	if ttl := e.opts.SandboxAccessTokenTTL; ttl > 0 && ttl < 3*time.Hour {
		return &metav1.Duration{Duration: (ttl / 3).Round(time.Second)}
	}
	return nil
}

// sandboxAuthCode asks the Kommo emulator for an authorization code, as an
// admin installing the integration would get one.
func (e *Env) sandboxAuthCode(ctx context.Context, subdomain string) (string, error) {
	body, _ := json.Marshal(map[string]string{"client_id": SandboxClientID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		e.KommoURL+"/_admin/accounts/"+subdomain+"/codes", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Code == "" {
		return "", fmt.Errorf("sandbox gave no authorization code (HTTP %d): %w", resp.StatusCode, err)
	}
	return out.Code, nil
}

// SampleBindingStatus reads the sample binding's status.
func (e *Env) SampleBindingStatus(ctx context.Context) (v1alpha1.UnisenderBindingStatus, error) {
	var b v1alpha1.UnisenderBinding
	err := e.Client.Get(ctx, client.ObjectKey{Namespace: SampleNamespace, Name: SampleBinding}, &b)
	return b.Status, err
}
