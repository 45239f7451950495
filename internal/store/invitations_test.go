package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func applyBatch(t *testing.T, s *Store, tenant string, batch ...ContactState) []ApplyResult {
	t.Helper()
	var res []ApplyResult
	if err := s.InTx(context.Background(), func(tx *Tx) error {
		var err error
		res, err = tx.ApplyContacts(context.Background(), tenant, batch)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return res
}

func newEmails(results []ApplyResult) []string {
	var out []string
	for _, r := range results {
		out = append(out, r.NewEmails...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// An address is new when no contact held it before the batch: a second
// holder, or an address handed from one contact to another in one batch,
// is not; an address that left and comes back is.
func TestNewEmailsAreThoseNewToTheList(t *testing.T) {
	s := newStore(t)
	const tenant = "shop/new-emails"
	got := newEmails(applyBatch(t, s, tenant,
		ContactState{ID: 1, ReadAt: 10, Emails: []string{"A@x.io", "b@x.io"}},
		ContactState{ID: 2, ReadAt: 10, Emails: []string{"a@x.io"}}))
	if want := []string{"a@x.io", "b@x.io"}; !slices.Equal(got, want) {
		t.Fatalf("first batch: new %v, want %v", got, want)
	}
	got = newEmails(applyBatch(t, s, tenant, ContactState{ID: 3, ReadAt: 10, Emails: []string{"b@x.io", "c@x.io"}}))
	if want := []string{"c@x.io"}; !slices.Equal(got, want) {
		t.Fatalf("second holder: new %v, want %v", got, want)
	}
	// Contact 3 hands c@ to contact 4 in the same batch: c@ never left.
	got = newEmails(applyBatch(t, s, tenant,
		ContactState{ID: 3, ReadAt: 11, Emails: []string{"b@x.io"}},
		ContactState{ID: 4, ReadAt: 11, Emails: []string{"c@x.io"}}))
	if len(got) != 0 {
		t.Fatalf("handed over: new %v, want none", got)
	}
	applyBatch(t, s, tenant, ContactState{ID: 4, ReadAt: 12, Deleted: true})
	got = newEmails(applyBatch(t, s, tenant, ContactState{ID: 5, ReadAt: 12, Emails: []string{"c@x.io"}}))
	if want := []string{"c@x.io"}; !slices.Equal(got, want) {
		t.Fatalf("back after leaving: new %v, want %v", got, want)
	}
	// The single-contact path agrees.
	res, err := s.ApplyContact(context.Background(), tenant, ContactState{ID: 6, ReadAt: 12, Emails: []string{"c@x.io", "d@x.io"}})
	if err != nil || !slices.Equal(res.NewEmails, []string{"d@x.io"}) {
		t.Fatalf("ApplyContact: new %v, %v; want [d@x.io]", res.NewEmails, err)
	}
}

func queue(t *testing.T, s *Store, tenant string, emails ...string) int {
	t.Helper()
	var n int
	if err := s.InTx(context.Background(), func(tx *Tx) error {
		var err error
		n, err = tx.QueueInvitations(context.Background(), tenant, emails)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInvitationsAreQueuedOnceAndSettled(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const tenant = "shop/invitations"
	applyBatch(t, s, tenant, ContactState{ID: 1, ReadAt: 10, Name: "Ann", Emails: []string{"a@x.io", "b@x.io"}})
	if n := queue(t, s, tenant, "a@x.io", "b@x.io", "gone@x.io", "a@x.io"); n != 3 {
		t.Fatalf("queued %d, want 3", n)
	}
	if n := queue(t, s, tenant, "a@x.io", "b@x.io"); n != 0 {
		t.Fatalf("queued again %d, want 0", n)
	}
	tenants, err := s.InvitationTenants(ctx, time.Now(), 10)
	if err != nil || !slices.Contains(tenants, tenant) {
		t.Fatalf("InvitationTenants = %v, %v; want %q among them", tenants, err, tenant)
	}
	due, err := s.DueInvitations(ctx, tenant, time.Now(), 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("DueInvitations = %+v, %v; want 3", due, err)
	}
	for _, inv := range due {
		wantHeld := inv.Email != "gone@x.io"
		if inv.Held != wantHeld || (wantHeld && inv.Name != "Ann") {
			t.Errorf("%s: held %v name %q, want held %v name Ann", inv.Email, inv.Held, inv.Name, wantHeld)
		}
	}
	if err := s.MarkInvitationSent(ctx, tenant, "a@x.io"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkInvitationFailed(ctx, tenant, "b@x.io", "unsubscribed"); err != nil {
		t.Fatal(err)
	}
	if dropped, err := s.DropInvitation(ctx, tenant, "gone@x.io"); err != nil || !dropped {
		t.Fatalf("DropInvitation = %v, %v", dropped, err)
	}
	// Settled rows are kept and keep their address from being queued again.
	if n := queue(t, s, tenant, "a@x.io", "b@x.io"); n != 0 {
		t.Fatalf("queued after settling %d, want 0", n)
	}
	counts, err := s.InvitationCounts(ctx, tenant)
	if err != nil || counts[InvitationSent] != 1 || counts[InvitationFailed] != 1 || counts[InvitationPending] != 0 {
		t.Fatalf("counts %v, %v", counts, err)
	}
	if inv, err := s.GetInvitation(ctx, tenant, "b@x.io"); err != nil || inv.Reason != "unsubscribed" {
		t.Fatalf("GetInvitation = %+v, %v", inv, err)
	}
}

func TestInvitationRetryDeferAndCancel(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const tenant = "shop/retry"
	queue(t, s, tenant, "a@x.io", "b@x.io")
	later := time.Now().Add(time.Hour)
	if err := s.RetryInvitation(ctx, tenant, "a@x.io", later, "retry_later"); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueInvitations(ctx, tenant, time.Now(), 10)
	if err != nil || len(due) != 1 || due[0].Email != "b@x.io" {
		t.Fatalf("due after a retry: %+v, %v; want b@ only", due, err)
	}
	if err := s.DeferInvitations(ctx, tenant, later); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueInvitations(ctx, tenant, time.Now(), 10); len(due) != 0 {
		t.Fatalf("due after deferring: %+v", due)
	}
	inv, err := s.GetInvitation(ctx, tenant, "a@x.io")
	if err != nil || inv.Attempts != 1 {
		t.Fatalf("a@: %+v, %v; want one attempt", inv, err)
	}
	if n, err := s.CancelInvitations(ctx, tenant); err != nil || n != 2 {
		t.Fatalf("CancelInvitations = %d, %v; want 2", n, err)
	}
	if _, err := s.GetInvitation(ctx, tenant, "a@x.io"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after cancel: %v, want ErrNotFound", err)
	}
}
