package worker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// putConcurrently puts the bodies over a few goroutines (the producer
// holds a pool of connections).
func (h *harness) putConcurrently(bodies [][]byte) {
	h.t.Helper()
	const putters = 8
	var wg sync.WaitGroup
	errs := make(chan error, putters)
	for p := range putters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < len(bodies); i += putters {
				if _, err := h.producer.Put(context.Background(), h.tube, bodies[i], 1024, 0, jobTTR); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Fatal(err)
	}
}

// A burst of 10,000 updates over 1,000 contacts of one tenant, one update
// per job (the worst case: Kommo usually batches several), costs at most
// 25 importContacts calls: the worker coalesces up to 500 events per
// batch, and the events of a contact within a batch collapse into one row.
// The updates change the contacts' data (name, tags), not their addresses;
// an address change costs a second call per batch for the exclusions.
func TestBurstOfUpdatesCoalesces(t *testing.T) {
	t.Parallel()
	const contacts, rounds = 1000, 10
	h := newHarness(t, harnessOptions{})
	ts := h.addTenant(acme)
	base := time.Now().Add(-time.Hour).Unix()
	var bodies [][]byte
	for r := range int64(rounds) {
		for id := int64(1); id <= contacts; id++ {
			c := contact(id, base+r, fmt.Sprintf("c%d@example.com", id))
			c.Name = fmt.Sprintf("Contact %d v%d", id, r)
			c.Tags = []string{fmt.Sprintf("v%d", r)}
			bodies = append(bodies, envelope(t, acme, payload(kommo.WebhookEvent{Action: kommo.ActionUpdate, Contact: c}), time.Now()))
		}
	}
	h.putConcurrently(bodies)
	start := time.Now()
	h.start(h.config())
	s := h.waitDrained(2 * time.Minute)
	elapsed := time.Since(start)
	calls := h.emu.Stats().Calls["importContacts"]
	t.Logf("%d updates over %d contacts: %d importContacts calls, drained in %v (%.0f events/s)",
		len(bodies), contacts, calls, elapsed.Round(time.Millisecond), float64(len(bodies))/elapsed.Seconds())
	if calls > 25 {
		t.Errorf("%d importContacts calls for the burst; want at most 25", calls)
	}
	if s.Buried != 0 {
		t.Errorf("tube %+v: nothing may be buried", s)
	}
	members := h.members(ts)
	if len(members) != contacts {
		t.Fatalf("%d members, want %d", len(members), contacts)
	}
	last := fmt.Sprintf("Contact %d v%d", 7, rounds-1)
	if m, _ := h.member(ts, "c7@example.com"); m.Fields["Name"] != last {
		t.Errorf("c7's name = %q, want the last update's %q", m.Fields["Name"], last)
	}
}

// BenchmarkWorkerThroughput measures contact events per second end to
// end: jobs already in beanstalkd, applied by one worker (4 reserving
// goroutines) into MariaDB and the Unisender emulator. Each iteration is
// one contact event (a new contact with one address); run it with a fixed
// count, e.g. -benchtime=20000x.
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, bc := range []struct {
		tenants, eventsPerJob int
	}{{1, 1}, {1, 10}, {4, 1}, {4, 10}} {
		b.Run(fmt.Sprintf("tenants=%d/events-per-job=%d", bc.tenants, bc.eventsPerJob), func(b *testing.B) {
			h := newHarness(b, harnessOptions{})
			var keys []tenant.Key
			for i := range bc.tenants {
				key := tenant.Key{Namespace: "bench", Name: fmt.Sprintf("t%d", i)}
				h.addTenant(key)
				keys = append(keys, key)
			}
			now := time.Now()
			var bodies [][]byte
			for i := 0; i < b.N; i += bc.eventsPerJob {
				p := payload()
				for id := int64(i + 1); id <= int64(min(i+bc.eventsPerJob, b.N)); id++ {
					p.Events = append(p.Events, kommo.WebhookEvent{Action: kommo.ActionAdd,
						Contact: contact(id, now.Unix(), fmt.Sprintf("c%d@example.com", id))})
				}
				bodies = append(bodies, envelope(b, keys[len(bodies)%len(keys)], p, now))
			}
			h.putConcurrently(bodies)
			b.ResetTimer()
			start := time.Now()
			h.start(h.config())
			h.waitDrained(10 * time.Minute)
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(h.emu.Stats().Calls["importContacts"]), "imports")
		})
	}
}
