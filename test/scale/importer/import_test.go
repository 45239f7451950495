// Package importer measures the initial import of one large Kommo account
// through the real processes (issue 20, item 2): its pace against the bound
// Kommo's rate sets, the Unisender calls it makes, the operator's memory as
// the count grows, the MySQL bytes each contact costs, and one resync (its
// sweep reads every synced id) afterwards.
package importer

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
)

// Kommo's page and the sweep's chunk: 250 contacts per request.
const contactsPerRequest = 250

// bigTenant is the one tenant of the benchmark, on its own sandbox account.
var bigTenant = devenv.Tenant{Namespace: "big", Integration: "big", Binding: "big-list",
	Subdomain: "big", ListTitle: "Big account"}

// BenchmarkLargeImport seeds SCALE_CONTACTS (default 100,000) sandbox
// contacts, imports them with one manager and one worker, and reports:
//
//   - the import's time and contacts/s against the bound of the Kommo rate
//     (SCALE_KOMMO_RATE requests/s, default Kommo's 7, × 250 contacts);
//   - Unisender's calls and Kommo's requests;
//   - the manager's and the worker's RSS when 10k, 100k and 1M contacts are
//     in (those the count reaches), and the manager's heap and goroutines;
//   - MySQL's bytes per contact, per table (information_schema, after
//     ANALYZE TABLE);
//   - one resync with nothing changed — a listing request and the sweep,
//     which reads every synced id — and what it costs per hour at the
//     default resync interval, in Kommo requests and in time at Kommo's rate.
//
// A million contacts at Kommo's 7 requests/s takes over 10 minutes; with
// SCALE_KOMMO_RATE=50 (Kommo's per-account cap, which spec.rateLimit
// allows) the sandbox and the integration both run 50/s. Run with a
// binary built without -race for memory figures that mean something:
//
//	go build -o /tmp/ku . && KOMMO_UNISENDER_BIN=/tmp/ku SCALE_CONTACTS=1000000 SCALE_KOMMO_RATE=50 \
//	  go run ./hack/testenv -- go test -run '^$' -bench LargeImport -benchtime 1x -timeout 60m -v ./test/scale/importer/
func BenchmarkLargeImport(b *testing.B) {
	contacts := envInt(b, "SCALE_CONTACTS", 100_000)
	rate := envInt(b, "SCALE_KOMMO_RATE", 7)
	for range b.N {
		runLargeImport(b, contacts, rate)
	}
}

func runLargeImport(b *testing.B, contacts, rate int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	env := startSystem(b, ctx, rate)
	seed(b, env, contacts)
	tn := bigTenant
	tn.RequestsPerSecond = int32(rate)
	must(b, env.ApplyTenant(ctx, tn))
	w := newWatch(env)
	imp := w.untilImported(b, ctx)
	elapsed := imp.FinishedAt.Sub(imp.StartedAt.Time)
	bound := float64(rate * contactsPerRequest)
	pace := float64(imp.Imported) / elapsed.Seconds()
	b.Logf("import of %d contacts (%d seeded; those without e-mail count too): %v, %.0f contacts/s = %.0f%% of the bound %d req/s × %d = %.0f/s",
		imp.Imported, contacts, elapsed.Round(time.Second), pace, 100*pace/bound, rate, contactsPerRequest, bound)
	b.Logf("memory as the import went (RSS; manager heap in use, goroutines):\n%s", w.table())
	uni := unisenderCalls(b, env)
	b.Logf("Unisender calls: %v; Kommo requests: %v", uni, kommoRequests(b, env))
	perContact := mysqlBytes(b, ctx, env, imp.Imported)
	resync, sweepReqs := timeResync(b, ctx, env)
	perHour := float64(sweepReqs) // one resync per hour at the default interval
	share := perHour / (7 * 3600)
	atKommoRate := time.Duration(float64(sweepReqs) / (7 * 0.7 * 0.9) * float64(time.Second))
	b.Logf("one resync with nothing changed: %v, %d Kommo requests (1 listing + the sweep's %d ids / 250 + confirmations); "+
		"per hour at the default interval (%v): %.0f requests = %.1f%% of Kommo's 7 req/s, about %v at the background share of Kommo's rate",
		resync.Round(time.Millisecond), sweepReqs, imp.Imported, v1alpha1.DefaultResyncInterval, perHour, 100*share, atKommoRate.Round(time.Second))
	b.Logf("memory after the resync:\n%s", w.sample(b, "after resync", imp.Imported))
	b.ReportMetric(elapsed.Seconds(), "import-s")
	b.ReportMetric(pace, "contacts/s")
	b.ReportMetric(100*pace/bound, "%-of-bound")
	b.ReportMetric(float64(uni["importContacts"]), "importContacts-calls")
	b.ReportMetric(w.spread("manager"), "manager-rss-spread-MB")
	b.ReportMetric(w.last("manager"), "manager-rss-MB")
	b.ReportMetric(w.last("worker"), "worker-rss-MB")
	b.ReportMetric(perContact, "mysql-bytes/contact")
	b.ReportMetric(resync.Seconds(), "resync-s")
	b.ReportMetric(float64(sweepReqs), "resync-kommo-requests")
	b.ReportMetric(atKommoRate.Seconds(), "sweep-s/h-at-kommo-rate")
}

func startSystem(b *testing.B, ctx context.Context, rate int) *devenv.Env {
	b.Helper()
	return devtest.Start(b, ctx, devenv.Options{Sandbox: true, SandboxAccessTokenTTL: time.Hour,
		SandboxKommoRate: float64(rate)})
}

// seed creates the account and its contacts before the tenant exists, as
// an account with a history would be (seeding delivers no webhook).
func seed(b *testing.B, env *devenv.Env, n int) {
	b.Helper()
	t0 := time.Now()
	must(b, devenv.SandboxJSON(http.MethodPost, env.KommoURL+"/_admin/accounts", map[string]string{"subdomain": bigTenant.Subdomain}, nil))
	must(b, devenv.SandboxJSON(http.MethodPost, env.KommoURL+"/_admin/accounts/"+bigTenant.Subdomain+"/seed", map[string]int{"n": n}, nil))
	b.Logf("seeded %d sandbox contacts in %v", n, time.Since(t0).Round(time.Millisecond))
}

// unisenderCalls are the Unisender API calls by method.
func unisenderCalls(b *testing.B, env *devenv.Env) map[string]int {
	b.Helper()
	var st struct{ Calls map[string]int }
	must(b, devenv.SandboxJSON(http.MethodGet, env.UnisenderURL+"/_admin/stats", nil, &st))
	return st.Calls
}

// kommoRequests are Kommo's requests by route, since the last reset.
func kommoRequests(b *testing.B, env *devenv.Env) map[string]int {
	b.Helper()
	var st struct{ Requests map[string]int }
	must(b, devenv.SandboxJSON(http.MethodGet, env.KommoURL+"/_admin/stats", nil, &st))
	return st.Requests
}

// mysqlBytes logs each table's size (data + indexes, after ANALYZE TABLE so
// that InnoDB's figures are current) and returns the total per contact.
func mysqlBytes(b *testing.B, ctx context.Context, env *devenv.Env, contacts int64) float64 {
	b.Helper()
	db, err := sql.Open("mysql", env.MySQLDSN())
	must(b, err)
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`)
	must(b, err)
	var tables []string
	for rows.Next() {
		var name string
		must(b, rows.Scan(&name))
		tables = append(tables, name)
	}
	must(b, rows.Err())
	for _, name := range tables {
		_, err := db.ExecContext(ctx, "ANALYZE TABLE `"+name+"`")
		must(b, err)
	}
	rows, err = db.QueryContext(ctx, `SELECT table_name, table_rows, data_length, index_length
		FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY data_length + index_length DESC`)
	must(b, err)
	defer rows.Close()
	var report strings.Builder
	var total int64
	fmt.Fprintf(&report, "%-28s %12s %14s %14s %10s\n", "table", "rows (est.)", "data bytes", "index bytes", "B/contact")
	for rows.Next() {
		var name string
		var n, data, index int64
		must(b, rows.Scan(&name, &n, &data, &index))
		total += data + index
		fmt.Fprintf(&report, "%-28s %12d %14d %14d %10.0f\n", name, n, data, index, float64(data+index)/float64(contacts))
	}
	must(b, rows.Err())
	perContact := float64(total) / float64(contacts)
	fmt.Fprintf(&report, "%-28s %12s %14s %14s %10.0f (total %d MB)", "all", "", "", "", perContact, total>>20)
	b.Logf("MySQL after the import of %d contacts:\n%s", contacts, report.String())
	return perContact
}

// timeResync asks for a resync (the reconcile-request annotation) and
// waits for it; it returns its time and the Kommo requests it made.
func timeResync(b *testing.B, ctx context.Context, env *devenv.Env) (time.Duration, int) {
	b.Helper()
	must(b, devenv.SandboxJSON(http.MethodDelete, env.KommoURL+"/_admin/stats", nil, nil))
	var ub v1alpha1.UnisenderBinding
	key := client.ObjectKey{Namespace: bigTenant.Namespace, Name: bigTenant.Binding}
	must(b, env.Client.Get(ctx, key, &ub))
	before := ub.Status.LastResyncTime
	t0 := time.Now()
	patch := client.MergeFrom(ub.DeepCopy())
	ub.Annotations = map[string]string{v1alpha1.ReconcileRequestAnnotation: t0.UTC().Format(time.RFC3339Nano)}
	must(b, env.Client.Patch(ctx, &ub, patch))
	for ctx.Err() == nil {
		must(b, env.Client.Get(ctx, key, &ub))
		if last := ub.Status.LastResyncTime; last != nil && (before == nil || last.After(before.Time)) {
			reqs := kommoRequests(b, env)
			return time.Since(t0), reqs["GET /api/v4/contacts"] + reqs["GET /api/v4/contacts/{id}"]
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.Fatalf("the resync did not finish: %v", ctx.Err())
	return 0, 0
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func must(b testing.TB, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
