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
		ID: 7, UpdatedAt: 100, Name: "Ana", Phone: "+1 555",
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
	wantState := ContactState{ID: 7, UpdatedAt: 100, Name: "Ana", Phone: "+1 555",
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

func TestApplyContactLastWriteWins(t *testing.T) {
	v100 := ContactState{ID: 1, UpdatedAt: 100, Name: "v100", Emails: []string{"old@example.com"}}
	v200 := ContactState{ID: 1, UpdatedAt: 200, Name: "v200", Emails: []string{"new@example.com"}}
	v200b := ContactState{ID: 1, UpdatedAt: 200, Name: "v200 other edit", Emails: []string{"new@example.com"}}
	del200 := ContactState{ID: 1, UpdatedAt: 200, Deleted: true}
	del300 := ContactState{ID: 1, UpdatedAt: 300, Deleted: true}
	del150 := ContactState{ID: 1, UpdatedAt: 150, Deleted: true} // stamped by a clock behind Kommo's
	v250 := ContactState{ID: 1, UpdatedAt: 250, Name: "v250"}
	v400 := ContactState{ID: 1, UpdatedAt: 400, Name: "restored", Emails: []string{"new@example.com"}}

	type step struct {
		event       ContactState
		wantApplied bool
		wantName    string
		wantDeleted bool
	}
	cases := map[string][]step{
		"newer replaces older":       {{v100, true, "v100", false}, {v200, true, "v200", false}},
		"older after newer is stale": {{v200, true, "v200", false}, {v100, false, "v200", false}},
		"exact duplicate is ignored": {{v200, true, "v200", false}, {v200, false, "v200", false}},
		"tie with different content applies": {
			{v200, true, "v200", false}, {v200b, true, "v200 other edit", false}},
		"delete wins a tie":    {{v200, true, "v200", false}, {del200, true, "", true}},
		"tombstone wins a tie": {{del200, true, "", true}, {v200, false, "", true}},
		"tombstone blocks an older update": {
			{v200, true, "v200", false}, {del300, true, "", true}, {v250, false, "", true}, {v100, false, "", true}},
		"duplicate delete is ignored": {{del300, true, "", true}, {del300, false, "", true}},
		"a delete stamped before the stored version still deletes": {
			{v200, true, "v200", false}, {del150, true, "", true}, {v100, false, "", true}, {v200, false, "", true}},
		"newer update after delete restores": {
			{v200, true, "v200", false}, {del300, true, "", true}, {v400, true, "restored", false}},
		"delete of a never-seen contact blocks its late add": {
			{del300, true, "", true}, {v100, false, "", true}},
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
				if got.Deleted && len(got.Emails) != 0 {
					t.Fatalf("step %d: tombstone keeps e-mails %v", i, got.Emails)
				}
			}
		})
	}
}

// A stale event changes nothing, and says what is stored.
func TestApplyContactStaleEventReportsStoredVersion(t *testing.T) {
	s := newStore(t)
	apply(t, s, tenantA, ContactState{ID: 3, UpdatedAt: 50, Name: "kept", Emails: []string{"k@example.com"}})
	res := apply(t, s, tenantA, ContactState{ID: 3, UpdatedAt: 40, Name: "late", Emails: []string{"late@example.com"}})
	if res.Applied || res.AddedEmails != nil || res.RemovedEmails != nil || res.OrphanedEmails != nil {
		t.Fatalf("stale event result: %+v", res)
	}
	if res.Previous == nil || res.Previous.Name != "kept" || !slices.Equal(res.Previous.Emails, []string{"k@example.com"}) {
		t.Fatalf("Previous = %+v", res.Previous)
	}
	if got := holders(t, s, tenantA, "late@example.com"); len(got) != 0 {
		t.Fatalf("stale e-mail entered the map: %v", got)
	}
}

// A delete without a time (Kommo's delete events carry none) takes the
// stored version's time, so it wins the tie and older updates stay out.
func TestApplyContactDeleteWithoutTime(t *testing.T) {
	s := newStore(t)
	apply(t, s, tenantA, ContactState{ID: 4, UpdatedAt: 500, Emails: []string{"d@example.com"}})
	res := apply(t, s, tenantA, ContactState{ID: 4, Deleted: true})
	if !res.Applied || !slices.Equal(res.OrphanedEmails, []string{"d@example.com"}) {
		t.Fatalf("delete: %+v", res)
	}
	if got := stored(t, s, tenantA, 4); !got.Deleted || got.UpdatedAt != 500 {
		t.Fatalf("tombstone = %+v; want deleted at 500", got)
	}
	if res := apply(t, s, tenantA, ContactState{ID: 4, UpdatedAt: 500, Name: "same second"}); res.Applied {
		t.Fatal("an update tied with the tombstone resurrected the contact")
	}
}

// The e-mail map: an address leaves the list only when no other live
// contact of the tenant holds it.
func TestApplyContactOrphanRule(t *testing.T) {
	s := newStore(t)
	const shared = "shared@example.com"
	apply(t, s, tenantA, ContactState{ID: 1, UpdatedAt: 10, Emails: []string{shared, "a@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 2, UpdatedAt: 10, Emails: []string{"b@example.com", "SHARED@example.com"}})
	// The same address in another tenant must not count as a holder.
	apply(t, s, "other/tenant", ContactState{ID: 9, UpdatedAt: 10, Emails: []string{shared}})
	if got := holders(t, s, tenantA, shared); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("holders = %v; want [1 2]", got)
	}

	res := apply(t, s, tenantA, ContactState{ID: 1, UpdatedAt: 20, Emails: []string{"a@example.com", "a2@example.com"}})
	want := ApplyResult{Applied: true, AddedEmails: []string{"a2@example.com"}, RemovedEmails: []string{shared},
		NewEmails: []string{"a2@example.com"}}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(ApplyResult{}, "Previous")); diff != "" {
		t.Fatalf("removing a shared address (-want +got):\n%s", diff)
	}
	if got := holders(t, s, tenantA, shared); !slices.Equal(got, []int64{2}) {
		t.Fatalf("holders = %v; want [2]", got)
	}

	res = apply(t, s, tenantA, ContactState{ID: 2, UpdatedAt: 20, Deleted: true})
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
		apply(t, s, tenantA, ContactState{ID: base + 1, UpdatedAt: 1, Emails: []string{email}})
		apply(t, s, tenantA, ContactState{ID: base + 2, UpdatedAt: 1, Emails: []string{email}})
		var mu sync.Mutex
		orphaned := 0
		var wg sync.WaitGroup
		for _, id := range []int64{base + 1, base + 2} {
			wg.Go(func() {
				for {
					res, err := s.ApplyContact(ctx, tenantA, ContactState{ID: id, UpdatedAt: 2})
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
	apply(t, s, tenantA, ContactState{ID: 5, UpdatedAt: 1, Emails: []string{"x@example.com"}})
	event := ContactState{ID: 5, UpdatedAt: 2, Emails: []string{"y@example.com"}}
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
	if got := stored(t, s, tenantA, 5); got.UpdatedAt != 1 || !slices.Equal(got.Emails, []string{"x@example.com"}) {
		t.Fatalf("rolled-back event left %+v", got)
	}
	again := apply(t, s, tenantA, event)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("retry differs from the rolled-back attempt (-first +retry):\n%s", diff)
	}
}

func TestLiveContactsListsOnlyLiveOnesWithEmails(t *testing.T) {
	s := newStore(t)
	apply(t, s, tenantA, ContactState{ID: 3, UpdatedAt: 1, Name: "c", Emails: []string{"c2@example.com", "c1@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 1, UpdatedAt: 1, Name: "a"})
	apply(t, s, tenantA, ContactState{ID: 2, UpdatedAt: 1, Name: "b", Emails: []string{"b@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 2, UpdatedAt: 2, Deleted: true})
	apply(t, s, "other/tenant", ContactState{ID: 4, UpdatedAt: 1, Name: "d"})
	got, err := s.LiveContacts(context.Background(), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	want := []ContactState{
		{ID: 1, UpdatedAt: 1, Name: "a"},
		{ID: 3, UpdatedAt: 1, Name: "c", Emails: []string{"c1@example.com", "c2@example.com"}},
	}
	if diff := cmp.Diff(want, got, ignoreSyncedAt); diff != "" {
		t.Fatalf("LiveContacts (-want +got):\n%s", diff)
	}
}

func TestLiveContactIDsPagesThroughLiveOnes(t *testing.T) {
	s := newStore(t)
	for id := int64(1); id <= 7; id++ {
		apply(t, s, tenantA, ContactState{ID: id, UpdatedAt: 1})
	}
	apply(t, s, tenantA, ContactState{ID: 4, UpdatedAt: 2, Deleted: true})
	apply(t, s, "other/tenant", ContactState{ID: 5, UpdatedAt: 1})
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
		"zero id":        {tenantA, ContactState{UpdatedAt: 1}},
		"empty tenant":   {"", ContactState{ID: 1, UpdatedAt: 1}},
		"non-ASCII":      {"acmé/x", ContactState{ID: 1, UpdatedAt: 1}},
		"overlong email": {tenantA, ContactState{ID: 1, UpdatedAt: 1, Emails: []string{string(long)}}},
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
