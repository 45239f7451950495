package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestCheckpointRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.GetCheckpoint(ctx, tenantA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetCheckpoint before any save = %v; want ErrNotFound", err)
	}
	cp := Checkpoint{Tenant: tenantA, RunID: "run-1", LastPage: 3,
		NextURL: "https://acme.kommo.com/api/v4/contacts?page=4&limit=250", Imported: 750,
		Total: 10000, UpdatedFrom: 1700000000, Status: "Running"}
	before := time.Now().Add(-time.Second)
	for range 2 { // saving the same checkpoint twice is harmless
		if err := s.SaveCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetCheckpoint(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cp, got, cmpopts.IgnoreFields(Checkpoint{}, "UpdatedAt")); diff != "" {
		t.Fatalf("round trip (-saved +got):\n%s", diff)
	}
	if got.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt = %v; want a time after %v", got.UpdatedAt, before)
	}

	// The last page: no next link, stored as NULL and read back as "".
	cp.LastPage, cp.NextURL, cp.Imported, cp.Status = 40, "", 10000, "Done"
	if err := s.SaveCheckpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetCheckpoint(ctx, tenantA)
	if err != nil || got.NextURL != "" || got.LastPage != 40 || got.Status != "Done" {
		t.Fatalf("after final save: %+v, %v", got, err)
	}
	var nulls int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM import_checkpoints WHERE next_url IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("next_url NULL rows = %d, %v; want 1", nulls, err)
	}
}

func TestDeadLetters(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first := DeadLetter{Tenant: tenantA, Tube: "sync", JobID: 41, Body: []byte(`{"v":1}`),
		Reason: "unisender: invalid api key", Attempts: 3,
		FirstFailedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
	id1, err := s.RecordDeadLetter(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	poison := DeadLetter{Tube: "sync", JobID: 42, Body: []byte("\x00garbage"), Reason: "envelope: not JSON"}
	id2, err := s.RecordDeadLetter(ctx, poison)
	if err != nil {
		t.Fatal(err)
	}
	other := DeadLetter{Tenant: "other/tenant", Tube: "sync", JobID: 43, Body: []byte("x"), Reason: "r"}
	id3, err := s.RecordDeadLetter(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if id1 == id2 || id2 == id3 || id1 == id3 {
		t.Fatalf("ids %d %d %d not distinct", id1, id2, id3)
	}

	// The same buried job recorded again (a crash between recording and
	// burying) updates its row.
	again := first
	again.Attempts, again.Reason = 4, "unisender: invalid api key (again)"
	idAgain, err := s.RecordDeadLetter(ctx, again)
	if err != nil || idAgain != id1 {
		t.Fatalf("re-recording = %d, %v; want the existing id %d", idAgain, err, id1)
	}

	got, err := s.GetDeadLetter(ctx, id1)
	if err != nil {
		t.Fatal(err)
	}
	want := again
	want.ID = id1
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(DeadLetter{}, "BuriedAt")); diff != "" {
		t.Fatalf("GetDeadLetter (-want +got):\n%s", diff)
	}
	if got.BuriedAt.IsZero() {
		t.Error("BuriedAt not set")
	}

	all, err := s.ListDeadLetters(ctx, DeadLetterFilter{})
	if err != nil || len(all) != 3 || all[0].ID != id1 || all[1].ID != id2 || all[2].ID != id3 {
		t.Fatalf("list all = %v, %v", ids(all), err)
	}
	mine, err := s.ListDeadLetters(ctx, DeadLetterFilter{Tenant: tenantA})
	if err != nil || len(mine) != 1 || mine[0].ID != id1 {
		t.Fatalf("list by tenant = %v, %v", ids(mine), err)
	}
	page, err := s.ListDeadLetters(ctx, DeadLetterFilter{AfterID: id1, Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != id2 {
		t.Fatalf("page after %d = %v, %v", id1, ids(page), err)
	}

	if err := s.MarkRequeued(ctx, id2, 77); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetDeadLetter(ctx, id2)
	if err != nil || got.RequeuedAt == nil || got.RequeuedJobID != 77 {
		t.Fatalf("after MarkRequeued: %+v, %v", got, err)
	}
	pending, err := s.ListDeadLetters(ctx, DeadLetterFilter{OnlyPending: true})
	if err != nil || len(pending) != 2 || pending[0].ID != id1 || pending[1].ID != id3 {
		t.Fatalf("pending = %v, %v", ids(pending), err)
	}

	if err := s.MarkRequeued(ctx, 999999, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkRequeued(unknown) = %v; want ErrNotFound", err)
	}
	if _, err := s.GetDeadLetter(ctx, 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetDeadLetter(unknown) = %v; want ErrNotFound", err)
	}
	if _, err := s.RecordDeadLetter(ctx, DeadLetter{Reason: "no tube"}); err == nil {
		t.Error("a dead letter without a tube was accepted")
	}
	huge := DeadLetter{Tube: "sync", JobID: 44, Reason: strings.Repeat("é", maxReasonLen)}
	if idHuge, err := s.RecordDeadLetter(ctx, huge); err != nil {
		t.Errorf("long reason: %v", err)
	} else if got, err := s.GetDeadLetter(ctx, idHuge); err != nil || len(got.Reason) > maxReasonLen+len("…") {
		t.Errorf("long reason stored as %d bytes, %v", len(got.Reason), err)
	}
}

func ids(ds []DeadLetter) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
