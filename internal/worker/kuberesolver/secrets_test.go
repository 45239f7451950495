package kuberesolver_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/worker/kuberesolver"
)

// The worker's cache lists only the operator's Secrets of the watched
// namespaces, and keeps of them only what a worker reads: no refresh token
// (only the manager refreshes), no webhook URL secret, no authorization
// code. A tenant still resolves from it.
func TestWorkerCacheHoldsOnlyWhatWorkersRead(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	e.binding("main", "user-key-1", nil)
	managed := map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue}
	var tokenSecret corev1.Secret
	must(t, e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: tokens.SecretName(defaultIntegration)}, &tokenSecret))
	tokenSecret.Data[tokens.KeyRefreshToken] = []byte("refresh-only-for-the-manager")
	must(t, e.c.Update(ctx, &tokenSecret))
	must(t, e.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "main-webhook", Labels: managed},
		Data: map[string][]byte{"secret": []byte("webhook-url-secret"), tokens.OAuthCodeKey: []byte("pending-code")}}))
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "unwatched-"}}
	must(t, e.c.Create(ctx, other))
	must(t, e.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: other.Name, Name: "elsewhere", Labels: managed},
		Data: map[string][]byte{tokens.KeyAccessToken: []byte("another-namespace")}}))

	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, syncv1.AddToScheme(scheme))
	c, err := cache.New(kube.Config, kuberesolver.CacheOptions(scheme, []string{e.ns}))
	must(t, err)
	cacheCtx, stop := context.WithCancel(ctx)
	defer stop()
	_, err = c.GetInformer(ctx, &corev1.Secret{})
	must(t, err)
	go func() { _ = c.Start(cacheCtx) }()
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		t.Fatal("the cache did not sync")
	}

	var list corev1.SecretList
	must(t, c.List(ctx, &list))
	held := map[string]map[string][]byte{}
	for _, s := range list.Items {
		held[s.Namespace+"/"+s.Name] = s.Data
	}
	tokensHeld := held[e.ns+"/"+tokens.SecretName(defaultIntegration)]
	if len(tokensHeld[tokens.KeyAccessToken]) == 0 || len(tokensHeld[tokens.KeyExpiresAt]) == 0 {
		t.Errorf("token Secret in the cache lacks the access token or its expiry: keys %v", keys(tokensHeld))
	}
	if _, ok := tokensHeld[tokens.KeyRefreshToken]; ok {
		t.Error("the worker's cache holds the refresh token")
	}
	if webhook, ok := held[e.ns+"/main-webhook"]; !ok || len(webhook) != 0 {
		t.Errorf("webhook Secret in the cache: present %v, keys %v; want present with no data", ok, keys(webhook))
	}
	for name := range held {
		if name != e.ns+"/"+tokens.SecretName(defaultIntegration) && name != e.ns+"/main-webhook" {
			t.Errorf("the cache holds %s, which is not the operator's or not in a watched namespace", name)
		}
	}
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "main-unisender"}, &s); !apierrors.IsNotFound(err) {
		t.Errorf("reading the user's API-key Secret from the cache: %v, want NotFound (it is never listed)", err)
	}

	r := kuberesolver.New(kuberesolver.Options{Bindings: c, ManagedSecrets: c, Secrets: e.c,
		NewKommoClient: e.newKommoClient, UnisenderBaseURL: "http://127.0.0.1:1"})
	if _, err := r.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: "main"}); err != nil {
		t.Fatalf("resolving from the reduced cache: %v", err)
	}
	if tok, err := tokens.NewSource(c, e.ns, defaultIntegration).Token(ctx); err != nil || tok == "" {
		t.Fatalf("access token from the reduced cache: %q, %v", tok, err)
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
