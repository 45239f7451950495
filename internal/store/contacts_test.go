package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const tenantA = "acme/main"

var ignoreSyncedAt = cmpopts.IgnoreFields(ContactState{}, "SyncedAt")

func apply(t *testing.T, s *Store, tenant string, c ContactState) ApplyResult {
	t.Helper()
	res, err := s.ApplyContact(context.Background(), tenant, c)
	if err != nil {
		t.Fatalf("ApplyContact(%+v): %v", c, err)
	}
	return res
}

func stored(t *testing.T, s *Store, tenant string, id int64) ContactState {
	t.Helper()
	c, err := s.GetContact(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("GetContact(%d): %v", id, err)
	}
	return c
}

func holders(t *testing.T, s *Store, tenant, email string) []int64 {
	t.Helper()
	ids, err := s.EmailHolders(context.Background(), tenant, email)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestApplyContactStoresANewContactNormalised(t *testing.T) {
	s := newStore(t)
	res := apply(t, s, tenantA, ContactState{
		ID: 7, UpdatedAt: 100, ReadAt: 1_000_000, Name: "Ana", Phone: "+1 555",
		Emails: []string{" Ana@Example.com ", "ana@example.com", "", "b@example.com"},
		Tags:   []string{"vip", "lead", "vip"},
		Fields: map[string]string{"City": "Lima"},
	})
	want := ApplyResult{Applied: true, AddedEmails: []string{"ana@example.com", "b@example.com"},
		NewEmails: []string{"ana@example.com", "b@example.com"}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Fatalf("result (-want +got):\n%s", diff)
	}
	got := stored(t, s, tenantA, 7)
	wantState := ContactState{ID: 7, UpdatedAt: 100, ReadAt: 1_000_000, Name: "Ana", Phone: "+1 555",
		Emails: []string{"ana@example.com", "b@example.com"}, Tags: []string{"lead", "vip"},
		Fields: map[string]string{"City": "Lima"}}
	if diff := cmp.Diff(wantState, got, ignoreSyncedAt); diff != "" {
		t.Fatalf("stored (-want +got):\n%s", diff)
	}
	if got.SyncedAt.IsZero() {
		t.Error("SyncedAt not set")
	}
	if _, err := s.GetContact(context.Background(), tenantA, 8); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetContact(unknown) = %v; want ErrNotFound", err)
	}
}

// Versions are ordered by when they were read from Kommo (ReadAt, the
// database's clock), never by Kommo's updated_at: the version read later
// wins, whatever order the commits come in.
func TestApplyContactNewestReadWins(t *testing.T) {
	// rN is a live version read at N; its updated_at runs the other way
	// round where that matters, to show it orders nothing.
	r100 := ContactState{ID: 1, ReadAt: 100, UpdatedAt: 900, Name: "r100", Emails: []string{"old@example.com"}}
	r200 := ContactState{ID: 1, ReadAt: 200, UpdatedAt: 10, Name: "r200", Emails: []string{"new@example.com"}}
	r200b := ContactState{ID: 1, ReadAt: 200, UpdatedAt: 10, Name: "r200 other edit", Emails: []string{"new@example.com"}}
	r250 := ContactState{ID: 1, ReadAt: 250, UpdatedAt: 1 << 62, Name: "r250"}
	r400 := ContactState{ID: 1, ReadAt: 400, UpdatedAt: 5, Name: "restored", Emails: []string{"new@example.com"}}
	gone200 := ContactState{ID: 1, ReadAt: 200, Deleted: true}
	gone300 := ContactState{ID: 1, ReadAt: 300, Deleted: true}

	type step struct {
		event       ContactState
		wantApplied bool
		wantName    string
		wantDeleted bool
	}
	cases := map[string][]step{
		"a later read replaces an earlier one": {{r100, true, "r100", false}, {r200, true, "r200", false}},
		"an earlier read committed late is stale, whatever its updated_at": {
			{r200, true, "r200", false}, {r100, false, "r200", false}},
		"a read with Kommo's largest updated_at loses to a later read": {
			{r250, true, "r250", false}, {r400, true, "restored", false}, {r250, false, "restored", false}},
		"the same read committed twice is not applied again": {{r200, true, "r200", false}, {r200, false, "r200", false}},
		"a tie with different content applies": {
			{r200, true, "r200", false}, {r200b, true, "r200 other edit", false}},
		"a tombstone read later deletes":            {{r200, true, "r200", false}, {gone300, true, "", true}},
		"a tombstone read at the same time deletes": {{r200, true, "r200", false}, {gone200, true, "", true}},
		"a tombstone blocks live versions read before it": {
			{r200, true, "r200", false}, {gone300, true, "", true}, {r250, false, "", true}, {r100, false, "", true}},
		"the same tombstone twice is not applied again": {{gone300, true, "", true}, {gone300, false, "", true}},
		"a tombstone loses to a later read of the live contact (restored)": {
			{r200, true, "r200", false}, {gone300, true, "", true}, {r400, true, "restored", false}},
		"a tombstone of a never-seen contact blocks an earlier read of it": {
			{gone300, true, "", true}, {r100, false, "", true}},
		"a tombstone read before the stored version is stale": {
			{r250, true, "r250", false}, {gone200, false, "r250", false}},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			for i, st := range steps {
				res := apply(t, s, tenantA, st.event)
				if res.Applied != st.wantApplied {
					t.Fatalf("step %d (%+v): Applied = %v; want %v", i, st.event, res.Applied, st.wantApplied)
				}
				if i > 0 && res.Previous == nil {
					t.Fatalf("step %d: no Previous for a known contact", i)
				}
				got := stored(t, s, tenantA, 1)
				if got.Deleted != st.wantDeleted || (!st.wantDeleted && got.Name != st.wantName) {
					t.Fatalf("step %d: stored %+v; want name %q deleted %v", i, got, st.wantName, st.wantDeleted)
				}
				if st.wantApplied && (got.ReadAt != st.event.ReadAt || got.UpdatedAt != st.event.UpdatedAt) {
					t.Fatalf("step %d: stored read at %d, updated_at %d; want the applied version's %d, %d",
						i, got.ReadAt, got.UpdatedAt, st.event.ReadAt, st.event.UpdatedAt)
				}
				if got.Deleted && len(got.Emails) != 0 {
					t.Fatalf("step %d: tombstone keeps e-mails %v", i, got.Emails)
				}
				if got.Deleted && len(holders(t, s, tenantA, "new@example.com")) != 0 {
					t.Fatalf("step %d: a tombstone still holds its address in the e-mail map", i)
				}
			}
		})
	}
}

// A stale version changes nothing, and says what is stored.
func TestApplyContactStaleVersionReportsStoredVersion(t *testing.T) {
	s := newStore(t)
	apply(t, s, tenantA, ContactState{ID: 3, ReadAt: 50, UpdatedAt: 50, Name: "kept", Emails: []string{"k@example.com"}})
	res := apply(t, s, tenantA, ContactState{ID: 3, ReadAt: 40, UpdatedAt: 60, Name: "late", Emails: []string{"late@example.com"}})
	if res.Applied || res.AddedEmails != nil || res.RemovedEmails != nil || res.OrphanedEmails != nil || res.NewEmails != nil {
		t.Fatalf("stale version result: %+v", res)
	}
	if res.Previous == nil || res.Previous.Name != "kept" || res.Previous.ReadAt != 50 ||
		!slices.Equal(res.Previous.Emails, []string{"k@example.com"}) {
		t.Fatalf("Previous = %+v", res.Previous)
	}
	if got := holders(t, s, tenantA, "late@example.com"); len(got) != 0 {
		t.Fatalf("stale e-mail entered the map: %v", got)
	}
	if got := stored(t, s, tenantA, 3); got.ReadAt != 50 || got.UpdatedAt != 50 || got.Name != "kept" {
		t.Fatalf("stored after a stale version: %+v", got)
	}
}

// A later read that finds what is stored is not applied (nothing for
// Unisender), but moves the stored read time: a read made between the two
// and committed last must not win. Without that, the stale read in between
// would replace the current state until the next change.
func TestApplyContactSameContentReadLaterMovesTheReadTime(t *testing.T) {
	s := newStore(t)
	current := ContactState{ID: 9, ReadAt: 100, UpdatedAt: 500, Name: "v2", Emails: []string{"v2@example.com"}}
	apply(t, s, tenantA, current)
	first := stored(t, s, tenantA, 9)

	again := current
	again.ReadAt, again.UpdatedAt = 300, 501 // Kommo touched a field the binding does not map
	res := apply(t, s, tenantA, again)
	if res.Applied || res.AddedEmails != nil || res.RemovedEmails != nil || res.OrphanedEmails != nil || res.NewEmails != nil {
		t.Fatalf("same content read later: %+v; want not applied, no address changes", res)
	}
	got := stored(t, s, tenantA, 9)
	if got.ReadAt != 300 || got.UpdatedAt != 501 {
		t.Fatalf("stored read at %d, updated_at %d; want the later read's 300, 501", got.ReadAt, got.UpdatedAt)
	}
	if !got.SyncedAt.Equal(first.SyncedAt) {
		t.Fatalf("SyncedAt moved from %v to %v although nothing was synced", first.SyncedAt, got.SyncedAt)
	}

	between := ContactState{ID: 9, ReadAt: 200, UpdatedAt: 400, Name: "v1", Emails: []string{"v1@example.com"}}
	if res := apply(t, s, tenantA, between); res.Applied {
		t.Fatalf("a read made before the latest one replaced it: %+v", res)
	}
	if got := stored(t, s, tenantA, 9); got.Name != "v2" || !slices.Equal(got.Emails, []string{"v2@example.com"}) {
		t.Fatalf("stored %+v; want v2 kept", got)
	}

	// The same read at the same time changes nothing at all.
	if res := apply(t, s, tenantA, again); res.Applied {
		t.Fatalf("a repeated read applied: %+v", res)
	}
	if got := stored(t, s, tenantA, 9); got.ReadAt != 300 {
		t.Fatalf("read time %d after a repeat; want 300", got.ReadAt)
	}
}

// The e-mail map: an address leaves the list only when no other live
// contact of the tenant holds it.
func TestApplyContactOrphanRule(t *testing.T) {
	s := newStore(t)
	const shared = "shared@example.com"
	apply(t, s, tenantA, ContactState{ID: 1, ReadAt: 10, Emails: []string{shared, "a@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 2, ReadAt: 10, Emails: []string{"b@example.com", "SHARED@example.com"}})
	// The same address in another tenant must not count as a holder.
	apply(t, s, "other/tenant", ContactState{ID: 9, ReadAt: 10, Emails: []string{shared}})
	if got := holders(t, s, tenantA, shared); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("holders = %v; want [1 2]", got)
	}

	res := apply(t, s, tenantA, ContactState{ID: 1, ReadAt: 20, Emails: []string{"a@example.com", "a2@example.com"}})
	want := ApplyResult{Applied: true, AddedEmails: []string{"a2@example.com"}, RemovedEmails: []string{shared},
		NewEmails: []string{"a2@example.com"}}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(ApplyResult{}, "Previous")); diff != "" {
		t.Fatalf("removing a shared address (-want +got):\n%s", diff)
	}
	if got := holders(t, s, tenantA, shared); !slices.Equal(got, []int64{2}) {
		t.Fatalf("holders = %v; want [2]", got)
	}

	res = apply(t, s, tenantA, ContactState{ID: 2, ReadAt: 20, Deleted: true})
	want = ApplyResult{Applied: true,
		RemovedEmails:  []string{"b@example.com", shared},
		OrphanedEmails: []string{"b@example.com", shared}}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(ApplyResult{}, "Previous")); diff != "" {
		t.Fatalf("deleting the last holder (-want +got):\n%s", diff)
	}
	if got := holders(t, s, tenantA, shared); len(got) != 0 {
		t.Fatalf("holders after delete = %v", got)
	}
	if got := holders(t, s, "other/tenant", shared); !slices.Equal(got, []int64{9}) {
		t.Fatalf("other tenant's holders = %v; want [9]", got)
	}
}

// Two transactions that each remove the same address from one of its two
// holders at the same time: exactly one of them may report it orphaned.
func TestApplyContactConcurrentRemovalsOrphanOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for round := range 10 {
		email := "race@example.com"
		base := int64(round * 10)
		apply(t, s, tenantA, ContactState{ID: base + 1, ReadAt: 1, Emails: []string{email}})
		apply(t, s, tenantA, ContactState{ID: base + 2, ReadAt: 1, Emails: []string{email}})
		var mu sync.Mutex
		orphaned := 0
		var wg sync.WaitGroup
		for _, id := range []int64{base + 1, base + 2} {
			wg.Go(func() {
				for {
					res, err := s.ApplyContact(ctx, tenantA, ContactState{ID: id, ReadAt: 2})
					if IsTransient(err) {
						continue // deadlock victim: retry, as a worker would
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					orphaned += len(res.OrphanedEmails)
					mu.Unlock()
					return
				}
			})
		}
		wg.Wait()
		if orphaned != 1 {
			t.Fatalf("round %d: %d transactions reported the address orphaned; want exactly 1", round, orphaned)
		}
	}
}

// A transaction rolled back after ApplyContact (the Unisender call failed,
// or the worker died) leaves the state as it was, so the retry sees the
// same changes.
func TestApplyContactRolledBackIsRedone(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantA, ContactState{ID: 5, ReadAt: 1, Emails: []string{"x@example.com"}})
	event := ContactState{ID: 5, ReadAt: 2, Emails: []string{"y@example.com"}}
	callFailed := errors.New("unisender: 503")
	var first ApplyResult
	err := s.InTx(ctx, func(tx *Tx) error {
		var err error
		first, err = tx.ApplyContact(ctx, tenantA, event)
		if err != nil {
			return err
		}
		return callFailed
	})
	if !errors.Is(err, callFailed) {
		t.Fatalf("InTx = %v; want the callback's error", err)
	}
	if got := stored(t, s, tenantA, 5); got.ReadAt != 1 || !slices.Equal(got.Emails, []string{"x@example.com"}) {
		t.Fatalf("rolled-back event left %+v", got)
	}
	again := apply(t, s, tenantA, event)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("retry differs from the rolled-back attempt (-first +retry):\n%s", diff)
	}
}

func TestLiveContactsListsOnlyLiveOnesWithEmails(t *testing.T) {
	s := newStore(t)
	apply(t, s, tenantA, ContactState{ID: 3, ReadAt: 1, UpdatedAt: 77, Name: "c", Emails: []string{"c2@example.com", "c1@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 1, ReadAt: 1, Name: "a"})
	apply(t, s, tenantA, ContactState{ID: 2, ReadAt: 1, Name: "b", Emails: []string{"b@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 2, ReadAt: 2, Deleted: true})
	apply(t, s, "other/tenant", ContactState{ID: 4, ReadAt: 1, Name: "d"})
	got, err := s.LiveContacts(context.Background(), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	want := []ContactState{
		{ID: 1, ReadAt: 1, Name: "a"},
		{ID: 3, ReadAt: 1, UpdatedAt: 77, Name: "c", Emails: []string{"c1@example.com", "c2@example.com"}},
	}
	if diff := cmp.Diff(want, got, ignoreSyncedAt); diff != "" {
		t.Fatalf("LiveContacts (-want +got):\n%s", diff)
	}
}

func TestLiveContactIDsPagesThroughLiveOnes(t *testing.T) {
	s := newStore(t)
	for id := int64(1); id <= 7; id++ {
		apply(t, s, tenantA, ContactState{ID: id, ReadAt: 1})
	}
	apply(t, s, tenantA, ContactState{ID: 4, ReadAt: 2, Deleted: true})
	apply(t, s, "other/tenant", ContactState{ID: 5, ReadAt: 1})
	ctx := context.Background()
	var pages [][]int64
	for after := int64(0); ; {
		ids, err := s.LiveContactIDs(ctx, tenantA, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		pages = append(pages, ids)
		after = ids[len(ids)-1]
	}
	want := [][]int64{{1, 2, 3}, {5, 6, 7}}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Fatalf("LiveContactIDs pages (-want +got):\n%s", diff)
	}
	if n, err := s.CountLiveContacts(ctx, tenantA); err != nil || n != 6 {
		t.Fatalf("CountLiveContacts = %d, %v; want 6", n, err)
	}
}

func TestApplyContactRefusesBadInput(t *testing.T) {
	s := newStore(t)
	long := make([]byte, 321)
	for i := range long {
		long[i] = 'a'
	}
	for name, tc := range map[string]struct {
		tenant string
		c      ContactState
	}{
		"zero id":        {tenantA, ContactState{ReadAt: 1}},
		"empty tenant":   {"", ContactState{ID: 1, ReadAt: 1}},
		"non-ASCII":      {"acmé/x", ContactState{ID: 1, ReadAt: 1}},
		"overlong email": {tenantA, ContactState{ID: 1, ReadAt: 1, Emails: []string{string(long)}}},
	} {
		if _, err := s.ApplyContact(context.Background(), tc.tenant, tc.c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if live, err := s.LiveContacts(context.Background(), tenantA); err != nil || len(live) != 0 {
		t.Fatalf("refused input stored something: %v, %v", live, err)
	}
}

func TestDiffSorted(t *testing.T) {
	added, removed := diffSorted([]string{"a", "c", "d"}, []string{"b", "c", "e"})
	if !slices.Equal(added, []string{"b", "e"}) || !slices.Equal(removed, []string{"a", "d"}) {
		t.Fatalf("added %v removed %v", added, removed)
	}
}
