package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/budget"
	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
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
// up: an account of the Kommo emulator, read with a long-lived token, and
// an account of the Unisender emulator with one list.
type tenantSpec struct {
	Key    tenant.Key
	APIKey string
	ListID int64
	Policy v1alpha1.DeletionPolicy
	// DoubleOptin is the binding's spec.doubleOptin ("" = ConsentHeld).
	DoubleOptin v1alpha1.DoubleOptin

	// Subdomain names the tenant's Kommo account in the emulator, KommoURL
	// is its API base, KommoToken a long-lived token for it.
	Subdomain  string
	AccountID  int64
	KommoURL   string
	KommoToken string
	// KommoRate paces the worker's Kommo client (requests per second, one
	// in flight, as the worker subcommand's client); 0 = unpaced.
	KommoRate float64
	// KommoBudget makes the client take each request from the
	// integration's foreground budget in MySQL at KommoRate, as the worker
	// subcommand's client does (internal/budget).
	KommoBudget bool
}

// staticResolver resolves tenants from a fixed table; tenants can be marked
// gone or not ready.
type staticResolver struct {
	baseURL string
	st      *store.Store // the Kommo budgets' store
	mu      sync.Mutex
	tenants map[tenant.Key]tenantSpec
	clients map[tenant.Key]*unisender.Client
	readers map[tenant.Key]*kommo.Client
	state   map[tenant.Key]error // ErrTenantGone / ErrTenantNotReady overrides
}

func newStaticResolver(baseURL string, st *store.Store) *staticResolver {
	return &staticResolver{baseURL: baseURL, st: st, tenants: map[tenant.Key]tenantSpec{},
		clients: map[tenant.Key]*unisender.Client{}, readers: map[tenant.Key]*kommo.Client{},
		state: map[tenant.Key]error{}}
}

func (r *staticResolver) add(ts tenantSpec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenants[ts.Key] = ts
	r.clients[ts.Key] = unisender.NewClient(r.baseURL, ts.APIKey,
		unisender.WithRateLimit(0, 1), unisender.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	opts := []kommo.Option{
		kommo.WithTokenSource(kommo.StaticToken(ts.KommoToken)),
		kommo.WithRateLimit(ts.KommoRate, 1),
		kommo.WithBackoff(10*time.Millisecond, 200*time.Millisecond),
		kommo.WithUserAgent("kommo-unisender-worker-test"),
	}
	if ts.KommoBudget {
		opts = append(opts, kommo.WithBudget(budget.KommoForeground(r.st, ts.Key.Namespace, ts.Subdomain, int(ts.KommoRate))))
	}
	r.readers[ts.Key] = kommo.NewClient(ts.KommoURL, opts...)
}

func (r *staticResolver) set(key tenant.Key, state error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state[key] = state
}

func (r *staticResolver) spec(key tenant.Key) tenantSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tenants[key]
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
	return syncer.Tenant{Key: key.String(), Mapper: ts.mapper(),
		DeletionPolicy: ts.policy(), Unisender: r.clients[key], Kommo: r.readers[key],
		DoubleOptin: ts.DoubleOptin, Inviter: r.clients[key]}, nil
}

func (ts tenantSpec) mapper() *mapping.Mapper {
	return mapping.New(v1alpha1.UnisenderBindingSpec{}, ts.ListID)
}

func (ts tenantSpec) policy() v1alpha1.DeletionPolicy {
	if ts.Policy == "" {
		return v1alpha1.DeletionPolicyExclude
	}
	return ts.Policy
}

// harness is a store on MariaDB, the Kommo and Unisender emulators behind
// httptest, a tube of beanstalkd, and tenants.
type harness struct {
	t        testing.TB
	dsn      string
	st       *store.Store
	emu      *unisenderemu.Server
	emuURL   string
	kommo    *kommoemu.Server
	kommoURL string
	addr     string
	tube     string
	producer *queue.Producer
	stats    *queue.Consumer
	resolver *staticResolver
	logs     *logSink
	// kommoRate is the pace of the tenants' Kommo clients (0: unpaced),
	// kommoBudget whether they take from the shared budget in MySQL.
	kommoRate   float64
	kommoBudget bool
	// intercept, when set, sees every request to the Unisender emulator
	// first and reports whether it answered it itself.
	intercept atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	// imports, when set, records the rows of every importContacts call the
	// Unisender emulator accepted.
	imports atomic.Pointer[importLog]
}

type harnessOptions struct {
	dsn  string // "" → a fresh database on the shared server
	addr string // "" → the shared beanstalkd
	emu  unisenderemu.Options
	// kommo configures the Kommo emulator; a zero RateLimit means
	// unlimited here (the emulator's own default is Kommo's 7 per second).
	kommo kommoemu.Options
	// kommoRate paces each tenant's Kommo client: requests per second, one
	// in flight; 0 = unpaced. kommoBudget adds the shared budget in MySQL
	// at that rate, as in production.
	kommoRate   float64
	kommoBudget bool
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, dsn: o.dsn, addr: o.addr, tube: testenv.Tube("worker"), logs: &logSink{},
		kommoRate: o.kommoRate, kommoBudget: o.kommoBudget}
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
	var srv *httptest.Server
	h.emu, srv = sandboxtest.UnisenderBehind(t, o.emu, func(emu *unisenderemu.Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f := h.intercept.Load(); f != nil && (*f)(w, r) {
				return
			}
			if l := h.imports.Load(); l != nil && strings.HasSuffix(r.URL.Path, "/importContacts") {
				l.serve(emu, w, r)
				return
			}
			emu.ServeHTTP(w, r)
		})
	})
	h.emuURL = srv.URL

	if o.kommo.RateLimit == 0 {
		o.kommo.RateLimit = -1
	}
	var ksrv *httptest.Server
	h.kommo, ksrv = sandboxtest.Kommo(t, o.kommo)
	h.kommoURL = ksrv.URL

	h.resolver = newStaticResolver(srv.URL, st)
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

// addTenant creates, for key, a Kommo account with a long-lived token and
// a Unisender account with a list.
func (h *harness) addTenant(key tenant.Key) tenantSpec {
	h.t.Helper()
	apiKey := "key-" + key.Namespace + "-" + key.Name
	h.emu.AddAPIKey(apiKey)
	listID, err := unisender.NewClient(h.emuURL, apiKey).CreateList(context.Background(), "Kommo "+key.String())
	if err != nil {
		h.t.Fatal(err)
	}
	sub := key.Namespace + "-" + key.Name
	acct, err := h.kommo.AddAccount(sub)
	if err != nil {
		h.t.Fatal(err)
	}
	token, err := h.kommo.IssueLongLivedToken(sub, 365*24*time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	ts := tenantSpec{Key: key, APIKey: apiKey, ListID: listID, Subdomain: sub, AccountID: acct.ID,
		KommoURL: h.kommoURL + "/_acct/" + sub, KommoToken: token, KommoRate: h.kommoRate, KommoBudget: h.kommoBudget}
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

// person is a contact to create in Kommo: a name and its addresses.
func person(name string, emails ...string) kommo.Contact {
	return kommo.Contact{Name: name, Emails: emails}
}

// kommoCreate creates a contact in the tenant's Kommo account (an id
// chosen by the emulator unless c.ID is set) and returns it as stored.
func (h *harness) kommoCreate(ts tenantSpec, c kommo.Contact) kommo.Contact {
	h.t.Helper()
	out, err := h.kommo.CreateContact(ts.Subdomain, c)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// kommoAdd creates a contact holding emails, named after the first.
func (h *harness) kommoAdd(ts tenantSpec, emails ...string) kommo.Contact {
	h.t.Helper()
	name := "Nobody"
	if len(emails) > 0 {
		name = "Owner of " + emails[0]
	}
	return h.kommoCreate(ts, person(name, emails...))
}

// kommoUpdate replaces the contact's data in Kommo. Emails, when not nil,
// replace the contact's addresses (an empty slice removes them all).
func (h *harness) kommoUpdate(ts tenantSpec, c kommo.Contact) kommo.Contact {
	h.t.Helper()
	out, err := h.kommo.UpdateContact(ts.Subdomain, c)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// kommoDelete deletes the contact in Kommo.
func (h *harness) kommoDelete(ts tenantSpec, id int64) {
	h.t.Helper()
	if err := h.kommo.DeleteContact(ts.Subdomain, id); err != nil {
		h.t.Fatal(err)
	}
}

// kommoWant is what the tenant's list must hold: every address of the
// contacts (not companies) Kommo holds now, normalised, sorted.
func (h *harness) kommoWant(ts tenantSpec) []string {
	h.t.Helper()
	contacts, err := h.kommo.Contacts(ts.Subdomain)
	if err != nil {
		h.t.Fatal(err)
	}
	set := map[string]bool{}
	for _, c := range contacts {
		if c.IsCompany() {
			continue
		}
		for _, e := range c.Emails {
			set[emailaddr.Normalize(e)] = true
		}
	}
	out := []string{}
	for e := range set {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// kommoRequests counts the requests of a route ("GET /api/v4/contacts",
// "GET /api/v4/contacts/{id}") the Kommo emulator served an account.
func (h *harness) kommoRequests(ts tenantSpec, route string) int {
	n := 0
	for _, l := range h.kommo.RequestLog() {
		if l.Account == ts.Subdomain && l.Route == route {
			n++
		}
	}
	return n
}

// ref names a contact in a job.
func ref(id int64, action kommo.Action) queue.ContactRef {
	return queue.ContactRef{ID: id, Action: string(action)}
}

// refs names contacts with one action.
func refs(action kommo.Action, ids ...int64) []queue.ContactRef {
	out := make([]queue.ContactRef, len(ids))
	for i, id := range ids {
		out[i] = ref(id, action)
	}
	return out
}

// contactsJob is a KindContacts job body as the webhook server builds it.
func contactsJob(t testing.TB, ts tenantSpec, receivedAt time.Time, refs ...queue.ContactRef) []byte {
	t.Helper()
	body, err := queue.AppendContactsJob(nil, ts.Key.String(), ts.AccountID, receivedAt, refs)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// putContacts puts a KindContacts job naming the ids with one action.
func (h *harness) putContacts(ts tenantSpec, action kommo.Action, ids ...int64) uint64 {
	h.t.Helper()
	return h.put(contactsJob(h.t, ts, time.Now(), refs(action, ids...)...))
}

// webhookRefs names the payload's contacts as the webhook server does:
// companies left out, each contact once with its last action.
func webhookRefs(p *kommo.WebhookPayload) []queue.ContactRef {
	var out []queue.ContactRef
	index := map[int64]int{}
	for _, ev := range p.Events {
		if ev.Contact.IsCompany() || ev.Contact.ID <= 0 {
			continue
		}
		if i, ok := index[ev.Contact.ID]; ok {
			out[i].Action = string(ev.Action)
			continue
		}
		index[ev.Contact.ID] = len(out)
		out = append(out, ref(ev.Contact.ID, ev.Action))
	}
	return out
}

// envelope is a job body as an earlier webhook server built it
// (queue.KindWebhook, the parsed webhook with the contacts' data).
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

// importLog records the rows of the importContacts calls the Unisender
// emulator accepted, by address: how often each was upserted into the
// list, and how often taken out of it (excluded or deleted).
type importLog struct {
	mu       sync.Mutex
	upserts  map[string]int
	removals map[string]int
}

// recordImports starts recording importContacts rows.
func (h *harness) recordImports() *importLog {
	l := &importLog{upserts: map[string]int{}, removals: map[string]int{}}
	h.imports.Store(l)
	return l
}

// serve passes the call to the emulator and records its rows if the
// emulator accepted it (Unisender answers errors inside HTTP 200).
func (l *importLog) serve(emu http.Handler, w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		emu.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	emu.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	var answer struct {
		Error  string          `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer.Error != "" || answer.Result == nil {
		return
	}
	cols := map[string]int{}
	for i := 0; ; i++ {
		name, ok := r.PostForm[fmt.Sprintf("field_names[%d]", i)]
		if !ok {
			break
		}
		cols[name[0]] = i
	}
	email, ok := cols[mapping.ColumnEmail]
	if !ok {
		return
	}
	_, excludes := cols[mapping.ColumnExcludedLists]
	_, deletes := cols[mapping.ColumnDelete]
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; ; i++ {
		v, ok := r.PostForm[fmt.Sprintf("data[%d][%d]", i, email)]
		if !ok {
			break
		}
		addr := emailaddr.Normalize(v[0])
		if excludes || deletes {
			l.removals[addr]++
		} else {
			l.upserts[addr]++
		}
	}
}

func (l *importLog) counts() (upserts, removals map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.upserts), maps.Clone(l.removals)
}
