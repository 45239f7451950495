package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
)

// jobTTR is the TTR the webhook server puts jobs with.
const jobTTR = 2 * time.Minute

// tenantSpec is a tenant as the tests (and the child worker process) set it
// up: an account of the Unisender emulator with one list.
type tenantSpec struct {
	Key    tenant.Key
	APIKey string
	ListID int64
	Policy syncv1.DeletionPolicy
	// DoubleOptin is the binding's spec.doubleOptin ("" = ConsentHeld).
	DoubleOptin syncv1.DoubleOptin
}

// staticResolver resolves tenants from a fixed table; tenants can be marked
// gone or not ready.
type staticResolver struct {
	baseURL string
	mu      sync.Mutex
	tenants map[tenant.Key]tenantSpec
	clients map[tenant.Key]*unisender.Client
	state   map[tenant.Key]error // ErrTenantGone / ErrTenantNotReady overrides
}

func newStaticResolver(baseURL string) *staticResolver {
	return &staticResolver{baseURL: baseURL, tenants: map[tenant.Key]tenantSpec{},
		clients: map[tenant.Key]*unisender.Client{}, state: map[tenant.Key]error{}}
}

func (r *staticResolver) add(ts tenantSpec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenants[ts.Key] = ts
	r.clients[ts.Key] = unisender.NewClient(r.baseURL, ts.APIKey,
		unisender.WithRateLimit(0, 1), unisender.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
}

func (r *staticResolver) set(key tenant.Key, state error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state[key] = state
}

func (r *staticResolver) Resolve(_ context.Context, key tenant.Key) (syncer.Tenant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.state[key]; err != nil {
		return syncer.Tenant{}, err
	}
	ts, ok := r.tenants[key]
	if !ok {
		return syncer.Tenant{}, fmt.Errorf("%w: unknown to the test", worker.ErrTenantGone)
	}
	policy := ts.Policy
	if policy == "" {
		policy = syncv1.DeletionPolicyExclude
	}
	return syncer.Tenant{Key: key.String(), Mapper: mapping.New(syncv1.UnisenderBindingSpec{}, ts.ListID),
		DeletionPolicy: policy, Unisender: r.clients[key],
		DoubleOptin: ts.DoubleOptin, Inviter: r.clients[key]}, nil
}

// harness is a store on MariaDB, the Unisender emulator behind httptest, a
// tube of beanstalkd, and tenants.
type harness struct {
	t        testing.TB
	dsn      string
	st       *store.Store
	emu      *unisenderemu.Server
	emuURL   string
	addr     string
	tube     string
	producer *queue.Producer
	stats    *queue.Consumer
	resolver *staticResolver
	logs     *logSink
	// intercept, when set, sees every request to the emulator first and
	// reports whether it answered it itself.
	intercept atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

type harnessOptions struct {
	dsn  string // "" → a fresh database on the shared server
	addr string // "" → the shared beanstalkd
	emu  unisenderemu.Options
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, dsn: o.dsn, addr: o.addr, tube: testenv.Tube("worker"), logs: &logSink{}}
	if h.dsn == "" {
		h.dsn = testenv.MySQLDSN(t)
	}
	if h.addr == "" {
		h.addr = testenv.BeanstalkdAddr(t)
	}
	st, err := store.Open(ctx, h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h.st = st
	h.emu = unisenderemu.New(o.emu)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := h.intercept.Load(); f != nil && (*f)(w, r) {
			return
		}
		h.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.emu.Close)
	h.emuURL = srv.URL
	h.resolver = newStaticResolver(srv.URL)
	h.producer = queue.NewProducer(h.addr, queue.ProducerOptions{})
	t.Cleanup(func() { h.producer.Close() })
	h.stats, err = queue.NewConsumer(h.addr, []string{h.tube}, queue.ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.stats.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", h.logs.String())
		}
	})
	return h
}

// addTenant creates an emulator account with a list for key.
func (h *harness) addTenant(key tenant.Key) tenantSpec {
	h.t.Helper()
	apiKey := "key-" + key.Namespace + "-" + key.Name
	h.emu.AddAPIKey(apiKey)
	listID, err := unisender.NewClient(h.emuURL, apiKey).CreateList(context.Background(), "Kommo "+key.String())
	if err != nil {
		h.t.Fatal(err)
	}
	ts := tenantSpec{Key: key, APIKey: apiKey, ListID: listID}
	h.resolver.add(ts)
	return ts
}

// config is a worker configuration for this harness.
func (h *harness) config() worker.Config {
	return worker.Config{
		BeanstalkdAddr: h.addr, Tube: h.tube, Store: h.st, Resolver: h.resolver,
		RecheckDelay: time.Second, Log: logr.New(h.logs.sink()),
	}
}

// start runs a worker until the test ends or stop is called.
func (h *harness) start(cfg worker.Config) (stop func()) {
	h.t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("worker.Run: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// envelope is a job body as the webhook server builds it.
func envelope(t testing.TB, key tenant.Key, p *kommo.WebhookPayload, receivedAt time.Time) []byte {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	body, err := queue.Envelope{Version: queue.EnvelopeVersion, Tenant: key.String(), AccountID: p.AccountID,
		Kind: queue.KindWebhook, ReceivedAt: receivedAt.UTC(), Payload: raw}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// put stores a job in the harness tube as the webhook server does.
func (h *harness) put(body []byte) uint64 {
	h.t.Helper()
	id, err := h.producer.Put(context.Background(), h.tube, body, 1024, 0, jobTTR)
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) tubeStats() queue.TubeStats {
	h.t.Helper()
	s, err := h.stats.StatsTube(context.Background(), h.tube)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// waitDrained waits until no job of the tube is ready, reserved or delayed
// (beanstalkd being unreachable meanwhile is not an error).
func (h *harness) waitDrained(timeout time.Duration) queue.TubeStats {
	h.t.Helper()
	var s queue.TubeStats
	eventually(h.t, timeout, func() (bool, string) {
		var err error
		if s, err = h.stats.StatsTube(context.Background(), h.tube); err != nil {
			return false, err.Error()
		}
		return s.Ready+s.Reserved+s.Delayed == 0, fmt.Sprintf("tube %+v", s)
	})
	return s
}

// jobStats are a job's beanstalkd counters.
type jobStats struct {
	State    string
	Releases int
}

// peekDelayed returns the counters of the next delayed job of the tube.
func (h *harness) peekDelayed() jobStats {
	h.t.Helper()
	c, err := beanstalk.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	id, _, err := (&beanstalk.Tube{Conn: c, Name: h.tube}).PeekDelayed()
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := c.StatsJob(id)
	if err != nil {
		h.t.Fatal(err)
	}
	releases, _ := strconv.Atoi(s["releases"])
	return jobStats{State: s["state"], Releases: releases}
}

// members returns the addresses active in the tenant's list, sorted.
func (h *harness) members(ts tenantSpec) []string {
	out := []string{}
	for _, m := range h.emu.ListMembers(ts.APIKey, ts.ListID) {
		if m.ListStatus == unisenderemu.ListActive {
			out = append(out, m.Email)
		}
	}
	sort.Strings(out)
	return out
}

func (h *harness) member(ts tenantSpec, email string) (unisenderemu.Member, bool) {
	for _, m := range h.emu.ListMembers(ts.APIKey, ts.ListID) {
		if m.Email == email {
			return m, true
		}
	}
	return unisenderemu.Member{}, false
}

func (h *harness) deadLetters() []store.DeadLetter {
	h.t.Helper()
	d, err := h.st.ListDeadLetters(context.Background(), store.DeadLetterFilter{Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// describe prints dead letters without their bodies.
func describe(letters []store.DeadLetter) string {
	out := ""
	for _, d := range letters {
		out += fmt.Sprintf("[#%d job %d tenant %q attempts %d reason %q] ", d.ID, d.JobID, d.Tenant, d.Attempts, d.Reason)
	}
	return out
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logSink keeps the worker's log lines for inspection (and for the failure
// report).
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) sink() logr.LogSink {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1}).GetSink()
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := ""
	for _, s := range l.lines {
		out += s + "\n"
	}
	return out
}

// contact builds a Kommo contact with e-mail fields, as the parser would.
func contact(id, updatedAt int64, emails ...string) kommo.Contact {
	c := kommo.Contact{ID: id, Type: kommo.ContactTypeContact, Name: fmt.Sprintf("Contact %d", id), UpdatedAt: updatedAt}
	if len(emails) > 0 {
		f := kommo.CustomField{ID: 1, Name: "Email", Code: kommo.FieldCodeEmail}
		for _, e := range emails {
			f.Values = append(f.Values, kommo.FieldValue{Value: e})
		}
		c.CustomFields = []kommo.CustomField{f}
	}
	c.DeriveContactPoints()
	return c
}

func payload(events ...kommo.WebhookEvent) *kommo.WebhookPayload {
	return &kommo.WebhookPayload{AccountID: 31415926, Subdomain: "acme", Events: events}
}
