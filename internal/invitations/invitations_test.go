package invitations_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/invitations"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

const apiKey = "invitations-test-key-0123"

// harness is one tenant on MariaDB and the Unisender emulator, whose
// subscribe calls are recorded with their arguments.
type harness struct {
	t      *testing.T
	st     *store.Store
	emu    *unisenderemu.Server
	tenant syncer.Tenant

	mu         sync.Mutex
	subscribes []subscribeCall
}

type subscribeCall struct{ email, name, listIDs, doubleOptin, overwrite string }

func newHarness(t *testing.T, mode v1alpha1.DoubleOptin) *harness {
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
	h := &harness{t: t, st: st}
	var srv *httptest.Server
	h.emu, srv = sandboxtest.UnisenderBehind(t, unisenderemu.Options{}, func(emu *unisenderemu.Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/en/api/subscribe" {
				if err := r.ParseForm(); err == nil {
					h.mu.Lock()
					h.subscribes = append(h.subscribes, subscribeCall{
						email: r.PostForm.Get("fields[email]"), name: r.PostForm.Get("fields[Name]"),
						listIDs: r.PostForm.Get("list_ids"), doubleOptin: r.PostForm.Get("double_optin"),
						overwrite: r.PostForm.Get("overwrite"),
					})
					h.mu.Unlock()
				}
			}
			emu.ServeHTTP(w, r)
		})
	})
	h.emu.AddAPIKey(apiKey)
	client := unisender.NewClient(srv.URL, apiKey, unisender.WithMaxRetries(0))
	listID, err := client.CreateList(ctx, "Newsletter")
	if err != nil {
		t.Fatal(err)
	}
	h.tenant = syncer.Tenant{
		Key: "acme/invites", Mapper: mapping.New(v1alpha1.UnisenderBindingSpec{}, listID),
		DeletionPolicy: v1alpha1.DeletionPolicyExclude, Unisender: client,
		DoubleOptin: mode, Inviter: client,
	}
	return h
}

func (h *harness) calls() []subscribeCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]subscribeCall(nil), h.subscribes...)
}

func person(id int64, emails ...string) kommo.Contact {
	c := kommo.Contact{ID: id, Type: kommo.ContactTypeContact, Name: fmt.Sprintf("Person %d", id), UpdatedAt: 1_700_000_000 + id}
	f := kommo.CustomField{ID: 1, Name: "Email", Code: kommo.FieldCodeEmail}
	for _, e := range emails {
		f.Values = append(f.Values, kommo.FieldValue{Value: e})
	}
	c.CustomFields = []kommo.CustomField{f}
	c.DeriveContactPoints()
	return c
}

func (h *harness) apply(action kommo.Action, contacts ...kommo.Contact) syncer.Outcome {
	h.t.Helper()
	return h.commit(h.tenant, action, contacts...)
}

// commit applies contacts to t through syncer.Commit as the worker would
// after reading them from Kommo: live, or gone for ActionDelete.
func (h *harness) commit(t syncer.Tenant, action kommo.Action, contacts ...kommo.Contact) syncer.Outcome {
	h.t.Helper()
	ctx := context.Background()
	readAt, err := h.st.Now(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	current := make([]syncer.Current, len(contacts))
	for i := range contacts {
		current[i] = syncer.Current{ID: contacts[i].ID, ReadAt: readAt}
		if action != kommo.ActionDelete {
			current[i].Contact = &contacts[i]
		}
	}
	out, err := syncer.Commit(ctx, h.st, t, current, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) drainer(perMinute int) *invitations.Drainer {
	h.t.Helper()
	d, err := invitations.New(invitations.Config{Store: h.st, Budgets: invitations.NewBudgets(h.st, perMinute)})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) step(d *invitations.Drainer, t syncer.Tenant) invitations.StepResult {
	h.t.Helper()
	res, err := d.Step(context.Background(), t, time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) invitation(email string) store.Invitation {
	h.t.Helper()
	inv, err := h.st.GetInvitation(context.Background(), h.tenant.Key, email)
	if err != nil {
		h.t.Fatalf("invitation of %s: %v", email, err)
	}
	return inv
}

func (h *harness) status(email string) string {
	c, ok := h.emu.Contact(apiKey, email)
	if !ok {
		return "absent"
	}
	return c.Status
}

func TestInviteSendsOneSubscribePerNewAddress(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinInvite)
	ann := person(1, "ann@example.com", "Ann.Work@Example.com")
	if out := h.apply(kommo.ActionAdd, ann); out.Invitations != 2 {
		t.Fatalf("queued %d invitations, want 2", out.Invitations)
	}
	// Before the drainer runs, the import alone added the addresses as new.
	if s := h.status("ann@example.com"); s != unisenderemu.StatusNew {
		t.Fatalf("after the import: status %q, want new", s)
	}
	d := h.drainer(0)
	if res := h.step(d, h.tenant); res.Counts[invitations.OutcomeSent] != 2 {
		t.Fatalf("step: %+v, want 2 sent", res)
	}
	// The same batch again, and a second holder of one address: nothing new.
	h.apply(kommo.ActionAdd, ann)
	h.apply(kommo.ActionAdd, person(2, "ann@example.com"))
	h.step(d, h.tenant)

	calls := h.calls()
	if len(calls) != 2 {
		t.Fatalf("subscribe calls %+v, want one per address", calls)
	}
	list := fmt.Sprint(h.tenant.Mapper.ListID())
	for _, c := range calls {
		if c.doubleOptin != "0" || c.overwrite != "0" || c.listIDs != list || c.name != "Person 1" {
			t.Errorf("subscribe %+v: want double_optin 0, overwrite 0, list %s, Name Person 1", c, list)
		}
	}
	for _, e := range []string{"ann@example.com", "ann.work@example.com"} {
		if s := h.status(e); s != unisenderemu.StatusInvited {
			t.Errorf("%s: status %q, want invited", e, s)
		}
		if inv := h.invitation(e); inv.Status != store.InvitationSent {
			t.Errorf("%s: invitation %+v, want sent", e, inv)
		}
	}
}

func TestInviteUnknownSendsDoubleOptin4(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinInviteUnknown)
	h.apply(kommo.ActionAdd, person(1, "bo@example.com"))
	h.step(h.drainer(0), h.tenant)
	if calls := h.calls(); len(calls) != 1 || calls[0].doubleOptin != "4" {
		t.Fatalf("subscribe calls %+v, want one with double_optin 4", calls)
	}
}

func TestConsentHeldQueuesNothingAndCancelsPending(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinConsentHeld)
	if out := h.apply(kommo.ActionAdd, person(1, "cy@example.com")); out.Invitations != 0 {
		t.Fatalf("ConsentHeld queued %d invitations", out.Invitations)
	}
	// Queued while inviting, then the binding switches to ConsentHeld.
	inviting := h.tenant
	inviting.DoubleOptin = v1alpha1.DoubleOptinInvite
	h.commit(inviting, kommo.ActionAdd, person(2, "di@example.com"))
	res := h.step(h.drainer(0), h.tenant)
	if res.Counts[invitations.OutcomeCancelled] != 1 || len(h.calls()) != 0 {
		t.Fatalf("step %+v, subscribe calls %d; want 1 cancelled, no call", res, len(h.calls()))
	}
	if h.emu.Stats().Calls["subscribe"] != 0 {
		t.Fatal("ConsentHeld made a subscribe call")
	}
}

// An address that unsubscribed is never subscribed again; one whose
// contact was deleted before its turn is not invited.
func TestNoInvitationForUnsubscribedOrDeparted(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinInvite)
	ctx := context.Background()
	if _, err := h.tenant.Unisender.ImportContacts(ctx, unisender.ImportRequest{
		FieldNames: []string{"email"}, Rows: [][]string{{"left@example.com"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.emu.SetContactStatus(apiKey, "left@example.com", unisenderemu.StatusUnsubscribed); err != nil {
		t.Fatal(err)
	}
	h.apply(kommo.ActionAdd, person(1, "left@example.com"), person(2, "gone@example.com"), person(3, "stays@example.com"))
	h.apply(kommo.ActionDelete, kommo.Contact{ID: 2})

	res := h.step(h.drainer(0), h.tenant)
	want := map[string]int{invitations.OutcomeSent: 1, invitations.OutcomeFailed: 1, invitations.OutcomeSkipped: 1}
	if fmt.Sprint(res.Counts) != fmt.Sprint(want) {
		t.Fatalf("step %v, want %v", res.Counts, want)
	}
	if calls := h.calls(); len(calls) != 1 || calls[0].email != "stays@example.com" {
		t.Fatalf("subscribe calls %+v, want stays@ only", calls)
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		t.Fatalf("revival attempts %d", n)
	}
	if inv := h.invitation("left@example.com"); inv.Status != store.InvitationFailed || inv.Reason == "" {
		t.Fatalf("left@: %+v, want failed with a reason", inv)
	}
	if _, err := h.st.GetInvitation(ctx, h.tenant.Key, "gone@example.com"); err != store.ErrNotFound {
		t.Fatalf("gone@: %v, want the pending invitation dropped", err)
	}
}

func TestTransientFailureIsRetriedPermanentIsRecorded(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinInvite)
	h.apply(kommo.ActionAdd, person(1, "a@example.com"), person(2, "b@example.com"))
	d := h.drainer(0)

	h.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "retry_later"})
	res := h.step(d, h.tenant)
	if res.Counts[invitations.OutcomeRetried] != 1 || res.Counts[invitations.OutcomeSent] != 0 {
		t.Fatalf("transient: step %v, want 1 retried and the step stopped", res.Counts)
	}
	inv := h.invitation("a@example.com")
	if inv.Status != store.InvitationPending || inv.Attempts != 1 || !inv.NextAttemptAt.After(time.Now()) {
		t.Fatalf("after a transient failure: %+v, want pending, 1 attempt, due later", inv)
	}

	h.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "invalid_arg", Message: "Invalid email address"})
	res = h.step(d, h.tenant)
	if res.Counts[invitations.OutcomeFailed] != 1 || res.Counts[invitations.OutcomeSent] != 0 {
		t.Fatalf("permanent: step %v, want b@ failed", res.Counts)
	}
	if inv := h.invitation("b@example.com"); inv.Status != store.InvitationFailed {
		t.Fatalf("b@: %+v, want failed", inv)
	}
	if len(h.calls()) != 0 {
		t.Fatalf("subscribe calls %+v, want none", h.calls())
	}
}

// The budget spreads calls evenly: at 6 a minute, a step sends one and
// the next call is not affordable within a step.
func TestStepKeepsToTheBudget(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinInvite)
	h.apply(kommo.ActionAdd, person(1, "a@example.com"), person(2, "b@example.com"), person(3, "c@example.com"))
	d := h.drainer(6)
	first := h.step(d, h.tenant)
	second := h.step(d, h.tenant)
	if first.Counts[invitations.OutcomeSent] != 1 || second.Counts[invitations.OutcomeSent] != 0 || first.More || second.More {
		t.Fatalf("steps %+v then %+v; want one sent, then none, and no More", first, second)
	}
	counts, err := h.st.InvitationCounts(context.Background(), h.tenant.Key)
	if err != nil || counts[store.InvitationPending] != 2 {
		t.Fatalf("counts %v, %v; want 2 pending", counts, err)
	}
}

// The budget lives in the store: two drainers (two worker replicas) and
// two tenants on the same key share it.
func TestReplicasShareTheKeyBudget(t *testing.T) {
	h := newHarness(t, v1alpha1.DoubleOptinInvite)
	h.apply(kommo.ActionAdd, person(1, "a@example.com"), person(2, "b@example.com"))
	other := h.tenant
	other.Key = "acme/second"
	h.commit(other, kommo.ActionAdd, person(3, "c@example.com"))
	replicaA, replicaB := h.drainer(6), h.drainer(6)
	sent := h.step(replicaA, h.tenant).Counts[invitations.OutcomeSent] +
		h.step(replicaB, h.tenant).Counts[invitations.OutcomeSent] +
		h.step(replicaB, other).Counts[invitations.OutcomeSent]
	if sent != 1 || len(h.calls()) != 1 {
		t.Fatalf("%d invitations sent and %d subscribe calls by two replicas at 6 a minute, want 1", sent, len(h.calls()))
	}
}
