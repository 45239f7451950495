// Package health is the system test of issue 18's sync health: after
// scripted Kommo edits, the binding's status figures match the database
// and the Unisender list, `kubectl get ub` and `kommo-unisender report` show
// the refused and excluded records with their reasons, every metric the
// dashboard and the alert rules name is exposed by a process, and status
// writes stay at most two a minute under a steady webhook load.
package health

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-sql-driver/mysql"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

const tenantKey = devenv.SampleNamespace + "/" + devenv.SampleBinding

type system struct {
	env *devenv.Env
	db  *sql.DB
}

// contact is a sandbox Kommo contact as its admin API takes and gives it.
type contact struct {
	ID     int64    `json:"id,omitempty"`
	Type   string   `json:"type,omitempty"`
	Name   string   `json:"name,omitempty"`
	Emails []string `json:"emails"`
	Phones []string `json:"phones"`
}

func TestSyncHealthSystem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := start(t, ctx)

	// The scripted edits: one invalid address, one role address, one
	// contact without e-mail.
	scripted := map[int64]string{
		s.createContact(t, contact{Name: "Typo", Emails: []string{"not-an-email"}}):                           "invalid_email",
		s.createContact(t, contact{Name: "Role", Emails: []string{"info@example.org"}}):                       "role_address",
		s.createContact(t, contact{Name: "Phone only", Emails: []string{}, Phones: []string{"+79261232323"}}): "no_email",
	}
	var health *v1alpha1.SyncHealth
	devtest.WaitUntil(t, "status.health to match the database after the edits", 2*time.Minute, func() (bool, string) {
		health = s.health(t, ctx)
		want := s.figuresFromDatabase(t)
		ok := health != nil && health.Refused == 2 && equality.Semantic.DeepEqual(health, want)
		return ok, fmt.Sprintf("status %s; database %s", js(health), js(want))
	})
	if health.LatencyP50 == nil || health.LatencyP99 == nil {
		t.Errorf("status.health has no webhook → applied latency after webhook jobs were applied: %s", js(health))
	}
	if members := s.listMembers(t); int64(members) != health.InList {
		t.Errorf("status.health.inList = %d; the Unisender list holds %d active addresses", health.InList, members)
	}
	t.Logf("status.health after the edits: %s", js(health))

	checkKubectl(t, s, health)
	checkReport(t, s, scripted)
	checkMetricNames(t, s)
	checkStatusWriteRate(t, ctx, s)
}

func start(t *testing.T, ctx context.Context) *system {
	t.Helper()
	logf.SetLogger(logr.Discard()) // the test's Kubernetes clients log nothing worth showing
	env := devtest.Start(t, ctx, devenv.Options{Sandbox: true, SandboxAccessTokenTTL: time.Hour, SeedContacts: 30})
	must(t, env.ApplySampleTenant(ctx))
	devtest.WaitUntil(t, "the initial import", 90*time.Second, func() (bool, string) {
		st, err := env.SampleBindingStatus(ctx)
		return err == nil && st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted, fmt.Sprintf("status %+v (%v)", st, err)
	})
	cfg, err := mysql.ParseDSN(env.MySQLDSN())
	must(t, err)
	cfg.ParseTime = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	must(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return &system{env: env, db: db}
}

// figuresFromDatabase computes the status figures with SQL of its own.
func (s *system) figuresFromDatabase(t *testing.T) *v1alpha1.SyncHealth {
	t.Helper()
	h := &v1alpha1.SyncHealth{}
	for _, q := range []struct {
		dest  *int64
		query string
	}{
		{&h.ContactsSynced, `SELECT COUNT(*) FROM contact_state WHERE tenant = ? AND deleted = 0`},
		{&h.InList, `SELECT COUNT(DISTINCT email) FROM contact_emails WHERE tenant = ? AND email NOT IN
			(SELECT email FROM refusals WHERE tenant = contact_emails.tenant AND source = 'unisender')`},
		{&h.InvitationsPending, `SELECT COUNT(*) FROM invitations WHERE tenant = ? AND status = 'pending'`},
		{&h.DeadLetters, `SELECT COUNT(*) FROM dead_letters WHERE tenant = ? AND requeued_at IS NULL`},
	} {
		must(t, s.db.QueryRow(q.query, tenantKey).Scan(q.dest))
	}
	h.RefusedByReason, h.Refused = s.countByReason(t, "unisender")
	h.ExcludedByReason, h.Excluded = s.countByReason(t, "skipped")
	var last sql.NullTime
	must(t, s.db.QueryRow(`SELECT MAX(synced_at) FROM contact_state WHERE tenant = ?`, tenantKey).Scan(&last))
	if last.Valid {
		at := metav1.NewTime(last.Time.Truncate(time.Second))
		h.LastEventAppliedTime = &at
	}
	h.LatencyP50, h.LatencyP99 = s.latencyQuantiles(t)
	return h
}

// latencyQuantiles are the nearest-rank p50 and p99 of the tenant's
// latency samples (all within the last hour in this test).
func (s *system) latencyQuantiles(t *testing.T) (p50, p99 *metav1.Duration) {
	t.Helper()
	rows, err := s.db.Query(`SELECT latency_ms FROM sync_latency WHERE tenant = ? ORDER BY latency_ms`, tenantKey)
	must(t, err)
	defer rows.Close()
	var ms []int64
	for rows.Next() {
		var v int64
		must(t, rows.Scan(&v))
		ms = append(ms, v)
	}
	must(t, rows.Err())
	if len(ms) == 0 {
		return nil, nil
	}
	rank := func(q float64) *metav1.Duration {
		i := int(math.Ceil(q*float64(len(ms)))) - 1
		return &metav1.Duration{Duration: time.Duration(ms[max(i, 0)]) * time.Millisecond}
	}
	return rank(0.50), rank(0.99)
}

func (s *system) countByReason(t *testing.T, source string) (map[string]int64, int64) {
	t.Helper()
	rows, err := s.db.Query(`SELECT reason, COUNT(*) FROM refusals WHERE tenant = ? AND source = ? GROUP BY reason`, tenantKey, source)
	must(t, err)
	defer rows.Close()
	var total int64
	by := map[string]int64{}
	for rows.Next() {
		var reason string
		var n int64
		must(t, rows.Scan(&reason, &n))
		by[reason], total = n, total+n
	}
	must(t, rows.Err())
	if len(by) == 0 {
		by = nil
	}
	return by, total
}

func (s *system) health(t *testing.T, ctx context.Context) *v1alpha1.SyncHealth {
	t.Helper()
	st, err := s.env.SampleBindingStatus(ctx)
	must(t, err)
	return st.Health
}

// listMembers counts the active members of the binding's Unisender list.
func (s *system) listMembers(t *testing.T) int {
	t.Helper()
	st, err := s.env.SampleBindingStatus(context.Background())
	must(t, err)
	var members []struct {
		ListStatus string `json:"list_status"`
	}
	must(t, devenv.SandboxJSON(http.MethodGet, s.env.UnisenderURL+"/_admin/lists/"+strconv.FormatInt(st.ListID, 10)+"/members", nil, &members))
	n := 0
	for _, m := range members {
		if m.ListStatus == "active" {
			n++
		}
	}
	return n
}

func (s *system) kommoAdmin(path string) string {
	return s.env.KommoURL + "/_admin/accounts/" + devenv.SandboxSubdomain + path
}

func (s *system) createContact(t *testing.T, c contact) int64 {
	t.Helper()
	var out contact
	must(t, devenv.SandboxJSON(http.MethodPost, s.kommoAdmin("/contacts"), c, &out))
	return out.ID
}

// seededWithoutEmail are the sandbox's seeded people with no address: the
// only other records the report may show.
func (s *system) seededWithoutEmail(t *testing.T, scripted map[int64]string) map[int64]string {
	t.Helper()
	var all []contact
	must(t, devenv.SandboxJSON(http.MethodGet, s.kommoAdmin("/contacts"), nil, &all))
	out := map[int64]string{}
	for _, c := range all {
		if _, ok := scripted[c.ID]; !ok && c.Type != "company" && len(c.Emails) == 0 {
			out[c.ID] = "no_email"
		}
	}
	return out
}

// checkKubectl: `kubectl get ub` shows the in-sync and refused counts.
func checkKubectl(t *testing.T, s *system, h *v1alpha1.SyncHealth) {
	t.Helper()
	out := s.kubectl(t, "get", "ub", "-n", devenv.SampleNamespace)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get ub:\n%s", out)
	}
	cols := map[string]string{}
	header, values := strings.Fields(lines[0]), strings.Fields(lines[1])
	for i, name := range header {
		if i < len(values) {
			cols[name] = values[i]
		}
	}
	if cols["IN-SYNC"] != strconv.FormatInt(h.InList, 10) || cols["REFUSED"] != "2" {
		t.Errorf("kubectl get ub shows IN-SYNC %q and REFUSED %q; want %d and 2:\n%s", cols["IN-SYNC"], cols["REFUSED"], h.InList, out)
	}
	t.Logf("kubectl get ub:\n%s", out)
	describe := s.kubectl(t, "describe", "ub", "-n", devenv.SampleNamespace, devenv.SampleBinding)
	for _, want := range []string{"Health:", "Contacts Synced:", "Refused By Reason:", "Excluded By Reason:", "Dead Letters:", "Last Event Applied Time:"} {
		if !strings.Contains(describe, want) {
			t.Errorf("kubectl describe lacks %q:\n%s", want, describe)
		}
	}
}

func (s *system) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.KubeAssets(t), "kubectl"), append([]string{"--kubeconfig", s.env.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// checkReport: the report subcommand lists exactly the scripted records
// (and the seeded contacts without e-mail), with their reasons.
func checkReport(t *testing.T, s *system, scripted map[int64]string) {
	t.Helper()
	bin := testenv.Tool(t, testenv.EnvBinary)
	cmd := exec.Command(bin, "report", tenantKey, "-o", "json")
	cmd.Env = append(os.Environ(), "MYSQL_DSN="+s.env.MySQLDSN())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	var rep struct {
		Binding string `json:"binding"`
		Records []struct {
			ContactID int64  `json:"contactID"`
			Email     string `json:"email"`
			Reason    string `json:"reason"`
		} `json:"records"`
	}
	must(t, json.Unmarshal(out, &rep))
	want := s.seededWithoutEmail(t, scripted)
	for id, reason := range scripted {
		want[id] = reason
	}
	got := map[int64]string{}
	for _, r := range rep.Records {
		got[r.ContactID] = r.Reason
	}
	if rep.Binding != tenantKey || !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("report of %s: %v; want %v", rep.Binding, got, want)
	}
	cmd = exec.Command(bin, "report", tenantKey, "--reason", "role_address")
	cmd.Env = append(os.Environ(), "MYSQL_DSN="+s.env.MySQLDSN())
	table, err := cmd.Output()
	if err != nil || !strings.Contains(string(table), "info@example.org") || strings.Contains(string(table), "not-an-email") {
		t.Errorf("report --reason role_address (%v):\n%s", err, table)
	}
	t.Logf("kommo-unisender report %s:\n%s", tenantKey, table)
}

var metricName = regexp.MustCompile(`kommo_unisender_[a-z0-9_]+`)

// checkMetricNames: every metric the dashboard's queries and the alert
// rules' expressions name is exposed by the manager, the webhook server or
// a worker. (The expressions' syntax is checked with Prometheus's parser in
// test/promrules.)
func checkMetricNames(t *testing.T, s *system) {
	t.Helper()
	exposed := map[string]bool{}
	urls := []string{s.env.WebhookURL + "/metrics"}
	for _, u := range s.env.MetricsURLs {
		urls = append(urls, u)
	}
	for _, u := range urls {
		for name := range scrape(t, u) {
			exposed[name] = true
		}
	}
	named := namedMetrics(t)
	if len(named) < 15 {
		t.Fatalf("found %d metric names in the dashboard and rules; want them all: %v", len(named), named)
	}
	for _, name := range named {
		if !exposed[name] {
			t.Errorf("%s is named by the dashboard or the alert rules but no process exposes it", name)
		}
	}
}

// scrape returns the series names one /metrics page exposes, histograms'
// _bucket, _sum and _count included.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	must(t, sc.Err())
	return names
}

// namedMetrics are the metric names in the dashboard's queries and the
// alert rules' expressions.
func namedMetrics(t *testing.T) []string {
	t.Helper()
	chart := filepath.Join("..", "..", "charts", "kommo-unisender")
	raw, err := os.ReadFile(filepath.Join(chart, "files", "grafana", "kommo-unisender-sync.json"))
	must(t, err)
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	must(t, json.Unmarshal(raw, &dash))
	var exprs []string
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	rules, err := os.ReadFile(filepath.Join(chart, "templates", "prometheusrule.yaml"))
	must(t, err)
	for _, line := range strings.Split(string(rules), "\n") {
		if expr, ok := strings.CutPrefix(strings.TrimSpace(line), "expr:"); ok {
			exprs = append(exprs, expr)
		}
	}
	var names []string
	for _, e := range exprs {
		names = append(names, metricName.FindAllString(e, -1)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// checkStatusWriteRate: under a steady webhook load (a Kommo edit every
// second, each delivered as a webhook and applied), the binding's object is
// written at most twice a minute, counted by watching it at the API
// server; the manager's own count of health writes agrees.
func checkStatusWriteRate(t *testing.T, ctx context.Context, s *system) {
	t.Helper()
	const window = 65 * time.Second // two refresh periods and a margin
	wc, err := client.NewWithWatch(s.env.Config, client.Options{Scheme: s.env.Client.Scheme()})
	must(t, err)
	var list v1alpha1.UnisenderBindingList
	must(t, s.env.Client.List(ctx, &list, client.InNamespace(devenv.SampleNamespace)))
	w, err := wc.Watch(ctx, &v1alpha1.UnisenderBindingList{}, client.InNamespace(devenv.SampleNamespace),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	must(t, err)
	defer w.Stop()
	writesBefore := s.managerHealthWrites(t)
	appliedBefore := s.workerApplied(t)
	id := s.createContact(t, contact{Name: "Load 0", Emails: []string{"load@example.com"}})
	var writes []time.Time
	start := time.Now()
	edit := time.NewTicker(time.Second)
	defer edit.Stop()
	for n := 1; time.Since(start) < window; {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Modified {
				writes = append(writes, time.Now())
			}
		case <-edit.C:
			must(t, devenv.SandboxJSON(http.MethodPut, s.kommoAdmin("/contacts/"+strconv.FormatInt(id, 10)),
				contact{Name: fmt.Sprintf("Load %d", n), Emails: []string{"load@example.com"}}, nil))
			n++
		}
	}
	elapsed := time.Since(start)
	applied := s.workerApplied(t) - appliedBefore
	healthWrites := s.managerHealthWrites(t) - writesBefore
	t.Logf("status write rate: %d writes of the binding in %v (%.2f a minute; the manager counts %.0f health writes) while the worker applied %.0f contact events",
		len(writes), elapsed.Round(time.Second), float64(len(writes))/elapsed.Minutes(), healthWrites, applied)
	if applied < 40 {
		t.Fatalf("the worker applied %.0f events in %v: the load did not happen", applied, elapsed)
	}
	if len(writes) < 2 {
		t.Fatalf("%d status writes under load: the figures were not refreshed", len(writes))
	}
	for i := 1; i < len(writes); i++ {
		if gap := writes[i].Sub(writes[i-1]); gap < 29*time.Second {
			t.Errorf("status writes %d and %d were %v apart: more than 2 a minute", i, i+1, gap.Round(time.Millisecond))
		}
	}
	if max := int(elapsed/(30*time.Second)) + 1; len(writes) > max {
		t.Errorf("%d status writes in %v; want at most %d (2 a minute)", len(writes), elapsed, max)
	}
}

func (s *system) managerHealthWrites(t *testing.T) float64 {
	return sumSeries(t, s.env.MetricsURLs["manager"], "kommo_unisender_binding_health_writes_total")
}

func (s *system) workerApplied(t *testing.T) float64 {
	return sumSeries(t, s.env.MetricsURLs["worker"], `kommo_unisender_worker_events_total{`, `outcome="applied"`)
}

// sumSeries adds the values of the series of a /metrics page whose line
// starts with prefix and contains every one of has.
func sumSeries(t *testing.T, url, prefix string, has ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) || !containsAll(line, has) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		must(t, err)
		sum += v
	}
	must(t, sc.Err())
	return sum
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
