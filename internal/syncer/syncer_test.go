package syncer_test

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

const apiKey = "test-key-0123456789"

// harness is one tenant wired to a real MariaDB and the Unisender emulator.
type harness struct {
	t      *testing.T
	st     *store.Store
	emu    *unisenderemu.Server
	client *unisender.Client
	listID int64
	tenant syncer.Tenant
}

func newHarness(t *testing.T, policy v1alpha1.DeletionPolicy) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	emu, srv := sandboxtest.Unisender(t, unisenderemu.Options{})
	emu.AddAPIKey(apiKey)
	client := unisender.NewClient(srv.URL, apiKey, unisender.WithMaxRetries(0))
	listID, err := client.CreateList(ctx, "Newsletter")
	if err != nil {
		t.Fatal(err)
	}
	spec := v1alpha1.UnisenderBindingSpec{DeletionPolicy: policy}
	return &harness{t: t, st: st, emu: emu, client: client, listID: listID, tenant: syncer.Tenant{
		Key: "acme/main", Mapper: mapping.New(spec, listID), DeletionPolicy: policy, Unisender: client,
	}}
}

// commit commits contacts and addresses to verify, failing the test on error.
func (h *harness) commit(contacts []syncer.Current, verify ...string) syncer.Outcome {
	h.t.Helper()
	out, err := syncer.Commit(context.Background(), h.st, h.tenant, contacts, verify)
	if err != nil {
		h.t.Fatalf("commit: %v", err)
	}
	return out
}

// members returns the addresses active in the tenant's list.
func (h *harness) members() []string {
	var out []string
	for _, m := range h.emu.ListMembers(apiKey, h.listID) {
		if m.ListStatus == unisenderemu.ListActive {
			out = append(out, m.Email)
		}
	}
	sort.Strings(out)
	return out
}

func (h *harness) member(email string) unisenderemu.Member {
	h.t.Helper()
	for _, m := range h.emu.ListMembers(apiKey, h.listID) {
		if m.Email == email {
			return m
		}
	}
	h.t.Fatalf("%s is not in the list", email)
	return unisenderemu.Member{}
}

func (h *harness) importCalls() int { return h.emu.Stats().Calls["importContacts"] }

// person is a Kommo contact (not a company) as a read returns it, read at
// readAt.
func person(id, readAt int64, name string, emails ...string) syncer.Current {
	return syncer.Current{ID: id, ReadAt: readAt, Contact: &kommo.Contact{
		ID: id, Type: kommo.ContactTypeContact, Name: name, Emails: emails, UpdatedAt: 1_700_000_000,
	}}
}

// gone is Kommo's answer that the contact does not exist, read at readAt.
func gone(id, readAt int64) syncer.Current { return syncer.Current{ID: id, ReadAt: readAt} }

// fixtureContacts parses one of the shared webhook samples and returns the
// contacts it carries as Kommo's current state read at readAt (a delete
// sample's contacts as gone).
func fixtureContacts(t *testing.T, name string, readAt int64) []syncer.Current {
	t.Helper()
	form, err := fixtures.KommoWebhook(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kommo.ParseWebhook(form)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []syncer.Current
	for _, e := range p.Events {
		if e.Action == kommo.ActionDelete {
			out = append(out, gone(e.Contact.ID, readAt))
			continue
		}
		c := e.Contact
		out = append(out, syncer.Current{ID: c.ID, Contact: &c, ReadAt: readAt})
	}
	return out
}

// The shared samples' contacts, committed as Kommo's state: mapped fields
// reach Unisender, a company is skipped, a dropped address is excluded (not
// unsubscribed) and a gone contact's address leaves the list.
func TestCommitFixtureContactsAddUpdateDelete(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)

	h.commit(fixtureContacts(t, fixtures.AddContact, 100))
	if got := h.members(); !reflect.DeepEqual(got, []string{"maria.lopez@example.com"}) {
		t.Fatalf("after add: members = %v", got)
	}
	if m := h.member("maria.lopez@example.com"); m.Fields["Name"] != "Maria Lopez" || m.Phone != "+34611222333" {
		t.Fatalf("after add: member = %+v", m)
	}

	out := h.commit(fixtureContacts(t, fixtures.UpdateContactAndCompany, 200))
	if out.Companies != 1 {
		t.Fatalf("companies = %d, want the company skipped", out.Companies)
	}
	want := []string{"m.lopez@example.org", "maria@lopez-garcia.example"}
	if got := h.members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update: members = %v, want %v (old address excluded, company not synced)", got, want)
	}
	if m := h.member("maria.lopez@example.com"); m.ListStatus != unisenderemu.ListExcluded || m.Status == unisenderemu.StatusUnsubscribed {
		t.Fatalf("the old address should be excluded, not unsubscribed: %+v", m)
	}
	if m := h.member("maria@lopez-garcia.example"); m.Fields["Name"] != "Maria Lopez Garcia" || !reflect.DeepEqual(m.Tags, []string{"newsletter"}) {
		t.Fatalf("after update: member = %+v", m)
	}

	out = h.commit(fixtureContacts(t, fixtures.DeleteContact, 300))
	if out.Deleted != 1 {
		t.Fatalf("deleted = %d, want the gone contact's tombstone", out.Deleted)
	}
	if got := h.members(); len(got) != 0 {
		t.Fatalf("after delete: members = %v, want none", got)
	}
}

// Every changed contact goes out in one importContacts call, and the
// outcome says what was applied.
func TestCommitUpsertsChangedContactsInOneCall(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	out := h.commit([]syncer.Current{
		person(3, 100, "Cy", "cy@example.com"),
		person(1, 100, "Al", "AL@example.com", "al.work@example.com"),
		person(2, 100, "Bo"), // no address: stored, nothing to send
	})
	if out.Contacts != 3 || out.Calls != 1 || out.Upserted != 3 || out.Removed != 0 || out.Stale != 0 ||
		!slices.Equal(out.Applied, []bool{true, true, true}) {
		t.Fatalf("outcome = %+v; want 3 contacts applied, one call with a row per address (3)", out)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"al.work@example.com", "al@example.com", "cy@example.com"}) {
		t.Fatalf("members = %v", got)
	}
	if m := h.member("al@example.com"); m.Fields["Name"] != "Al" {
		t.Fatalf("member = %+v, want the contact's name", m)
	}
	c, err := h.st.GetContact(context.Background(), h.tenant.Key, 2)
	if err != nil || c.Deleted || c.ReadAt != 100 || c.Name != "Bo" {
		t.Fatalf("contact without address stored as %+v, %v", c, err)
	}
}

// The orphan rule: an address leaves the list only when no live contact of
// the tenant holds it any more.
func TestCommitKeepsAnAddressAnotherLiveContactHolds(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.commit([]syncer.Current{person(1, 100, "One", "shared@example.com", "one@example.com"), person(2, 100, "Two", "shared@example.com")})

	out := h.commit([]syncer.Current{gone(1, 200)})
	if got := h.members(); !reflect.DeepEqual(got, []string{"shared@example.com"}) {
		t.Fatalf("members = %v: the shared address must stay while contact 2 holds it", got)
	}
	if out.Deleted != 1 || out.Removed != 1 {
		t.Fatalf("outcome = %+v; want one tombstone and only one@ removed", out)
	}

	h.commit([]syncer.Current{person(2, 300, "Two", "other@example.com")})
	if got := h.members(); !reflect.DeepEqual(got, []string{"other@example.com"}) {
		t.Fatalf("members = %v: the shared address must leave once nobody holds it", got)
	}
}

// An address one contact drops and another takes up in the same commit
// stays in the list.
func TestCommitAddressMovedWithinOneCommitStays(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyDelete)
	h.commit([]syncer.Current{person(1, 100, "One", "moving@example.com")})
	out := h.commit([]syncer.Current{person(1, 200, "One", "new@example.com"), person(2, 200, "Two", "moving@example.com")})
	if out.Removed != 0 {
		t.Fatalf("removed = %d: an address taken up again in the same commit must not be deleted", out.Removed)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"moving@example.com", "new@example.com"}) {
		t.Fatalf("members = %v", got)
	}
}

// What happens to an orphaned address is the binding's deletion policy.
func TestCommitDeletionPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy      v1alpha1.DeletionPolicy
		wantRemoved int
		check       func(t *testing.T, h *harness)
	}{
		{v1alpha1.DeletionPolicyExclude, 1, func(t *testing.T, h *harness) {
			m := h.member("leaving@example.com")
			if m.ListStatus != unisenderemu.ListExcluded || m.Status == unisenderemu.StatusUnsubscribed {
				t.Fatalf("Exclude: %+v; want excluded from the list, not unsubscribed", m)
			}
		}},
		{v1alpha1.DeletionPolicyDelete, 1, func(t *testing.T, h *harness) {
			if c, ok := h.emu.Contact(apiKey, "leaving@example.com"); ok {
				t.Fatalf("Delete: the contact is still in the Unisender account: %+v", c)
			}
		}},
		{v1alpha1.DeletionPolicyKeep, 0, func(t *testing.T, h *harness) {
			if m := h.member("leaving@example.com"); m.ListStatus != unisenderemu.ListActive {
				t.Fatalf("Keep: %+v; want it left active", m)
			}
		}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			h := newHarness(t, tc.policy)
			h.commit([]syncer.Current{person(1, 100, "One", "leaving@example.com"), person(2, 100, "Two", "staying@example.com")})
			calls := h.importCalls()
			out := h.commit([]syncer.Current{gone(1, 200)})
			if out.Deleted != 1 || out.Removed != tc.wantRemoved || h.importCalls()-calls != tc.wantRemoved {
				t.Fatalf("outcome = %+v with %d calls; want the tombstone and %d removal rows in as many calls",
					out, h.importCalls()-calls, tc.wantRemoved)
			}
			tc.check(t, h)
			if m := h.member("staying@example.com"); m.ListStatus != unisenderemu.ListActive {
				t.Fatalf("another contact's address was touched: %+v", m)
			}
			if c, err := h.st.GetContact(context.Background(), h.tenant.Key, 1); err != nil || !c.Deleted {
				t.Fatalf("stored %+v, %v; want a tombstone whatever the policy", c, err)
			}
		})
	}
}

// A tenant that invites queues one invitation per address new to the list,
// once: not again for a second holder, a repeated read or a re-commit.
func TestCommitQueuesInvitationsOnce(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.tenant.DoubleOptin = v1alpha1.DoubleOptinInvite
	ctx := context.Background()

	out := h.commit([]syncer.Current{person(1, 100, "One", "ONE@example.com", "shared@example.com")})
	if out.Invitations != 2 {
		t.Fatalf("invitations = %d, want one per new address (2)", out.Invitations)
	}
	for _, step := range []struct {
		what     string
		contacts []syncer.Current
	}{
		{"the same contact read again", []syncer.Current{person(1, 200, "One", "one@example.com", "shared@example.com")}},
		{"a renamed contact", []syncer.Current{person(1, 300, "One Renamed", "one@example.com", "shared@example.com")}},
		{"a second holder of an address already in the list", []syncer.Current{person(2, 300, "Two", "shared@example.com")}},
	} {
		if out := h.commit(step.contacts); out.Invitations != 0 {
			t.Fatalf("%s queued %d invitations, want none", step.what, out.Invitations)
		}
	}
	counts, err := h.st.InvitationCounts(ctx, h.tenant.Key)
	if err != nil || counts[store.InvitationPending] != 2 {
		t.Fatalf("invitation counts = %v, %v; want 2 pending", counts, err)
	}
	for _, e := range []string{"one@example.com", "shared@example.com"} {
		if inv, err := h.st.GetInvitation(ctx, h.tenant.Key, e); err != nil || inv.Status != store.InvitationPending {
			t.Fatalf("invitation of %s = %+v, %v; want pending", e, inv, err)
		}
	}

	// A tenant that does not invite queues nothing.
	h.tenant.DoubleOptin = ""
	if out := h.commit([]syncer.Current{person(3, 400, "Three", "three@example.com")}); out.Invitations != 0 {
		t.Fatalf("a tenant that does not invite queued %d invitations", out.Invitations)
	}
}

// verify names addresses Unisender may hold without the store knowing (a
// push whose commit was lost): those no live contact holds leave the list,
// those held stay.
func TestCommitVerifyRemovesUnheldAddresses(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	ctx := context.Background()
	h.commit([]syncer.Current{person(1, 100, "One", "held@example.com")})
	// A push that reached Unisender but whose commit was lost.
	if _, err := h.client.ImportContacts(ctx, unisender.ImportRequest{
		FieldNames: []string{mapping.ColumnEmail, mapping.ColumnListIDs},
		Rows:       [][]string{{"lost@example.com", strconv.FormatInt(h.listID, 10)}},
	}); err != nil {
		t.Fatal(err)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"held@example.com", "lost@example.com"}) {
		t.Fatalf("members before = %v", got)
	}
	out := h.commit(nil, " LOST@example.com ", "held@example.com", "")
	if out.Removed != 1 || out.Upserted != 0 {
		t.Fatalf("outcome = %+v; want only the unheld address removed", out)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"held@example.com"}) {
		t.Fatalf("members = %v; want the unheld address gone and the held one kept", got)
	}
	if m := h.member("lost@example.com"); m.ListStatus != unisenderemu.ListExcluded {
		t.Fatalf("the unheld address is %+v; want excluded per the policy", m)
	}
}

// A read older than the stored version, or one that finds the same
// content, reaches neither the store nor Unisender.
func TestCommitDoesNotApplyStaleOrUnchangedReads(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.commit([]syncer.Current{person(1, 200, "Current", "new@example.com")})
	calls := h.importCalls()

	stale := person(1, 100, "Older", "old@example.com")
	stale.Contact.UpdatedAt = 1 << 62 // Kommo's updated_at orders nothing
	out := h.commit([]syncer.Current{stale, person(1, 300, "Current", "new@example.com")})
	if out.Stale != 2 || out.Calls != 0 || h.importCalls() != calls || !slices.Equal(out.Applied, []bool{false, false}) {
		t.Fatalf("outcome = %+v, calls %d → %d: a stale and an unchanged read must change nothing", out, calls, h.importCalls())
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"new@example.com"}) {
		t.Fatalf("members = %v", got)
	}
	c, err := h.st.GetContact(context.Background(), h.tenant.Key, 1)
	if err != nil || c.Name != "Current" || c.ReadAt != 300 {
		t.Fatalf("stored %+v, %v; want the current version, its read time moved to the latest read", c, err)
	}

	// A tombstone read before the stored version is stale too.
	if out := h.commit([]syncer.Current{gone(1, 250)}); out.Deleted != 0 || out.Stale != 1 || out.Calls != 0 {
		t.Fatalf("stale tombstone: %+v", out)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"new@example.com"}) {
		t.Fatalf("members = %v after a stale tombstone", got)
	}
}

// A contact named twice in one commit is applied as its latest read.
func TestCommitKeepsTheLatestReadOfAContactNamedTwice(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	out := h.commit([]syncer.Current{person(1, 300, "Later", "later@example.com"), person(1, 100, "Earlier", "earlier@example.com")})
	if out.Stale != 1 || !slices.Equal(out.Applied, []bool{true, false}) {
		t.Fatalf("outcome = %+v; want the later read applied and the earlier one counted stale", out)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"later@example.com"}) {
		t.Fatalf("members = %v", got)
	}
}

// A company (Kommo lists companies among contacts in webhooks) is skipped:
// nothing stored, nothing sent.
func TestCommitSkipsCompanies(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	company := syncer.Current{ID: 9, ReadAt: 100, Contact: &kommo.Contact{
		ID: 9, Type: kommo.ContactTypeCompany, Name: "Acme Ltd", Emails: []string{"office@acme.example"},
	}}
	out := h.commit([]syncer.Current{company})
	if out.Companies != 1 || out.Calls != 0 || out.Upserted != 0 || h.importCalls() != 0 {
		t.Fatalf("outcome = %+v; want the company skipped without a call", out)
	}
	if _, err := h.st.GetContact(context.Background(), h.tenant.Key, 9); err == nil {
		t.Fatal("a company was stored as a contact")
	}
	if got := h.members(); len(got) != 0 {
		t.Fatalf("members = %v", got)
	}
}

func TestCommitNeverRevivesAnUnsubscribedAddress(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.commit([]syncer.Current{person(1, 100, "Leaver", "leaver@example.com")})
	if err := h.emu.SetContactStatus(apiKey, "leaver@example.com", unisenderemu.StatusUnsubscribed); err != nil {
		t.Fatal(err)
	}
	h.commit([]syncer.Current{person(1, 200, "Leaver Renamed", "leaver@example.com")})
	c, _ := h.emu.Contact(apiKey, "leaver@example.com")
	if c.Status != unisenderemu.StatusUnsubscribed || h.emu.Stats().RevivalAttempts != 0 {
		t.Fatalf("status = %s, revival attempts = %d: an unsubscribed address must never be revived",
			c.Status, h.emu.Stats().RevivalAttempts)
	}
}

// A failed Unisender call leaves the stored state untouched, so the retried
// commit sends the same change again.
func TestCommitFailedCallChangesNothingAndRetrySucceeds(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "retry_later", Message: "try later"})
	read := []syncer.Current{person(1, 100, "Retry", "retry@example.com")}
	if _, err := syncer.Commit(context.Background(), h.st, h.tenant, read, nil); err == nil || !unisender.IsTransient(err) {
		t.Fatalf("commit = %v, want a transient error", err)
	}
	if _, err := h.st.GetContact(context.Background(), h.tenant.Key, 1); err == nil {
		t.Fatal("the contact was stored although Unisender refused the call")
	}
	h.commit(read)
	if got := h.members(); !reflect.DeepEqual(got, []string{"retry@example.com"}) {
		t.Fatalf("members = %v after the retry", got)
	}
}
