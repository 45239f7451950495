package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

func TestTenantEmailsPagesDistinctAddresses(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := range 25 {
		// Contacts i and i+1 share an address, so addresses repeat.
		emails := []string{fmt.Sprintf("a%02d@example.com", i), fmt.Sprintf("a%02d@example.com", i+1)}
		apply(t, s, "shop/main", ContactState{ID: int64(i + 1), ReadAt: 100, Emails: emails})
	}
	apply(t, s, "shop/other", ContactState{ID: 1, ReadAt: 100, Emails: []string{"other@example.com"}})

	var all []string
	after := ""
	for {
		page, err := s.TenantEmails(ctx, "shop/main", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1]
	}
	if len(all) != 26 || !slices.IsSorted(all) || slices.Contains(all, "other@example.com") {
		t.Fatalf("tenant e-mails = %v, want the 26 distinct addresses of shop/main in order", all)
	}
}

func TestDeleteTenantDropsOnlyThatTenant(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, tenant := range []string{"shop/main", "shop/other"} {
		apply(t, s, tenant, ContactState{ID: 7, ReadAt: 100, Emails: []string{"x@example.com"}})
		if err := s.SaveCheckpoint(ctx, Checkpoint{Tenant: tenant, RunID: "r", Status: "Running"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // a repeated delete is harmless
		if err := s.DeleteTenant(ctx, "shop/main"); err != nil {
			t.Fatal(err)
		}
	}
	if live, _ := s.LiveContacts(ctx, "shop/main"); len(live) != 0 {
		t.Fatalf("shop/main still has %d contacts", len(live))
	}
	if _, err := s.GetCheckpoint(ctx, "shop/main"); err != ErrNotFound {
		t.Fatalf("shop/main checkpoint: %v, want ErrNotFound", err)
	}
	if live, _ := s.LiveContacts(ctx, "shop/other"); len(live) != 1 {
		t.Fatalf("shop/other lost its contacts: %v", live)
	}
	if _, err := s.GetCheckpoint(ctx, "shop/other"); err != nil {
		t.Fatalf("shop/other checkpoint: %v", err)
	}
}
