package kuberesolver_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
	"github.com/kommo-unisender/kommo-unisender/internal/worker/kuberesolver"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{filepath.Join("..", "..", "..", "config", "crd", "bases")}, &kube))
}

// env is an API server client, the Unisender emulator and a resolver
// reading both bindings and Secrets straight from the API server.
type env struct {
	t        *testing.T
	c        client.Client
	emu      *unisenderemu.Server
	resolver *kuberesolver.Resolver
	ns       string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := syncv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(kube.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "resolver-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	emu := unisenderemu.New(unisenderemu.Options{})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &env{t: t, c: c, emu: emu, ns: ns.Name, resolver: kuberesolver.New(kuberesolver.Options{
		Bindings: c, Secrets: c, UnisenderBaseURL: srv.URL,
		ClientOptions: []unisender.Option{unisender.WithMaxRetries(0)},
	})}
}

// binding creates a ready binding (list id in status, generation observed)
// with its API key Secret.
func (e *env) binding(name, apiKey string, mutate func(*syncv1.UnisenderBinding)) *syncv1.UnisenderBinding {
	e.t.Helper()
	ctx := context.Background()
	e.secret(name+"-unisender", "key", apiKey)
	b := &syncv1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: syncv1.UnisenderBindingSpec{
			IntegrationRef:  syncv1.IntegrationReference{Name: "kommo"},
			APIKeySecretRef: syncv1.SecretKeySelector{Name: name + "-unisender", Key: "key"},
			List:            syncv1.ListSelector{ID: 77},
		},
	}
	if mutate != nil {
		mutate(b)
	}
	if err := e.c.Create(ctx, b); err != nil {
		e.t.Fatal(err)
	}
	b.Status.ListID = 77
	b.Status.ObservedGeneration = b.Generation
	if err := e.c.Status().Update(ctx, b); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) secret(name, key, value string) {
	e.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Data: map[string][]byte{key: []byte(value)}}
	if err := e.c.Create(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
}

// usesKey reports whether the tenant's client authenticates with apiKey:
// the emulator accepts only the keys it knows.
func (e *env) usesKey(key tenant.Key, apiKey string) bool {
	e.t.Helper()
	e.emu.AddAPIKey(apiKey)
	defer e.emu.RemoveAPIKey(apiKey)
	tn, err := e.resolver.Resolve(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = tn.Unisender.ImportContacts(context.Background(), unisender.ImportRequest{
		FieldNames: []string{"email"}, Rows: [][]string{{"probe@example.com"}}})
	return err == nil
}

func TestResolvesAReadyBinding(t *testing.T) {
	e := newEnv(t)
	e.binding("main", "user-key-1", func(b *syncv1.UnisenderBinding) {
		b.Spec.DeletionPolicy = syncv1.DeletionPolicyDelete
		b.Spec.DoubleOptin = syncv1.DoubleOptinInvite
	})
	key := tenant.Key{Namespace: e.ns, Name: "main"}
	tn, err := e.resolver.Resolve(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Key != key.String() || tn.DeletionPolicy != syncv1.DeletionPolicyDelete || tn.Mapper == nil ||
		tn.DoubleOptin != syncv1.DoubleOptinInvite {
		t.Fatalf("tenant = %+v", tn)
	}
	if tn.Inviter == nil || tn.Inviter != tn.Unisender.(syncer.Inviter) {
		t.Fatal("the invitations do not go through the key's client (its subscribe budget would not be shared)")
	}
	if !e.usesKey(key, "user-key-1") {
		t.Fatal("the client does not use the key of spec.apiKeySecretRef")
	}
	again, _ := e.resolver.Resolve(context.Background(), key)
	if again.Unisender != tn.Unisender {
		t.Fatal("a second resolve made a second client for the same key (its rate limiter would not be shared)")
	}
}

func TestWidgetKeyWinsOnlyWhenAllowed(t *testing.T) {
	e := newEnv(t)
	e.binding("allowed", "user-key", func(b *syncv1.UnisenderBinding) { b.Spec.AllowWidgetKey = true })
	e.secret("allowed-widget-key", "apiKey", "widget-key")
	e.binding("refused", "user-key-2", nil)
	e.secret("refused-widget-key", "apiKey", "widget-key-2")
	if !e.usesKey(tenant.Key{Namespace: e.ns, Name: "allowed"}, "widget-key") {
		t.Error("allowWidgetKey: the widget-delivered key must be used")
	}
	if !e.usesKey(tenant.Key{Namespace: e.ns, Name: "refused"}, "user-key-2") {
		t.Error("without allowWidgetKey the widget Secret must be ignored")
	}
}

func TestTenantsThatCannotSyncYet(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.binding("suspended", "k1", func(b *syncv1.UnisenderBinding) { b.Spec.Suspend = true })

	nolist := e.binding("nolist", "k2", nil)
	nolist.Status.ListID = 0
	if err := e.c.Status().Update(ctx, nolist); err != nil {
		t.Fatal(err)
	}
	changed := e.binding("changed", "k3", nil)
	changed.Spec.List = syncv1.ListSelector{Title: "Another list"}
	if err := e.c.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	e.binding("nokey", "k4", func(b *syncv1.UnisenderBinding) {
		b.Spec.APIKeySecretRef = syncv1.SecretKeySelector{Name: "missing", Key: "key"}
	})
	deleting := e.binding("deleting", "k5", func(b *syncv1.UnisenderBinding) { b.Finalizers = []string{"test/hold"} })
	if err := e.c.Delete(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleting.Finalizers = nil
		_ = e.c.Update(context.Background(), deleting)
	})

	for name, want := range map[string]error{
		"suspended": worker.ErrTenantNotReady, "nolist": worker.ErrTenantNotReady, "changed": worker.ErrTenantNotReady,
		"nokey": worker.ErrTenantNotReady, "deleting": worker.ErrTenantGone, "absent": worker.ErrTenantGone,
	} {
		_, err := e.resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: name})
		if !errors.Is(err, want) {
			t.Errorf("%s: Resolve = %v, want %v", name, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "k4") {
			t.Errorf("%s: the error shows a key: %v", name, err)
		}
	}
}

// A memoised key is read again after Forget (the worker calls it when
// Unisender refused the key), so a fixed key takes effect at once.
func TestForgetRereadsTheKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.binding("rotated", "old-key", nil)
	key := tenant.Key{Namespace: e.ns, Name: "rotated"}
	if !e.usesKey(key, "old-key") {
		t.Fatal("the first key is not used")
	}
	var s corev1.Secret
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "rotated-unisender"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["key"] = []byte("new-key")
	if err := e.c.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	if !e.usesKey(key, "old-key") {
		t.Fatal("within the TTL the memoised key should still be used")
	}
	e.resolver.Forget(key)
	if !e.usesKey(key, "new-key") {
		t.Fatal("after Forget the new key must be read")
	}
}
