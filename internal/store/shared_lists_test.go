package store

import (
	"context"
	"reflect"
	"testing"
)

// HeldByAny answers for the live contacts of the tenants named, and only
// those: what a tenant outside the set holds, or a deleted contact held,
// does not count.
func TestHeldByAnyLooksAtTheSharingTenantsOnly(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	apply(t, s, "shop/a", ContactState{ID: 1, ReadAt: 100, Emails: []string{"a@example.com", "ab@example.com"}})
	apply(t, s, "shop/b", ContactState{ID: 1, ReadAt: 100, Emails: []string{"ab@example.com", "b@example.com"}})
	apply(t, s, "shop/b", ContactState{ID: 2, ReadAt: 100, Emails: []string{"gone@example.com"}})
	apply(t, s, "shop/b", ContactState{ID: 2, ReadAt: 200, Deleted: true})
	apply(t, s, "other/c", ContactState{ID: 1, ReadAt: 100, Emails: []string{"c@example.com"}})

	ask := []string{"a@example.com", "ab@example.com", "b@example.com", "c@example.com", "gone@example.com", "none@example.com"}
	want := map[string]bool{"ab@example.com": true, "b@example.com": true}
	got, err := s.HeldByAny(ctx, []string{"shop/b"}, ask)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("HeldByAny(shop/b) = %v, %v; want %v", got, err, want)
	}
	want["a@example.com"], want["c@example.com"] = true, true
	if err := s.InTx(ctx, func(tx *Tx) error {
		got, err = tx.HeldByAny(ctx, []string{"shop/b", "shop/a", "other/c"}, ask)
		return err
	}); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Tx.HeldByAny(all three) = %v, %v; want %v", got, err, want)
	}
	if got, err := s.HeldByAny(ctx, nil, ask); err != nil || len(got) != 0 {
		t.Fatalf("HeldByAny(no tenants) = %v, %v; want nothing", got, err)
	}
}
