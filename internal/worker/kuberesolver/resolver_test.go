package kuberesolver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
	"github.com/kommo-unisender/kommo-unisender/internal/worker/kuberesolver"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{filepath.Join("..", "..", "..", "config", "crd", "bases")}, &kube))
}

// env is an API server client, the Unisender and Kommo emulators and a
// resolver reading bindings, integrations and Secrets straight from the API
// server. The resolver's Kommo clients are real clients of the Kommo
// emulator, made by newKommoClient, which records each call.
type env struct {
	t        *testing.T
	c        client.Client
	emu      *unisenderemu.Server
	kommo    *kommoemu.Server
	kommoURL string
	resolver *kuberesolver.Resolver
	ns       string

	mu   sync.Mutex
	made []kommoClientCall
}

// kommoClientCall is one call of Options.NewKommoClient.
type kommoClientCall struct {
	integration tenant.Key
	baseURL     string
	rps         int
	client      *kommo.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
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
	emu, srv := sandboxtest.Unisender(t, unisenderemu.Options{})
	kemu, ksrv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1})
	e := &env{t: t, c: c, emu: emu, kommo: kemu, kommoURL: ksrv.URL, ns: ns.Name}
	e.resolver = kuberesolver.New(kuberesolver.Options{
		Bindings: c, Secrets: c, UnisenderBaseURL: srv.URL,
		ClientOptions:  []unisender.Option{unisender.WithMaxRetries(0)},
		NewKommoClient: e.newKommoClient, KommoHosts: kommoemu.HostPolicy(),
	})
	return e
}

func (e *env) newKommoClient(integration tenant.Key, baseURL string, rps int, ts kommo.TokenSource) *kommo.Client {
	c := kommo.NewClient(baseURL, kommo.WithTokenSource(ts), kommo.WithRateLimit(float64(rps), 1), kommo.WithMaxRetries(0))
	e.mu.Lock()
	defer e.mu.Unlock()
	e.made = append(e.made, kommoClientCall{integration: integration, baseURL: baseURL, rps: rps, client: c})
	return c
}

func (e *env) kommoClients() []kommoClientCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.made)
}

// integration creates a KommoIntegration of a Kommo emulator account named
// like it, with its token Secret as the KommoIntegration reconciler writes
// it, and the Authorized condition set to authorized (none when
// authorized is "").
func (e *env) integration(name string, authorized metav1.ConditionStatus, mutate func(*v1alpha1.KommoIntegration)) *v1alpha1.KommoIntegration {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.kommo.AddAccount(name); err != nil {
		e.t.Fatal(err)
	}
	token, err := e.kommo.IssueLongLivedToken(name, 24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	e.secret(name+"-long-lived", "token", token)
	tokenSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: tokens.SecretName(name),
			Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue}},
		Data: map[string][]byte{tokens.KeyAccessToken: []byte(token),
			tokens.KeyExpiresAt: []byte(time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339))},
	}
	if err := e.c.Create(ctx, tokenSecret); err != nil {
		e.t.Fatal(err)
	}
	ki := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.KommoIntegrationSpec{
			BaseURL:           e.kommoURL + "/_acct/" + name,
			ClientID:          "client-" + name,
			LongLivedTokenRef: &v1alpha1.SecretKeySelector{Name: name + "-long-lived", Key: "token"},
		},
	}
	if mutate != nil {
		mutate(ki)
	}
	if err := e.c.Create(ctx, ki); err != nil {
		e.t.Fatal(err)
	}
	if authorized != "" {
		e.setAuthorized(name, authorized)
	}
	return ki
}

// setAuthorized writes the integration's Authorized condition, as its
// reconciler would.
func (e *env) setAuthorized(name string, s metav1.ConditionStatus) {
	e.t.Helper()
	ctx := context.Background()
	var ki v1alpha1.KommoIntegration
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &ki); err != nil {
		e.t.Fatal(err)
	}
	reason := v1alpha1.ReasonSucceeded
	if s != metav1.ConditionTrue {
		reason = "RefreshFailed"
	}
	meta.SetStatusCondition(&ki.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionAuthorized, Status: s,
		Reason: reason, Message: "set by the test", ObservedGeneration: ki.Generation})
	ki.Status.ObservedGeneration = ki.Generation
	if err := e.c.Status().Update(ctx, &ki); err != nil {
		e.t.Fatal(err)
	}
}

// defaultIntegration is the KommoIntegration bindings refer to unless the
// test says otherwise.
const defaultIntegration = "kommo"

// binding creates a ready binding (list id in status, generation observed)
// with its API key Secret.
func (e *env) binding(name, apiKey string, mutate func(*v1alpha1.UnisenderBinding)) *v1alpha1.UnisenderBinding {
	e.t.Helper()
	ctx := context.Background()
	e.secret(name+"-unisender", "key", apiKey)
	b := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: defaultIntegration},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: name + "-unisender", Key: "key"},
			List:            v1alpha1.ListSelector{ID: 77},
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
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	e.binding("main", "user-key-1", func(b *v1alpha1.UnisenderBinding) {
		b.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
		b.Spec.DoubleOptin = v1alpha1.DoubleOptinInvite
	})
	key := tenant.Key{Namespace: e.ns, Name: "main"}
	tn, err := e.resolver.Resolve(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Key != key.String() || tn.DeletionPolicy != v1alpha1.DeletionPolicyDelete || tn.Mapper == nil ||
		tn.DoubleOptin != v1alpha1.DoubleOptinInvite {
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
	if tn.Kommo == nil || again.Kommo != tn.Kommo {
		t.Fatalf("Kommo readers %v and %v; want one, the same for every resolve", tn.Kommo, again.Kommo)
	}
}

// The tenant's Kommo reader is a client of the binding's KommoIntegration:
// its account's URL and rate, and the access token the manager keeps in the
// integration's token Secret. One client per integration, shared by every
// binding on it (and its budget with them); another integration gets its
// own.
func TestKommoReaderIsOneClientPerIntegration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.integration(defaultIntegration, metav1.ConditionTrue, func(ki *v1alpha1.KommoIntegration) {
		ki.Spec.RateLimit.RequestsPerSecond = 5
	})
	e.integration("other", metav1.ConditionTrue, nil)
	e.binding("first", "k1", nil)
	e.binding("second", "k2", nil)
	e.binding("elsewhere", "k3", func(b *v1alpha1.UnisenderBinding) { b.Spec.IntegrationRef.Name = "other" })

	readers := map[string]syncer.ContactReader{}
	for _, name := range []string{"first", "second", "elsewhere", "first"} {
		tn, err := e.resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tn.Kommo == nil {
			t.Fatalf("%s: no Kommo reader", name)
		}
		if prev, ok := readers[name]; ok && prev != tn.Kommo {
			t.Fatalf("%s: a second resolve made another Kommo client", name)
		}
		readers[name] = tn.Kommo
	}
	if readers["first"] != readers["second"] {
		t.Fatal("two bindings of one integration got different Kommo clients: the account's budget would not be shared")
	}
	if readers["first"] == readers["elsewhere"] {
		t.Fatal("bindings of different integrations share a Kommo client")
	}
	made := e.kommoClients()
	if len(made) != 2 {
		t.Fatalf("NewKommoClient called %d times, want once per integration (2): %+v", len(made), made)
	}
	byName := map[string]kommoClientCall{}
	for _, m := range made {
		byName[m.integration.Name] = m
		if m.integration.Namespace != e.ns {
			t.Fatalf("client made for %v, want namespace %s", m.integration, e.ns)
		}
	}
	if m := byName[defaultIntegration]; m.baseURL != e.kommoURL+"/_acct/"+defaultIntegration || m.rps != 5 ||
		readers["first"] != syncer.ContactReader(m.client) {
		t.Fatalf("client of %s: %+v; want its baseURL, 5 requests per second, and the client the tenant reads through", defaultIntegration, m)
	}
	if m := byName["other"]; m.rps != v1alpha1.DefaultRequestsPerSecond || m.baseURL != e.kommoURL+"/_acct/other" {
		t.Fatalf("client of other: %+v; want the default rate", m)
	}

	// The readers read each account with the token from its Secret.
	for name, account := range map[string]string{"first": defaultIntegration, "elsewhere": "other"} {
		c, err := e.kommo.CreateContact(account, kommo.Contact{FirstName: "Only", LastName: "In " + account, Emails: []string{account + "@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := readers[name].GetContact(ctx, c.ID)
		if err != nil || got.ID != c.ID || !slices.Equal(got.Emails, c.Emails) {
			t.Fatalf("%s: reading contact %d of %s = %+v, %v", name, c.ID, account, got, err)
		}
	}

	// A changed rate makes a new client for the integration.
	var ki v1alpha1.KommoIntegration
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: defaultIntegration}, &ki); err != nil {
		t.Fatal(err)
	}
	ki.Spec.RateLimit.RequestsPerSecond = 3
	if err := e.c.Update(ctx, &ki); err != nil {
		t.Fatal(err)
	}
	tn, err := e.resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	made = e.kommoClients()
	if len(made) != 3 || made[2].rps != 3 || tn.Kommo != syncer.ContactReader(made[2].client) {
		t.Fatalf("after the rate changed: %d clients made (last %+v); want a new one at 3 requests per second", len(made), made[len(made)-1])
	}
}

func TestWidgetKeyWinsOnlyWhenAllowed(t *testing.T) {
	e := newEnv(t)
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	e.binding("allowed", "user-key", func(b *v1alpha1.UnisenderBinding) { b.Spec.AllowWidgetKey = true })
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
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	e.binding("suspended", "k1", func(b *v1alpha1.UnisenderBinding) { b.Spec.Suspend = true })

	nolist := e.binding("nolist", "k2", nil)
	nolist.Status.ListID = 0
	if err := e.c.Status().Update(ctx, nolist); err != nil {
		t.Fatal(err)
	}
	changed := e.binding("changed", "k3", nil)
	changed.Spec.List = v1alpha1.ListSelector{Title: "Another list"}
	if err := e.c.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	e.binding("nokey", "k4", func(b *v1alpha1.UnisenderBinding) {
		b.Spec.APIKeySecretRef = v1alpha1.SecretKeySelector{Name: "missing", Key: "key"}
	})
	deleting := e.binding("deleting", "k5", func(b *v1alpha1.UnisenderBinding) { b.Finalizers = []string{"test/hold"} })
	if err := e.c.Delete(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleting.Finalizers = nil
		_ = e.c.Update(context.Background(), deleting)
	})

	for name, want := range map[string]error{
		"suspended": worker.ErrTenantSuspended, "nolist": worker.ErrTenantNotReady, "changed": worker.ErrTenantNotReady,
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

// A binding whose KommoIntegration is missing, suspended, not authorized
// (a revoked token, a blocked account) or on a base URL outside the
// resolver's KommoHosts (the token would go there) cannot read Kommo: its
// tenant is not ready, so its jobs wait without spending their attempts,
// and no Kommo client is made. Once the integration is authorized again, it resolves.
func TestTenantsWhoseIntegrationCannotReadKommo(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.integration("unauthorized", metav1.ConditionFalse, nil)
	e.integration("unknown", metav1.ConditionUnknown, nil)
	e.integration("fresh", "", nil) // no Authorized condition yet
	e.integration("suspended", metav1.ConditionTrue, func(ki *v1alpha1.KommoIntegration) { ki.Spec.Suspend = true })
	e.integration("offsite", metav1.ConditionTrue, func(ki *v1alpha1.KommoIntegration) {
		ki.Spec.BaseURL = "http://kube-apiserver.default.svc/_acct/offsite"
	})
	cases := []string{"unauthorized", "unknown", "fresh", "suspended", "offsite", "missing"}
	for _, name := range cases {
		e.binding("on-"+name, "key-"+name, func(b *v1alpha1.UnisenderBinding) { b.Spec.IntegrationRef.Name = name })
	}
	for _, name := range cases {
		tn, err := e.resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: "on-" + name})
		if !errors.Is(err, worker.ErrTenantNotReady) {
			t.Errorf("integration %s: Resolve = %+v, %v; want ErrTenantNotReady", name, tn, err)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("integration %s: the error does not name the integration: %v", name, err)
		}
	}
	if made := e.kommoClients(); len(made) != 0 {
		t.Fatalf("%d Kommo clients made for integrations that cannot be used", len(made))
	}

	e.setAuthorized("unauthorized", metav1.ConditionTrue)
	tn, err := e.resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: "on-unauthorized"})
	if err != nil || tn.Kommo == nil {
		t.Fatalf("after the integration was authorized again: %+v, %v; want it resolved with a Kommo reader", tn, err)
	}
}

// A memoised key is read again after Forget (the worker calls it when
// Unisender refused the key), so a fixed key takes effect at once.
func TestForgetRereadsTheKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
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

// A binding the worker's cache has not seen yet (its watch event is still
// on the way when the first webhook's job arrives) is not gone: the
// resolver asks the API server before dropping its events, and parks them
// as not ready. Only a binding the API server has not either is gone.
func TestBindingNotYetCachedIsNotReadyNotGone(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// A real cache that will never see the binding: it selects bindings by
	// a label this one lacks, a lag that does not end.
	lagging, err := cache.New(kube.Config, cache.Options{Scheme: e.c.Scheme(),
		DefaultNamespaces: map[string]cache.Config{e.ns: {}},
		ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.UnisenderBinding{}: {Label: labels.SelectorFromSet(labels.Set{"test.kommo-unisender.io/cached": "yes"})},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lagging.GetInformer(ctx, &v1alpha1.UnisenderBinding{}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = lagging.Start(ctx) }()
	if !lagging.WaitForCacheSync(ctx) {
		t.Fatal("the cache did not sync")
	}
	resolver := kuberesolver.New(kuberesolver.Options{Bindings: lagging, Secrets: e.c, Live: e.c, NewKommoClient: e.newKommoClient, KommoHosts: kommoemu.HostPolicy()})
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	e.binding("new", "k1", nil)

	key := tenant.Key{Namespace: e.ns, Name: "new"}
	if err := lagging.Get(ctx, key.NamespacedName(), &v1alpha1.UnisenderBinding{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the lagging cache answers %v for the new binding, want not found", err)
	}
	if _, err := resolver.Resolve(ctx, key); !errors.Is(err, worker.ErrTenantNotReady) {
		t.Fatalf("Resolve of a binding the cache has not seen = %v, want ErrTenantNotReady", err)
	}
	if _, err := resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: "absent"}); !errors.Is(err, worker.ErrTenantGone) {
		t.Fatalf("Resolve of a binding the API server has not either = %v, want ErrTenantGone", err)
	}
}

// A binding sharing its list (spec.list.shared, same list and key id in
// status as the manager records them) resolves with the other sharing
// bindings' tenants, whose contacts' addresses its removals keep. A binding
// that does not share, or one on another account's list of the same id,
// is no sharer.
func TestSharedListTenantsResolveWithTheirSharers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.integration(defaultIntegration, metav1.ConditionTrue, nil)
	onList := func(name, keyID string, shared bool) {
		b := e.binding(name, "k-"+name, func(b *v1alpha1.UnisenderBinding) { b.Spec.List.Shared = shared })
		b.Status.ListKeyID = keyID
		if err := e.c.Status().Update(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	onList("a", "key-x", true)
	onList("b", "key-x", true)
	onList("lone", "key-x", false)
	onList("elsewhere", "key-y", true)

	for name, want := range map[string][]string{
		"a": {e.ns + "/b"}, "b": {e.ns + "/a"}, "lone": nil, "elsewhere": nil,
	} {
		tn, err := e.resolver.Resolve(ctx, tenant.Key{Namespace: e.ns, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tn.ListSharers, want) {
			t.Errorf("%s: ListSharers = %v, want %v", name, tn.ListSharers, want)
		}
	}
}
