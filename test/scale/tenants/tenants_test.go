// Package tenants measures one manager carrying many tenants: how long until
// they are all Ready, and what they cost when nothing happens (the
// manager's memory and CPU, the API server's requests, Unisender calls,
// and how the token refreshes spread). Real processes (internal/devenv)
// against the sandbox and the envtest API server; `make bench-scale`.
package tenants

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
)

// Knobs, from the environment so that `make bench-scale` runs the issue's
// figures and a quick run can pick fewer:
//   - SCALE_TENANTS: the tenant counts, comma-separated (10,100,1000);
//   - SCALE_TOKEN_TTL: the sandbox's access-token lifetime (10m), short so
//     that every tenant refreshes within the idle window, long enough that
//     the refresh window (a third of it) spans minutes;
//   - SCALE_IDLE: how long the idle figures are measured (one token
//     lifetime when unset).
func knobs(b *testing.B) (counts []int, ttl, idle time.Duration) {
	for s := range strings.SplitSeq(envOr("SCALE_TENANTS", "10,100,1000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("SCALE_TENANTS: %q is not a tenant count", s)
		}
		counts = append(counts, n)
	}
	ttl = durationEnv(b, "SCALE_TOKEN_TTL", 10*time.Minute)
	return counts, ttl, durationEnv(b, "SCALE_IDLE", ttl)
}

func BenchmarkTenants(b *testing.B) {
	// The envtest client logs nothing worth the figures' space.
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	counts, ttl, idle := knobs(b)
	for _, n := range counts {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			for range b.N {
				runTenants(b, n, ttl, idle)
			}
		})
	}
}

// runTenants applies n tenants at once, waits until all are Ready, then
// measures an idle window.
func runTenants(b *testing.B, n int, ttl, idle time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	env := devtest.Start(b, ctx, devenv.Options{Sandbox: true, SandboxAccessTokenTTL: ttl})
	start := time.Now()
	applyTenants(b, ctx, env, n)
	applied := time.Since(start)
	ready := waitAllReady(b, ctx, env, n, start)
	b.Logf("%d tenants: applied in %v, all Ready %v after the first apply", n, applied.Round(time.Second), ready.Round(time.Second))

	fig := measureIdle(b, ctx, env, idle)
	b.ReportMetric(ready.Seconds(), "s-to-ready")
	b.ReportMetric(fig.rssMB, "idle-rss-MB")
	b.ReportMetric(fig.cpuPercent, "idle-cpu-%")
	b.ReportMetric(fig.apiPerMinute, "idle-apiserver-req/min")
	b.ReportMetric(float64(fig.refreshes), "refreshes")
	b.ReportMetric(float64(fig.maxPerMinute), "max-refreshes/min")
	b.ReportMetric(float64(fig.listReads), "idle-getLists+getFields")
	b.Logf("%d tenants, idle %v (token TTL %v):\n%s", n, idle, ttl, fig.table())
}

// applyTenants creates the tenants from a few goroutines, as a platform
// team's apply would: each its namespace, Kommo account, Unisender key,
// Secrets, integration and binding.
func applyTenants(b *testing.B, ctx context.Context, env *devenv.Env, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				name := fmt.Sprintf("t%04d", i)
				tn := devenv.Tenant{Namespace: name, Integration: "kommo", Binding: "newsletter",
					Subdomain: name, ListTitle: "Kommo contacts", UnisenderKey: "scale-key-" + name}
				if err := env.ApplyTenant(ctx, tn); err != nil {
					errs <- fmt.Errorf("tenant %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func durationEnv(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s: %q is not a duration", name, v)
	}
	return d
}
