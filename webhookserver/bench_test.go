package webhookserver_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

// benchTarget is the real server listening on a loopback TCP port, over the
// package's cache, with a beanstalkd whose binlog is on.
type benchTarget struct {
	URL        string // the tenant's webhook URL
	beanstalkd *testenv.Beanstalkd
	Body       []byte // the one-contact add sample
	Tube       string
	consumer   *queue.Consumer
	Tenant     *tenantFixture
}

// startBenchTarget serves the production configuration (DefaultConfig, a
// producer pool of 32 as the subcommand's default). The beanstalkd is
// private (same binary and flags as the shared one, binlog on) so that the
// hundreds of thousands of jobs a run leaves go away with it.
func startBenchTarget(b *testing.B) *benchTarget {
	b.Helper()
	f := newTenant(b, tenantOpts{})
	k, _ := cluster(b)
	bs, err := testenv.StartBeanstalkd(context.Background(), b.TempDir())
	must(b, err)
	b.Cleanup(bs.Stop)
	cfg := webhookserver.DefaultConfig()
	cfg.Tube = testenv.Tube("bench")
	// One tenant at full speed: the benchmark measures ingestion, not the
	// admission (its own tests are in admission_test.go).
	withoutAdmission(&cfg)
	producer := queue.NewProducer(bs.Addr(), queue.ProducerOptions{Conns: 32})
	b.Cleanup(func() { _ = producer.Close() })
	srv, err := webhookserver.New(cfg, webhookserver.Deps{
		Tenants: k.Tenants(), Cluster: k, Queue: producer, Log: logr.Discard(), Registry: prometheus.NewRegistry(),
	})
	must(b, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("server: %v", err)
		}
	})
	consumer, err := queue.NewConsumer(bs.Addr(), []string{cfg.Tube}, queue.ConsumerOptions{})
	must(b, err)
	b.Cleanup(func() { _ = consumer.Close() })
	body, err := fixtures.KommoWebhookBody(fixtures.AddContact)
	must(b, err)
	return &benchTarget{URL: "http://" + l.Addr().String() + f.WebhookPath(), beanstalkd: bs,
		Body: []byte(body), Tube: cfg.Tube, consumer: consumer, Tenant: f}
}

// checkJob reserves one job of the target's tube and checks it is what the
// one-contact sample must become: a contacts job naming its contact.
func (bt *benchTarget) checkJob(b *testing.B) {
	b.Helper()
	job, err := bt.consumer.Reserve(context.Background(), time.Second)
	must(b, err)
	env, err := queue.Decode(job.Body)
	must(b, err)
	refs := contactsOf(b, env)
	if len(refs) != 1 || refs[0].ID != 5100201 {
		b.Fatalf("a job names %v, want the sample's contact 5100201", refs)
	}
	must(b, bt.consumer.Delete(context.Background(), job.ID))
}

// jobs is the number of jobs ever put in the target's tube.
func (bt *benchTarget) jobs(b *testing.B) int64 {
	b.Helper()
	st, err := bt.consumer.StatsTube(context.Background(), bt.Tube)
	must(b, err)
	return st.TotalJobs
}

// BenchmarkWebhookIngest drives the real server with 32 concurrent
// keep-alive clients (Go's HTTP client, in this process) posting the
// one-contact sample: authenticate, parse, durable put, 200. It reports
// requests per second and latency percentiles; every answer must be 200
// and every 200 a job.
//
//	go run ./hack/testenv -- go test -run '^$' -bench BenchmarkWebhookIngest -benchtime 100000x ./webhookserver/
func BenchmarkWebhookIngest(b *testing.B) {
	productionGC(b)
	bt := startBenchTarget(b)
	transport := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	const clients = 32
	b.SetParallelism((clients + 1) / 2) // × GOMAXPROCS (2 here) goroutines
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		bad := 0
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, bt.URL, bytes.NewReader(bt.Body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				bad++
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				bad++
			}
		}
		mu.Lock()
		latencies = append(latencies, local...)
		failures += bad
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if failures > 0 {
		b.Fatalf("%d of %d requests failed or were not answered 200", failures, b.N)
	}
	if jobs := bt.jobs(b); jobs != int64(b.N) {
		b.Fatalf("%d jobs in beanstalkd for %d answers 200", jobs, b.N)
	}
	bt.checkJob(b)
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
}

// BenchmarkWebhookIngestWrk measures the server with wrk (Debian package
// wrk), as the reference figure was taken: 2 threads, 32
// keep-alive connections, the one-contact sample
// (testdata/wrk-webhook.lua), beanstalkd binlog on. The machine is shared
// and its speed drifts, so the reference handler (plain parse + one
// put, see startBaseline) is measured in the same run: rounds alternate
// between the two servers (WRK_ROUNDS, default 3, of WRK_DURATION, default
// 10 s, each) and the medians are reported, with ours/baseline ratios.
//
//	go run ./hack/testenv -- go test -run '^$' -bench WebhookIngestWrk -benchtime 1x -v ./webhookserver/
//
// Figures are wrk's; its reports are printed with -v. Server CPU per
// request is this process's CPU time over the round's requests (the
// clients are in wrk); beanstalkd's is that of each server's beanstalkd.
func BenchmarkWebhookIngestWrk(b *testing.B) {
	productionGC(b)
	ours := startBenchTarget(b)
	base := startBaseline(b)
	rounds, err := strconv.Atoi(cmp.Or(os.Getenv("WRK_ROUNDS"), "3"))
	if err != nil || rounds < 1 {
		b.Fatalf("WRK_ROUNDS=%q: want a positive number", os.Getenv("WRK_ROUNDS"))
	}
	b.ResetTimer()
	for range b.N {
		var (
			oursRuns, baseRuns []wrkRound
			answered           int64 // by our server, in all rounds so far
		)
		for r := range rounds {
			// Alternate which goes first so a drift in the machine's
			// speed does not favour one of them.
			runOurs := func() {
				run := measureWrk(b, "ours", ours.URL, ours.Body, ours.beanstalkd.PID())
				answered += run.total
				if jobs := ours.jobs(b); jobs < answered {
					b.Fatalf("%d jobs in beanstalkd for %d requests wrk saw answered", jobs, answered)
				}
				oursRuns = append(oursRuns, run)
			}
			runBase := func() { baseRuns = append(baseRuns, measureWrk(b, "baseline", base.URL, ours.Body, base.pid)) }
			if r%2 == 0 {
				runBase()
				runOurs()
			} else {
				runOurs()
				runBase()
			}
		}
		ours.checkJob(b)
		o, bl := medianRound(oursRuns), medianRound(baseRuns)
		b.ReportMetric(o.rps, "req/s")
		b.ReportMetric(o.p50, "p50-ms")
		// A round's p99 swings with what else the shared machine runs: the
		// tails are compared as medians of the rounds' own p99s.
		b.ReportMetric(medianOf(oursRuns, func(r wrkRound) float64 { return r.p99 }), "p99-ms")
		b.ReportMetric(o.serverCPU, "server-cpu-µs/req")
		b.ReportMetric(o.queueCPU, "beanstalkd-cpu-µs/req")
		b.ReportMetric(bl.rps, "baseline-req/s")
		b.ReportMetric(medianOf(baseRuns, func(r wrkRound) float64 { return r.p99 }), "baseline-p99-ms")
		b.ReportMetric(bl.serverCPU, "baseline-server-cpu-µs/req")
		b.ReportMetric(o.rps/bl.rps, "ours/baseline-req/s")
		b.ReportMetric(o.runtime.allocPerReq, "B-allocated/req")
		b.ReportMetric(bl.runtime.allocPerReq, "baseline-B-allocated/req")
		b.ReportMetric(float64(o.runtime.gcCycles), "gc-cycles/round")
		b.ReportMetric(float64(bl.runtime.gcCycles), "baseline-gc-cycles/round")
	}
}

// BenchmarkWebhookIngestManyContacts posts, one request at a time, a body
// naming 2,000 contacts (the parser's bound), which the server splits into
// 8 jobs put one after the other before its 200: the figure is the latency
// of Kommo's largest plausible delivery.
//
//	go run ./hack/testenv -- go test -run '^$' -bench WebhookIngestManyContacts -benchtime 200x ./webhookserver/
func BenchmarkWebhookIngestManyContacts(b *testing.B) {
	productionGC(b)
	bt := startBenchTarget(b)
	body, _ := manyContactsBody(bt.Tenant.AccountID, 7_100_000_000, 2000)
	latencies := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		resp, err := http.Post(bt.URL, "application/x-www-form-urlencoded", strings.NewReader(body))
		must(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		latencies = append(latencies, time.Since(t0))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	if jobs, want := bt.jobs(b), int64(8*b.N); jobs != want {
		b.Fatalf("%d jobs in beanstalkd for %d answers 200, want %d", jobs, b.N, want)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// productionGC sets the GC target the webhookserver subcommand runs with
// (GOGC=400 unless GOGC is set), for the benchmark's duration.
func productionGC(b *testing.B) {
	if os.Getenv("GOGC") == "" {
		old := debug.SetGCPercent(400)
		b.Cleanup(func() { debug.SetGCPercent(old) })
	}
}

// wrkRound is one wrk run and the CPU it cost.
type wrkRound struct {
	wrkReport
	serverCPU, queueCPU float64 // µs per request
	runtime             runtimeRound
}

// measureWrk runs wrk against target and meters this process's and
// beanstalkd's CPU time meanwhile, and this process's runtime (GC and
// scheduling, where a server's latency tail comes from).
func measureWrk(b *testing.B, name, target string, body []byte, beanstalkdPID int) wrkRound {
	b.Helper()
	server, queue := cpuTime(b, os.Getpid()), cpuTime(b, beanstalkdPID)
	rt := startRuntimeRound()
	report := runWrk(b, name, target, body)
	round := wrkRound{wrkReport: report, runtime: rt.end(report.total)}
	perReq := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(report.total) }
	round.serverCPU, round.queueCPU = perReq(cpuTime(b, os.Getpid())-server), perReq(cpuTime(b, beanstalkdPID)-queue)
	b.Logf("%s: %s", name, round.runtime)
	return round
}

// medianRound is the round with the median req/s.
func medianRound(runs []wrkRound) wrkRound {
	slices.SortFunc(runs, func(a, b wrkRound) int { return cmp.Compare(a.rps, b.rps) })
	return runs[len(runs)/2]
}

// medianOf is the median of one figure over the rounds.
func medianOf(runs []wrkRound, figure func(wrkRound) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = figure(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// cpuTime is the user+system CPU time a process used so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must(b, err)
	// After the command name (which may hold spaces) and its ")", utime and
	// stime are the 12th and 13th fields, in clock ticks (100 Hz on Linux).
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("cannot read the CPU times of process %d", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// baselineTarget is the reference: a plain Go handler that reads
// the body, decodes the form and puts it to beanstalkd (same producer pool,
// binlog on) — no authentication, no Kommo parsing, no envelope. For the
// one-contact sample both put one job per request (ours a contacts job of
// about 150 bytes naming the contact, the baseline the 1.1 kB body), so the
// two still compare the same work: parse and one durable put.
type baselineTarget struct {
	URL string
	pid int // its beanstalkd's
}

func startBaseline(b *testing.B) baselineTarget {
	b.Helper()
	bs, err := testenv.StartBeanstalkd(context.Background(), b.TempDir())
	must(b, err)
	b.Cleanup(bs.Stop)
	producer := queue.NewProducer(bs.Addr(), queue.ProducerOptions{Conns: 32})
	b.Cleanup(func() { _ = producer.Close() })
	tube := testenv.Tube("baseline")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := url.ParseQuery(string(body)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := producer.Put(r.Context(), tube, body, 1024, 0, time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return baselineTarget{URL: "http://" + l.Addr().String() + "/", pid: bs.PID()}
}

// runWrk runs wrk -t2 -c32 --latency against target with body and returns
// its figures; any non-2xx answer or socket error fails the benchmark.
func runWrk(b *testing.B, name, target string, body []byte) wrkReport {
	b.Helper()
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is not installed: make bench installs it (apt-get install -y wrk)")
	}
	duration := cmp.Or(os.Getenv("WRK_DURATION"), "10s")
	bodyFile := filepath.Join(b.TempDir(), "add-contact.body")
	must(b, os.WriteFile(bodyFile, body, 0o600))
	script, err := filepath.Abs("testdata/wrk-webhook.lua")
	must(b, err)
	load := loadAverage()
	cmd := exec.Command(wrk, "-t2", "-c32", "-d"+duration, "--latency", "-s", script, target)
	cmd.Env = append(os.Environ(), "WEBHOOK_BODY_FILE="+bodyFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	b.Logf("%s: wrk -t2 -c32 -d%s --latency (load average before: %s, after: %s)\n%s",
		name, duration, load, loadAverage(), redactURL(string(out), target))
	report, err := parseWrk(string(out))
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	if report.non2xx > 0 || report.socketErrors != "" {
		b.Fatalf("wrk saw %d non-2xx answers, socket errors %q", report.non2xx, report.socketErrors)
	}
	return report
}

// redactURL keeps the tenant secret of the benchmark out of the output.
func redactURL(out, url string) string {
	i := strings.LastIndexByte(url, '/')
	return strings.ReplaceAll(out, url, url[:i+1]+"****")
}

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}

type wrkReport struct {
	rps, p50, p99 float64
	total         int64 // requests answered
	non2xx        int64
	socketErrors  string
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: (.*)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

func parseWrk(out string) (wrkReport, error) {
	var r wrkReport
	m := wrkRPS.FindStringSubmatch(out)
	n := wrkRequests.FindStringSubmatch(out)
	if m == nil || n == nil {
		return r, fmt.Errorf("no Requests/sec or request count in wrk's output")
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.total, _ = strconv.ParseInt(n[1], 10, 64)
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		r.socketErrors = m[1]
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if r.p99 == 0 {
		return r, fmt.Errorf("no latency distribution in wrk's output (--latency)")
	}
	return r, nil
}
