package store

import (
	"context"
	"testing"
	"time"
)

// TestWriteBackMarksReplaceEachOtherPerTenantAndAddress: a recorded mark
// replaces the address's earlier one (addresses normalized), and tenants
// keep their own.
func TestWriteBackMarksReplaceEachOtherPerTenantAndAddress(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	record := func(tenant string, marks ...WriteBackMark) {
		t.Helper()
		if err := s.RecordWriteBack(ctx, tenant, marks); err != nil {
			t.Fatal(err)
		}
	}
	record("shop/main", WriteBackMark{Email: "Ann@Example.com", Outcome: "unsubscribed", EventAt: at},
		WriteBackMark{Email: "bob@example.com", Outcome: "unreachable", EventAt: at})
	record("shop/main", WriteBackMark{Email: "bob@example.com", Outcome: "", EventAt: at.Add(time.Minute)})
	record("other/tenant", WriteBackMark{Email: "ann@example.com", Outcome: "blocked", EventAt: at})

	got, err := s.WriteBackMarks(ctx, "shop/main", []string{"ANN@example.com", "bob@example.com", "cid@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["ann@example.com"].Outcome != "unsubscribed" || !got["ann@example.com"].EventAt.Equal(at) ||
		got["bob@example.com"].Outcome != "" {
		t.Fatalf("marks %+v; want ann unsubscribed at %v and bob cleared", got, at)
	}
}
