package kuberesolver_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/worker/kuberesolver"
)

// countingReader counts the Gets that reach the API server.
type countingReader struct {
	client.Reader
	gets atomic.Int32
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

// The worker reads the operator's Secrets by name, once per TTL (the Kommo
// client asks for the token before every request), and keeps of them only
// what it uses: no refresh token (only the manager refreshes), no webhook
// URL secret, no authorization code. A tenant resolves through it.
func TestManagedSecretReaderKeepsOnlyWhatWorkersRead(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	e.binding("main", "user-key-1", nil)
	var tokenSecret corev1.Secret
	key := client.ObjectKey{Namespace: e.ns, Name: tokens.SecretName(defaultIntegration)}
	must(t, e.c.Get(ctx, key, &tokenSecret))
	tokenSecret.Data[tokens.KeyRefreshToken] = []byte("refresh-only-for-the-manager")
	tokenSecret.Data["secret"] = []byte("webhook-url-secret")
	tokenSecret.Data[tokens.OAuthCodeKey] = []byte("pending-code")
	must(t, e.c.Update(ctx, &tokenSecret))

	api := &countingReader{Reader: e.c}
	r := kuberesolver.NewManagedSecretReader(api)
	r.TTL = time.Hour
	var s corev1.Secret
	must(t, r.Get(ctx, key, &s))
	if len(s.Data) != 2 || len(s.Data[tokens.KeyAccessToken]) == 0 || len(s.Data[tokens.KeyExpiresAt]) == 0 {
		t.Errorf("the worker keeps keys %v of the token Secret, want only %s and %s", keys(s.Data), tokens.KeyAccessToken, tokens.KeyExpiresAt)
	}
	s.Data[tokens.KeyAccessToken] = []byte("changed by the caller")
	var again corev1.Secret
	must(t, r.Get(ctx, key, &again))
	if string(again.Data[tokens.KeyAccessToken]) != string(tokenSecret.Data[tokens.KeyAccessToken]) {
		t.Error("a caller's change to a returned Secret leaked into the reader's memory")
	}
	if n := api.gets.Load(); n != 1 {
		t.Errorf("%d API reads for two Gets within the TTL, want 1", n)
	}
	r.TTL = 0
	must(t, r.Get(ctx, key, &again))
	if n := api.gets.Load(); n != 2 {
		t.Errorf("%d API reads after the TTL passed, want 2", n)
	}

	res := kuberesolver.New(kuberesolver.Options{Bindings: e.c, ManagedSecrets: r, Secrets: e.c,
		NewKommoClient: e.newKommoClient, KommoHosts: kommoemu.HostPolicy(), UnisenderBaseURL: "http://127.0.0.1:1"})
	if _, err := res.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: "main"}); err != nil {
		t.Fatalf("resolving through the reader: %v", err)
	}
	if tok, err := tokens.NewSource(r, e.ns, defaultIntegration).Token(ctx); err != nil || tok == "" {
		t.Fatalf("access token through the reader: %q, %v", tok, err)
	}
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
