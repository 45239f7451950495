package syncer_test

import (
	"context"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
)

// refusals returns the tenant's recorded refusals by contact id.
func (h *harness) refusals() map[int64]store.Refusal {
	h.t.Helper()
	list, err := h.st.ListRefusals(context.Background(), store.RefusalFilter{Tenant: h.tenant.Key})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int64]store.Refusal{}
	for _, r := range list {
		out[r.ContactID] = r
	}
	return out
}

// Each address Unisender refuses row by row (an invalid one, a role
// address) and each contact the sync skips (no e-mail, a company) is
// recorded with its reason and contact id; the refused addresses are not
// counted as list members.
func TestSyncHealthCommitRecordsRefusalsWithReasons(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	company := syncer.Current{ID: 5, ReadAt: 100, Contact: &kommo.Contact{
		ID: 5, Type: kommo.ContactTypeCompany, Name: "Acme Ltd", Emails: []string{"office@acme.example"},
	}}
	h.commit([]syncer.Current{
		person(1, 100, "Fine", "fine@example.com"),
		person(2, 100, "Typo", "not-an-email"),
		person(3, 100, "Role", "info@example.com"),
		person(4, 100, "Phone only"),
		company,
	})
	got := h.refusals()
	want := map[int64]store.Refusal{
		2: {Email: "not-an-email", Source: store.RefusalUnisender, Reason: "invalid_email"},
		3: {Email: "info@example.com", Source: store.RefusalUnisender, Reason: "role_address"},
		4: {Source: store.RefusalSkipped, Reason: store.ReasonNoEmail},
		5: {Source: store.RefusalSkipped, Reason: store.ReasonCompany},
	}
	if len(got) != len(want) {
		t.Fatalf("refusals = %+v; want contacts 2-5", got)
	}
	for id, w := range want {
		g := got[id]
		if g.Email != w.Email || g.Source != w.Source || g.Reason != w.Reason {
			t.Errorf("contact %d: refusal %+v; want %+v", id, g, w)
		}
	}
	health, err := h.st.TenantHealth(context.Background(), h.tenant.Key)
	if err != nil {
		t.Fatal(err)
	}
	if health.ContactsSynced != 4 || health.ListMembers != 1 || health.Refused["invalid_email"] != 1 ||
		health.Refused["role_address"] != 1 || health.Excluded[store.ReasonNoEmail] != 1 || health.Excluded[store.ReasonCompany] != 1 {
		t.Fatalf("health = %+v; want 4 contacts, 1 member, one refusal per reason", health)
	}
}

// A refused address is not a list member: when its contact goes, it is not
// sent in an exclusion batch (nor by the deletion policy's page of
// addresses), and a contact fixed in Kommo leaves the refusals.
func TestSyncHealthRefusedAddressIsNotAMember(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	ctx := context.Background()
	h.commit([]syncer.Current{person(1, 100, "Typo", "not-an-email"), person(2, 100, "Fixed later", "info@example.com")})
	if emails, err := h.st.TenantEmails(ctx, h.tenant.Key, "", 100); err != nil || len(emails) != 0 {
		t.Fatalf("TenantEmails = %v, %v; want no refused address", emails, err)
	}
	calls := h.importCalls()
	out := h.commit([]syncer.Current{gone(1, 200)})
	if out.Removed != 0 || h.importCalls() != calls {
		t.Fatalf("outcome %+v with %d calls; want the refused address not sent to leave the list", out, h.importCalls()-calls)
	}
	h.commit([]syncer.Current{person(2, 300, "Fixed later", "ann@example.com")})
	if got := h.refusals(); len(got) != 0 {
		t.Fatalf("refusals = %+v; want none once the contacts are gone or fixed", got)
	}
}
