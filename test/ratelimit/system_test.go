package ratelimit

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
)

// system is the whole operator as `make dev` runs it — real processes of
// the binary built from this checkout, MariaDB, beanstalkd, envtest and the
// sandbox — seen from outside through the emulators' admin APIs,
// beanstalkd and the processes' /metrics.
type system struct {
	env *devenv.Env
}

// start brings the system up with n worker processes and the sandbox
// account seeded with contacts.
func start(t *testing.T, ctx context.Context, n, contacts int) *system {
	t.Helper()
	env := devtest.Start(t, ctx, devenv.Options{
		Sandbox: true, SandboxAccessTokenTTL: time.Hour, SeedContacts: contacts, Workers: n,
	})
	if len(env.WorkerNames) != n {
		t.Fatalf("devenv started workers %v, want %d", env.WorkerNames, n)
	}
	for _, name := range env.WorkerNames {
		if p := env.Processes[name]; p == nil || !p.Running() {
			t.Fatalf("worker process %s is not running", name)
		}
	}
	return &system{env: env}
}

type adminContact struct {
	ID     int64    `json:"id,omitempty"`
	Type   string   `json:"type,omitempty"`
	Name   string   `json:"name,omitempty"`
	Emails []string `json:"emails"`
	Phones []string `json:"phones"`
}

func (s *system) contactsURL() string {
	return s.env.KommoURL + "/_admin/accounts/" + devenv.SandboxSubdomain + "/contacts"
}

// personIDs are the ids of the account's persons (companies are not
// synced), in the emulator's order.
func (s *system) personIDs(t *testing.T) []int64 {
	var contacts []adminContact
	getJSON(t, s.contactsURL(), &contacts)
	var ids []int64
	for _, c := range contacts {
		if c.Type != "company" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

func (s *system) webhookCount(t *testing.T) int {
	var hooks []kommoemu.Webhook
	getJSON(t, s.env.KommoURL+"/_admin/accounts/"+devenv.SandboxSubdomain+"/webhooks", &hooks)
	return len(hooks)
}

// changes counts the contacts changed through the sandbox.
type changes struct {
	updated, created, deleted int
	span                      time.Duration
	deletedAt                 map[int64]time.Time // seeded contact id → when it was deleted
}

func (c changes) total() int { return c.updated + c.created + c.deleted }

// changeDuringImport changes contacts through the sandbox's admin API, one
// every changeEvery, in turn updating a seeded contact (from the front of
// seeded), creating one and deleting a seeded one (from the back), until
// the import completes or maxChanges were made. Kommo sends a webhook for
// each; the workers read the contacts it names from Kommo.
func (s *system) changeDuringImport(t *testing.T, ctx context.Context, seeded []int64) changes {
	t.Helper()
	c := changes{deletedAt: map[int64]time.Time{}}
	begin := time.Now()
	next := begin
	for i := 0; i < maxChanges && ctx.Err() == nil; i++ {
		if i%10 == 0 && s.importCompleted(ctx) {
			break
		}
		switch i % 3 {
		case 0:
			id := seeded[c.updated]
			s.send(t, http.MethodPut, s.contactsURL()+"/"+strconv.FormatInt(id, 10),
				adminContact{Name: fmt.Sprintf("Changed %d", id), Emails: []string{fmt.Sprintf("ratelimit-changed-%d@example.com", id)}}, nil)
			c.updated++
		case 1:
			s.send(t, http.MethodPost, s.contactsURL(),
				adminContact{Name: fmt.Sprintf("New %d", c.created), Emails: []string{fmt.Sprintf("ratelimit-new-%d@example.com", c.created)}}, nil)
			c.created++
		case 2:
			id := seeded[len(seeded)-1-c.deleted]
			c.deletedAt[id] = time.Now()
			s.send(t, http.MethodDelete, s.contactsURL()+"/"+strconv.FormatInt(id, 10), nil, nil)
			c.deleted++
		}
		next = next.Add(changeEvery)
		time.Sleep(time.Until(next))
	}
	c.span = time.Since(begin)
	return c
}

func (s *system) importCompleted(ctx context.Context) bool {
	st, err := s.env.SampleBindingStatus(ctx)
	return err == nil && st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted
}

// waitImported waits for the initial import to complete and returns its
// status.
func (s *system) waitImported(t *testing.T, ctx context.Context) v1alpha1.ImportStatus {
	t.Helper()
	var last v1alpha1.UnisenderBindingStatus
	devtest.WaitUntil(t, "the initial import to complete", 120*time.Second, func() (bool, string) {
		st, err := s.env.SampleBindingStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		last = st
		if st.Import == nil {
			return false, "no import status"
		}
		return st.Import.Phase == v1alpha1.ImportCompleted && st.Import.StartedAt != nil && st.Import.FinishedAt != nil,
			fmt.Sprintf("%+v", *st.Import)
	})
	return *last.Import
}

// waitDrained ends the sandbox's batch windows, waits until its webhooks
// are delivered (the webhook server queues a body's jobs before it
// answers), then until the queue holds no job ready, reserved or delayed.
func (s *system) waitDrained(t *testing.T, ctx context.Context) {
	t.Helper()
	s.send(t, http.MethodPost, s.env.KommoURL+"/_admin/flush", nil, nil)
	s.send(t, http.MethodPost, s.env.KommoURL+"/_admin/wait-idle", map[string]string{"timeout": "30s"}, nil)
	c, err := queue.NewConsumer(s.env.Beanstalkd.Addr(), []string{worker.DefaultTube}, queue.ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var st queue.TubeStats
	devtest.WaitUntil(t, "the queue to drain", 90*time.Second, func() (bool, string) {
		st, err = c.StatsTube(ctx, worker.DefaultTube)
		if err != nil {
			return false, err.Error()
		}
		return st.Ready+st.Reserved+st.Delayed == 0, fmt.Sprintf("%+v", st)
	})
	if st.Buried != 0 {
		t.Errorf("%d jobs buried (dead letters)", st.Buried)
	}
	t.Logf("queue drained: %d jobs in all", st.TotalJobs)
}

// waitConverged waits until the Unisender list holds exactly the e-mails
// of Kommo's live persons, the webhooks' changes applied; it returns what
// still differs when within passes first.
func (s *system) waitConverged(t *testing.T, ctx context.Context, within time.Duration) (onlyKommo, onlyUnisender []string) {
	t.Helper()
	st, err := s.env.SampleBindingStatus(ctx)
	if err != nil || st.ListID == 0 {
		t.Fatalf("no list id in the binding status (%v)", err)
	}
	for deadline := time.Now().Add(within); ; time.Sleep(time.Second) {
		want, got := s.kommoEmails(t), s.listEmails(t, st.ListID)
		if slices.Equal(want, got) {
			return nil, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return devtest.Minus(want, got), devtest.Minus(got, want)
		}
	}
}

func (s *system) kommoEmails(t *testing.T) []string {
	var contacts []adminContact
	getJSON(t, s.contactsURL(), &contacts)
	seen := map[string]bool{}
	for _, c := range contacts {
		if c.Type == "company" {
			continue
		}
		for _, e := range c.Emails {
			seen[strings.ToLower(strings.TrimSpace(e))] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func (s *system) listEmails(t *testing.T, listID int64) []string {
	var members []struct {
		Email      string `json:"email"`
		ListStatus string `json:"list_status"`
	}
	getJSON(t, fmt.Sprintf("%s/_admin/lists/%d/members", s.env.UnisenderURL, listID), &members)
	seen := map[string]bool{}
	for _, m := range members {
		if m.ListStatus == "active" {
			seen[m.Email] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// accountLog is the emulator's request log of the sandbox account.
func (s *system) accountLog(t *testing.T) []kommoemu.LogEntry {
	var stats kommoemu.Stats
	getJSON(t, s.env.KommoURL+"/_admin/stats", &stats)
	if stats.LogDropped > 0 {
		t.Fatalf("the emulator dropped %d log entries: the log is incomplete", stats.LogDropped)
	}
	var all []kommoemu.LogEntry
	getJSON(t, s.env.KommoURL+"/_admin/log", &all)
	var out []kommoemu.LogEntry
	for _, e := range all {
		if e.Account == devenv.SandboxSubdomain {
			out = append(out, e)
		}
	}
	return out
}

// workerMetrics reads each worker process's batches and applied jobs.
func (s *system) workerMetrics(t *testing.T) string {
	var parts []string
	for _, name := range s.env.WorkerNames {
		m, err := devtest.Scrape(s.env.MetricsURLs[name])
		if err != nil {
			t.Logf("metrics of %s: %v", name, err)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f/%.0f", name,
			m["kommo_unisender_worker_batches_total"], m[`kommo_unisender_worker_jobs_total{outcome="applied"}`]))
	}
	return strings.Join(parts, ", ")
}

// hasFilterID reports whether a Kommo query reads contacts by id.
func hasFilterID(rawQuery string) bool {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return strings.Contains(rawQuery, "filter%5Bid%5D") || strings.Contains(rawQuery, "filter[id]")
	}
	for k := range q {
		if strings.HasPrefix(k, "filter[id]") {
			return true
		}
	}
	return false
}

func (s *system) send(t *testing.T, method, u string, body, out any) {
	t.Helper()
	if err := devenv.SandboxJSON(method, u, body, out); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	if err := devenv.SandboxJSON(http.MethodGet, u, nil, v); err != nil {
		t.Fatal(err)
	}
}
