package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// Now is the database's clock in microseconds: close to real time (the
// test's MariaDB runs on this machine), never going back between calls,
// and fine enough that reads a few milliseconds apart get different stamps.
func TestNowIsTheDatabaseClockInMicroseconds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	before := time.Now()
	first, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if got := time.UnixMicro(first); got.Before(before.Add(-2*time.Second)) || got.After(after.Add(2*time.Second)) {
		t.Fatalf("Now = %d (%v); want microseconds close to %v", first, got, before)
	}
	prev, subSecond := first, false
	for range 50 {
		time.Sleep(2 * time.Millisecond)
		now, err := s.Now(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now <= prev {
			t.Fatalf("Now went from %d to %d over 2 ms; want it to move forward", prev, now)
		}
		if d := now - prev; d > int64(time.Second/time.Microsecond) {
			t.Fatalf("Now moved %d between calls 2 ms apart: not microseconds", d)
		}
		if now%1_000_000 != 0 {
			subSecond = true
		}
		prev = now
	}
	if !subSecond {
		t.Fatal("every stamp was a whole second: Now has no sub-second resolution")
	}
}

func TestLiveAmongReportsOnlyLiveContactsOfTheTenant(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	// More live contacts than one statement names, so LiveAmong must chunk.
	var batch []ContactState
	for id := int64(1); id <= 2*maxRowsPerStatement+10; id++ {
		batch = append(batch, ContactState{ID: id, ReadAt: 1, Emails: []string{fmt.Sprintf("c%d@example.com", id)}})
	}
	if err := s.InTx(ctx, func(tx *Tx) error { _, err := tx.ApplyContacts(ctx, tenantA, batch); return err }); err != nil {
		t.Fatal(err)
	}
	apply(t, s, tenantA, ContactState{ID: 5, ReadAt: 2, Deleted: true})
	apply(t, s, tenantA, ContactState{ID: 2000, ReadAt: 2, Deleted: true})
	apply(t, s, "other/tenant", ContactState{ID: 50_000, ReadAt: 1})

	var ids []int64
	for id := int64(1); id <= 2*maxRowsPerStatement+10; id += 3 { // 1, 4, 7, … some of them gone
		ids = append(ids, id)
	}
	ids = append(ids, 5, 2000, 50_000, 60_000) // gone, gone, another tenant's, never seen
	got, err := s.LiveAmong(ctx, tenantA, ids)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{}
	for _, id := range ids {
		if id <= 2*maxRowsPerStatement+10 && id != 5 && id != 2000 {
			want[id] = true
		}
	}
	if !maps.Equal(got, want) {
		extra, missing := []int64{}, []int64{}
		for id := range got {
			if !want[id] {
				extra = append(extra, id)
			}
		}
		for id := range want {
			if !got[id] {
				missing = append(missing, id)
			}
		}
		slices.Sort(extra)
		slices.Sort(missing)
		t.Fatalf("LiveAmong: %d ids; unexpected %v, missing %v", len(got), extra, missing)
	}
	if got, err := s.LiveAmong(ctx, tenantA, nil); err != nil || len(got) != 0 {
		t.Fatalf("LiveAmong(no ids) = %v, %v; want empty", got, err)
	}
	if _, err := s.LiveAmong(ctx, "", []int64{1}); err == nil {
		t.Fatal("LiveAmong accepted an empty tenant")
	}
}

func TestTxEmailHeldSeesOnlyLiveHoldersOfTheTenant(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantA, ContactState{ID: 1, ReadAt: 1, Emails: []string{"kept@example.com", "dropped@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 2, ReadAt: 1, Emails: []string{"gone@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 1, ReadAt: 2, Emails: []string{"kept@example.com"}})
	apply(t, s, tenantA, ContactState{ID: 2, ReadAt: 2, Deleted: true})
	apply(t, s, "other/tenant", ContactState{ID: 3, ReadAt: 1, Emails: []string{"elsewhere@example.com"}})

	for email, want := range map[string]bool{
		"kept@example.com":       true,
		"  KEPT@Example.com ":    true, // normalised as the store keeps addresses
		"dropped@example.com":    false,
		"gone@example.com":       false, // its only holder was deleted
		"elsewhere@example.com":  false, // held in another tenant only
		"never-seen@example.com": false,
	} {
		var held bool
		err := s.InTx(ctx, func(tx *Tx) error {
			var err error
			held, err = tx.EmailHeld(ctx, tenantA, email)
			return err
		})
		if err != nil || held != want {
			t.Errorf("EmailHeld(%q) = %v, %v; want %v", email, held, err, want)
		}
	}
	err := s.InTx(ctx, func(tx *Tx) error { _, err := tx.EmailHeld(ctx, "", "kept@example.com"); return err })
	if err == nil || !strings.Contains(err.Error(), "tenant") {
		t.Fatalf("EmailHeld with an empty tenant = %v; want a tenant error", err)
	}
}
