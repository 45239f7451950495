package webhookserver_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // client-go's watch logs are not under test
	os.Exit(testenv.RunWithKube(m, []string{"../config/crd/bases"}, &kube))
}

// shared is one started Kube (cache + tenant index) for the whole package,
// and a direct client to set up objects; each test uses its own namespace.
var shared struct {
	once     sync.Once
	kube     *webhookserver.Kube
	client   client.Client
	stateKey []byte
	err      error
}

// operatorNamespace holds the OAuth state key and KommoApp secrets, as the
// operator's namespace does in a cluster.
const operatorNamespace = "wh-operator"

func cluster(t testing.TB) (*webhookserver.Kube, client.Client) {
	t.Helper()
	shared.once.Do(func() {
		scheme, err := contract.Scheme()
		if err != nil {
			shared.err = err
			return
		}
		if shared.client, err = client.New(kube.Config, client.Options{Scheme: scheme}); err != nil {
			shared.err = err
			return
		}
		ctx := context.Background()
		if err = shared.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
			shared.err = err
			return
		}
		if shared.stateKey, err = tokens.EnsureStateKey(ctx, shared.client, shared.client, operatorNamespace); err != nil {
			shared.err = err
			return
		}
		if shared.kube, err = webhookserver.NewKube(kube.Config, webhookserver.KubeOptions{OperatorNamespace: operatorNamespace}); err != nil {
			shared.err = err
			return
		}
		// The cache lives as long as the test binary (the control plane
		// stops with it).
		shared.err = shared.kube.Start(context.Background())
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.kube, shared.client
}

// accountOf reads account[id] of a fixture, so tenants match the samples.
func accountOf(t testing.TB, name string) int64 {
	t.Helper()
	form, err := fixtures.KommoWebhook(name)
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseInt(form.Get("account[id]"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tenantOpts shape a fixture tenant.
type tenantOpts struct {
	allowWidgetKey bool
	accountID      int64
	suspended      bool // the binding's spec.suspend
	// clientID and clientSecret, if set, replace the random ones (tenants
	// sharing one Kommo integration's namespaced secret).
	clientID, clientSecret string
	// app, if set, is the KommoApp the integration references instead.
	app *v1alpha1.KommoApp
}

// tenantFixture is one tenant as the reconcilers would leave it: a
// KommoIntegration (OAuth callback flow, authorized for an account) with its
// user client-secret Secret, a UnisenderBinding with its operator-owned
// webhook Secret.
type tenantFixture struct {
	Namespace     string
	Integration   *v1alpha1.KommoIntegration
	Binding       *v1alpha1.UnisenderBinding
	WebhookSecret string
	ClientSecret  string
	ClientID      string
	AccountID     int64
	RedirectURI   string
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newTenant creates a tenant and waits until the server's index has it.
func newTenant(t testing.TB, o tenantOpts) *tenantFixture {
	t.Helper()
	k, c := cluster(t)
	ctx := context.Background()
	if o.accountID == 0 {
		o.accountID = accountOf(t, fixtures.AddContact)
	}
	f := &tenantFixture{
		Namespace:     "wh-" + randomHex(t, 4),
		WebhookSecret: randomHex(t, 32),
		ClientSecret:  "cs-" + randomHex(t, 24),
		ClientID:      "0f1e2d3c-4b5a-6978-8796-" + randomHex(t, 6),
		AccountID:     o.accountID,
		RedirectURI:   "https://hooks.example.test/oauth/callback",
	}
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.Namespace}}))
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.Namespace}})
	})
	f.ClientID = cmp.Or(o.clientID, f.ClientID)
	f.ClientSecret = cmp.Or(o.clientSecret, f.ClientSecret)
	must(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: "kommo-client"},
		Data:       map[string][]byte{"client-secret": []byte(f.ClientSecret)},
	}))
	ki := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: "kommo"},
		Spec: v1alpha1.KommoIntegrationSpec{
			Subdomain: "acme", ClientID: f.ClientID, RedirectURI: f.RedirectURI,
			ClientSecretRef: &v1alpha1.SecretKeySelector{Name: "kommo-client", Key: "client-secret"},
			OAuthCallback:   &v1alpha1.OAuthCallbackSource{},
		},
	}
	if o.app != nil {
		ki.Spec.AppRef = &v1alpha1.AppReference{Name: o.app.Name}
		ki.Spec.ClientID, ki.Spec.ClientSecretRef, ki.Spec.RedirectURI = "", nil, ""
		f.ClientID, f.RedirectURI = o.app.Spec.ClientID, o.app.Spec.RedirectURI
	}
	must(t, c.Create(ctx, ki))
	ki.Status.AccountID = f.AccountID
	must(t, c.Status().Update(ctx, ki))
	f.Integration = ki
	b := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: "newsletter"},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: ki.Name},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"},
			List:            v1alpha1.ListSelector{Title: "Kommo contacts"},
			AllowWidgetKey:  o.allowWidgetKey,
			Suspend:         o.suspended,
		},
	}
	must(t, c.Create(ctx, b))
	must(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: contract.WebhookSecretName(b.Name),
			Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue}},
		Data: map[string][]byte{contract.WebhookSecretKey: []byte(f.WebhookSecret)},
	}))
	b.Status.WebhookSecretName = contract.WebhookSecretName(b.Name)
	must(t, c.Status().Update(ctx, b))
	f.Binding = b
	waitFor(t, "the tenant in the index", func() bool {
		info, ok := k.Tenants().Tenant(f.Segment())
		return ok && info.AccountID == f.AccountID && info.Suspended == o.suspended
	})
	waitFor(t, "the integration in the cache", func() bool {
		kis, err := k.IntegrationsByClientID(ctx, f.ClientID)
		return err == nil && slices.ContainsFunc(kis, func(ki v1alpha1.KommoIntegration) bool {
			return ki.UID == f.Integration.UID && ki.Status.AccountID == f.AccountID
		})
	})
	return f
}

// setSuspended sets the binding's spec.suspend and waits until the
// server's index has it.
func (f *tenantFixture) setSuspended(t testing.TB, suspended bool) {
	t.Helper()
	k, c := cluster(t)
	ctx := context.Background()
	var b v1alpha1.UnisenderBinding
	must(t, c.Get(ctx, client.ObjectKeyFromObject(f.Binding), &b))
	b.Spec.Suspend = suspended
	must(t, c.Update(ctx, &b))
	f.Binding = &b
	waitFor(t, "the index to follow spec.suspend", func() bool {
		info, ok := k.Tenants().Tenant(f.Segment())
		return ok && info.Suspended == suspended
	})
}

// Segment is the tenant part of the webhook URL.
func (f *tenantFixture) Segment() string { return f.Namespace + "." + f.Binding.Name }

// WebhookPath is the destination Kommo posts to.
func (f *tenantFixture) WebhookPath() string {
	return "/kommo/webhooks/" + f.Segment() + "/" + f.WebhookSecret
}

// TenantID is the tenant key jobs carry.
func (f *tenantFixture) TenantID() string { return f.Namespace + "/" + f.Binding.Name }

// waitFor polls cond (the index and cache follow the API server
// asynchronously); it is not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuffer collects every log line of a server, at every verbosity.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		fmt.Fprintf(&l.buf, "%s %s\n", prefix, args)
	}, funcr.Options{Verbosity: 10})
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// harness is the real server over the shared cache, a real beanstalkd and
// a fresh tube.
type harness struct {
	t        testing.TB
	URL      string
	Tube     string
	Addr     string // beanstalkd
	Logs     *logBuffer
	Producer *queue.Producer
	Server   *webhookserver.Server
}

type harnessOpts struct {
	beanstalkd string // default: the shared one
	config     func(*webhookserver.Config)
	logs       *logBuffer
	// queue, if set, wraps the producer the server puts jobs with.
	queue func(webhookserver.Queue) webhookserver.Queue
	// handler, if set, wraps the server's handler.
	handler func(http.Handler) http.Handler
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	k, _ := cluster(t)
	if o.beanstalkd == "" {
		o.beanstalkd = testenv.BeanstalkdAddr(t)
	}
	if o.logs == nil {
		o.logs = &logBuffer{}
	}
	cfg := webhookserver.DefaultConfig()
	cfg.Tube = testenv.Tube("wh")
	if o.config != nil {
		o.config(&cfg)
	}
	producer := queue.NewProducer(o.beanstalkd, queue.ProducerOptions{Conns: 8})
	t.Cleanup(func() { _ = producer.Close() })
	var q webhookserver.Queue = producer
	if o.queue != nil {
		q = o.queue(producer)
	}
	srv, err := webhookserver.New(cfg, webhookserver.Deps{
		Tenants: k.Tenants(), Cluster: k, Queue: q, Log: o.logs.logger(), Registry: prometheus.NewRegistry(),
	})
	must(t, err)
	var handler http.Handler = srv
	if o.handler != nil {
		handler = o.handler(srv)
	}
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close)
	return &harness{t: t, URL: ts.URL, Tube: cfg.Tube, Addr: o.beanstalkd, Logs: o.logs, Producer: producer, Server: srv}
}

// withoutAdmission lifts the admission's bounds, for tests that send one
// tenant's webhooks as fast as they can and look at something else.
func withoutAdmission(c *webhookserver.Config) {
	c.TenantRate, c.TenantBurst, c.TenantInFlight, c.MaxInFlight = math.Inf(1), 1, 1<<20, 1<<20
}

// response is what a test looks at in an answer.
type response struct {
	Status int
	Header http.Header
	Body   string
}

func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	must(h.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(h.t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

func (h *harness) request(method, path, contentType, body string, header map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.URL+path, strings.NewReader(body))
	must(h.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return h.do(req)
}

func (h *harness) postForm(path, body string) response {
	h.t.Helper()
	return h.request(http.MethodPost, path, "application/x-www-form-urlencoded", body, nil)
}

// fixtureBody is a sample as Kommo posts it.
func fixtureBody(t testing.TB, name string) string {
	t.Helper()
	body, err := fixtures.KommoWebhookBody(name)
	must(t, err)
	return body
}

// consumer returns a beanstalkd consumer of the harness tube.
func (h *harness) consumer() *queue.Consumer {
	h.t.Helper()
	c, err := queue.NewConsumer(h.Addr, []string{h.Tube}, queue.ConsumerOptions{})
	must(h.t, err)
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// jobsInTube counts the jobs of the tube, whatever their state.
func (h *harness) jobsInTube() int64 {
	h.t.Helper()
	st, err := h.consumer().StatsTube(context.Background(), h.Tube)
	must(h.t, err)
	return st.TotalJobs
}

// reserveAll takes every ready job of the tube (and deletes it).
func (h *harness) reserveAll() []queue.Envelope {
	h.t.Helper()
	var out []queue.Envelope
	for _, body := range h.reserveAllBodies() {
		env, err := queue.Decode(body)
		must(h.t, err)
		out = append(out, env)
	}
	return out
}

// reserveAllBodies takes every ready job of the tube (and deletes it) and
// returns the bodies as put.
func (h *harness) reserveAllBodies() [][]byte {
	h.t.Helper()
	c := h.consumer()
	var out [][]byte
	for {
		job, err := c.Reserve(context.Background(), 0)
		if err != nil {
			if errors.Is(err, queue.ErrTimeout) {
				return out
			}
			h.t.Fatal(err)
		}
		out = append(out, job.Body)
		must(h.t, c.Delete(context.Background(), job.ID))
	}
}

// kommoToken is the X-Auth-Token Kommo's $authorizedAjax sends.
type kommoToken struct {
	Alg      jwt.SigningMethod
	Key      any
	Claims   jwt.MapClaims
	NoneAlgo bool
}

// token is a valid token for the tenant, issued now.
func (f *tenantFixture) token() kommoToken {
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	return kommoToken{
		Alg: jwt.SigningMethodHS256,
		Key: []byte(f.ClientSecret),
		Claims: jwt.MapClaims{
			"iss": "https://acme.kommo.com", "aud": "https://hooks.example.test",
			"jti": hex.EncodeToString(jti),
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(),
			"account_id": f.AccountID, "user_id": 42, "client_uuid": f.ClientID,
			"subdomain": "acme", "is_admin": true,
		},
	}
}

func (k kommoToken) with(claim string, v any) kommoToken {
	c := jwt.MapClaims{}
	for key, val := range k.Claims {
		c[key] = val
	}
	c[claim] = v
	k.Claims = c
	return k
}

func (k kommoToken) sign(t testing.TB) string {
	t.Helper()
	s, err := jwt.NewWithClaims(k.Alg, k.Claims).SignedString(k.Key)
	must(t, err)
	return s
}

// widgetKeySecret returns the widget-key Secret of the tenant's binding;
// ok is false while it does not exist.
func (f *tenantFixture) widgetKeySecret(t testing.TB) (*corev1.Secret, bool) {
	t.Helper()
	return getSecret(t, f.Namespace, f.Binding.Name+"-widget-key")
}

// oauthCodeSecret returns the integration's callback code Secret.
func (f *tenantFixture) oauthCodeSecret(t testing.TB) (*corev1.Secret, bool) {
	t.Helper()
	return getSecret(t, f.Namespace, tokens.OAuthCodeSecretName(f.Integration.Name))
}

func getSecret(t testing.TB, ns, name string) (*corev1.Secret, bool) {
	t.Helper()
	_, c := cluster(t)
	var s corev1.Secret
	err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	must(t, err)
	return &s, true
}

// callbackQuery is Kommo's redirect after a granted authorization, with a
// fresh state as the reconciler publishes it.
func (f *tenantFixture) callbackQuery(t testing.TB, code string) url.Values {
	t.Helper()
	return f.callbackQueryWith(code, f.state(t, time.Now().Add(30*time.Minute)))
}

func (f *tenantFixture) callbackQueryWith(code, state string) url.Values {
	return url.Values{
		"code":      {code},
		"state":     {state},
		"referer":   {"acme.kommo.com"},
		"client_id": {f.ClientID},
	}
}

// state is an OAuth state for the tenant's integration signed with the
// operator's key, expiring at expires.
func (f *tenantFixture) state(t testing.TB, expires time.Time) string {
	t.Helper()
	cluster(t)
	st, err := tokens.NewCallbackState(shared.stateKey, client.ObjectKeyFromObject(f.Integration), expires)
	must(t, err)
	return st
}
