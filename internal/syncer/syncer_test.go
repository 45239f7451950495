package syncer_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"sort"
	"testing"
	"time"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
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
	listID int64
	tenant syncer.Tenant
}

func newHarness(t *testing.T, policy syncv1.DeletionPolicy) *harness {
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
	emu := unisenderemu.New(unisenderemu.Options{})
	emu.AddAPIKey(apiKey)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	client := unisender.NewClient(srv.URL, apiKey, unisender.WithMaxRetries(0))
	listID, err := client.CreateList(ctx, "Newsletter")
	if err != nil {
		t.Fatal(err)
	}
	spec := syncv1.UnisenderBindingSpec{DeletionPolicy: policy}
	return &harness{t: t, st: st, emu: emu, listID: listID, tenant: syncer.Tenant{
		Key: "acme/main", Mapper: mapping.New(spec, listID), DeletionPolicy: policy, Unisender: client,
	}}
}

func (h *harness) apply(events ...syncer.Event) syncer.Outcome {
	h.t.Helper()
	out, err := syncer.Apply(context.Background(), h.st, h.tenant, events)
	if err != nil {
		h.t.Fatalf("apply: %v", err)
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
	for _, m := range h.emu.ListMembers(apiKey, h.listID) {
		if m.Email == email {
			return m
		}
	}
	h.t.Fatalf("%s is not in the list", email)
	return unisenderemu.Member{}
}

// fixtureEvents parses one of the shared webhook samples.
func fixtureEvents(t *testing.T, name string, at time.Time) []syncer.Event {
	t.Helper()
	form, err := fixtures.KommoWebhook(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kommo.ParseWebhook(form)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var events []syncer.Event
	for _, e := range p.Events {
		events = append(events, syncer.Event{Action: e.Action, Contact: e.Contact, ReceivedAt: at})
	}
	return events
}

func TestFixturesAddUpdateDelete(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyExclude)
	now := time.Unix(1764160000, 0)

	h.apply(fixtureEvents(t, fixtures.AddContact, now)...)
	if got := h.members(); !reflect.DeepEqual(got, []string{"maria.lopez@example.com"}) {
		t.Fatalf("after add: members = %v", got)
	}
	if m := h.member("maria.lopez@example.com"); m.Fields["Name"] != "Maria Lopez" || m.Phone != "+34611222333" {
		t.Fatalf("after add: member = %+v", m)
	}

	out := h.apply(fixtureEvents(t, fixtures.UpdateContactAndCompany, now)...)
	if out.Companies != 1 {
		t.Fatalf("companies = %d, want the company skipped", out.Companies)
	}
	want := []string{"m.lopez@example.org", "maria@lopez-garcia.example"}
	if got := h.members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update: members = %v, want %v (old address excluded, company not synced)", got, want)
	}
	if m := h.member("maria.lopez@example.com"); m.ListStatus != unisenderemu.ListExcluded || m.Status == "unsubscribed" {
		t.Fatalf("the old address should be excluded, not unsubscribed: %+v", m)
	}
	if m := h.member("maria@lopez-garcia.example"); m.Fields["Name"] != "Maria Lopez Garcia" || !reflect.DeepEqual(m.Tags, []string{"newsletter"}) {
		t.Fatalf("after update: member = %+v", m)
	}

	h.apply(fixtureEvents(t, fixtures.DeleteContact, now.Add(time.Hour))...)
	if got := h.members(); len(got) != 0 {
		t.Fatalf("after delete: members = %v, want none", got)
	}
}

func contactEvent(action kommo.Action, id, updatedAt int64, emails ...string) syncer.Event {
	c := kommo.Contact{ID: id, Type: kommo.ContactTypeContact, Name: "Contact", UpdatedAt: updatedAt, Emails: emails}
	return syncer.Event{Action: action, Contact: c, ReceivedAt: time.Unix(2000000000, 0)}
}

func TestSharedAddressStaysWhileAnotherContactHoldsIt(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyExclude)
	h.apply(contactEvent(kommo.ActionAdd, 1, 100, "shared@example.com", "one@example.com"),
		contactEvent(kommo.ActionAdd, 2, 100, "shared@example.com"))
	h.apply(contactEvent(kommo.ActionDelete, 1, 0))
	if got := h.members(); !reflect.DeepEqual(got, []string{"shared@example.com"}) {
		t.Fatalf("members = %v: the shared address must stay while contact 2 holds it", got)
	}
	h.apply(contactEvent(kommo.ActionUpdate, 2, 200, "other@example.com"))
	if got := h.members(); !reflect.DeepEqual(got, []string{"other@example.com"}) {
		t.Fatalf("members = %v: the shared address must leave once nobody holds it", got)
	}
}

func TestAddressMovedWithinABatchStays(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyDelete)
	h.apply(contactEvent(kommo.ActionAdd, 1, 100, "moving@example.com"))
	out := h.apply(contactEvent(kommo.ActionUpdate, 1, 200, "new@example.com"),
		contactEvent(kommo.ActionAdd, 2, 200, "moving@example.com"))
	if out.Removed != 0 {
		t.Fatalf("removed = %d: an address taken up again in the same batch must not be deleted", out.Removed)
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"moving@example.com", "new@example.com"}) {
		t.Fatalf("members = %v", got)
	}
}

func TestStaleAndDuplicateEventsCostNoCall(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyExclude)
	h.apply(contactEvent(kommo.ActionUpdate, 1, 200, "new@example.com"))
	calls := h.emu.Stats().Calls["importContacts"]
	out := h.apply(contactEvent(kommo.ActionUpdate, 1, 100, "old@example.com"),
		contactEvent(kommo.ActionUpdate, 1, 200, "new@example.com"))
	if out.Stale != 2 || h.emu.Stats().Calls["importContacts"] != calls {
		t.Fatalf("stale = %d, calls %d → %d: older and duplicate events must change nothing",
			out.Stale, calls, h.emu.Stats().Calls["importContacts"])
	}
	if got := h.members(); !reflect.DeepEqual(got, []string{"new@example.com"}) {
		t.Fatalf("members = %v", got)
	}
}

func TestUnsubscribedAddressIsNeverRevived(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyExclude)
	h.apply(contactEvent(kommo.ActionAdd, 1, 100, "leaver@example.com"))
	if err := h.emu.SetContactStatus(apiKey, "leaver@example.com", unisenderemu.StatusUnsubscribed); err != nil {
		t.Fatal(err)
	}
	h.apply(contactEvent(kommo.ActionUpdate, 1, 200, "leaver@example.com"))
	c, _ := h.emu.Contact(apiKey, "leaver@example.com")
	if c.Status != unisenderemu.StatusUnsubscribed || h.emu.Stats().RevivalAttempts != 0 {
		t.Fatalf("status = %s, revival attempts = %d: an unsubscribed address must never be revived",
			c.Status, h.emu.Stats().RevivalAttempts)
	}
}

// A failed Unisender call leaves the stored state untouched, so the retried
// batch sends the same change again.
func TestFailedCallChangesNothingAndRetrySucceeds(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyExclude)
	h.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "retry_later", Message: "try later"})
	ev := contactEvent(kommo.ActionAdd, 1, 100, "retry@example.com")
	if _, err := syncer.Apply(context.Background(), h.st, h.tenant, []syncer.Event{ev}); err == nil || !unisender.IsTransient(err) {
		t.Fatalf("apply = %v, want a transient error", err)
	}
	if _, err := h.st.GetContact(context.Background(), h.tenant.Key, 1); err == nil {
		t.Fatal("the contact was stored although Unisender refused the call")
	}
	h.apply(ev)
	if got := h.members(); !reflect.DeepEqual(got, []string{"retry@example.com"}) {
		t.Fatalf("members = %v after the retry", got)
	}
}

// A delete applied before an edit Kommo made just before it — whose
// updated_at runs a second ahead of our clock — still wins.
func TestDeleteBeatsAnEarlierEditAppliedAfterIt(t *testing.T) {
	h := newHarness(t, syncv1.DeletionPolicyExclude)
	received := time.Unix(1000, 0)
	h.apply(syncer.Event{Action: kommo.ActionAdd, Contact: kommo.Contact{ID: 1, Type: kommo.ContactTypeContact, UpdatedAt: 999, Emails: []string{"gone@example.com"}}, ReceivedAt: received})
	h.apply(syncer.Event{Action: kommo.ActionDelete, Contact: kommo.Contact{ID: 1}, ReceivedAt: received})
	h.apply(syncer.Event{Action: kommo.ActionUpdate, Contact: kommo.Contact{ID: 1, Type: kommo.ContactTypeContact, UpdatedAt: 1001, Emails: []string{"gone@example.com"}}, ReceivedAt: received})
	if got := h.members(); len(got) != 0 {
		t.Fatalf("members = %v: the late edit brought the deleted contact back", got)
	}
}
