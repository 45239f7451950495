// Package workers measures 1, 2 and 4 worker processes on 16 tenants under
// a steady webhook load through the real processes (issue 20, item 3):
// events applied per second, the webhook → applied latency (p50/p99, over
// all tenants and per tenant), and a worker's memory while it drains a
// backlog.
package workers

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

const tenants = 16

// BenchmarkWorkers starts the system with 1, 2 and 4 worker processes
// (SCALE_WORKERS, "1,2,4"), 16 tenants each on its own sandbox account,
// and creates Kommo contacts at a steady SCALE_EVENTS_PER_SEC (default
// 100) spread over the tenants for SCALE_LOAD_SECONDS (default 30): the
// sandbox delivers their webhooks as Kommo does (gathered for 200 ms), and
// the workers read them from Kommo and apply them to Unisender. It
// reports the events applied per second and the latency from the webhook
// server's receipt to the worker's commit (the workers' own samples in
// MySQL's sync_latency, per job), over all tenants and the spread of the
// tenants' p99s. Then it stops the workers, lets SCALE_BACKLOG (default
// 20,000) contacts pile up in beanstalkd, starts them again and samples
// their RSS while they drain it.
//
//	go build -o /tmp/ku . && KOMMO_UNISENDER_BIN=/tmp/ku \
//	  go run ./hack/testenv -- go test -run '^$' -bench Workers -benchtime 1x -timeout 30m -v ./test/scale/workers/
func BenchmarkWorkers(b *testing.B) {
	for _, n := range workerCounts(b) {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			for range b.N {
				runWorkers(b, n)
			}
		})
	}
}

func runWorkers(b *testing.B, workers int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := &system{env: devtest.Start(b, ctx, devenv.Options{Sandbox: true, SandboxAccessTokenTTL: time.Hour, Workers: workers})}
	s.applyTenants(b, ctx)
	rate, seconds := envInt(b, "SCALE_EVENTS_PER_SEC", 100), envInt(b, "SCALE_LOAD_SECONDS", 30)
	start := time.Now()
	created := s.load(b, ctx, rate, time.Duration(seconds)*time.Second)
	s.waitApplied(b, ctx, created)
	elapsed := time.Since(start)
	lat := s.latencies(b, ctx)
	all := lat.all()
	p50, p99 := percentile(all, 0.50), percentile(all, 0.99)
	lo, hi := lat.p99Spread()
	b.Logf("%d workers, %d tenants, %d contacts created at %d/s for %ds: all applied after %v (%.0f events/s); "+
		"webhook → applied over %d jobs: p50 %v, p99 %v; the tenants' p99s from %v to %v",
		workers, tenants, created, rate, seconds, elapsed.Round(time.Millisecond), float64(created)/elapsed.Seconds(),
		len(all), p50, p99, lo, hi)
	b.Logf("the workers' jobs by outcome and batches: %s", s.jobOutcomes(b))
	b.ReportMetric(float64(created)/elapsed.Seconds(), "events/s")
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(hi), "worst-tenant-p99-ms")
	idle, peak := s.drainBacklog(b, ctx, envInt(b, "SCALE_BACKLOG", 20_000))
	b.ReportMetric(idle, "worker-rss-idle-MB")
	b.ReportMetric(peak, "worker-rss-draining-MB")
}

// system is the running system and its 16 tenants.
type system struct {
	env     *devenv.Env
	tenants []devenv.Tenant
}

func (s *system) applyTenants(b *testing.B, ctx context.Context) {
	b.Helper()
	for i := range tenants {
		name := fmt.Sprintf("t%02d", i)
		tn := devenv.Tenant{Namespace: name, Integration: name, Binding: name + "-list", Subdomain: name, ListTitle: "List " + name}
		must(b, s.env.ApplyTenant(ctx, tn))
		s.tenants = append(s.tenants, tn)
	}
	devtest.WaitUntil(b, "every binding Ready", 5*time.Minute, func() (bool, string) {
		var list v1alpha1.UnisenderBindingList
		if err := s.env.Client.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		ready := 0
		for i := range list.Items {
			if status.IsTrue(&list.Items[i], v1alpha1.ConditionReady) {
				ready++
			}
		}
		return ready == tenants, fmt.Sprintf("%d of %d Ready", ready, tenants)
	})
}

// load creates contacts at rate per second for d, round robin over the
// tenants, and returns how many it created.
func (s *system) load(b *testing.B, ctx context.Context, rate int, d time.Duration) int {
	b.Helper()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.After(d)
	var wg sync.WaitGroup
	var created, failed atomic.Int64
	sem := make(chan struct{}, 32)
	for i := 0; ; i++ {
		select {
		case <-end:
			wg.Wait()
			if failed.Load() > 0 {
				b.Fatalf("%d contact creations failed", failed.Load())
			}
			return int(created.Load())
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-tick.C:
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if s.createContact(i) != nil {
				failed.Add(1)
				return
			}
			created.Add(1)
		})
	}
}

// runID tells apart the contacts of the load and of the backlog.
var runID atomic.Int64

func (s *system) createContact(i int) error {
	tn := s.tenants[i%tenants]
	email := fmt.Sprintf("load-%d-%07d@example.com", runID.Load(), i)
	return devenv.SandboxJSON(http.MethodPost, s.env.KommoURL+"/_admin/accounts/"+tn.Subdomain+"/contacts",
		map[string]any{"name": "Load " + strconv.Itoa(i), "emails": []string{email}}, nil)
}

// waitApplied waits until the workers together applied n more events
// than at the start of the system (their metrics).
func (s *system) waitApplied(b *testing.B, ctx context.Context, n int) {
	b.Helper()
	devtest.WaitUntil(b, fmt.Sprintf("%d events applied", n), 10*time.Minute, func() (bool, string) {
		got := s.applied(b)
		return got >= float64(n) || ctx.Err() != nil, fmt.Sprintf("%.0f applied", got)
	})
}

// applied is the sum over the workers of the events they applied since
// they started; a worker whose metrics do not answer yet (restarting)
// counts none.
func (s *system) applied(b *testing.B) float64 {
	var sum float64
	for _, name := range s.env.WorkerNames {
		m, err := devtest.Scrape(s.env.MetricsURLs[name])
		if err != nil {
			b.Logf("metrics of %s: %v", name, err)
			continue
		}
		for series, v := range m {
			if strings.HasPrefix(series, "kommo_unisender_worker_events_total{") && strings.Contains(series, `outcome="applied"`) {
				sum += v
			}
		}
	}
	return sum
}

// jobOutcomes sums the workers' jobs by outcome (parked: the tenant was
// locked by another batch), their batches and the events per batch.
func (s *system) jobOutcomes(b *testing.B) string {
	sums := map[string]float64{}
	for _, name := range s.env.WorkerNames {
		m, err := devtest.Scrape(s.env.MetricsURLs[name])
		if err != nil {
			b.Logf("metrics of %s: %v", name, err)
			continue
		}
		for series, v := range m {
			if strings.HasPrefix(series, "kommo_unisender_worker_jobs_total{") || strings.HasPrefix(series, "kommo_unisender_worker_batches_total") ||
				strings.HasPrefix(series, "kommo_unisender_worker_batch_events_sum") || strings.HasPrefix(series, "kommo_unisender_worker_released_jobs_total{") {
				sums[strings.TrimPrefix(series, "kommo_unisender_worker_")] += v
			}
		}
	}
	keys := slices.Sorted(maps.Keys(sums))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.0f", k, sums[k])
	}
	return strings.Join(parts, ", ")
}

// tenantLatencies are the sync_latency samples by tenant.
type tenantLatencies map[string][]time.Duration

func (s *system) latencies(b *testing.B, ctx context.Context) tenantLatencies {
	b.Helper()
	db, err := sql.Open("mysql", s.env.MySQLDSN())
	must(b, err)
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT tenant, latency_ms FROM sync_latency`)
	must(b, err)
	defer rows.Close()
	out := tenantLatencies{}
	for rows.Next() {
		var tenant string
		var msec int64
		must(b, rows.Scan(&tenant, &msec))
		out[tenant] = append(out[tenant], time.Duration(msec)*time.Millisecond)
	}
	must(b, rows.Err())
	return out
}

func (l tenantLatencies) all() []time.Duration {
	var all []time.Duration
	for _, d := range l {
		all = append(all, d...)
	}
	return all
}

// p99Spread is the lowest and the highest of the tenants' p99s.
func (l tenantLatencies) p99Spread() (lo, hi time.Duration) {
	first := true
	for _, d := range l {
		p := percentile(d, 0.99)
		if first || p < lo {
			lo = p
		}
		hi = max(hi, p)
		first = false
	}
	return lo, hi
}

// drainBacklog stops the workers, piles up n contacts' events in beanstalkd,
// starts the workers again and samples their RSS until they applied them
// all; it returns the largest worker RSS before the stop (idle after the
// load) and while draining, in MB.
func (s *system) drainBacklog(b *testing.B, ctx context.Context, n int) (idle, peak float64) {
	b.Helper()
	idle = s.maxWorkerRSS(b)
	for _, name := range s.env.WorkerNames {
		s.env.Processes[name].Stop()
	}
	runID.Add(1)
	before := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if s.createContact(i) != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of the backlog's %d contact creations failed", failed.Load(), n)
	}
	must(b, devenv.SandboxJSON(http.MethodPost, s.env.KommoURL+"/_admin/wait-idle", map[string]string{"timeout": "2m"}, nil))
	b.Logf("backlog of %d contacts created and delivered in %v", n, time.Since(before).Round(time.Millisecond))
	for _, name := range s.env.WorkerNames {
		must(b, s.env.Processes[name].Start())
	}
	start := time.Now()
	var samples []float64
	devtest.WaitUntil(b, fmt.Sprintf("the backlog of %d applied", n), 10*time.Minute, func() (bool, string) {
		samples = append(samples, s.maxWorkerRSS(b))
		got := s.applied(b)
		return got >= float64(n), fmt.Sprintf("%.0f applied", got)
	})
	peak = slices.Max(samples)
	b.Logf("worker RSS: %.1f MB idle after the load; draining %d events (%v, %.0f events/s): max %.1f MB over %d samples",
		idle, n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds(), peak, len(samples))
	return idle, peak
}

// maxWorkerRSS is the largest RSS of the worker processes, in MB (0 for
// one not running yet).
func (s *system) maxWorkerRSS(b *testing.B) float64 {
	var most int64
	for _, name := range s.env.WorkerNames {
		if pid := s.env.Processes[name].PID(); pid != 0 {
			if rss, err := devtest.RSSBytes(pid); err == nil {
				most = max(most, rss)
			}
		}
	}
	return float64(most) / (1 << 20)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func workerCounts(b *testing.B) []int {
	var out []int
	for f := range strings.SplitSeq(envOr("SCALE_WORKERS", "1,2,4"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("SCALE_WORKERS=%q: want worker counts such as 1,2,4", os.Getenv("SCALE_WORKERS"))
		}
		out = append(out, n)
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	n, err := strconv.Atoi(envOr(name, strconv.Itoa(def)))
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, os.Getenv(name))
	}
	return n
}

func must(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
