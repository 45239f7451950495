package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// Kommo's default rate limit, and the most contacts one read names: the
// bound of one tenant's worker throughput is their product.
const (
	kommoRate     = 7
	readBound     = kommoRate * kommo.MaxPageLimit // contacts per second
	burstContacts = 1000
	burstRounds   = 10
	// The burst's budgets: importContacts calls and Kommo reads.
	maxBurstImports = 25
	maxBurstReads   = 50
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

// seeded adds n generated contacts to the tenant's Kommo account (no
// webhooks) and returns their ids.
func (h *harness) seeded(ts tenantSpec, n int) []int64 {
	h.t.Helper()
	before, err := h.kommo.Contacts(ts.Subdomain)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.kommo.SeedContacts(ts.Subdomain, n); err != nil {
		h.t.Fatal(err)
	}
	all, err := h.kommo.Contacts(ts.Subdomain)
	if err != nil {
		h.t.Fatal(err)
	}
	ids := make([]int64, 0, n)
	for _, c := range all[len(before):] {
		ids = append(ids, c.ID)
	}
	return ids
}

// kommoReads counts the contact reads Kommo served (listings and single
// reads) of every account.
func (h *harness) kommoReads() int {
	n := 0
	for _, l := range h.kommo.RequestLog() {
		if l.Route == listRoute || l.Route == readRoute {
			n++
		}
	}
	return n
}

// BenchmarkWorkerThroughput measures the worker end to end — jobs already
// in beanstalkd, one worker (4 reserving goroutines), MariaDB, the Kommo
// emulator at Kommo's 7 requests per second per account and the Unisender
// emulator. The worker's Kommo client is the worker subcommand's: paced at
// 7 per second, one request in flight, each request taken from the
// integration's budget in MySQL (spaced 1s/7 plus a 10% margin, so at most
// 6.36 reads a second: 91% of the bound below). Each iteration is one job
// event naming a distinct contact; run it with a fixed count, e.g.
// -benchtime=20000x.
//
//   - contacts/tenants=1: distinct contacts per second for one tenant,
//     and that figure as a share of the bound 7 reads/s × 250 contacts per
//     read = 1,750/s;
//   - events/tenants=4: events per second across 4 tenants, each its own
//     Kommo account (the bound is 4 × 1,750/s).
//
// The jobs name 1 or 50 contacts (a Kommo delivery carries up to 50).
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, bc := range []struct {
		name            string
		tenants, perJob int
	}{
		{"contacts", 1, 1}, {"contacts", 1, 50},
		{"events", 4, 1}, {"events", 4, 50},
	} {
		b.Run(fmt.Sprintf("%s/tenants=%d/ids-per-job=%d", bc.name, bc.tenants, bc.perJob), func(b *testing.B) {
			h := newHarness(b, harnessOptions{kommo: kommoemu.Options{RateLimit: kommoRate}, kommoRate: kommoRate, kommoBudget: true})
			var specs []tenantSpec
			for i := range bc.tenants {
				specs = append(specs, h.addTenant(tenant.Key{Namespace: "bench", Name: fmt.Sprintf("t%d", i)}))
			}
			perTenant := make([][][]byte, len(specs))
			for i, ts := range specs {
				n := b.N / bc.tenants
				if i < b.N%bc.tenants {
					n++
				}
				perTenant[i] = jobsOf(b, ts, kommo.ActionAdd, h.seeded(ts, n), bc.perJob)
			}
			// The tenants' jobs interleaved, as their webhooks arrive.
			var bodies [][]byte
			for j := 0; ; j++ {
				added := false
				for _, jobs := range perTenant {
					if j < len(jobs) {
						bodies = append(bodies, jobs[j])
						added = true
					}
				}
				if !added {
					break
				}
			}
			h.putConcurrently(bodies)
			b.ResetTimer()
			start := time.Now()
			h.start(h.config())
			s := h.waitDrained(30 * time.Minute)
			elapsed := time.Since(start)
			b.StopTimer()
			if s.Buried != 0 {
				b.Fatalf("tube %+v: %s", s, describe(h.deadLetters()))
			}
			perSecond := float64(b.N) / elapsed.Seconds()
			if bc.tenants == 1 {
				b.ReportMetric(perSecond, "contacts/s")
				b.ReportMetric(100*perSecond/readBound, "%bound")
			} else {
				b.ReportMetric(perSecond, "events/s")
				b.ReportMetric(100*perSecond/float64(bc.tenants*readBound), "%bound")
			}
			b.ReportMetric(float64(h.kommoReads()), "kommo-reads")
			b.ReportMetric(float64(h.emu.Stats().Calls["importContacts"]), "imports")
			// Groups parked because another goroutine held their tenant.
			b.ReportMetric(float64(strings.Count(h.logs.String(), "tenant locked by another worker")), "lock-parks")
		})
	}
}

// burst is 10,000 update deliveries over 1,000 contacts of one tenant, one
// update per job (the worst case: Kommo usually batches several): the
// contacts are synced first, then edited in Kommo ten times over (name and
// tags, not addresses), each edit delivered as its own job.
//
// queued: the whole burst is in beanstalkd before the worker starts (a
// backlog), so every read finds Kommo's final state. live: the worker runs
// while the edits are made and delivered, round after round, so reads find
// intermediate states and batches are as large as the backlog allows.
type burst struct {
	imports, reads int
	elapsed        time.Duration
}

func runBurst(tb testing.TB, h *harness, live bool) burst {
	tb.Helper()
	ts := h.addTenant(acme)
	ids := make([]int64, 0, burstContacts)
	for i := range burstContacts {
		ids = append(ids, h.kommoAdd(ts, fmt.Sprintf("c%d@example.com", i)).ID)
	}
	stop := h.start(h.config())
	h.putConcurrently(jobsOf(tb, ts, kommo.ActionAdd, ids, queue.MaxContactsPerJob))
	h.waitDrained(2 * time.Minute)
	if !live {
		stop() // a new worker finds the whole burst queued
	}
	imports, reads := h.emu.Stats().Calls["importContacts"], h.kommoReads()

	start := time.Now()
	var all [][]byte
	for r := range burstRounds {
		var bodies [][]byte
		for i, id := range ids {
			c, err := h.kommo.Contact(ts.Subdomain, id)
			if err != nil {
				tb.Fatal(err)
			}
			c.Name = fmt.Sprintf("Contact %d v%d", i, r)
			c.Tags = []string{fmt.Sprintf("v%d", r)}
			h.kommoUpdate(ts, c)
			bodies = append(bodies, contactsJob(tb, ts, time.Now(), ref(id, kommo.ActionUpdate)))
		}
		if live {
			h.putConcurrently(bodies)
		} else {
			all = append(all, bodies...)
		}
	}
	if !live {
		h.putConcurrently(all)
		start = time.Now()
		h.start(h.config())
	}
	s := h.waitDrained(5 * time.Minute)
	out := burst{
		imports: h.emu.Stats().Calls["importContacts"] - imports,
		reads:   h.kommoReads() - reads,
		elapsed: time.Since(start),
	}
	if s.Buried != 0 {
		tb.Fatalf("tube %+v: %s", s, describe(h.deadLetters()))
	}
	if got := h.members(ts); len(got) != burstContacts {
		tb.Fatalf("%d members, want %d", len(got), burstContacts)
	}
	last := fmt.Sprintf("Contact %d v%d", 7, burstRounds-1)
	if m, _ := h.member(ts, "c7@example.com"); m.Fields["Name"] != last {
		tb.Fatalf("c7's name = %q, want the last edit's %q", m.Fields["Name"], last)
	}
	return out
}

// The burst costs at most 25 importContacts calls and 50 Kommo reads (the
// benchmark below measures it at Kommo's rate; this runs it unpaced).
func TestBurstOfUpdatesCoalesces(t *testing.T) {
	t.Parallel()
	for _, live := range []bool{false, true} {
		t.Run(map[bool]string{false: "queued", true: "live"}[live], func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			r := runBurst(t, h, live)
			t.Logf("%d updates over %d contacts: %d importContacts calls, %d Kommo reads, drained in %v",
				burstContacts*burstRounds, burstContacts, r.imports, r.reads, r.elapsed.Round(time.Millisecond))
			if r.imports > maxBurstImports || r.reads > maxBurstReads {
				t.Errorf("%d importContacts calls and %d Kommo reads; want at most %d and %d",
					r.imports, r.reads, maxBurstImports, maxBurstReads)
			}
		})
	}
}

// BenchmarkWorkerBurst runs the burst (see burst) against the Kommo
// emulator at 7 requests per second, once per iteration (run it with
// -benchtime=1x), reporting importContacts calls and Kommo reads; it fails
// past 25 calls or 50 reads.
func BenchmarkWorkerBurst(b *testing.B) {
	for _, live := range []bool{false, true} {
		b.Run(map[bool]string{false: "queued", true: "live"}[live], func(b *testing.B) {
			var imports, reads []int
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				h := newHarness(b, harnessOptions{kommo: kommoemu.Options{RateLimit: kommoRate}, kommoRate: kommoRate, kommoBudget: true})
				b.StartTimer()
				r := runBurst(b, h, live)
				imports, reads = append(imports, r.imports), append(reads, r.reads)
				elapsed += r.elapsed
			}
			b.ReportMetric(float64(slices.Max(imports)), "imports")
			b.ReportMetric(float64(slices.Max(reads)), "kommo-reads")
			b.ReportMetric(float64(b.N*burstContacts*burstRounds)/elapsed.Seconds(), "updates/s")
			if slices.Max(imports) > maxBurstImports || slices.Max(reads) > maxBurstReads {
				b.Fatalf("a burst of %d updates over %d contacts took %v importContacts calls and %v Kommo reads; want at most %d and %d",
					burstContacts*burstRounds, burstContacts, imports, reads, maxBurstImports, maxBurstReads)
			}
		})
	}
}
