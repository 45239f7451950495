package worker_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// scenario is a tenant's history: contacts added, a third of them moved to
// a new address, every seventh deleted, delivered five contacts per job.
type scenario struct {
	key    tenant.Key
	bodies [][]byte
	want   []string // addresses Kommo's live contacts hold
	gone   []string // addresses that left Kommo: excluded from the list
}

func newScenario(t testing.TB, key tenant.Key, contacts int) scenario {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	sc := scenario{key: key}
	var adds, updates, deletes []kommo.WebhookEvent
	for i := int64(1); i <= int64(contacts); i++ {
		old := fmt.Sprintf("c%d@example.com", i)
		adds = append(adds, kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(i, base.Unix(), old)})
		switch {
		case i%7 == 0:
			deletes = append(deletes, kommo.WebhookEvent{Action: kommo.ActionDelete, Contact: kommo.Contact{ID: i, Type: kommo.ContactTypeContact}})
			sc.gone = append(sc.gone, old)
		case i%3 == 0:
			moved := fmt.Sprintf("c%d-new@example.com", i)
			updates = append(updates, kommo.WebhookEvent{Action: kommo.ActionUpdate, Contact: contact(i, base.Unix()+10, moved)})
			sc.want = append(sc.want, moved)
			sc.gone = append(sc.gone, old)
		default:
			sc.want = append(sc.want, old)
		}
	}
	for _, part := range []struct {
		events []kommo.WebhookEvent
		at     time.Time
	}{{adds, base}, {updates, base.Add(10 * time.Second)}, {deletes, base.Add(20 * time.Second)}} {
		for i := 0; i < len(part.events); i += 5 {
			p := payload(part.events[i:min(i+5, len(part.events))]...)
			sc.bodies = append(sc.bodies, envelope(t, key, p, part.at))
		}
	}
	sort.Strings(sc.want)
	sort.Strings(sc.gone)
	return sc
}

// check asserts the list holds exactly the live addresses and has excluded
// only addresses that left Kommo: nothing lost, nothing excluded wrongly,
// nobody revived, nothing buried. (An address that left may never have
// reached the list: when retries reorder events, the contact's newer
// version can win before its first one is applied.)
func (h *harness) check(sc scenario) {
	h.t.Helper()
	ts := h.resolver.tenants[sc.key]
	if got := h.members(ts); !reflect.DeepEqual(got, sc.want) {
		h.t.Errorf("%s: active members (%d) differ from Kommo's live addresses (%d):\n got %v\nwant %v", sc.key, len(got), len(sc.want), got, sc.want)
	}
	excluded := []string{}
	for _, m := range h.emu.ListMembers(ts.APIKey, ts.ListID) {
		if m.ListStatus == unisenderemu.ListExcluded {
			excluded = append(excluded, m.Email)
		}
	}
	for _, e := range excluded {
		if _, found := slices.BinarySearch(sc.gone, e); !found {
			h.t.Errorf("%s: %s was excluded, but a live contact holds it", sc.key, e)
		}
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		h.t.Errorf("%d revival attempts", n)
	}
	if letters := h.deadLetters(); len(letters) != 0 {
		h.t.Errorf("dead letters: %s", describe(letters))
	}
}

func (h *harness) putAll(bodies [][]byte) {
	for _, b := range bodies {
		h.put(b)
	}
}

// inFlightImports counts importContacts calls the emulator is still
// answering.
func (h *harness) inFlightImports() (inFlight, done int) {
	for _, r := range h.emu.Stats().Requests {
		if r.Method != "importContacts" {
			continue
		}
		if r.HTTPStatus == 0 {
			inFlight++
		} else {
			done++
		}
	}
	return inFlight, done
}

// A worker process killed with SIGKILL in the middle of a batch — while
// Unisender is answering, or after Unisender applied the batch but before
// the store committed it — loses nothing and does nothing twice: another
// worker process finishes the job and the list ends exactly as Kommo holds
// it.
func TestWorkerProcessKilledMidBatch(t *testing.T) {
	t.Parallel()
	t.Run("during the Unisender call", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		h.addTenant(acme)
		sc := newScenario(t, acme, 120)
		h.putAll(sc.bodies)
		h.emu.SetLatency(time.Second)
		first := h.startChild(childSpec{Concurrency: 2, MaxEvents: 40})
		eventually(t, 20*time.Second, func() (bool, string) {
			inFlight, done := h.inFlightImports()
			return done >= 1 && inFlight >= 1, fmt.Sprintf("%d imports done, %d in flight", done, inFlight)
		})
		_ = first.signal(t, syscall.SIGKILL, 10*time.Second)
		h.finishAfterKill(sc)
	})
	t.Run("after Unisender applied, before the commit", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		h.addTenant(acme)
		sc := newScenario(t, acme, 120)
		h.putAll(sc.bodies)
		applied := make(chan struct{})
		var once sync.Once
		var calls int
		var mu sync.Mutex
		hook := func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/importContacts") {
				return false
			}
			mu.Lock()
			calls++
			third := calls == 3
			mu.Unlock()
			if !third {
				return false
			}
			// Unisender applies the call; its answer never reaches the
			// worker, which dies waiting for it.
			h.emu.ServeHTTP(httptest.NewRecorder(), r)
			once.Do(func() { close(applied) })
			<-r.Context().Done()
			return true
		}
		h.intercept.Store(&hook)
		first := h.startChild(childSpec{Concurrency: 2, MaxEvents: 40})
		select {
		case <-applied:
		case <-time.After(20 * time.Second):
			t.Fatal("the third importContacts call never came")
		}
		_ = first.signal(t, syscall.SIGKILL, 10*time.Second)
		h.intercept.Store(nil)
		h.finishAfterKill(sc)
	})
}

// finishAfterKill checks that beanstalkd took the dead worker's jobs back,
// runs a second worker process to the end and checks the list.
func (h *harness) finishAfterKill(sc scenario) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Reserved == 0, fmt.Sprintf("tube %+v: the killed worker's jobs must come back", s)
	})
	h.emu.SetLatency(0)
	second := h.startChild(childSpec{Concurrency: 2, MaxEvents: 40})
	s := h.waitDrained(30 * time.Second)
	if err := second.signal(h.t, syscall.SIGTERM, 30*time.Second); err != nil {
		h.t.Errorf("second worker: %v", err)
	}
	if s.Buried != 0 {
		h.t.Errorf("tube %+v: nothing may be buried", s)
	}
	if log, _ := os.ReadFile(second.log); !strings.Contains(string(log), "rechecked addresses after an unconfirmed push") {
		h.t.Error("the second worker never rechecked the addresses of the killed worker's push")
	}
	h.check(sc)
}

// SIGTERM lets the batch in flight finish within the grace period; past
// it, the batch's jobs are released. Either way the process exits cleanly
// and leaves no job reserved.
func TestWorkerProcessSIGTERM(t *testing.T) {
	t.Parallel()
	t.Run("batch finished within the grace period", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		ts := h.addTenant(acme)
		sc := newScenario(t, acme, 20)
		h.putAll(sc.bodies[:1]) // five adds, one batch
		h.emu.SetLatency(2 * time.Second)
		c := h.startChild(childSpec{Concurrency: 1})
		eventually(t, 20*time.Second, func() (bool, string) {
			inFlight, _ := h.inFlightImports()
			return inFlight == 1, "no import in flight"
		})
		if err := c.signal(t, syscall.SIGTERM, 20*time.Second); err != nil {
			t.Fatalf("worker exit: %v", err)
		}
		s := h.tubeStats()
		if s.Reserved != 0 || s.Ready != 0 || len(h.members(ts)) != 5 {
			t.Fatalf("tube %+v, members %v: the batch in flight must finish and its jobs be deleted", s, h.members(ts))
		}
	})
	t.Run("grace period over", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		ts := h.addTenant(acme)
		sc := newScenario(t, acme, 20)
		h.putAll(sc.bodies[:1])
		h.emu.SetLatency(30 * time.Second)
		c := h.startChild(childSpec{Concurrency: 1, ShutdownGrace: 300 * time.Millisecond, RecheckDelay: time.Minute})
		eventually(t, 20*time.Second, func() (bool, string) {
			inFlight, _ := h.inFlightImports()
			return inFlight == 1, "no import in flight"
		})
		if err := c.signal(t, syscall.SIGTERM, 10*time.Second); err != nil {
			t.Fatalf("worker exit: %v", err)
		}
		// The unfinished job is ready again; the recheck job put before its
		// push waits for its delay.
		s := h.tubeStats()
		if s.Reserved != 0 || s.Ready != 1 || s.Delayed != 1 || s.Buried != 0 || len(h.members(ts)) != 0 {
			t.Fatalf("tube %+v, members %v: the unfinished job must be released, ready at once, unapplied", s, h.members(ts))
		}
	})
}

// beanstalkd killed with SIGKILL while jobs are pending and a batch is in
// flight, down for 5 s, then restarted on its binlog: every acknowledged
// job is processed, and the batch in flight gives up settling at once
// rather than waiting for beanstalkd job by job.
func TestBeanstalkdKilledAndRestarted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bs, err := testenv.StartBeanstalkd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bs.Stop)
	h := newHarness(t, harnessOptions{addr: bs.Addr()})
	h.addTenant(acme)
	sc := newScenario(t, acme, 200)
	h.putAll(sc.bodies) // each put answered INSERTED: acknowledged
	h.emu.SetLatency(300 * time.Millisecond)
	cfg := h.config()
	cfg.MaxEvents = 20
	h.start(cfg)
	eventually(t, 20*time.Second, func() (bool, string) {
		inFlight, done := h.inFlightImports()
		return done >= 2 && inFlight >= 1, fmt.Sprintf("%d imports done, %d in flight", done, inFlight)
	})
	bs.Kill()
	time.Sleep(5 * time.Second)
	if err := bs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.emu.SetLatency(0)
	s := h.waitDrained(60 * time.Second)
	if s.Buried != 0 {
		t.Fatalf("tube %+v: nothing may be buried", s)
	}
	if !strings.Contains(h.logs.String(), "lost the beanstalkd connection") {
		t.Error("the batch in flight never noticed the lost connection")
	}
	h.check(sc)
}

// MariaDB stopped for 10 s under load: the worker retries with backoff,
// and the backlog drains once it is back, nothing buried.
func TestMariaDBStoppedForTenSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := testenv.StartMariaDB(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Stop)
	h := newHarness(t, harnessOptions{dsn: privateDatabase(t, db.DSN())})
	h.addTenant(acme)
	sc := newScenario(t, acme, 150)
	half := len(sc.bodies) / 2
	h.putAll(sc.bodies[:half])
	cfg := h.config()
	cfg.MaxEvents = 20
	h.start(cfg)
	h.waitDrained(30 * time.Second)

	db.Stop()
	h.putAll(sc.bodies[half:])
	time.Sleep(10 * time.Second)
	if err := db.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := h.waitDrained(90 * time.Second)
	if s.Buried != 0 {
		t.Fatalf("tube %+v: nothing may be buried", s)
	}
	if !strings.Contains(h.logs.String(), "transient failure") {
		t.Fatal("the worker never saw MariaDB down: the test did not test anything")
	}
	h.check(sc)
}

// privateDatabase creates a database on a private server and returns its DSN.
func privateDatabase(t *testing.T, serverDSN string) string {
	t.Helper()
	admin, err := sql.Open("mysql", serverDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE worker CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = "worker"
	return cfg.FormatDSN()
}

// With a fifth of Unisender's answers transient errors, the lists converge
// and nothing is buried.
func TestUnisenderTransientErrorsConverge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	var scenarios []scenario
	for i := range 3 {
		key := tenant.Key{Namespace: "flaky", Name: fmt.Sprintf("t%d", i)}
		h.addTenant(key)
		sc := newScenario(t, key, 100)
		scenarios = append(scenarios, sc)
		h.putAll(sc.bodies)
	}
	h.emu.SetTransientErrorRate(0.2, unisenderemu.TransientMixed)
	cfg := h.config()
	cfg.MaxEvents = 25
	cfg.BackoffMax = 2 * time.Second
	h.start(cfg)
	s := h.waitDrained(60 * time.Second)
	if s.Buried != 0 {
		t.Fatalf("tube %+v: nothing may be buried", s)
	}
	failed := 0
	for _, r := range h.emu.Stats().Requests {
		if r.ErrorCode == "retry_later" || r.HTTPStatus == http.StatusServiceUnavailable {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no transient error was served: the test did not test anything")
	}
	for _, sc := range scenarios {
		h.check(sc)
		if key := h.resolver.tenants[sc.key].APIKey; strings.Contains(h.logs.String(), key) {
			t.Errorf("the worker log shows %s's API key", sc.key)
		}
	}
	t.Logf("%d transient errors served", failed)
}
