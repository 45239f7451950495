package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
)

var acme = tenant.Key{Namespace: "acme", Name: "main"}

// Kommo's routes as the emulator's request log names them.
const (
	listRoute = "GET /api/v4/contacts"      // filter[id][] reads
	readRoute = "GET /api/v4/contacts/{id}" // confirmations that a contact is gone
)

// fixturePayload parses one of the shared webhook samples as the webhook
// server does.
func fixturePayload(t *testing.T, name string) *kommo.WebhookPayload {
	t.Helper()
	form, err := fixtures.KommoWebhook(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kommo.ParseWebhook(form)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// Every shared fixture, through beanstalkd, the worker, MariaDB and both
// emulators: Kommo holds what the sample announces, the job names the
// sample's contacts as the webhook server names them, and the list ends as
// Kommo holds the contacts. The update is also put as a job of the earlier
// format (the whole parsed webhook), which names the same contact.
func TestFixturesThroughTheQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	h.start(h.config())

	add := fixturePayload(t, fixtures.AddContact)
	h.kommoCreate(ts, add.Events[0].Contact)
	h.put(contactsJob(t, ts, time.Now(), webhookRefs(add)...))
	h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"maria.lopez@example.com"}) {
		t.Fatalf("after add: members = %v", got)
	}
	if m, _ := h.member(ts, "maria.lopez@example.com"); m.Fields["Name"] != "Maria Lopez" || m.Phone != "+34611222333" {
		t.Fatalf("after add: member = %+v, want the name and the phone", m)
	}

	update := fixturePayload(t, fixtures.UpdateContactAndCompany)
	h.kommoUpdate(ts, update.Events[0].Contact)
	h.kommoCreate(ts, update.Events[1].Contact) // the company
	refs := webhookRefs(update)
	if len(refs) != 1 {
		t.Fatalf("the update sample names %d contacts besides its company, want 1", len(refs))
	}
	// A job naming the company too (as a forged one might): Kommo's
	// contact listing does not return companies, so it is not synced.
	h.put(contactsJob(t, ts, time.Now(), append(refs, ref(update.Events[1].Contact.ID, kommo.ActionUpdate))...))
	h.put(envelope(t, acme, update, time.Now()))
	h.waitDrained(20 * time.Second)
	want := []string{"m.lopez@example.org", "maria@lopez-garcia.example"}
	if got := h.members(ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update: members = %v, want %v (old address out, company not synced)", got, want)
	}
	if m, _ := h.member(ts, "maria.lopez@example.com"); m.ListStatus != unisenderemu.ListExcluded {
		t.Fatalf("the old address should be excluded from the list: %+v", m)
	}
	if m, _ := h.member(ts, "m.lopez@example.org"); m.Fields["Name"] != "Maria Lopez Garcia" {
		t.Fatalf("after update: member = %+v, want Kommo's new name", m)
	}
	if _, ok := h.member(ts, "office@lopeztrading.example"); ok {
		t.Fatal("the company's address reached the list")
	}

	remove := fixturePayload(t, fixtures.DeleteContact)
	h.kommoDelete(ts, remove.Events[0].Contact.ID)
	h.put(contactsJob(t, ts, time.Now(), webhookRefs(remove)...))
	s := h.waitDrained(20 * time.Second)
	if got := h.members(ts); len(got) != 0 {
		t.Fatalf("after delete: members = %v, want none", got)
	}
	if s.Buried != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("buried %d, dead letters %v: want none", s.Buried, h.deadLetters())
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		t.Fatalf("%d revival attempts", n)
	}
	if n := h.kommoRequests(ts, readRoute); n != 1 {
		t.Errorf("%d single-contact reads, want 1: the deleted contact confirmed gone", n)
	}
}

// Jobs that cannot be read are buried with a dead letter saying why; good
// jobs of the same batch are applied.
func TestPoisonJobsAreBuriedWithAReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	tooMany := make([]queue.ContactRef, queue.MaxContactsPerJob+1)
	for i := range tooMany {
		tooMany[i] = ref(int64(1000+i), kommo.ActionUpdate)
	}
	tooManyRaw, err := json.Marshal(queue.ContactsPayload{Contacts: tooMany})
	if err != nil {
		t.Fatal(err)
	}
	const head = `{"v":1,"tenant":"acme/main","received_at":"2026-01-01T00:00:00Z",`
	poison := map[string][]byte{
		"not JSON":                []byte("garbage \x00\x01"),
		"unknown version":         []byte(`{"v":99,"tenant":"acme/main","kind":"contacts","received_at":"2026-01-01T00:00:00Z","payload":{}}`),
		"unknown kind":            []byte(head + `"kind":"mystery","payload":{}}`),
		"bad tenant":              []byte(`{"v":1,"tenant":"not a tenant","kind":"contacts","received_at":"2026-01-01T00:00:00Z","payload":{}}`),
		"contacts: bad payload":   []byte(head + `"kind":"contacts","payload":"x"}`),
		"contacts: none":          []byte(head + `"kind":"contacts","payload":{"contacts":[]}}`),
		"contacts: id 0":          []byte(head + `"kind":"contacts","payload":{"contacts":[{"id":0,"action":"add"}]}}`),
		"contacts: too many":      []byte(head + `"kind":"contacts","payload":` + string(tooManyRaw) + `}`),
		"old webhook: payload":    []byte(head + `"kind":"webhook","payload":{"Events":"x"}}`),
		"old webhook: contact id": []byte(head + `"kind":"webhook","payload":{"Events":[{"Action":"add","Contact":{"ID":0}}]}}`),
	}
	wantReason := map[string]string{
		"not JSON": "bad job envelope", "unknown version": "version 99", "unknown kind": `kind "mystery"`,
		"bad tenant": "invalid tenant", "contacts: bad payload": "contacts payload",
		"contacts: none": "names 0 contacts", "contacts: id 0": "contact id 0 is not a Kommo id",
		"contacts: too many":   fmt.Sprintf("names %d contacts", queue.MaxContactsPerJob+1),
		"old webhook: payload": "webhook payload", "old webhook: contact id": "contact id 0",
	}
	ids := map[uint64]string{}
	for name, body := range poison {
		ids[h.put(body)] = name
	}
	good := h.kommoAdd(ts, "good@example.com")
	h.putContacts(ts, kommo.ActionAdd, good.ID)
	h.start(h.config())

	s := h.waitDrained(20 * time.Second)
	if s.Buried != len(poison) {
		t.Fatalf("buried = %d, want %d", s.Buried, len(poison))
	}
	letters := h.deadLetters()
	if len(letters) != len(poison) {
		t.Fatalf("%d dead letters, want %d: %s", len(letters), len(poison), describe(letters))
	}
	for _, d := range letters {
		name, ok := ids[d.JobID]
		if !ok {
			t.Fatalf("dead letter for unknown job %d", d.JobID)
		}
		if !strings.Contains(d.Reason, wantReason[name]) || string(d.Body) != string(poison[name]) || d.Tube != h.tube {
			t.Errorf("%s: dead letter %s; want reason containing %q and the original body", name, describe([]store.DeadLetter{d}), wantReason[name])
		}
		// The tenant is recorded when the envelope names a valid one.
		wantTenant := acme.String()
		if name == "not JSON" || name == "unknown version" || name == "unknown kind" || name == "bad tenant" {
			wantTenant = ""
		}
		if d.Tenant != wantTenant {
			t.Errorf("%s: tenant %q recorded, want %q", name, d.Tenant, wantTenant)
		}
	}
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"good@example.com"}) {
		t.Fatalf("members = %v: the good job must be applied", got)
	}
}

func TestTenantGoneDropsItsJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "a@example.com")
	h.resolver.set(acme, worker.ErrTenantGone)
	h.putContacts(ts, kommo.ActionAdd, c.ID)
	h.start(h.config())
	s := h.waitDrained(10 * time.Second)
	if s.Buried != 0 || len(h.members(ts)) != 0 || h.emu.Stats().Calls["importContacts"] != 0 {
		t.Fatalf("tube %+v, members %v: the job of a gone tenant must be deleted unapplied", s, h.members(ts))
	}
	if n := len(h.kommo.RequestLog()); n != 0 {
		t.Fatalf("%d Kommo requests for a gone tenant, want none", n)
	}
}

// A suspended binding's jobs are dropped at once, not parked again and
// again until MaxJobAge: lifting suspend resyncs the tenant.
func TestSuspendedBindingDropsItsJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "suspended@example.com")
	h.resolver.set(acme, fmt.Errorf("%w: UnisenderBinding is suspended", worker.ErrTenantSuspended))
	h.putContacts(ts, kommo.ActionAdd, c.ID)
	cfg := h.config()
	cfg.NotReadyDelay = time.Hour
	h.start(cfg)
	s := h.waitDrained(10 * time.Second)
	if s.Buried != 0 || s.TotalJobs != 1 {
		t.Fatalf("tube %+v: want the one job deleted, neither parked (re-put) nor buried", s)
	}
	if got := h.members(ts); len(got) != 0 {
		t.Fatalf("members = %v: a suspended binding's events are not applied", got)
	}
}

// A not-ready tenant's jobs wait (parked with a delay, their release count
// untouched) and apply once the tenant is ready.
func TestNotReadyTenantParksItsJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "wait@example.com")
	h.resolver.set(acme, worker.ErrTenantNotReady)
	h.putContacts(ts, kommo.ActionAdd, c.ID)
	cfg := h.config()
	cfg.NotReadyDelay = 2 * time.Second
	h.start(cfg)
	eventually(t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Delayed == 1, fmt.Sprintf("tube %+v", s)
	})
	job := h.peekDelayed()
	if job.Releases != 0 {
		t.Fatalf("parked job: releases = %d; parking must not count as a failed attempt", job.Releases)
	}
	h.resolver.set(acme, nil)
	h.waitDrained(15 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"wait@example.com"}) {
		t.Fatalf("members = %v after the tenant became ready", got)
	}
}

// Unisender refusing the tenant's key parks the jobs for a long delay;
// they are not buried: the user fixes the key.
func TestInvalidKeyParksInsteadOfBurying(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "a@example.com")
	h.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "invalid_api_key", Message: "Invalid API key"})
	h.putContacts(ts, kommo.ActionAdd, c.ID)
	cfg := h.config()
	cfg.TenantFailureDelay = time.Hour
	h.start(cfg)
	eventually(t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Delayed >= 1 && s.Reserved == 0 && strings.Contains(h.logs.String(), "refused the tenant's API key"),
			fmt.Sprintf("tube %+v", s)
	})
	if s := h.tubeStats(); s.Buried != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("tube %+v: a refused key must not bury the events", s)
	}
	if strings.Contains(h.logs.String(), ts.APIKey) || strings.Contains(h.logs.String(), ts.KommoToken) {
		t.Fatalf("the log shows a secret:\n%s", h.logs.String())
	}
}

// Kommo refusing the tenant's access token parks its jobs briefly (the
// manager refreshes tokens; the worker never does), and a blocked account
// parks them for long; neither spends the jobs' attempts, and both apply
// once Kommo answers again.
func TestKommoRefusalsParkTheJobs(t *testing.T) {
	t.Parallel()
	t.Run("token refused", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		ts := h.addTenant(acme)
		c := h.kommoAdd(ts, "a@example.com")
		if err := h.kommo.RevokeTokens(ts.Subdomain); err != nil {
			t.Fatal(err)
		}
		h.putContacts(ts, kommo.ActionAdd, c.ID)
		cfg := h.config()
		cfg.NotReadyDelay = 2 * time.Second
		h.start(cfg)
		h.waitParked("Kommo refused the access token")
		if job := h.peekDelayed(); job.Releases != 0 {
			t.Fatalf("parked job: releases = %d; waiting for a token must not count as a failed attempt", job.Releases)
		}
		// The manager stores a new token; the worker's reader uses it.
		token, err := h.kommo.IssueLongLivedToken(ts.Subdomain, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ts.KommoToken = token
		h.resolver.add(ts)
		s := h.waitDrained(20 * time.Second)
		if got := h.members(ts); s.Buried != 0 || !reflect.DeepEqual(got, []string{"a@example.com"}) {
			t.Fatalf("tube %+v, members %v: the job must apply with the new token", s, got)
		}
		if strings.Contains(h.logs.String(), token) {
			t.Fatal("the log shows the access token")
		}
	})
	t.Run("account blocked", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		ts := h.addTenant(acme)
		c := h.kommoAdd(ts, "a@example.com")
		if err := h.kommo.SetBlocked(ts.Subdomain, true); err != nil {
			t.Fatal(err)
		}
		h.putContacts(ts, kommo.ActionAdd, c.ID)
		cfg := h.config()
		cfg.TenantFailureDelay = 2 * time.Second
		h.start(cfg)
		h.waitParked("or Kommo the integration")
		if job := h.peekDelayed(); job.Releases != 0 {
			t.Fatalf("parked job: releases = %d", job.Releases)
		}
		if err := h.kommo.SetBlocked(ts.Subdomain, false); err != nil {
			t.Fatal(err)
		}
		s := h.waitDrained(20 * time.Second)
		if got := h.members(ts); s.Buried != 0 || !reflect.DeepEqual(got, []string{"a@example.com"}) {
			t.Fatalf("tube %+v, members %v: the job must apply once the account is unblocked", s, got)
		}
	})
}

// waitParked waits until the log says why the tube's only job waits, and
// the job is parked.
func (h *harness) waitParked(logged string) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return strings.Contains(h.logs.String(), logged) && s.Delayed == 1 && s.Reserved+s.Ready == 0,
			fmt.Sprintf("tube %+v, log has %q: %v", s, logged, strings.Contains(h.logs.String(), logged))
	})
}

// A multi-job group refused as a bad request is retried job by job: only
// the job whose call fails is buried.
func TestBadRequestBuriesOnlyTheCulprit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	one, two := h.kommoAdd(ts, "one@example.com"), h.kommoAdd(ts, "two@example.com")
	first := h.putContacts(ts, kommo.ActionAdd, one.ID)
	h.putContacts(ts, kommo.ActionAdd, two.ID)
	// The group's call and then the first job's own call are refused.
	h.emu.ForceErrors(2, unisenderemu.ForcedError{Code: "invalid_arg", Message: "Bad field"})
	cfg := h.config()
	cfg.Concurrency = 1 // both jobs in one batch
	h.start(cfg)
	s := h.waitDrained(10 * time.Second)
	letters := h.deadLetters()
	if s.Buried != 1 || len(letters) != 1 || letters[0].JobID != first || letters[0].Tenant != acme.String() ||
		!strings.Contains(letters[0].Reason, "invalid_arg") {
		t.Fatalf("tube %+v, dead letters %s: want only job %d buried with the Unisender reason", s, describe(letters), first)
	}
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"two@example.com"}) {
		t.Fatalf("members = %v: the good job must be applied", got)
	}
}

// A job that keeps failing transiently — Unisender or Kommo — is released
// with backoff and buried after MaxReleases with the last reason. Every
// job settles: the tube empties.
func TestTransientFailuresGiveUpAfterMaxReleases(t *testing.T) {
	t.Parallel()
	t.Run("Unisender", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		ts := h.addTenant(acme)
		c := h.kommoAdd(ts, "a@example.com")
		h.emu.SetTransientErrorRate(1, unisenderemu.TransientRetryLater)
		id := h.putContacts(ts, kommo.ActionAdd, c.ID)
		cfg := h.config()
		cfg.MaxReleases = 2
		h.start(cfg)
		h.waitBuried(id, 30*time.Second)
		h.expectGaveUp(id, "retry_later")
		// Each attempt put a recheck job before its push; they fail the
		// same way and must settle too, without multiplying: a recheck
		// whose own push fails is retried, it needs no recheck of its own.
		eventually(t, 60*time.Second, func() (bool, string) {
			s := h.tubeStats()
			return s.Ready+s.Reserved+s.Delayed == 0, fmt.Sprintf("tube %+v: %d jobs ever put for one contacts job "+
				"(3 attempts, so at most 3 rechecks expected): rechecks spawn rechecks", s, s.TotalJobs)
		})
	})
	t.Run("Kommo", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOptions{})
		ts := h.addTenant(acme)
		c := h.kommoAdd(ts, "a@example.com")
		h.kommo.SetErrorRate(1)
		id := h.putContacts(ts, kommo.ActionAdd, c.ID)
		cfg := h.config()
		cfg.MaxReleases = 2
		h.start(cfg)
		h.waitDrained(30 * time.Second)
		h.expectGaveUp(id, "HTTP 500")
		if n := h.emu.Stats().Calls["importContacts"]; n != 0 {
			t.Errorf("%d importContacts calls without a Kommo read", n)
		}
	})
}

// waitBuried waits until the job has a dead letter.
func (h *harness) waitBuried(id uint64, timeout time.Duration) {
	h.t.Helper()
	eventually(h.t, timeout, func() (bool, string) {
		for _, d := range h.deadLetters() {
			if d.JobID == id {
				return true, ""
			}
		}
		return false, fmt.Sprintf("job %d not buried; tube %+v", id, h.tubeStats())
	})
}

// expectGaveUp checks the job was buried after 3 attempts with reason.
func (h *harness) expectGaveUp(id uint64, reason string) {
	h.t.Helper()
	for _, d := range h.deadLetters() {
		if d.JobID != id {
			continue
		}
		if d.Attempts != 3 || !strings.Contains(d.Reason, "gave up after 3 attempts") || !strings.Contains(d.Reason, reason) {
			h.t.Fatalf("dead letter %s: want it buried after 3 attempts with %q", describe([]store.DeadLetter{d}), reason)
		}
		return
	}
	h.t.Fatalf("job %d not buried; dead letters %s", id, describe(h.deadLetters()))
}

// A tenant locked by another worker (here: held by the test) makes the
// worker park the jobs for a short delay; they apply once it is free.
func TestLockedTenantReleasesAndRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "a@example.com")
	ctx := context.Background()
	lock, ok, err := h.st.LockTenant(ctx, acme.String(), 0)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	h.putContacts(ts, kommo.ActionAdd, c.ID)
	cfg := h.config()
	cfg.LockWait = time.Second
	h.start(cfg)
	eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(h.logs.String(), "tenant locked by another worker"), "no lock-busy park logged"
	})
	if got := h.members(ts); len(got) != 0 {
		t.Fatalf("members = %v while the tenant was locked", got)
	}
	if n := len(h.kommo.RequestLog()); n != 0 {
		t.Fatalf("%d Kommo requests while the tenant was locked: reads belong under the lock", n)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitDrained(10 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"a@example.com"}) {
		t.Fatalf("members = %v after the lock was freed", got)
	}
}

// A contact deleted in Kommo leaves the list when a job names it, whatever
// action the job says: the store holds it, the listing leaves it out, and
// a read of that contact alone confirms it is gone.
func TestJobForAContactDeletedInKommoRemovesIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	keep, gone, alsoGone := h.kommoAdd(ts, "keep@example.com"), h.kommoAdd(ts, "gone@example.com"), h.kommoAdd(ts, "also-gone@example.com")
	h.putContacts(ts, kommo.ActionAdd, keep.ID, gone.ID, alsoGone.ID)
	h.start(h.config())
	h.waitDrained(20 * time.Second)
	if got := h.members(ts); len(got) != 3 {
		t.Fatalf("members = %v before the deletes", got)
	}
	reads := h.kommoRequests(ts, readRoute)

	h.kommoDelete(ts, gone.ID)
	h.kommoDelete(ts, alsoGone.ID)
	h.put(contactsJob(t, ts, time.Now(), ref(gone.ID, kommo.ActionDelete), ref(alsoGone.ID, kommo.ActionUpdate)))
	s := h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"keep@example.com"}) {
		t.Fatalf("members = %v, want only keep@", got)
	}
	for _, e := range []string{"gone@example.com", "also-gone@example.com"} {
		if m, _ := h.member(ts, e); m.ListStatus != unisenderemu.ListExcluded {
			t.Errorf("%s: %+v, want excluded (deletionPolicy Exclude)", e, m)
		}
	}
	if n := h.kommoRequests(ts, readRoute) - reads; n != 2 {
		t.Errorf("%d single-contact reads, want 2: one confirmation per deleted contact", n)
	}
	if s.Buried != 0 {
		t.Fatalf("tube %+v", s)
	}
}

// A job saying "delete" for contacts Kommo still has — a forged webhook,
// or a stale one — removes nothing: the contacts are read and are there.
func TestForgedDeleteOfALiveContactRemovesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	var ids []int64
	var want []string
	for i := range 20 {
		e := fmt.Sprintf("live%02d@example.com", i)
		ids = append(ids, h.kommoAdd(ts, e).ID)
		want = append(want, e)
	}
	h.putContacts(ts, kommo.ActionAdd, ids...)
	h.start(h.config())
	h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("members = %v before the forged deletes", got)
	}
	imports := h.emu.Stats().Calls["importContacts"]
	h.putContacts(ts, kommo.ActionDelete, ids...)
	h.put(envelope(t, acme, deletes(ids...), time.Now())) // and in the earlier job format
	s := h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("members = %v after deletes of live contacts, want all %d kept", got, len(want))
	}
	if n := h.emu.Stats().Calls["importContacts"] - imports; n != 0 {
		t.Errorf("%d importContacts calls for contacts that did not change", n)
	}
	if n := h.kommoRequests(ts, readRoute); n != 0 {
		t.Errorf("%d single-contact reads: the listing returned every contact", n)
	}
	if s.Buried != 0 {
		t.Fatalf("tube %+v", s)
	}
}

// deletes is a webhook payload deleting the contacts.
func deletes(ids ...int64) *kommo.WebhookPayload {
	p := payload()
	for _, id := range ids {
		p.Events = append(p.Events, kommo.WebhookEvent{Action: kommo.ActionDelete, Contact: kommo.Contact{ID: id, Type: kommo.ContactTypeContact}})
	}
	return p
}

// Ids Kommo does not have for this account — made up, or another
// tenant's contacts — change nothing and cost one listing: an id the
// listing leaves out and the store does not hold is not read again.
func TestForgedIdsChangeNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	other := h.addTenant(tenant.Key{Namespace: "other", Name: "main"})
	mine := h.kommoAdd(ts, "mine@example.com")
	theirs := h.kommoAdd(other, "theirs@example.com")
	h.putContacts(ts, kommo.ActionAdd, mine.ID)
	h.putContacts(other, kommo.ActionAdd, theirs.ID)
	cfg := h.config()
	cfg.Concurrency = 1
	h.start(cfg)
	h.waitDrained(20 * time.Second)
	lists := h.kommoRequests(ts, listRoute)

	madeUp := []int64{theirs.ID, 9_000_000_001, 9_000_000_002, math.MaxInt64}
	h.putContacts(ts, kommo.ActionAdd, madeUp...)
	forged := payload()
	for _, id := range madeUp {
		forged.Events = append(forged.Events, kommo.WebhookEvent{Action: kommo.ActionAdd,
			Contact: contact(id, math.MaxInt64, fmt.Sprintf("forged%d@example.com", id))})
	}
	h.put(envelope(t, acme, forged, time.Now()))
	s := h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"mine@example.com"}) {
		t.Fatalf("members = %v: ids this account does not have must add nothing", got)
	}
	if got := h.members(other); !reflect.DeepEqual(got, []string{"theirs@example.com"}) {
		t.Fatalf("the other tenant's list = %v", got)
	}
	if n := h.kommoRequests(ts, readRoute); n != 0 {
		t.Errorf("%d single-contact reads for ids nobody holds", n)
	}
	if n := h.kommoRequests(ts, listRoute) - lists; n < 1 || n > 2 {
		t.Errorf("%d listings for the two forged jobs, want 1 or 2 (one per batch)", n)
	}
	if s.Buried != 0 {
		t.Fatalf("tube %+v", s)
	}
}

// A job of the earlier format (the whole parsed webhook) is read for its
// contact ids only: its contact data — an address Kommo does not hold, an
// updated_at of 2^63−1 — is ignored, Kommo's state is applied, and a later
// real edit still applies.
func TestOldFormatWebhookJobAppliesKommoStateNotTheBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "real@example.com")
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd,
		Contact: contact(c.ID, math.MaxInt64, "evil@example.com")}), time.Now()))
	h.start(h.config())
	h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"real@example.com"}) {
		t.Fatalf("members = %v, want Kommo's real@ and not the body's evil@", got)
	}
	if _, ok := h.member(ts, "evil@example.com"); ok {
		t.Fatal("the body's address reached Unisender")
	}

	c.Emails = []string{"edited@example.com"}
	c.Name = "Edited"
	h.kommoUpdate(ts, c)
	h.putContacts(ts, kommo.ActionUpdate, c.ID)
	s := h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"edited@example.com"}) {
		t.Fatalf("members = %v: the real edit after the pinned updated_at must apply", got)
	}
	if m, _ := h.member(ts, "edited@example.com"); m.Fields["Name"] != "Edited" {
		t.Fatalf("member = %+v, want Kommo's new name", m)
	}
	if s.Buried != 0 {
		t.Fatalf("tube %+v", s)
	}
}

// The recheck job put before each push repairs a push whose commit was
// lost. Here Unisender applies a contact's push but its answer is lost (and
// the retries fail), so the store never learns of it; the contact is then
// deleted in Kommo before the job is retried. The retried job reads the
// contact as gone and, the store not holding it, has nothing to remove; the
// recheck finds that no live contact holds the address and takes it out of
// the list.
func TestRecheckRemovesAnAddressWhoseCommitWasLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	c := h.kommoAdd(ts, "orphan@example.com")
	var losing atomic.Bool
	losing.Store(true)
	applied := make(chan struct{})
	var once sync.Once
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/importContacts") || !losing.Load() {
			return false
		}
		once.Do(func() {
			h.emu.ServeHTTP(httptest.NewRecorder(), r) // Unisender applies the first push
			close(applied)
		})
		w.WriteHeader(http.StatusServiceUnavailable) // and no answer reaches the worker
		return true
	}
	h.intercept.Store(&hook)
	h.putContacts(ts, kommo.ActionAdd, c.ID)
	cfg := h.config()
	cfg.BackoffBase = 3 * time.Second // the job comes back after the recheck (RecheckDelay 1s) ran
	h.start(cfg)
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		t.Fatal("no importContacts call came")
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Reserved == 0 && s.Delayed >= 2, fmt.Sprintf("tube %+v: want the job released and its recheck waiting", s)
	})
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"orphan@example.com"}) {
		t.Fatalf("members = %v: Unisender should hold the pushed address", got)
	}
	h.kommoDelete(ts, c.ID)
	losing.Store(false)
	s := h.waitDrained(30 * time.Second)
	if got := h.members(ts); len(got) != 0 {
		t.Fatalf("members = %v: the address of the lost commit must leave the list", got)
	}
	if m, _ := h.member(ts, "orphan@example.com"); m.ListStatus != unisenderemu.ListExcluded {
		t.Fatalf("orphan@: %+v, want excluded", m)
	}
	if s.Buried != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("tube %+v, dead letters %s", s, describe(h.deadLetters()))
	}
}

// A job that cannot be applied for longer than MaxJobAge since the webhook
// server received it is dropped when it fails again, and its tenant's
// resync is requested in MySQL instead; a younger job of the same tenant
// keeps waiting.
func TestExpiredJobsAreDroppedAndAResyncRequested(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	old, young := h.kommoAdd(ts, "old@example.com"), h.kommoAdd(ts, "young@example.com")
	h.resolver.set(acme, worker.ErrTenantNotReady)
	h.put(contactsJob(t, ts, time.Now().Add(-25*time.Hour), ref(old.ID, kommo.ActionUpdate)))
	h.put(contactsJob(t, ts, time.Now(), ref(young.ID, kommo.ActionUpdate)))
	cfg := h.config()
	cfg.NotReadyDelay = time.Hour
	h.start(cfg)
	eventually(t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Delayed == 1 && s.Ready+s.Reserved == 0, fmt.Sprintf("tube %+v", s)
	})
	reqs, err := h.st.ResyncRequests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].Tenant != acme.String() || reqs[0].DroppedJobs != 1 {
		t.Fatalf("resync requests %+v, want one for %s with 1 dropped job", reqs, acme)
	}
	if s := h.tubeStats(); s.Buried != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("tube %+v: an expired job is dropped, not buried", s)
	}
	if !strings.Contains(h.logs.String(), "requested a resync of the tenant") {
		t.Fatal("the drop is not logged")
	}
}

// The addresses of one push are named by recheck jobs that each stay within
// beanstalkd's max-job-size: a push of 40 long addresses is covered by
// several recheck jobs rather than one beanstalkd would refuse.
func TestRecheckJobsStayWithinMaxJobSize(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	var ids []int64
	for i := range 40 {
		ids = append(ids, h.kommoAdd(ts, fmt.Sprintf("a-rather-long-address-for-the-recheck-job-split-test-%02d@example.com", i)).ID)
	}
	h.putContacts(ts, kommo.ActionAdd, ids...)
	cfg := h.config()
	cfg.MaxJobBytes = 2500 // one job of the 40 addresses is about 3,000 bytes
	h.start(cfg)
	s := h.waitDrained(30 * time.Second)
	if got := h.members(ts); len(got) != 40 {
		t.Fatalf("%d members, want the 40 pushed", len(got))
	}
	if rechecks := s.TotalJobs - 1; rechecks < 2 {
		t.Fatalf("%d recheck jobs for 40 addresses of %d bytes at most, want them split", rechecks, cfg.MaxJobBytes)
	}
}

// Within a batch, a tenant's jobs with a more urgent priority (a quiet
// tenant, as the webhook server marks it) are not applied after those of a
// tenant whose jobs were reserved first but sank (a flooding tenant): the
// groups start in priority order and run side by side, so the flooding
// tenant's import, held here until the quiet one's arrives, delays nothing.
func TestBatchAppliesTheMoreUrgentTenantFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	noisy, quiet := h.addTenant(acme), h.addTenant(tenant.Key{Namespace: "shop", Name: "quiet"})
	n, q := h.kommoAdd(noisy, "noisy@example.com"), h.kommoAdd(quiet, "quiet@example.com")
	var mu sync.Mutex
	var order []string
	quietImported, quietOnce := make(chan struct{}), sync.Once{}
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/importContacts") || r.ParseForm() != nil {
			return false
		}
		name := map[bool]string{true: "quiet", false: "noisy"}[r.PostForm.Get("api_key") == quiet.APIKey]
		if name == "noisy" {
			select {
			case <-quietImported:
			case <-time.After(5 * time.Second):
			}
		}
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
		if name == "quiet" {
			quietOnce.Do(func() { close(quietImported) })
		}
		h.emu.ServeHTTP(w, r)
		return true
	}
	h.intercept.Store(&hook)
	cfg := h.config()
	cfg.Concurrency, cfg.BatchWindow = 1, 2*time.Second
	h.start(cfg)
	_, err := h.producer.Put(context.Background(), h.tube, contactsJob(t, noisy, time.Now(), ref(n.ID, kommo.ActionUpdate)), 1536, 0, jobTTR)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Reserved == 1, fmt.Sprintf("tube %+v: want the noisy job reserved, its batch window open", s)
	})
	_, err = h.producer.Put(context.Background(), h.tube, contactsJob(t, quiet, time.Now(), ref(q.ID, kommo.ActionUpdate)), 1024, 0, jobTTR)
	if err != nil {
		t.Fatal(err)
	}
	h.waitDrained(15 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(order) < 2 || order[0] != "quiet" {
		t.Fatalf("imports by tenant %v, want the quiet tenant's first", order)
	}
}
