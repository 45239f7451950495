package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/budget"
	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// contactListings returns the queries of the contact listings Kommo served.
func (e *bindingEnv) contactListings() []url.Values {
	var out []url.Values
	for _, l := range e.kommo.RequestLog() {
		if l.Route == "GET /api/v4/contacts" {
			q, _ := url.ParseQuery(l.Query)
			out = append(out, q)
		}
	}
	return out
}

// setSuspend patches spec.suspend (a merge patch: the operator writes the
// object concurrently).
func (e *bindingEnv) setSuspend(name string, suspend bool) {
	e.t.Helper()
	obj := &v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}
	patch := fmt.Sprintf(`{"spec":{"suspend":%t}}`, suspend)
	if err := e.c.Patch(context.Background(), obj, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		e.t.Fatal(err)
	}
}

// waitCheckpoint waits until the tenant's checkpoint satisfies cond.
func (e *bindingEnv) waitCheckpoint(binding string, timeout time.Duration, cond func(store.Checkpoint) bool) store.Checkpoint {
	e.t.Helper()
	var cp store.Checkpoint
	eventually(e.t, timeout, func() (bool, string) {
		var err error
		cp, err = e.store.GetCheckpoint(context.Background(), e.tenant(binding).String())
		return err == nil && cond(cp), fmt.Sprintf("checkpoint %+v (%v)", cp, err)
	})
	return cp
}

func TestInitialImportOf10000ContactsIn500RowCalls(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{}) // Kommo's 7 requests per second
	e.readyIntegration(true)
	e.addContacts(10_000)
	e.startManager(bindingManagerOptions{})

	start := time.Now()
	e.create(e.binding("big", nil))
	obj := e.waitBinding("big", v1alpha1.ConditionImported, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 3*time.Minute)
	took := time.Since(start)

	calls, rows := e.importCalls()
	if calls != 20 || rows != 10_000 {
		t.Fatalf("importContacts: %d calls with %d rows, want 20 calls of 500 rows", calls, rows)
	}
	if n := countActive(e.listMembers(obj.Status.ListID)); n != 10_000 {
		t.Fatalf("the list holds %d active members, want 10000", n)
	}
	imp := obj.Status.Import
	if imp == nil || imp.Phase != v1alpha1.ImportCompleted || imp.Imported != 10_000 || imp.Total != 10_000 || imp.LastPage < 40 {
		t.Fatalf("status.import = %+v, want Completed, 10000 of 10000, at least 40 pages", imp)
	}
	listings := len(e.contactListings())
	if listings > 45 {
		t.Fatalf("%d Kommo listings for 40 pages of contacts", listings)
	}
	// The import takes from the integration's budget, which spaces every
	// request of the account by its interval (157 ms at 7/s): no second
	// holds more than 7 listings. The background keeps to its share only
	// while webhook-driven reads ask (TestBindingKommoClientsTakeFromTheSharedBudget
	// and internal/budget show the share); here nothing else asks, so the
	// import may take every slot.
	var pages []kommoemu.LogEntry
	for _, l := range e.kommo.RequestLog() {
		if l.Route == "GET /api/v4/contacts" {
			pages = append(pages, l)
		}
	}
	account := budget.Kommo(e.store, e.ns, ubIntegrationName, v1alpha1.DefaultRequestsPerSecond).Foreground().Intervals()[0]
	busiest, _ := kommoemu.BusiestWindow(pages, time.Second)
	if most := int((time.Second + account - 1) / account); busiest > most {
		t.Errorf("%d import listings within one second, want at most %d (the account's budget)", busiest, most)
	}
	t.Logf("10000 contacts: %d importContacts calls, %d rows, %d Kommo page requests (at most %d in a second), %d pages recorded, %s from create to Imported",
		calls, rows, listings, busiest, imp.LastPage, took.Round(10*time.Millisecond))
}

func TestImportResumesAfterTheManagerIsKilledMidImport(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.addContacts(10_000)
	m1 := e.startManager(bindingManagerOptions{})

	e.create(e.binding("big", nil))
	e.waitCheckpoint("big", 2*time.Minute, func(cp store.Checkpoint) bool { return cp.LastPage >= 10 })
	m1.stop()
	cp, err := e.store.GetCheckpoint(context.Background(), e.tenant("big").String())
	if err != nil || cp.Status != importer.CheckpointRunning || cp.Imported == 0 || cp.Imported >= 10_000 {
		t.Fatalf("checkpoint after the kill = %+v, %v; want a partial running import", cp, err)
	}
	_, rowsBefore := e.importCalls()
	e.kommo.ResetStats()

	start := time.Now()
	e.startManager(bindingManagerOptions{})
	obj := e.waitBinding("big", v1alpha1.ConditionImported, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 3*time.Minute)
	took := time.Since(start)

	_, rows := e.importCalls()
	rowsAfter := rows - rowsBefore
	if rowsAfter != 10_000-int(cp.Imported) {
		t.Fatalf("after the restart %d rows were sent; the checkpoint had %d contacts done, so exactly %d remained",
			rowsAfter, cp.Imported, 10_000-cp.Imported)
	}
	if rows > 10_000+500 {
		t.Fatalf("%d rows sent in all for 10000 contacts: more than one batch was sent twice", rows)
	}
	// The earliest cursor listed must be the checkpoint's: the import
	// resumed there, not from the start. (A listing the stopped manager had
	// in flight may still reach Kommo after the reset with a later cursor.)
	listings := e.contactListings()
	earliest := int64(-1)
	for _, l := range listings {
		from, err := strconv.ParseInt(l.Get("filter[updated_at][from]"), 10, 64)
		if err != nil {
			from = 0 // no cursor: a listing from the start
		}
		if earliest < 0 || from < earliest {
			earliest = from
		}
	}
	if earliest != cp.UpdatedFrom {
		t.Fatalf("the resumed import listed from %d at the earliest, want the checkpoint's cursor %d", earliest, cp.UpdatedFrom)
	}
	if len(listings) >= 40 {
		t.Fatalf("the resumed import fetched %d pages: it started over", len(listings))
	}
	if n := countActive(e.listMembers(obj.Status.ListID)); n != 10_000 {
		t.Fatalf("the list holds %d active members, want 10000", n)
	}
	if imp := obj.Status.Import; imp == nil || imp.Imported != 10_000 || imp.Phase != v1alpha1.ImportCompleted {
		t.Fatalf("status.import = %+v, want Completed with 10000", imp)
	}
	waitEvent(t, e.c, e.ns, "big", "Normal", "ImportResumed")
	t.Logf("killed at page %d (%d contacts, %d rows sent); the second manager sent %d rows in %d page requests and finished in %s",
		cp.LastPage, cp.Imported, rowsBefore, rowsAfter, len(listings), took.Round(10*time.Millisecond))
}

func TestSuspendPausesTheImport(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.addContacts(3000)
	m := e.startManager(bindingManagerOptions{})
	ctx := context.Background()

	e.create(e.binding("main", nil))
	e.waitCheckpoint("main", time.Minute, func(cp store.Checkpoint) bool { return cp.LastPage >= 4 })
	e.setSuspend("main", true)
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSuspended, 30*time.Second)
	if _, running := m.rec.runner.Snapshot(e.tenant("main")); running {
		t.Fatal("an import run still exists for the suspended binding")
	}
	cp, err := e.store.GetCheckpoint(ctx, e.tenant("main").String())
	if err != nil || cp.Status != importer.CheckpointRunning || cp.Imported >= 3000 {
		t.Fatalf("checkpoint of the suspended import = %+v, %v; want a partial running one", cp, err)
	}
	if obj.Status.Import == nil || obj.Status.Import.Phase != v1alpha1.ImportPending {
		t.Fatalf("status.import = %+v, want Pending while suspended", obj.Status.Import)
	}
	_, rowsSuspended := e.importCalls()

	e.setSuspend("main", false)
	obj = e.waitBinding("main", v1alpha1.ConditionImported, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, time.Minute)
	_, rows := e.importCalls()
	if rows-rowsSuspended != 3000-int(cp.Imported) {
		t.Fatalf("after unsuspending %d rows were sent, want the %d not done", rows-rowsSuspended, 3000-cp.Imported)
	}
	if n := countActive(e.listMembers(obj.Status.ListID)); n != 3000 {
		t.Fatalf("the list holds %d members, want 3000", n)
	}
	e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 30*time.Second)
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
}

// Suspending a binding whose import is done clears status.lastResyncTime,
// and lifting suspend starts a resync at once, not after resyncInterval: the
// webhook server does not queue a suspended binding's events, so the resync
// catches up with what changed in Kommo meanwhile, deletes included (its
// sweep).
func TestResumingASuspendedBindingResyncsAtOnce(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	contacts := e.addContacts(20)
	e.startManager(bindingManagerOptions{})
	ctx := context.Background()

	e.create(e.binding("main", func(s *v1alpha1.UnisenderBindingSpec) {
		s.ResyncInterval = &metav1.Duration{Duration: 24 * time.Hour} // no resync falls due by itself
	}))
	obj := e.waitBinding("main", v1alpha1.ConditionImported, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, time.Minute)
	if obj.Status.LastResyncTime == nil {
		t.Fatal("status.lastResyncTime not set by the completed import")
	}
	listID := obj.Status.ListID
	if n := countActive(e.listMembers(listID)); n != 20 {
		t.Fatalf("the list holds %d active members after the import, want 20", n)
	}

	for round, victim := range []int{3, 11} {
		e.setSuspend("main", true)
		obj = e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSuspended, 30*time.Second)
		if obj.Status.LastResyncTime != nil {
			t.Fatalf("round %d: status.lastResyncTime = %v while suspended; want it cleared", round, obj.Status.LastResyncTime)
		}
		// Deleted in Kommo while suspended: no webhook event is queued for it.
		if err := e.kommo.DeleteContact("acme", contacts[victim].ID); err != nil {
			t.Fatal(err)
		}
		address := strings.ToLower(contacts[victim].Emails[0])
		e.kommo.ResetStats()

		resumed := time.Now().Truncate(time.Second) // status times have whole seconds
		e.setSuspend("main", false)
		eventually(t, 30*time.Second, func() (bool, string) {
			if err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return false, err.Error()
			}
			last := obj.Status.LastResyncTime
			m, listed := e.listMembers(listID)[address]
			return last != nil && !last.Time.Before(resumed) && listed && m.ListStatus != unisenderemu.ListActive,
				fmt.Sprintf("lastResyncTime %v, member %s %+v (listed %v)", last, address, m, listed)
		})
		if n := countActive(e.listMembers(listID)); n != 20-(round+1) {
			t.Fatalf("round %d: the list holds %d active members, want %d", round, n, 20-(round+1))
		}
		swept := false
		for _, q := range e.contactListings() {
			if len(q["filter[id][]"]) > 0 {
				swept = true
			}
		}
		if !swept {
			t.Fatalf("round %d: no listing by id after the resume: the resync did not sweep", round)
		}
		if c, err := e.store.GetContact(ctx, e.tenant("main").String(), contacts[victim].ID); err != nil || !c.Deleted {
			t.Fatalf("round %d: contact %d in the store = %+v, %v; want a tombstone", round, contacts[victim].ID, c, err)
		}
		e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 30*time.Second)
	}
}
