package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// subscribeLog records the double_optin of every subscribe call that
// reaches the emulator.
type subscribeLog struct {
	mu     sync.Mutex
	optins map[string][]string // by address
}

func (h *harness) recordSubscribes() *subscribeLog {
	l := &subscribeLog{optins: map[string][]string{}}
	f := func(_ http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/en/api/subscribe" && r.ParseForm() == nil {
			l.mu.Lock()
			l.optins[r.PostForm.Get("fields[email]")] = append(l.optins[r.PostForm.Get("fields[email]")], r.PostForm.Get("double_optin"))
			l.mu.Unlock()
		}
		return false
	}
	h.intercept.Store(&f)
	return l
}

func (l *subscribeLog) calls(email string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.optins[email]...)
}

func (h *harness) invitingTenant(key tenant.Key, mode v1alpha1.DoubleOptin) tenantSpec {
	h.t.Helper()
	ts := h.addTenant(key)
	ts.DoubleOptin = mode
	h.resolver.add(ts)
	return ts
}

func (h *harness) invitationCounts(ts tenantSpec) map[string]int64 {
	h.t.Helper()
	counts, err := h.st.InvitationCounts(context.Background(), ts.Key.String())
	if err != nil {
		h.t.Fatal(err)
	}
	return counts
}

func (h *harness) emailStatus(ts tenantSpec, email string) string {
	c, ok := h.emu.Contact(ts.APIKey, email)
	if !ok {
		return "absent"
	}
	return c.Status
}

// A contact added in Kommo of a tenant with Invite ends with both its
// addresses invited, by one subscribe call each, however often the job
// naming it is delivered.
func TestWebhookAddInvitesEachAddressOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	log := h.recordSubscribes()
	ts := h.invitingTenant(tenant.Key{Namespace: "shop", Name: "invite"}, v1alpha1.DoubleOptinInvite)
	ann := h.kommoAdd(ts, "ann@example.com", "ann.work@example.com")
	body := contactsJob(t, ts, time.Now(), ref(ann.ID, kommo.ActionAdd))
	h.put(body)
	h.put(body) // redelivered, or sent twice by Kommo
	h.start(h.config())
	emails := []string{"ann@example.com", "ann.work@example.com"}
	eventually(t, 20*time.Second, func() (bool, string) {
		counts := h.invitationCounts(ts)
		return counts[store.InvitationSent] == 2, fmt.Sprintf("invitations %v", counts)
	})
	h.put(body) // once more after the invitations went out
	h.waitDrained(20 * time.Second)
	// The drainer had the chance to send anything the last job queued.
	eventually(t, 10*time.Second, func() (bool, string) {
		counts := h.invitationCounts(ts)
		return counts[store.InvitationPending] == 0, fmt.Sprintf("invitations %v", counts)
	})
	for _, e := range emails {
		if got := log.calls(e); fmt.Sprint(got) != "[0]" {
			t.Errorf("%s: subscribe calls with double_optin %v, want exactly one with 0", e, got)
		}
		if s := h.emailStatus(ts, e); s != unisenderemu.StatusInvited {
			t.Errorf("%s: status %q, want invited", e, s)
		}
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		t.Errorf("revival attempts %d", n)
	}
}

// ConsentHeld keeps today's behaviour: added by the import, no subscribe
// call; and an unsubscribed address is never revived by an Invite tenant.
func TestConsentHeldSendsNoInvitationAndUnsubscribedStaysOut(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	held := h.invitingTenant(tenant.Key{Namespace: "shop", Name: "held"}, v1alpha1.DoubleOptinConsentHeld)
	inviting := h.invitingTenant(tenant.Key{Namespace: "shop", Name: "inviting"}, v1alpha1.DoubleOptinInvite)
	h.putContacts(inviting, kommo.ActionAdd, h.kommoAdd(inviting, "left@example.com").ID)
	h.putContacts(held, kommo.ActionAdd, h.kommoAdd(held, "kept@example.com").ID)
	// left@ is in the inviting account already, and unsubscribed.
	seedUnsubscribed(t, h, inviting, "left@example.com")
	h.start(h.config())
	h.waitDrained(20 * time.Second)
	eventually(t, 10*time.Second, func() (bool, string) {
		counts := h.invitationCounts(inviting)
		return counts[store.InvitationFailed] == 1, fmt.Sprintf("invitations %v", counts)
	})
	if n := h.emu.Stats().Calls["subscribe"]; n != 0 {
		t.Errorf("subscribe calls %d, want none", n)
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		t.Errorf("revival attempts %d", n)
	}
	if s := h.emailStatus(held, "kept@example.com"); s != unisenderemu.StatusNew {
		t.Errorf("kept@: status %q, want new (imported without a letter)", s)
	}
	if s := h.emailStatus(inviting, "left@example.com"); s != unisenderemu.StatusUnsubscribed {
		t.Errorf("left@: status %q, want unsubscribed", s)
	}
	if c := h.invitationCounts(held); len(c) != 0 {
		t.Errorf("ConsentHeld tenant has invitations %v", c)
	}
}

func seedUnsubscribed(t *testing.T, h *harness, ts tenantSpec, email string) {
	t.Helper()
	if _, err := h.resolver.clients[ts.Key].ImportContacts(context.Background(),
		unisender.ImportRequest{FieldNames: []string{"email"}, Rows: [][]string{{email}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.emu.SetContactStatus(ts.APIKey, email, unisenderemu.StatusUnsubscribed); err != nil {
		t.Fatal(err)
	}
}

// With a subscribe budget half the emulator's limit, an import of many
// contacts is invited without one call refused for the limit, all
// invitations go out, and a webhook for another contact is synced while
// they are still going out. The emulator's clock runs 60 times fast, so
// its per-minute limit of 20 allows 20 calls per real second; the worker's
// budget of 600 a minute is 10 per real second.
func TestInvitationsKeepToTheBudgetWithoutDelayingTheSync(t *testing.T) {
	start := time.Now()
	h := newHarness(t, harnessOptions{emu: unisenderemu.Options{
		Clock:                   func() time.Time { return start.Add(60 * time.Since(start)) },
		SubscribeLimitPerMinute: 20,
	}})
	ts := h.invitingTenant(tenant.Key{Namespace: "shop", Name: "budget"}, v1alpha1.DoubleOptinInvite)
	const n = 40
	var ids []int64
	for i := range n {
		ids = append(ids, h.kommoAdd(ts, fmt.Sprintf("bulk%02d@example.com", i)).ID)
	}
	h.putContacts(ts, kommo.ActionAdd, ids...)
	cfg := h.config()
	cfg.SubscribePerMinute = 600
	h.start(cfg)
	eventually(t, 20*time.Second, func() (bool, string) {
		c := h.invitationCounts(ts)
		return c[store.InvitationSent] > 0, fmt.Sprintf("invitations %v", c)
	})
	h.putContacts(ts, kommo.ActionAdd, h.kommoAdd(ts, "late@example.com").ID)
	eventually(t, 20*time.Second, func() (bool, string) {
		_, ok := h.member(ts, "late@example.com")
		return ok, "late@ not in the list yet"
	})
	if sent := h.invitationCounts(ts)[store.InvitationSent]; sent >= n {
		t.Errorf("the webhook was synced only after all %d invitations went out", sent)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		c := h.invitationCounts(ts)
		return c[store.InvitationSent] == n+1, fmt.Sprintf("invitations %v", c)
	})
	for _, r := range h.emu.Stats().Requests {
		if r.Method == "subscribe" && r.ErrorCode != "" {
			t.Errorf("a subscribe call was refused: %s", r.ErrorCode)
		}
	}
	if got := h.emu.Stats().Calls["subscribe"]; got != n+1 {
		t.Errorf("subscribe calls %d, want %d", got, n+1)
	}
}
