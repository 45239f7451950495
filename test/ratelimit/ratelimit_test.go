// Package ratelimit shows, on the whole system, design invariant 9: a Kommo
// account sees at most its rate limit (7 requests in any sliding second by
// default), counted across the manager and every worker process.
//
// The manager imports 10,000 contacts while the sandbox's Kommo sends
// webhooks for a few hundred contacts changed through its admin API, so
// three worker processes read those contacts from Kommo at the same time;
// the emulator's request log of the account is the judge.
package ratelimit

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

const (
	// seedContacts is the size of the sandbox account the manager imports.
	seedContacts = 10_000
	// workers is the number of worker processes.
	workers = 3
	// requestsPerSecond is the sample integration's
	// spec.rateLimit.requestsPerSecond (unset: the default, 7).
	requestsPerSecond = 7
	// maxChanges bounds the contacts changed while the import runs, and
	// minChanges is what the test needs for "webhooks flow during the
	// import" to mean something.
	maxChanges, minChanges = 600, 150
	// changeEvery paces the changes: the sandbox gathers them for 200 ms
	// into one delivery, so a few changes go out in each of about five
	// deliveries a second, each a worker read.
	changeEvery = 30 * time.Millisecond
)

func TestAccountRateLimitAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	started := time.Now()
	sys := start(t, ctx, workers, seedContacts)
	t.Logf("system up with %d worker processes (%v) in %v", workers, sys.env.WorkerNames, time.Since(started).Round(100*time.Millisecond))

	seeded := sys.personIDs(t)
	if len(seeded) < seedContacts*8/10 {
		t.Fatalf("the sandbox holds %d persons, want about %d", len(seeded), seedContacts)
	}
	if err := sys.env.ApplySampleTenant(ctx); err != nil {
		t.Fatal(err)
	}
	// Kommo sends webhooks only to hooks registered before a change; the
	// manager registers the hook right before it starts the import.
	devtest.WaitUntil(t, "the manager to register the Kommo webhook", 90*time.Second, func() (bool, string) {
		n := sys.webhookCount(t)
		return n > 0, fmt.Sprintf("%d hooks", n)
	})

	ch := sys.changeDuringImport(t, ctx, seeded)
	t.Logf("changed %d contacts while the import ran (%d updated, %d created, %d deleted) over %v",
		ch.total(), ch.updated, ch.created, ch.deleted, ch.span.Round(100*time.Millisecond))
	if ch.total() < minChanges {
		t.Fatalf("only %d changes before the import completed, want at least %d: the import ended too soon for webhooks to flow alongside it", ch.total(), minChanges)
	}

	imp := sys.waitImported(t, ctx)
	sys.waitDrained(t, ctx)

	// Judge from the emulator's request log of the account.
	log := sys.accountLog(t)
	a := analyze(log, imp.StartedAt.Time, imp.FinishedAt.Add(time.Second))
	t.Logf("import: %d contacts seen, %d imported, %v (status %s → %s; manager list requests %s → %s)",
		imp.Total, imp.Imported, imp.FinishedAt.Sub(imp.StartedAt.Time),
		imp.StartedAt.Format(time.TimeOnly), imp.FinishedAt.Format(time.TimeOnly),
		a.importFirst.Format("15:04:05.000"), a.importLast.Format("15:04:05.000"))
	t.Logf("account %q: %d requests; busiest sliding 1 s window %d at %s (limit %d)",
		devenv.SandboxSubdomain, len(log), a.busiest, a.busiestAt.Format("15:04:05.000"), requestsPerSecond)
	t.Logf("busiest window by process: %s", a.busiestSpread)
	for _, line := range a.spreadLines() {
		t.Log(line)
	}
	t.Logf("worker reads (GET /api/v4/contacts?filter[id]) during the import: %d (%d in all); statuses %v",
		a.workerFilterReadsDuringImport, a.workerFilterReads, a.statuses)
	if per := sys.workerMetrics(t); len(per) > 0 {
		t.Logf("worker processes (batches, jobs applied): %s", per)
	}
	fmt.Printf("ratelimit: busiest 1s window %d (limit %d), %d requests (manager %d, worker %d), import %v, worker reads during import %d\n",
		a.busiest, requestsPerSecond, len(log), a.byAgent[managerAgent], a.byAgent[workerAgent],
		imp.FinishedAt.Sub(imp.StartedAt.Time), a.workerFilterReadsDuringImport)

	// Each judgement is a subtest, so that one can be run alone
	// (-run 'TestAccountRateLimitAcrossProcesses/busiest') and a failure
	// says which it is.
	t.Run("busiest second within the limit", func(t *testing.T) {
		if a.busiest > requestsPerSecond {
			t.Errorf("the account saw %d requests in the sliding second from %s, above its limit of %d (%s)",
				a.busiest, a.busiestAt.Format("15:04:05.000"), requestsPerSecond, a.busiestSpread)
		}
		if a.byAgent[workerAgent] == 0 || a.byAgent[managerAgent] == 0 {
			t.Errorf("requests by User-Agent %v: both the manager and the workers should have called Kommo", a.byAgent)
		}
	})
	t.Run("workers read during the import", func(t *testing.T) {
		if a.workerFilterReadsDuringImport == 0 {
			t.Errorf("no worker read contacts by id (GET /api/v4/contacts?filter[id]) while the import ran: the webhooks did not reach the workers in time")
		}
	})
	t.Run("import completed", func(t *testing.T) {
		if imp.Phase != v1alpha1.ImportCompleted {
			t.Errorf("import phase %s, want %s", imp.Phase, v1alpha1.ImportCompleted)
		}
		// The contacts changed during the import shift what its pages
		// hold: a deleted contact may be gone before its page is read, a
		// created or updated one (Kommo lists by updated_at) may be read
		// once more.
		if lo, hi := int64(seedContacts-ch.deleted), int64(seedContacts+ch.created+ch.updated); imp.Total < lo || imp.Total > hi {
			t.Errorf("the import saw %d contacts, want the %d seeded (between %d and %d with the changes made meanwhile)", imp.Total, seedContacts, lo, hi)
		}
	})
	t.Run("list converges", func(t *testing.T) {
		// The webhooks' changes were applied: the list holds Kommo's
		// addresses.
		if onlyKommo, onlyUnisender := sys.waitConverged(t, ctx, 30*time.Second); onlyKommo != nil || onlyUnisender != nil {
			t.Errorf("after the import and the queue drained, the Unisender list does not hold Kommo's addresses:\n  only in Kommo: %v\n  only in Unisender: %v%s",
				onlyKommo, onlyUnisender, explainStrays(log, ch, imp, append(onlyKommo, onlyUnisender...)))
		}
	})
	if elapsed := time.Since(started); elapsed > 150*time.Second {
		t.Logf("note: wall time %v, above the 2-minute target", elapsed.Round(time.Second))
	}
}

// The User-Agents of the operator's Kommo clients.
const (
	managerAgent = "kommo-unisender-manager"
	workerAgent  = "kommo-unisender-worker"
)

// analysis is what the request log says.
type analysis struct {
	busiest       int
	busiestAt     time.Time
	busiestSpread string // the busiest window's requests by agent and route
	byAgent       map[string]int
	byAgentRoute  map[string]map[string]int
	statuses      map[int]int
	// importFirst and importLast are the manager's first and last contact
	// list requests (GET /api/v4/contacts without filter[id]).
	importFirst, importLast                          time.Time
	workerFilterReads, workerFilterReadsDuringImport int
}

func analyze(log []kommoemu.LogEntry, from, to time.Time) analysis {
	a := analysis{byAgent: map[string]int{}, byAgentRoute: map[string]map[string]int{}, statuses: map[int]int{}}
	a.busiest, a.busiestAt = kommoemu.BusiestWindow(log, time.Second)
	var inWindow []kommoemu.LogEntry
	for _, e := range log {
		agent := agentOf(e)
		a.byAgent[agent]++
		if a.byAgentRoute[agent] == nil {
			a.byAgentRoute[agent] = map[string]int{}
		}
		a.byAgentRoute[agent][routeOf(e)]++
		a.statuses[e.Status]++
		byID := e.Route == "GET /api/v4/contacts" && hasFilterID(e.Query)
		if e.Route == "GET /api/v4/contacts" && !byID && agent == managerAgent {
			if a.importFirst.IsZero() || e.Time.Before(a.importFirst) {
				a.importFirst = e.Time
			}
			if e.Time.After(a.importLast) {
				a.importLast = e.Time
			}
		}
		if byID && agent == workerAgent {
			a.workerFilterReads++
			if !e.Time.Before(from) && e.Time.Before(to) {
				a.workerFilterReadsDuringImport++
			}
		}
		if !e.Time.Before(a.busiestAt) && e.Time.Sub(a.busiestAt) < time.Second {
			inWindow = append(inWindow, e)
		}
	}
	spread := map[string]int{}
	for _, e := range inWindow {
		spread[agentOf(e)+" "+routeOf(e)]++
	}
	a.busiestSpread = formatCounts(spread)
	return a
}

// spreadLines describe the requests by process kind and route.
func (a analysis) spreadLines() []string {
	agents := make([]string, 0, len(a.byAgent))
	for k := range a.byAgent {
		agents = append(agents, k)
	}
	sort.Strings(agents)
	var out []string
	for _, agent := range agents {
		out = append(out, fmt.Sprintf("  %s: %d requests: %s", agent, a.byAgent[agent], formatCounts(a.byAgentRoute[agent])))
	}
	return out
}

func agentOf(e kommoemu.LogEntry) string {
	switch {
	case strings.HasPrefix(e.UserAgent, managerAgent):
		return managerAgent
	case strings.HasPrefix(e.UserAgent, workerAgent):
		return workerAgent
	case e.UserAgent == "":
		return "(no user agent)"
	}
	return e.UserAgent
}

// routeOf names a log entry's route, telling contact reads by id from
// listing.
func routeOf(e kommoemu.LogEntry) string {
	if e.Route == "GET /api/v4/contacts" && hasFilterID(e.Query) {
		return "GET /api/v4/contacts?filter[id]"
	}
	return e.Route
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// explainStrays tells, for each stray address of a contact deleted during
// the import (seeded addresses carry the contact id), when it was deleted
// and which requests named it, from the request log.
func explainStrays(log []kommoemu.LogEntry, ch changes, imp v1alpha1.ImportStatus, strays []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  import %s → %s", imp.StartedAt.Format(time.TimeOnly), imp.FinishedAt.Format(time.TimeOnly))
	for _, addr := range strays {
		for id, at := range ch.deletedAt {
			if !strings.Contains(addr, strconv.FormatInt(id, 10)+"@") {
				continue
			}
			fmt.Fprintf(&b, "\n  %s: contact %d deleted in Kommo at %s; requests naming it:", addr, id, at.Format("15:04:05.000"))
			for _, e := range log {
				if namesContact(e, id) {
					fmt.Fprintf(&b, " [%s %s %s → %d]", e.Time.Format("15:04:05.000"), agentOf(e), routeOf(e), e.Status)
				}
			}
		}
	}
	return b.String()
}

// namesContact reports whether a request reads contact id by id.
func namesContact(e kommoemu.LogEntry, id int64) bool {
	sid := strconv.FormatInt(id, 10)
	if e.Route == "GET /api/v4/contacts/{id}" {
		return false // the log keeps the route, not the path
	}
	q, _ := url.ParseQuery(e.Query)
	for k, vs := range q {
		if strings.HasPrefix(k, "filter[id]") && slices.Contains(vs, sid) {
			return true
		}
	}
	return false
}
