package tenants

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// waitAllReady polls every 2 s until the n integrations and n bindings are
// Ready, and returns the time since start.
func waitAllReady(b *testing.B, ctx context.Context, env *devenv.Env, n int, start time.Time) time.Duration {
	b.Helper()
	for {
		ki, ub := readyCounts(b, ctx, env)
		if ki == n && ub == n {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			b.Fatalf("after %v: %d of %d integrations and %d of %d bindings Ready", time.Since(start).Round(time.Second), ki, n, ub, n)
		}
		time.Sleep(2 * time.Second)
	}
}

func readyCounts(b *testing.B, ctx context.Context, env *devenv.Env) (integrations, bindings int) {
	var kis v1alpha1.KommoIntegrationList
	var ubs v1alpha1.UnisenderBindingList
	if err := env.Client.List(ctx, &kis); err != nil {
		b.Fatal(err)
	}
	if err := env.Client.List(ctx, &ubs); err != nil {
		b.Fatal(err)
	}
	for _, o := range kis.Items {
		if meta.IsStatusConditionTrue(o.Status.Conditions, v1alpha1.ConditionReady) {
			integrations++
		}
	}
	for _, o := range ubs.Items {
		if meta.IsStatusConditionTrue(o.Status.Conditions, v1alpha1.ConditionReady) {
			bindings++
		}
	}
	return integrations, bindings
}

// idleFigures are what an idle window cost.
type idleFigures struct {
	window       time.Duration
	rssMB        float64 // manager's resident set at the end
	goroutines   float64 // manager's, at the end
	cpuPercent   float64 // manager's CPU time over the window, % of one core
	apiPerMinute float64 // every request the API server served, per minute
	apiTop       []string
	refreshes    int // token grants the Kommo sandbox served in the window
	maxPerMinute int // the most in any sliding minute
	maxPer10s    int
	refreshSpan  time.Duration // first to last
	listReads    int           // Unisender getLists + getFields in the window
	uniCalls     int           // every Unisender call in the window
}

// measureIdle resets the emulators' logs, waits out the window without
// touching the API server, and reads what the window cost.
func measureIdle(b *testing.B, ctx context.Context, env *devenv.Env, window time.Duration) idleFigures {
	b.Helper()
	pid := env.Processes["manager"].Pid()
	must(b, devenv.SandboxJSON(http.MethodDelete, env.KommoURL+"/_admin/stats", nil, nil))
	must(b, devenv.SandboxJSON(http.MethodDelete, env.UnisenderURL+"/_admin/stats", nil, nil))
	cpu0 := cpuTime(b, pid)
	api0 := apiserverRequests(b, ctx, env)
	t0 := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	fig := idleFigures{window: time.Since(t0)}
	fig.cpuPercent = 100 * (cpuTime(b, pid) - cpu0).Seconds() / fig.window.Seconds()
	api1 := apiserverRequests(b, ctx, env)
	fig.apiPerMinute = float64(sum(api1)-sum(api0)) / fig.window.Minutes()
	fig.apiTop = topDelta(api0, api1, 8)
	fig.rssMB = float64(procStatusKB(b, pid, "VmRSS")) / 1024
	fig.goroutines = managerMetric(b, env, "go_goroutines")

	var log []kommoemu.LogEntry
	must(b, devenv.SandboxJSON(http.MethodGet, env.KommoURL+"/_admin/log", nil, &log))
	var grants []kommoemu.LogEntry
	for _, e := range log {
		if e.Route == "POST /oauth2/access_token" && e.Status == http.StatusOK {
			grants = append(grants, e)
		}
	}
	fig.refreshes = len(grants)
	fig.maxPerMinute, _ = kommoemu.BusiestWindow(grants, time.Minute)
	fig.maxPer10s, _ = kommoemu.BusiestWindow(grants, 10*time.Second)
	if len(grants) > 0 {
		first, last := grants[0].Time, grants[0].Time
		for _, g := range grants {
			first, last = minTime(first, g.Time), maxTime(last, g.Time)
		}
		fig.refreshSpan = last.Sub(first)
	}
	var uni unisenderemu.Stats
	must(b, devenv.SandboxJSON(http.MethodGet, env.UnisenderURL+"/_admin/stats", nil, &uni))
	fig.listReads = uni.Calls["getLists"] + uni.Calls["getFields"]
	for _, c := range uni.Calls {
		fig.uniCalls += c
	}
	return fig
}

func (f idleFigures) table() string {
	var s strings.Builder
	fmt.Fprintf(&s, "  manager RSS            %8.1f MB   goroutines %.0f\n", f.rssMB, f.goroutines)
	fmt.Fprintf(&s, "  manager CPU            %8.2f %% of a core\n", f.cpuPercent)
	fmt.Fprintf(&s, "  API server requests    %8.1f /min  (top: %s)\n", f.apiPerMinute, strings.Join(f.apiTop, ", "))
	fmt.Fprintf(&s, "  token grants           %8d      max %d in a minute, %d in 10 s, spread over %v\n",
		f.refreshes, f.maxPerMinute, f.maxPer10s, f.refreshSpan.Round(time.Second))
	fmt.Fprintf(&s, "  Unisender calls        %8d      getLists+getFields %d\n", f.uniCalls, f.listReads)
	return s.String()
}

// apiserverRequests reads apiserver_request_total from the API server's
// /metrics, summed by verb and resource.
func apiserverRequests(b *testing.B, ctx context.Context, env *devenv.Env) map[string]float64 {
	cs, err := kubernetes.NewForConfig(env.Config)
	must(b, err)
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	must(b, err)
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len("apiserver_request_total{"):], "} ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		out[label(labels, "verb")+" "+label(labels, "resource")] += v
	}
	return out
}

func label(labels, name string) string {
	_, rest, ok := strings.Cut(","+labels, ","+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}

// topDelta names the k series that grew most between a and b.
func topDelta(a, b map[string]float64, k int) []string {
	type kv struct {
		k string
		v float64
	}
	var d []kv
	for key, v := range b {
		if dv := v - a[key]; dv > 0 {
			d = append(d, kv{key, dv})
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i].v > d[j].v })
	var out []string
	for i := 0; i < len(d) && i < k; i++ {
		out = append(out, fmt.Sprintf("%s %.0f", d[i].k, d[i].v))
	}
	return out
}

// managerMetric reads one unlabelled series from the manager's /metrics.
func managerMetric(b *testing.B, env *devenv.Env, name string) float64 {
	resp, err := http.Get(env.MetricsURLs["manager"])
	must(b, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// cpuTime is the process's user+system CPU time (/proc/<pid>/stat fields
// 14 and 15, in clock ticks of 1/100 s on Linux).
func cpuTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must(b, err)
	// The command name (field 2) may hold spaces: count after its ')'.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatusKB reads a "kB" line of /proc/<pid>/status.
func procStatusKB(b *testing.B, pid int, key string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(b, err)
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
