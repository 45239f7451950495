package importer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
)

// checkpoints are the import counts at which memory is sampled.
var checkpoints = []int64{10_000, 100_000, 1_000_000}

// memSample is the operator's memory at one point of the run.
type memSample struct {
	label            string
	imported         int64
	at               time.Duration // since the import started
	managerRSS       int64
	workerRSS        int64
	managerHeap      float64
	managerGoroutine float64
}

// watch follows the binding's import status and samples memory as it
// passes the checkpoints.
type watch struct {
	env     *devenv.Env
	start   time.Time
	samples []memSample
}

func newWatch(env *devenv.Env) *watch { return &watch{env: env, start: time.Now()} }

// untilImported polls the binding until its initial import completed,
// sampling memory at each checkpoint the count passes.
func (w *watch) untilImported(b *testing.B, ctx context.Context) v1alpha1.ImportStatus {
	b.Helper()
	key := client.ObjectKey{Namespace: bigTenant.Namespace, Name: bigTenant.Binding}
	next := 0
	var last v1alpha1.ImportStatus
	w.sample(b, "start", 0)
	for ctx.Err() == nil {
		var ub v1alpha1.UnisenderBinding
		if err := w.env.Client.Get(ctx, key, &ub); err == nil && ub.Status.Import != nil {
			last = *ub.Status.Import
			for next < len(checkpoints) && last.Imported >= checkpoints[next] {
				w.sample(b, fmt.Sprintf("%dk", checkpoints[next]/1000), last.Imported)
				next++
			}
			switch last.Phase {
			case v1alpha1.ImportCompleted:
				w.sample(b, "done", last.Imported)
				return last
			case v1alpha1.ImportFailed:
				b.Fatalf("the import failed: %+v", last)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Fatalf("the import did not complete: %+v", last)
	return last
}

// sample records the manager's and the worker's memory and returns the
// table of samples so far.
func (w *watch) sample(b *testing.B, label string, imported int64) string {
	b.Helper()
	s := memSample{label: label, imported: imported, at: time.Since(w.start)}
	var err error
	s.managerRSS, err = devtest.RSSBytes(w.env.Processes["manager"].PID())
	must(b, err)
	s.workerRSS, err = devtest.RSSBytes(w.env.Processes[w.env.WorkerNames[0]].PID())
	must(b, err)
	if m, err := devtest.Scrape(w.env.MetricsURLs["manager"]); err == nil {
		s.managerHeap, s.managerGoroutine = m["go_memstats_heap_inuse_bytes"], m["go_goroutines"]
	}
	w.samples = append(w.samples, s)
	return w.table()
}

func (w *watch) table() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-13s %10s %9s %14s %13s %15s %10s\n", "point", "imported", "at", "manager RSS", "worker RSS", "manager heap", "goroutines")
	for _, s := range w.samples {
		fmt.Fprintf(&sb, "%-13s %10d %9s %11.1f MB %10.1f MB %12.1f MB %10.0f\n", s.label, s.imported, s.at.Round(time.Second),
			mb(s.managerRSS), mb(s.workerRSS), s.managerHeap/(1<<20), s.managerGoroutine)
	}
	return sb.String()
}

// spread is the largest minus the smallest RSS of the process ("manager"
// or "worker") over the samples from the first checkpoint on.
func (w *watch) spread(process string) float64 {
	lo, hi := 0.0, 0.0
	for i, s := range w.samples[1:] {
		v := mb(s.managerRSS)
		if process == "worker" {
			v = mb(s.workerRSS)
		}
		if i == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	return hi - lo
}

// last is the process's RSS at the last sample, in MB.
func (w *watch) last(process string) float64 {
	s := w.samples[len(w.samples)-1]
	if process == "worker" {
		return mb(s.workerRSS)
	}
	return mb(s.managerRSS)
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
