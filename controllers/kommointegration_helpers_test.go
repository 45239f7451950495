package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// Test fixtures of the Kommo integration registered in the emulator.
const (
	testClientID     = "5e1f0c2a-7d4b-4c55-9a1e-integration"
	testClientSecret = "CLIENT-SECRET-7f3a9c1e5b2d4f60a8e1"
	testRedirectURI  = "https://hooks.example.com/oauth/callback"
)

var (
	testSchemeOnce sync.Once
	testScheme     *runtime.Scheme
)

func scheme(t testing.TB) *runtime.Scheme {
	testSchemeOnce.Do(func() {
		s := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(s); err != nil {
			panic(err)
		}
		if err := v1alpha1.AddToScheme(s); err != nil {
			panic(err)
		}
		testScheme = s
	})
	return testScheme
}

// directClient talks to the API server without a cache: what the test
// sees is what is stored.
func directClient(t testing.TB) client.Client {
	t.Helper()
	c, err := client.New(kube.Config, client.Options{Scheme: scheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var nsSeq atomic.Int32

var operatorNS sync.Once

// operatorNamespace is the package's stand-in for the operator's
// namespace (the OAuth state key lives there).
func operatorNamespace(t testing.TB) string {
	t.Helper()
	const name = "ki-operator"
	operatorNS.Do(func() {
		err := directClient(t).Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if err != nil {
			t.Fatal(err)
		}
	})
	return name
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t testing.TB, c client.Client, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, nsSeq.Add(1))
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// kommoSandbox is the Kommo emulator served over HTTP with one account and
// the test integration registered.
type kommoSandbox struct {
	emu  *kommoemu.Server
	srv  *httptest.Server
	sub  string
	acct kommoemu.Account
}

func newKommoSandbox(t testing.TB, opts kommoemu.Options) *kommoSandbox {
	t.Helper()
	if opts.RateLimit == 0 {
		opts.RateLimit = -1 // the reconcilers pace themselves; the tests count calls
	}
	emu, srv := sandboxtest.Kommo(t, opts)
	acct, err := emu.AddAccount("acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterClient(testClientID, testClientSecret, testRedirectURI); err != nil {
		t.Fatal(err)
	}
	return &kommoSandbox{emu: emu, srv: srv, sub: "acme", acct: acct}
}

func (s *kommoSandbox) baseURL() string { return s.srv.URL + "/_acct/" + s.sub }

func (s *kommoSandbox) code(t testing.TB) string {
	t.Helper()
	code, err := s.emu.IssueAuthCode(s.sub, testClientID)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// accountWith calls the account API with a stored access token: proof the
// persisted pair works.
func (s *kommoSandbox) accountWith(ctx context.Context, access string) (*kommo.Account, error) {
	return kommo.NewClient(s.baseURL(), kommo.WithTokenSource(kommo.StaticToken(access)), kommo.WithRateLimit(0, 1)).Account(ctx)
}

// syncBuffer collects a manager's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testManager is a real controller-runtime manager running the reconciler
// in the test process, with the production cache scoping (Secrets only
// with the managed label), leader election off.
type testManager struct {
	rec      *KommoIntegrationReconciler
	logs     *syncBuffer
	registry *prometheus.Registry
	// stop stops the manager as a SIGTERM would (its context cancelled)
	// and waits for it; it may be called again, by the cleanup.
	stop func()
}

func startManager(t testing.TB, namespace string, tune func(*KommoIntegrationReconciler)) *testManager {
	t.Helper()
	return startManagerIn(t, []string{namespace}, tune)
}

// startManagerIn is startManager watching several namespaces.
func startManagerIn(t testing.TB, namespaces []string, tune func(*KommoIntegrationReconciler)) *testManager {
	t.Helper()
	logs := &syncBuffer{}
	watched := map[string]cache.Config{}
	for _, ns := range namespaces {
		watched[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:  scheme(t),
		Logger:  zap.New(zap.WriteTo(logs), zap.UseDevMode(false), zap.Level(zapcore.DebugLevel)),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{
			DefaultNamespaces: watched,
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{tokens.ManagedLabel: tokens.ManagedLabelValue})},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rec := &KommoIntegrationReconciler{
		KommoHosts:        kommoemu.HostPolicy(),
		OperatorNamespace: operatorNamespace(t),
		Metrics:           NewTokenMetrics(reg),
		KommoOptions:      []kommo.Option{kommo.WithMaxRetries(2), kommo.WithBackoff(20*time.Millisecond, 200*time.Millisecond)},
		BackoffInitial:    200 * time.Millisecond,
		BackoffMax:        2 * time.Second,
	}
	rec.Controller.SkipNameValidation = ptr.To(true)
	if tune != nil {
		tune(rec)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := rec.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	apps := &KommoAppReconciler{OperatorNamespace: rec.OperatorNamespace}
	apps.Controller.SkipNameValidation = ptr.To(true)
	if err := apps.SetupWithManager(mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	t.Cleanup(stop)
	return &testManager{rec: rec, logs: logs, registry: reg, stop: stop}
}

// eventually polls cond until it holds or timeout passes; the last
// explanation goes into the failure.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	why := ""
	for {
		ok, w := cond()
		if ok {
			return
		}
		why = w
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getIntegration(t testing.TB, c client.Client, ns, name string) *v1alpha1.KommoIntegration {
	t.Helper()
	obj := &v1alpha1.KommoIntegration{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// waitCondition waits until the integration's condition has the status
// and reason (reason "" matches any) for its current generation.
func waitCondition(t testing.TB, c client.Client, ns, name, condType string, want metav1.ConditionStatus, reason string, timeout time.Duration) *v1alpha1.KommoIntegration {
	t.Helper()
	var obj *v1alpha1.KommoIntegration
	eventually(t, timeout, func() (bool, string) {
		obj = getIntegration(t, c, ns, name)
		cond := status.Get(obj, condType)
		if cond == nil {
			return false, fmt.Sprintf("no %s condition; conditions %+v", condType, obj.Status.Conditions)
		}
		ok := cond.Status == want && (reason == "" || cond.Reason == reason) && cond.ObservedGeneration == obj.Generation
		return ok, fmt.Sprintf("%s=%s/%s (%s); conditions %+v", condType, cond.Status, cond.Reason, cond.Message, obj.Status.Conditions)
	})
	return obj
}

// kstatusOf computes the kstatus of an object as generic tools do.
func kstatusOf(t testing.TB, obj client.Object) *kstatus.Result {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("KommoIntegration"))
	res, err := kstatus.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// createReadyIntegration creates the integration "acme" in ns with its
// client secret and a fresh authorization code of sb, and waits until it
// is Ready (the manager running in ns exchanged the code).
func createReadyIntegration(t testing.TB, c client.Client, ns string, sb *kommoSandbox) {
	t.Helper()
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	if err := c.Create(context.Background(), integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
}

func createSecret(t testing.TB, c client.Client, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := c.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func putSecret(t testing.TB, c client.Client, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	s.StringData = data
	if err := c.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// integration builds a KommoIntegration against the sandbox; the caller
// picks the first-token source.
func integration(ns, name string, sb *kommoSandbox, mutate func(*v1alpha1.KommoIntegrationSpec)) *v1alpha1.KommoIntegration {
	obj := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.KommoIntegrationSpec{
			BaseURL:         sb.baseURL(),
			ClientID:        testClientID,
			ClientSecretRef: &v1alpha1.SecretKeySelector{Name: "kommo-client", Key: "secret"},
			RedirectURI:     testRedirectURI,
		},
	}
	mutate(&obj.Spec)
	return obj
}

func tokenSecret(t testing.TB, c client.Client, ns, integration string) (*corev1.Secret, tokens.Pair) {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: tokens.SecretName(integration)}, s); err != nil {
		t.Fatal(err)
	}
	p, err := tokens.FromSecret(s)
	if err != nil {
		t.Fatalf("token Secret: %v", err)
	}
	return s, p
}

// requestReconcile sets the reconcile-request annotation and returns its value.
func requestReconcile(t testing.TB, c client.Client, ns, name string) string {
	t.Helper()
	v := time.Now().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.ReconcileRequestAnnotation, v)
	obj := &v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
	return v
}

// events lists the events.k8s.io events of a namespace.
func listEvents(t testing.TB, c client.Client, ns string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitEvent waits for an event of that type and reason about the object.
func waitEvent(t testing.TB, c client.Client, ns, name, eventType, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, 20*time.Second, func() (bool, string) {
		var seen []string
		for _, e := range listEvents(t, c, ns) {
			seen = append(seen, e.Type+"/"+e.Reason)
			if e.Regarding.Name == name && e.Type == eventType && e.Reason == reason {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("events so far: %v", seen)
	})
	return found
}

// assertNoSecretLeak scans everything a user or an operator can read —
// events, the integration's status, the managers' logs and metric labels —
// for the secret values.
func assertNoSecretLeak(t testing.TB, c client.Client, ns string, mgrs []*testManager, secrets ...string) {
	t.Helper()
	var haystacks []string
	for _, e := range listEvents(t, c, ns) {
		haystacks = append(haystacks, "event "+e.Reason+": "+e.Note)
	}
	var list v1alpha1.KommoIntegrationList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, ki := range list.Items {
		b, _ := json.Marshal(ki.Status)
		haystacks = append(haystacks, "status of "+ki.Name+": "+string(b))
	}
	for i, m := range mgrs {
		haystacks = append(haystacks, fmt.Sprintf("logs of manager %d: %s", i, m.logs.String()))
		families, err := m.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, metric := range f.GetMetric() {
				for _, l := range metric.GetLabel() {
					haystacks = append(haystacks, "metric "+f.GetName()+" label "+l.GetValue())
				}
			}
		}
	}
	checked := 0
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("secret %q too short to scan for meaningfully", s)
		}
		checked++
		for _, h := range haystacks {
			if strings.Contains(h, s) {
				t.Errorf("a secret appears in %.80s…", h)
			}
		}
	}
	if checked == 0 || len(haystacks) == 0 {
		t.Fatal("nothing scanned")
	}
}
