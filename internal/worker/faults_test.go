package worker_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// scenario is a tenant's history in Kommo: contacts added (delivered
// first), then a third of them moved to a new address and every seventh
// deleted (delivered after), five contacts per job.
type scenario struct {
	ts       tenantSpec
	contacts []kommo.Contact
	adds     [][]byte // jobs naming the added contacts
	gone     []string // addresses that left Kommo: excluded from the list, if they reached it
}

// newScenario adds the contacts in Kommo and builds the jobs naming them.
func (h *harness) newScenario(key tenant.Key, contacts int) *scenario {
	h.t.Helper()
	sc := &scenario{ts: h.resolver.spec(key)}
	var ids []int64
	for i := 1; i <= contacts; i++ {
		c := h.kommoAdd(sc.ts, fmt.Sprintf("c%d@example.com", i))
		sc.contacts = append(sc.contacts, c)
		ids = append(ids, c.ID)
	}
	sc.adds = jobsOf(h.t, sc.ts, kommo.ActionAdd, ids, 5)
	return sc
}

// change moves and deletes contacts in Kommo and returns the jobs naming
// them.
func (sc *scenario) change(h *harness) [][]byte {
	h.t.Helper()
	var moved, deleted []int64
	for i, c := range sc.contacts {
		switch n := i + 1; {
		case n%7 == 0:
			h.kommoDelete(sc.ts, c.ID)
			deleted = append(deleted, c.ID)
			sc.gone = append(sc.gone, c.Emails[0])
		case n%3 == 0:
			sc.gone = append(sc.gone, c.Emails[0])
			c.Emails = []string{fmt.Sprintf("c%d-new@example.com", n)}
			h.kommoUpdate(sc.ts, c)
			moved = append(moved, c.ID)
		}
	}
	sort.Strings(sc.gone)
	return append(jobsOf(h.t, sc.ts, kommo.ActionUpdate, moved, 5), jobsOf(h.t, sc.ts, kommo.ActionDelete, deleted, 5)...)
}

// jobsOf names the ids with one action, per jobs of perJob contacts.
func jobsOf(t testing.TB, ts tenantSpec, action kommo.Action, ids []int64, perJob int) [][]byte {
	var out [][]byte
	for chunk := range slices.Chunk(ids, perJob) {
		out = append(out, contactsJob(t, ts, time.Now(), refs(action, chunk...)...))
	}
	return out
}

// check asserts the list holds exactly the addresses Kommo's contacts hold
// now and has excluded only addresses that left Kommo: nothing lost,
// nothing excluded wrongly, nobody revived, nothing buried.
func (h *harness) check(sc *scenario) {
	h.t.Helper()
	ts := sc.ts
	if got, want := h.members(ts), h.kommoWant(ts); !reflect.DeepEqual(got, want) {
		h.t.Errorf("%s: active members (%d) differ from Kommo's live addresses (%d):\n got %v\nwant %v", ts.Key, len(got), len(want), got, want)
	}
	for _, m := range h.emu.ListMembers(ts.APIKey, ts.ListID) {
		if m.ListStatus != unisenderemu.ListExcluded {
			continue
		}
		if _, found := slices.BinarySearch(sc.gone, m.Email); !found {
			h.t.Errorf("%s: %s was excluded, but a live contact holds it", ts.Key, m.Email)
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
// the store committed it — loses nothing and does nothing twice: the
// recheck job put before the push waits in the tube, another worker
// process finishes the jobs (Kommo having changed meanwhile) and the list
// ends exactly as Kommo holds it.
func TestWorkerProcessKilledMidBatch(t *testing.T) {
	t.Parallel()
	t.Run("during the Unisender call", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		h.addTenant(acme)
		sc := h.newScenario(acme, 120)
		h.putAll(sc.adds)
		h.emu.SetLatency(time.Second)
		first := h.startChild(childSpec{Concurrency: 2, MaxEvents: 40, RecheckDelay: 5 * time.Second})
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
		sc := h.newScenario(acme, 120)
		h.putAll(sc.adds)
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
		first := h.startChild(childSpec{Concurrency: 2, MaxEvents: 40, RecheckDelay: 5 * time.Second})
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

// finishAfterKill checks that beanstalkd took the dead worker's jobs back
// and holds the recheck of its interrupted push, changes Kommo and puts
// the jobs naming the changes, runs a second worker process to the end and
// checks the list.
func (h *harness) finishAfterKill(sc *scenario) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Reserved == 0, fmt.Sprintf("tube %+v: the killed worker's jobs must come back", s)
	})
	if s := h.tubeStats(); s.Delayed < 1 {
		h.t.Errorf("tube %+v: the recheck job put before the interrupted push is missing", s)
	}
	h.emu.SetLatency(0)
	h.putAll(sc.change(h))
	second := h.startChild(childSpec{Concurrency: 2, MaxEvents: 40})
	s := h.waitDrained(30 * time.Second)
	if err := second.signal(h.t, syscall.SIGTERM, 30*time.Second); err != nil {
		h.t.Errorf("second worker: %v", err)
	}
	if s.Buried != 0 {
		h.t.Errorf("tube %+v: nothing may be buried", s)
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
		sc := h.newScenario(acme, 20)
		h.putAll(sc.adds[:1]) // five adds, one batch
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
		sc := h.newScenario(acme, 20)
		h.putAll(sc.adds[:1])
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
	sc := h.newScenario(acme, 200)
	h.putAll(sc.adds) // each put answered INSERTED: acknowledged
	h.emu.SetLatency(300 * time.Millisecond)
	cfg := h.config()
	cfg.MaxEvents = 20
	h.start(cfg)
	eventually(t, 20*time.Second, func() (bool, string) {
		inFlight, done := h.inFlightImports()
		return done >= 2 && inFlight >= 1, fmt.Sprintf("%d imports done, %d in flight", done, inFlight)
	})
	h.putAll(sc.change(h))
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
	sc := h.newScenario(acme, 150)
	h.putAll(sc.adds)
	cfg := h.config()
	cfg.MaxEvents = 20
	h.start(cfg)
	h.waitDrained(30 * time.Second)

	db.Stop()
	h.putAll(sc.change(h))
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
// and nothing is buried: the contacts are added, then changed in Kommo
// once the adds are through, so that the errors strike removals too.
func TestUnisenderTransientErrorsConverge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	var scenarios []*scenario
	for i := range 3 {
		key := tenant.Key{Namespace: "flaky", Name: fmt.Sprintf("t%d", i)}
		h.addTenant(key)
		sc := h.newScenario(key, 100)
		scenarios = append(scenarios, sc)
		h.putAll(sc.adds)
	}
	h.emu.SetTransientErrorRate(0.2, unisenderemu.TransientMixed)
	cfg := h.config()
	cfg.MaxEvents = 25
	cfg.BackoffMax = 2 * time.Second
	h.start(cfg)
	h.waitDrained(60 * time.Second)
	for _, sc := range scenarios {
		h.putAll(sc.change(h))
	}
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
		if strings.Contains(h.logs.String(), sc.ts.APIKey) || strings.Contains(h.logs.String(), sc.ts.KommoToken) {
			t.Errorf("the worker log shows %s's API key or Kommo token", sc.ts.Key)
		}
	}
	t.Logf("%d transient errors served", failed)
}

// Kommo answering 429, or 503, to every request for 30 s in the middle of
// a burst: the reads fail, the jobs are released with backoff (the client
// having retried), and once Kommo answers again the list converges with no
// resync: nothing lost, nothing buried, and nothing done twice — each
// address of a created contact imported into the list exactly once, each
// address of a deleted contact taken out exactly once.
func TestKommoRateLimitedOrDownMidBurst(t *testing.T) {
	t.Parallel()
	for _, bc := range []struct {
		name  string
		fault func(*kommoemu.Server, time.Duration)
	}{
		{"429", (*kommoemu.Server).Force429For},
		{"503", (*kommoemu.Server).Force5xxFor},
	} {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			imports := h.recordImports()
			ts := h.addTenant(acme)
			cfg := h.config()
			cfg.BackoffMax = 5 * time.Second
			h.start(cfg)

			// Before the burst: 60 contacts, synced.
			var before []kommo.Contact
			for i := range 60 {
				before = append(before, h.kommoAdd(ts, fmt.Sprintf("before%02d@example.com", i)))
			}
			for chunk := range slices.Chunk(before, 10) {
				ids := make([]int64, len(chunk))
				for i, c := range chunk {
					ids[i] = c.ID
				}
				h.putContacts(ts, kommo.ActionAdd, ids...)
			}
			h.waitDrained(30 * time.Second)

			// The burst: 40 steps 500 ms apart, each creating 8 contacts and
			// deleting one of the earlier ones in Kommo and delivering them
			// (a third of the deliveries twice); Kommo fails from step 10.
			var created []kommo.Contact
			var deleted []string
			for step := range 40 {
				if step == 10 {
					bc.fault(h.kommo, 30*time.Second)
				}
				var named []queue.ContactRef
				for i := range 8 {
					c := h.kommoAdd(ts, fmt.Sprintf("burst%02d-%d@example.com", step, i))
					created = append(created, c)
					named = append(named, ref(c.ID, kommo.ActionAdd))
				}
				if step%2 == 0 {
					gone := before[step/2]
					h.kommoDelete(ts, gone.ID)
					deleted = append(deleted, gone.Emails[0])
					named = append(named, ref(gone.ID, kommo.ActionDelete))
				}
				for i, r := range named {
					body := contactsJob(t, ts, time.Now(), r)
					h.put(body)
					if i%3 == 0 {
						h.put(body) // Kommo delivered it again
					}
				}
				time.Sleep(500 * time.Millisecond)
			}
			s := h.waitDrained(2 * time.Minute)

			if s.Buried != 0 || len(h.deadLetters()) != 0 {
				t.Fatalf("tube %+v, dead letters %s: nothing may be buried", s, describe(h.deadLetters()))
			}
			st := h.kommo.Stats()
			if st.Statuses[http.StatusTooManyRequests]+st.Statuses[http.StatusServiceUnavailable] == 0 ||
				!strings.Contains(h.logs.String(), "transient failure") {
				t.Fatalf("Kommo statuses %v: the worker never met the fault: the test tested nothing", st.Statuses)
			}
			if got, want := h.members(ts), h.kommoWant(ts); !reflect.DeepEqual(got, want) {
				t.Fatalf("members (%d) differ from Kommo's addresses (%d):\n got %v\nwant %v", len(got), len(want), got, want)
			}
			upserts, removals := imports.counts()
			for _, c := range append(slices.Clone(before), created...) {
				if e := emailaddr.Normalize(c.Emails[0]); upserts[e] != 1 {
					t.Errorf("%s imported into the list %d times, want once", e, upserts[e])
				}
			}
			for _, e := range deleted {
				if removals[e] != 1 {
					t.Errorf("%s taken out of the list %d times, want once", e, removals[e])
				}
			}
			if len(removals) != len(deleted) {
				t.Errorf("%d addresses taken out of the list, want the %d deleted contacts'", len(removals), len(deleted))
			}
			t.Logf("Kommo statuses %v; %d contacts created, %d deleted during the burst", st.Statuses, len(created), len(deleted))
		})
	}
}
