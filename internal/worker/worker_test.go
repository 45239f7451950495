package worker_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
)

var acme = tenant.Key{Namespace: "acme", Name: "main"}

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

// Every shared fixture, as a job built like the webhook server builds it,
// through beanstalkd, the worker, MariaDB and the Unisender emulator.
func TestFixturesThroughTheQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	h.start(h.config())
	received := time.Now()

	h.put(envelope(t, acme, fixturePayload(t, fixtures.AddContact), received))
	h.waitDrained(20 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"maria.lopez@example.com"}) {
		t.Fatalf("after add: members = %v", got)
	}
	if m, _ := h.member(ts, "maria.lopez@example.com"); m.Fields["Name"] != "Maria Lopez" || m.Phone != "+34611222333" {
		t.Fatalf("after add: member = %+v, want the name and the phone", m)
	}

	h.put(envelope(t, acme, fixturePayload(t, fixtures.UpdateContactAndCompany), received))
	h.waitDrained(20 * time.Second)
	want := []string{"m.lopez@example.org", "maria@lopez-garcia.example"}
	if got := h.members(ts); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update: members = %v, want %v (old address out, company not synced)", got, want)
	}
	if m, _ := h.member(ts, "maria.lopez@example.com"); m.ListStatus != unisenderemu.ListExcluded {
		t.Fatalf("the old address should be excluded from the list: %+v", m)
	}
	if _, ok := h.member(ts, "office@lopeztrading.example"); ok {
		t.Fatal("the company's address reached the list")
	}

	h.put(envelope(t, acme, fixturePayload(t, fixtures.DeleteContact), time.Now().Add(time.Second)))
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
}

// Jobs that cannot be read are buried with a dead letter saying why; good
// jobs of the same batch are applied.
func TestPoisonJobsAreBuriedWithAReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	poison := map[string][]byte{
		"not JSON":        []byte("garbage \x00\x01"),
		"unknown version": []byte(`{"v":99,"tenant":"acme/main","kind":"webhook","received_at":"2026-01-01T00:00:00Z","payload":{}}`),
		"unknown kind":    []byte(`{"v":1,"tenant":"acme/main","kind":"mystery","received_at":"2026-01-01T00:00:00Z","payload":{}}`),
		"bad tenant":      []byte(`{"v":1,"tenant":"not a tenant","kind":"webhook","received_at":"2026-01-01T00:00:00Z","payload":{}}`),
		"bad payload":     []byte(`{"v":1,"tenant":"acme/main","kind":"webhook","received_at":"2026-01-01T00:00:00Z","payload":{"Events":"x"}}`),
		"bad contact id":  []byte(`{"v":1,"tenant":"acme/main","kind":"webhook","received_at":"2026-01-01T00:00:00Z","payload":{"Events":[{"Action":"add","Contact":{"ID":0}}]}}`),
	}
	wantReason := map[string]string{
		"not JSON": "bad job envelope", "unknown version": "version 99", "unknown kind": `kind "mystery"`,
		"bad tenant": "invalid tenant", "bad payload": "webhook payload", "bad contact id": "contact id 0",
	}
	// The tenant is recorded when the envelope names a valid one.
	poisonTenant := map[string]string{"bad payload": "acme/main", "bad contact id": "acme/main"}
	ids := map[uint64]string{}
	for name, body := range poison {
		ids[h.put(body)] = name
	}
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "good@example.com")}), time.Now()))
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
		if wantTenant := poisonTenant[name]; d.Tenant != wantTenant {
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
	h.resolver.set(acme, worker.ErrTenantGone)
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "a@example.com")}), time.Now()))
	h.start(h.config())
	s := h.waitDrained(10 * time.Second)
	if s.Buried != 0 || len(h.members(ts)) != 0 || h.emu.Stats().Calls["importContacts"] != 0 {
		t.Fatalf("tube %+v, members %v: the job of a gone tenant must be deleted unapplied", s, h.members(ts))
	}
}

// A suspended or not-ready tenant's jobs wait (parked with a delay, their
// release count untouched) and apply once the tenant is ready.
func TestNotReadyTenantParksItsJobs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	h.resolver.set(acme, worker.ErrTenantNotReady)
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "wait@example.com")}), time.Now()))
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
	h.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "invalid_api_key", Message: "Invalid API key"})
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "a@example.com")}), time.Now()))
	cfg := h.config()
	cfg.TenantFailureDelay = time.Hour
	h.start(cfg)
	eventually(t, 10*time.Second, func() (bool, string) {
		s := h.tubeStats()
		return s.Delayed == 1 && s.Reserved == 0, fmt.Sprintf("tube %+v", s)
	})
	if s := h.tubeStats(); s.Buried != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("tube %+v: a refused key must not bury the events", s)
	}
	if !strings.Contains(h.logs.String(), "refused the tenant's API key") || strings.Contains(h.logs.String(), ts.APIKey) {
		t.Fatalf("the refusal must be logged, without the key:\n%s", h.logs.String())
	}
}

// A multi-job group refused as a bad request is retried job by job: only
// the job whose call fails is buried.
func TestBadRequestBuriesOnlyTheCulprit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	first := h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "one@example.com")}), time.Now()))
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(2, 100, "two@example.com")}), time.Now()))
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

// A job that keeps failing transiently is released with backoff and buried
// after MaxReleases. (Each attempt also left a recheck job, which fails the
// same way and is buried too.)
func TestTransientFailuresGiveUpAfterMaxReleases(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.addTenant(acme)
	h.emu.SetTransientErrorRate(1, unisenderemu.TransientRetryLater)
	id := h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "a@example.com")}), time.Now()))
	cfg := h.config()
	cfg.MaxReleases = 2
	h.start(cfg)
	h.waitDrained(30 * time.Second)
	var webhook *store.DeadLetter
	for _, d := range h.deadLetters() {
		switch {
		case d.JobID == id:
			webhook = &d
		case !strings.Contains(d.Reason, "recheck of 1 addresses"):
			t.Errorf("unexpected dead letter %s", describe([]store.DeadLetter{d}))
		}
	}
	if webhook == nil || webhook.Attempts != 3 || !strings.Contains(webhook.Reason, "gave up after 3 attempts") ||
		!strings.Contains(webhook.Reason, "retry_later") {
		t.Fatalf("dead letters %s: want job %d buried after 3 attempts with Unisender's reason", describe(h.deadLetters()), id)
	}
}

// A tenant locked by another worker (here: held by the test) makes the
// worker park the jobs for a short delay; they apply once it is free.
func TestLockedTenantReleasesAndRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	ctx := context.Background()
	lock, ok, err := h.st.LockTenant(ctx, acme.String(), 0)
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	h.put(envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(1, 100, "a@example.com")}), time.Now()))
	cfg := h.config()
	cfg.LockWait = time.Second
	h.start(cfg)
	eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(h.logs.String(), "tenant locked by another worker"), "no lock-busy park logged"
	})
	if got := h.members(ts); len(got) != 0 {
		t.Fatalf("members = %v while the tenant was locked", got)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitDrained(10 * time.Second)
	if got := h.members(ts); !reflect.DeepEqual(got, []string{"a@example.com"}) {
		t.Fatalf("members = %v after the lock was freed", got)
	}
}
