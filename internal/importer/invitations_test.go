package importer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// With Invite, the import and the resync queue one pending invitation per
// address they bring into the list (the worker sends them); with
// ConsentHeld, none.
func TestImportQueuesInvitationsForNewAddresses(t *testing.T) {
	e := newEnv(t)
	contacts := e.addContacts(30, 10)
	ctx := context.Background()
	job := e.job("initial", 0)
	job.DoubleOptin = v1alpha1.DoubleOptinInvite
	first, err := e.importer().Run(ctx, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Invitations != 30 {
		t.Fatalf("the import queued %d invitations, want 30", first.Invitations)
	}
	c := contacts[7]
	c.Emails = []string{"fresh@example.com"}
	if _, err := e.kommo.UpdateContact("acme", c); err != nil {
		t.Fatal(err)
	}
	resync := e.job("resync-1", first.Cursor)
	resync.Kind, resync.DoubleOptin = importer.KindResync, v1alpha1.DoubleOptinInvite
	p, err := e.importer().Run(ctx, resync, nil)
	if err != nil || p.Invitations != 1 {
		t.Fatalf("resync = %+v, %v; want one invitation queued (the new address)", p, err)
	}
	counts, err := e.store.InvitationCounts(ctx, e.tenant.String())
	if err != nil || counts[store.InvitationPending] != 31 {
		t.Fatalf("invitations %v, %v; want 31 pending", counts, err)
	}
	inv, err := e.store.GetInvitation(ctx, e.tenant.String(), "fresh@example.com")
	if err != nil || inv.Status != store.InvitationPending {
		t.Fatalf("fresh@: %+v, %v", inv, err)
	}
	if n := e.uni.Stats().Calls["subscribe"]; n != 0 {
		t.Fatalf("the import made %d subscribe calls; sending is the worker's", n)
	}
}

func TestConsentHeldImportQueuesNoInvitation(t *testing.T) {
	e := newEnv(t)
	e.addContacts(10, 10)
	ctx := context.Background()
	p, err := e.importer().Run(ctx, e.job("initial", 0), nil) // DoubleOptin unset: ConsentHeld
	if err != nil || p.Invitations != 0 {
		t.Fatalf("import = %+v, %v", p, err)
	}
	counts, err := e.store.InvitationCounts(ctx, e.tenant.String())
	if err != nil || len(counts) != 0 {
		t.Fatalf("invitations %v, %v; want none", counts, fmt.Sprint(err))
	}
}
