package importer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// importAll runs the initial import and returns its cursor.
func (e *env) importAll() int64 {
	e.t.Helper()
	p, err := e.importer().Run(context.Background(), e.job("initial", 0), nil)
	if err != nil || !p.Done {
		e.t.Fatalf("initial import = %+v, %v", p, err)
	}
	return p.Cursor
}

// resyncJob is a sweeping resync from cursor.
func (e *env) resyncJob(runID string, cursor int64) importer.Job {
	job := e.job(runID, cursor)
	job.Kind, job.Sweep = importer.KindResync, true
	return job
}

// resync runs a sweeping resync from cursor, listing from source if set.
func (e *env) resync(runID string, cursor int64, source importer.ContactSource) (importer.Progress, error) {
	job := e.resyncJob(runID, cursor)
	if source != nil {
		job.Kommo = source
	}
	return e.importer().Run(context.Background(), job, nil)
}

// deleteQuietly deletes contacts in Kommo; no webhook is registered, so
// their delete events reach nobody, as when the webhook was down.
func (e *env) deleteQuietly(contacts ...kommo.Contact) {
	e.t.Helper()
	for _, c := range contacts {
		if err := e.kommo.DeleteContact("acme", c.ID); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) kommoRequests(route string) int {
	n := 0
	for _, l := range e.kommo.RequestLog() {
		if l.Route == route {
			n++
		}
	}
	return n
}

func TestResyncSweepRemovesContactsDeletedWithoutWebhook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	contacts := e.addContacts(300, 50)
	twin, err := e.kommo.CreateContact("acme", kommo.Contact{FirstName: "Twin", Emails: []string{emailOf(contacts[7])}})
	if err != nil {
		t.Fatal(err)
	}
	cursor := e.importAll()
	if cursor < twin.UpdatedAt {
		t.Fatalf("import cursor %d is before the last contact's %d", cursor, twin.UpdatedAt)
	}

	gone := []kommo.Contact{contacts[3], contacts[7], contacts[299]}
	e.deleteQuietly(gone...)
	e.kommo.ResetStats()
	e.uni.ResetStats()
	p, err := e.resync("resync-1", cursor, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Done || p.Deleted != 3 || p.SweepHeld != 0 || p.Imported != 0 {
		t.Fatalf("resync = %+v, want done with 3 deleted and nothing imported", p)
	}
	for _, c := range gone {
		if got, err := e.store.GetContact(ctx, e.tenant.String(), c.ID); err != nil || !got.Deleted {
			t.Errorf("contact %d in the store = %+v, %v; want a tombstone", c.ID, got, err)
		}
	}
	members := e.activeMembers()
	for _, c := range []kommo.Contact{contacts[3], contacts[299]} {
		if _, ok := members[emailOf(c)]; ok {
			t.Errorf("%s of a deleted contact is still active in the list", emailOf(c))
		}
	}
	if _, ok := members[emailOf(contacts[7])]; !ok {
		t.Errorf("%s left the list although contact %d still holds it", emailOf(contacts[7]), twin.ID)
	}
	if len(members) != 298 {
		t.Errorf("list holds %d active members, want 298", len(members))
	}
	// 298 live contacts checked in two id pages; the 3 gone ones read once more each.
	if byID, one := e.kommoRequests("GET /api/v4/contacts"), e.kommoRequests("GET /api/v4/contacts/{id}"); one != 3 || byID < 2 {
		t.Errorf("Kommo served %d listings and %d single reads; want at least the 2 id pages and 3 reads", byID, one)
	}
	if p.Cursor != cursor {
		t.Errorf("cursor moved to %d by the sweep, want %d (tombstones carry our clock, not Kommo's)", p.Cursor, cursor)
	}

	// Nothing more is gone: the next resync removes nothing and calls
	// Unisender for nothing.
	e.uni.ResetStats()
	p, err = e.resync("resync-2", cursor, nil)
	if err != nil || p.Deleted != 0 {
		t.Fatalf("second resync = %+v, %v; want nothing deleted", p, err)
	}
	if calls, _ := e.importCalls(); calls != 0 {
		t.Fatalf("second resync made %d importContacts calls, want 0", calls)
	}
}

func TestSweepHoldsWhenMostContactsAreGone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	contacts := e.addContacts(150, 0)
	cursor := e.importAll()
	e.deleteQuietly(contacts[:120]...)

	p, err := e.resync("resync", cursor, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Done || p.Deleted != 0 || p.SweepHeld != 120 {
		t.Fatalf("resync = %+v, want done with the 120 gone contacts held and none deleted", p)
	}
	if n, err := e.store.CountLiveContacts(ctx, e.tenant.String()); err != nil || n != 150 {
		t.Fatalf("store holds %d live contacts, %v; want all 150 kept", n, err)
	}
	if got := len(e.activeMembers()); got != 150 {
		t.Fatalf("list holds %d active members, want all 150 kept", got)
	}

	// The binding raises spec.sweepMaxRemovalPercent to 100: the next
	// resync removes them.
	job := e.resyncJob("resync-confirmed", cursor)
	job.SweepHoldPercent = 100
	p, err = e.importer().Run(ctx, job, nil)
	if err != nil || p.Deleted != 120 || p.SweepHeld != 0 {
		t.Fatalf("resync at 100%% = %+v, %v; want the 120 removed", p, err)
	}
	if got := len(e.activeMembers()); got != 30 {
		t.Fatalf("list holds %d active members, want 30", got)
	}
}

// cappedSource answers an id-filtered listing with at most keep contacts,
// as a Kommo that capped filter[id] would.
type cappedSource struct {
	*kommo.Client
	keep int
}

func (s cappedSource) ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func([]kommo.Contact) error) error {
	return s.Client.ListContacts(ctx, opts, func(page []kommo.Contact) error {
		if len(opts.IDs) > 0 && len(page) > s.keep {
			page = page[:s.keep]
		}
		return fn(page)
	})
}

func TestSweepRemovesOnlyWhatKommoConfirmsGone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	contacts := e.addContacts(40, 0)
	cursor := e.importAll()
	e.deleteQuietly(contacts[5], contacts[30])

	p, err := e.resync("resync", cursor, cappedSource{Client: e.source, keep: 10})
	if err != nil {
		t.Fatal(err)
	}
	if p.Deleted != 2 || p.SweepHeld != 0 {
		t.Fatalf("resync = %+v, want exactly the 2 gone contacts deleted", p)
	}
	live, err := e.store.LiveContactIDs(ctx, e.tenant.String(), 0, 100)
	if err != nil || len(live) != 38 {
		t.Fatalf("store holds %d live contacts, %v; want 38", len(live), err)
	}
	if got := len(e.activeMembers()); got != 38 {
		t.Fatalf("list holds %d active members, want 38", got)
	}
}

func TestSweepStopsOnKommoFailureAndRemovesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	contacts := e.addContacts(300, 0)
	cursor := e.importAll()
	e.deleteQuietly(contacts[1], contacts[290])
	// The listing passes; Kommo fails from the sweep's second id page on.
	source := &failAfter{Client: e.source, idPages: 1}
	_, err := e.resync("resync", cursor, source)
	if !errors.Is(err, errKommoDown) {
		t.Fatalf("resync error = %v, want the Kommo failure", err)
	}
	if n, err := e.store.CountLiveContacts(ctx, e.tenant.String()); err != nil || n != 300 {
		t.Fatalf("store holds %d live contacts, %v; want 300 (a failed sweep removes nothing)", n, err)
	}
	// The retry of the same run sweeps again and removes both.
	p, err := e.resync("resync", cursor, nil)
	if err != nil || p.Deleted != 2 {
		t.Fatalf("retried resync = %+v, %v; want 2 deleted", p, err)
	}
}

var errKommoDown = errors.New("kommo is down")

// failAfter fails every id-filtered listing after the first idPages.
type failAfter struct {
	*kommo.Client
	idPages int
}

func (s *failAfter) ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func([]kommo.Contact) error) error {
	if len(opts.IDs) > 0 {
		if s.idPages == 0 {
			return fmt.Errorf("listing %d ids: %w", len(opts.IDs), errKommoDown)
		}
		s.idPages--
	}
	return s.Client.ListContacts(ctx, opts, fn)
}

// A tenant with few contacts is guarded by the share alone: 6 of 10 gone
// at once is held like 120 of 150.
func TestSweepHoldsSmallTenantsOnThePercentage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	contacts := e.addContacts(10, 0)
	cursor := e.importAll()
	e.deleteQuietly(contacts[:6]...)

	p, err := e.resync("resync", cursor, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Done || p.Deleted != 0 || p.SweepHeld != 6 {
		t.Fatalf("resync = %+v, want done with the 6 gone contacts held and none deleted", p)
	}
	if n, err := e.store.CountLiveContacts(ctx, e.tenant.String()); err != nil || n != 10 {
		t.Fatalf("store holds %d live contacts, %v; want all 10 kept", n, err)
	}
	if got := len(e.activeMembers()); got != 10 {
		t.Fatalf("list holds %d active members, want all 10 kept", got)
	}
}

// A token of another Kommo account answers "no such contact" for every id.
// Even with the hold lifted (spec.sweepMaxRemovalPercent 100, as an admin
// might set after a SweepHeld), the run refuses before listing or removing
// anything, and says which accounts differ.
func TestSweepRefusesATokenOfAnotherAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.addContacts(20, 0)
	cursor := e.importAll()
	acme := e.account("acme")
	other := e.account("other")
	token, err := e.kommo.IssueLongLivedToken("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.kommo.ResetStats()

	job := e.resyncJob("resync-other", cursor)
	job.SweepHoldPercent, job.AccountID = 100, acme.ID
	job.Kommo = kommo.NewClient(e.kommoURL+"/_acct/other", kommo.WithTokenSource(kommo.StaticToken(token)), kommo.WithRateLimit(0, 1))
	_, err = e.importer().Run(ctx, job, nil)
	if !errors.Is(err, importer.ErrAccountMismatch) {
		t.Fatalf("resync with another account's token: error %v, want ErrAccountMismatch", err)
	}
	for _, id := range []int64{acme.ID, other.ID} {
		if !strings.Contains(err.Error(), fmt.Sprint(id)) {
			t.Errorf("error %q does not name account %d", err, id)
		}
	}
	if n, err := e.store.CountLiveContacts(ctx, e.tenant.String()); err != nil || n != 20 {
		t.Fatalf("store holds %d live contacts, %v; want all 20 kept", n, err)
	}
	if got := len(e.activeMembers()); got != 20 {
		t.Fatalf("list holds %d active members, want all 20 kept", got)
	}
	if n := e.kommoRequests("GET /api/v4/contacts") + e.kommoRequests("GET /api/v4/contacts/{id}"); n != 0 {
		t.Errorf("Kommo served %d contact reads with the wrong account's token, want 0", n)
	}

	// The right account's token passes the check.
	job.RunID, job.Kommo = "resync-acme", e.source
	if p, err := e.importer().Run(ctx, job, nil); err != nil || !p.Done || p.Deleted != 0 {
		t.Fatalf("resync with the account's own token = %+v, %v; want done, nothing deleted", p, err)
	}
}
