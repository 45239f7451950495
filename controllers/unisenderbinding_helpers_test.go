package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

const (
	bindingTestKey      = "UNISENDER-KEY-5b9d0e7c1a2f4e3d"
	bindingPublicURL    = "https://hooks.example.com"
	ubIntegrationName   = "acme"
	bindingKeySecret    = "unisender-key"
	bindingKeySecretKey = "apiKey"
)

// testClock is the reconciler's time: real time plus an offset the test
// can move forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// bindingEnv is one namespace with a Ready KommoIntegration against the
// Kommo emulator (its token Secret written as the KommoIntegration
// reconciler would), a Unisender emulator with a valid key, and a fresh
// MariaDB database.
type bindingEnv struct {
	t      *testing.T
	c      client.Client
	ns     string
	kommo  *kommoemu.Server
	ksrv   *httptest.Server
	uni    *unisenderemu.Server
	usrv   *httptest.Server
	dsn    string
	store  *store.Store
	clock  *testClock
	kclock *testClock // the Kommo emulator's business time
}

func newBindingEnv(t *testing.T, kommoOpts kommoemu.Options) *bindingEnv {
	t.Helper()
	e := &bindingEnv{t: t, c: directClient(t), clock: &testClock{}, kclock: &testClock{}}
	e.ns = newNamespace(t, e.c, "ub")
	if kommoOpts.Clock == nil {
		kommoOpts.Clock = e.kclock.Now
	}
	e.kommo, e.ksrv = sandboxtest.Kommo(t, kommoOpts)
	if _, err := e.kommo.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	e.uni, e.usrv = sandboxtest.Unisender(t, unisenderemu.Options{})
	e.uni.AddAPIKey(bindingTestKey)

	e.dsn = testenv.MySQLDSN(t)
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.store = st
	createSecret(t, e.c, e.ns, bindingKeySecret, map[string]string{bindingKeySecretKey: bindingTestKey})
	return e
}

func (e *bindingEnv) kommoBase() string { return e.ksrv.URL + "/_acct/acme" }

// readyIntegration creates the KommoIntegration and what its reconciler
// would have produced: the token Secret with a long-lived token, and
// Ready=True.
func (e *bindingEnv) readyIntegration(ready bool) *v1alpha1.KommoIntegration {
	e.t.Helper()
	ctx := context.Background()
	token, err := e.kommo.IssueLongLivedToken("acme", 365*24*time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	createSecret(e.t, e.c, e.ns, "kommo-long-lived", map[string]string{"token": token})
	ki := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: ubIntegrationName},
		Spec: v1alpha1.KommoIntegrationSpec{
			BaseURL:           e.kommoBase(),
			ClientID:          testClientID,
			ClientSecretRef:   &v1alpha1.SecretKeySelector{Name: "kommo-client", Key: "secret"},
			RedirectURI:       testRedirectURI,
			LongLivedTokenRef: &v1alpha1.SecretKeySelector{Name: "kommo-long-lived", Key: "token"},
		},
	}
	if err := e.c.Create(ctx, ki); err != nil {
		e.t.Fatal(err)
	}
	ts := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: tokens.SecretName(ubIntegrationName),
			Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue}},
		StringData: map[string]string{tokens.KeyAccessToken: token, tokens.KeyExpiresAt: time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)},
	}
	if err := e.c.Create(ctx, ts); err != nil {
		e.t.Fatal(err)
	}
	if ready {
		e.setIntegrationReady(true, "token stored")
	}
	return ki
}

// setIntegrationReady writes the integration's Ready condition, as its
// reconciler would after a refresh.
func (e *bindingEnv) setIntegrationReady(ready bool, msg string) {
	e.t.Helper()
	ki := &v1alpha1.KommoIntegration{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: ubIntegrationName}, ki); err != nil {
		e.t.Fatal(err)
	}
	if ready {
		status.MarkTrue(ki, v1alpha1.ConditionReady, v1alpha1.ReasonSucceeded, "%s", msg)
	} else {
		status.MarkFalse(ki, v1alpha1.ConditionReady, v1alpha1.ReasonRefreshFailed, "%s", msg)
	}
	ki.Status.ObservedGeneration = ki.Generation
	if err := e.c.Status().Update(context.Background(), ki); err != nil {
		e.t.Fatal(err)
	}
}

// binding returns a UnisenderBinding for the env's integration and key.
func (e *bindingEnv) binding(name string, mutate func(*v1alpha1.UnisenderBindingSpec)) *v1alpha1.UnisenderBinding {
	b := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: ubIntegrationName},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: bindingKeySecret, Key: bindingKeySecretKey},
			List:            v1alpha1.ListSelector{Title: "Kommo " + name},
		},
	}
	if mutate != nil {
		mutate(&b.Spec)
	}
	return b
}

func (e *bindingEnv) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(context.Background(), obj); err != nil {
		e.t.Fatal(err)
	}
}

// bindingManager is a real manager running the UnisenderBinding
// reconciler (and, if asked, the KommoIntegration reconciler) with the
// production cache scoping.
type bindingManager struct {
	t      testing.TB
	rec    *UnisenderBindingReconciler
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

type bindingManagerOptions struct {
	withIntegrationReconciler bool
	tune                      func(*UnisenderBindingReconciler)
}

func (e *bindingEnv) startManager(o bindingManagerOptions) *bindingManager {
	t := e.t
	t.Helper()
	logs := &syncBuffer{}
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:  scheme(t),
		Logger:  zap.New(zap.WriteTo(logs), zap.UseDevMode(false), zap.Level(zapcore.DebugLevel)),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{e.ns: {}},
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{tokens.ManagedLabel: tokens.ManagedLabelValue})},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), e.dsn) // each manager has its own pool, like a process
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &UnisenderBindingReconciler{
		KommoHosts:       kommoemu.HostPolicy(),
		Store:            st,
		PublicBaseURL:    bindingPublicURL,
		UnisenderBaseURL: e.usrv.URL,
		Clock:            e.clock.Now,
		ProgressInterval: 200 * time.Millisecond,
	}
	rec.Controller.SkipNameValidation = ptr.To(true)
	if o.tune != nil {
		o.tune(rec)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := rec.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	if o.withIntegrationReconciler {
		ki := &KommoIntegrationReconciler{SecretMetadata: rec.SecretMetadata, KommoHosts: kommoemu.HostPolicy()}
		ki.Controller.SkipNameValidation = ptr.To(true)
		if err := ki.SetupWithManager(ctx, mgr); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	m := &bindingManager{t: t, rec: rec, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	t.Cleanup(m.stop)
	return m
}

// stop ends the manager, as a killed process would from Kubernetes' and
// MySQL's point of view, and waits for it.
func (m *bindingManager) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	if err := <-m.done; err != nil {
		m.t.Errorf("manager: %v", err)
	}
	m.cancel = nil
}

func (e *bindingEnv) get(name string) *v1alpha1.UnisenderBinding {
	e.t.Helper()
	obj := &v1alpha1.UnisenderBinding{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: name}, obj); err != nil {
		e.t.Fatal(err)
	}
	return obj
}

// waitBinding waits until the binding's condition has the status and
// reason ("" matches any) for its current generation.
func (e *bindingEnv) waitBinding(name, condType string, want metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.UnisenderBinding {
	e.t.Helper()
	var obj *v1alpha1.UnisenderBinding
	eventually(e.t, timeout, func() (bool, string) {
		obj = e.get(name)
		cond := status.Get(obj, condType)
		if cond == nil {
			return false, fmt.Sprintf("no %s condition; conditions %s", condType, conditionsOf(obj))
		}
		ok := cond.Status == want && (reason == "" || cond.Reason == reason) && obj.Status.ObservedGeneration == obj.Generation
		return ok, fmt.Sprintf("%s=%s/%s; conditions %s", condType, cond.Status, cond.Reason, conditionsOf(obj))
	})
	return obj
}

func conditionsOf(obj interface{ GetConditions() []metav1.Condition }) string {
	var parts []string
	for _, c := range obj.GetConditions() {
		parts = append(parts, fmt.Sprintf("%s=%s/%s(%s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, " ")
}

func bindingKstatus(t testing.TB, obj *v1alpha1.UnisenderBinding) *kstatus.Result {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("UnisenderBinding"))
	res, err := kstatus.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// webhooks returns the emulator's webhooks of the account.
func (e *bindingEnv) webhooks() []kommoemu.Webhook {
	e.t.Helper()
	hooks, err := e.kommo.Webhooks("acme")
	if err != nil {
		e.t.Fatal(err)
	}
	return hooks
}

// webhookSecret reads the binding's webhook URL secret.
func (e *bindingEnv) webhookSecret(binding string) string {
	e.t.Helper()
	s := &corev1.Secret{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: contract.WebhookSecretName(binding)}, s); err != nil {
		e.t.Fatal(err)
	}
	return string(s.Data[contract.WebhookSecretKey])
}

func (e *bindingEnv) tenant(binding string) tenant.Key {
	return tenant.Key{Namespace: e.ns, Name: binding}
}

// addContacts creates n Kommo contacts with one address each, spread one
// per second of Kommo's clock in the past, as contacts collected over time.
func (e *bindingEnv) addContacts(n int) []kommo.Contact {
	e.t.Helper()
	e.kclock.Advance(-time.Duration(n+10) * time.Second)
	out := make([]kommo.Contact, 0, n)
	for i := range n {
		c, err := e.kommo.CreateContact("acme", kommo.Contact{
			FirstName: "Person", LastName: fmt.Sprint(i),
			Emails: []string{fmt.Sprintf("person%05d@example.com", i)},
		})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, c)
		e.kclock.Advance(time.Second)
	}
	e.kclock.Advance(10 * time.Second)
	return out
}

// listMembers returns the list's members by address.
func (e *bindingEnv) listMembers(listID int64) map[string]unisenderemu.Member {
	out := map[string]unisenderemu.Member{}
	for _, m := range e.uni.ListMembers(bindingTestKey, listID) {
		out[m.Email] = m
	}
	return out
}

func countActive(members map[string]unisenderemu.Member) int {
	n := 0
	for _, m := range members {
		if m.ListStatus == unisenderemu.ListActive {
			n++
		}
	}
	return n
}

// importCalls returns the successful importContacts calls the Unisender
// emulator served and the rows they carried.
func (e *bindingEnv) importCalls() (calls, rows int) {
	for _, r := range e.uni.Stats().Requests {
		if r.Method == "importContacts" && r.ErrorCode == "" && r.HTTPStatus == 200 {
			calls++
			rows += r.Rows
		}
	}
	return calls, rows
}

// assertNoBindingSecretLeak scans the bindings' statuses, the namespace's
// events and the managers' logs for the secret values.
func (e *bindingEnv) assertNoBindingSecretLeak(mgrs []*bindingManager, secrets ...string) {
	t := e.t
	t.Helper()
	var haystacks []string
	for _, ev := range listEvents(t, e.c, e.ns) {
		haystacks = append(haystacks, "event "+ev.Reason+": "+ev.Note)
	}
	var list v1alpha1.UnisenderBindingList
	if err := e.c.List(context.Background(), &list, client.InNamespace(e.ns)); err != nil {
		t.Fatal(err)
	}
	for _, b := range list.Items {
		raw, _ := json.Marshal(b.Status)
		haystacks = append(haystacks, "status of "+b.Name+": "+string(raw))
	}
	for i, m := range mgrs {
		haystacks = append(haystacks, fmt.Sprintf("logs of manager %d: %s", i, m.logs.String()))
	}
	for _, s := range secrets {
		if len(s) < 16 {
			t.Fatalf("secret %q too short to scan for", s)
		}
		for _, h := range haystacks {
			if strings.Contains(h, s) {
				t.Errorf("a secret appears in %.100s…", h)
			}
		}
	}
}

// requestBindingReconcile sets the reconcile-request annotation on a
// binding and returns its value.
func requestBindingReconcile(t testing.TB, c client.Client, ns, name string) string {
	t.Helper()
	v := time.Now().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.ReconcileRequestAnnotation, v)
	obj := &v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
	return v
}

// importMetric sums the series of a metric family on controller-runtime's
// registry that belong to the binding; -1 when there are none.
func importMetric(t testing.TB, family, ns, name string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != ns || labels["name"] != name {
				continue
			}
			found = true
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if !found {
		return -1
	}
	return sum
}
