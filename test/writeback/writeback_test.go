// Package writeback tests the two-way write-back (issue #17) through the
// whole system (real processes of the binary built from this checkout,
// MariaDB, beanstalkd, envtest, the sandbox): Unisender's event hook
// reaches the webhook server, the worker reads the addresses from
// Unisender and marks every Kommo contact holding them, and the resync's
// pull catches up on whatever the hook did not deliver.
package writeback

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

const (
	tagUnsubscribed = "unisender-unsubscribed"
	tagUnreachable  = "unisender-unreachable"
)

// membershipCalls are the Unisender methods that change who is in a list.
var membershipCalls = []string{"importContacts", "subscribe", "exclude", "unsubscribe"}

// TestWriteBackUnsubscribeMarksEveryHolderOnce: an address unsubscribed in
// Unisender gets the tag and one note on both Kommo contacts holding it,
// within seconds, in one PATCH; Kommo's update_contact for that write
// causes no second Kommo write and no Unisender call that changes
// membership; the same event delivered three times more writes nothing;
// forged, unsigned and wrongly routed bodies are refused and change
// nothing; resubscribing removes the tag with a note.
func TestWriteBackUnsubscribeMarksEveryHolderOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	s := start(t, ctx, devenv.Options{SeedContacts: 10}, &v1alpha1.WriteBack{})
	seeded := s.seededContacts(t)
	first := seeded[0]
	email := first.Emails[0]
	var twin kommoemu.AdminContact
	s.kommo(t, http.MethodPost, "/contacts", map[string]any{"name": "Twin", "emails": []string{email}}, &twin)
	s.waitStoredHolders(t, ctx, email, 2)

	before, logBefore := s.unisenderCalls(t), len(s.kommoLog(t))
	t0 := time.Now()
	s.setStatus(t, email, unisenderemu.StatusUnsubscribed)
	s.waitMarked(t, first.ID, tagUnsubscribed, 1)
	s.waitMarked(t, twin.ID, tagUnsubscribed, 1)
	t.Logf("unsubscribed in Unisender → both Kommo contacts tagged and noted in %v", time.Since(t0).Round(time.Millisecond))
	if note := s.notes(t, first.ID)[0]; note.Type != "service_message" || !strings.Contains(note.Text, email) ||
		!strings.Contains(note.Text, "unsubscribed") || !strings.Contains(note.Text, fmt.Sprint(s.listID)) {
		t.Errorf("note %+v: want a service message naming the address, the outcome and list %d", note, s.listID)
	}
	if !containsAll(s.contact(t, first.ID).Tags, first.Tags) {
		t.Errorf("tags %v lost some of the contact's own tags %v", s.contact(t, first.ID).Tags, first.Tags)
	}

	// Our write fired update_contact for both contacts: the worker applies
	// it (the store holds the new versions) and nothing follows.
	s.waitStoredVersion(t, ctx, first.ID, s.contact(t, first.ID).UpdatedAt)
	s.waitStoredVersion(t, ctx, twin.ID, s.contact(t, twin.ID).UpdatedAt)
	time.Sleep(2 * time.Second)
	log := s.kommoLog(t)[logBefore:]
	if n := countRoute(log, "PATCH /api/v4/contacts"); n != 1 {
		t.Errorf("%d PATCH requests to Kommo; want 1 (both holders in one batch, no write for our own update_contact)", n)
	}
	if n := countRoute(log, "POST /api/v4/contacts/notes"); n != 1 {
		t.Errorf("%d note requests to Kommo; want 1", n)
	}
	after := s.unisenderCalls(t)
	for _, m := range membershipCalls {
		if after[m] != before[m] {
			t.Errorf("%s called %d times after the unsubscribe; want none (our own write must not reach Unisender)", m, after[m]-before[m])
		}
	}

	// The same event three more times (as Unisender's retries would send
	// it), then refused bodies: none writes anything.
	hookURL := s.hookURL(t, ctx)
	for range 3 {
		if code := postHook(t, hookURL, signedHookBody(devenv.SandboxUnisenderKey, email)); code != http.StatusOK {
			t.Fatalf("a signed delivery got %d; want 200", code)
		}
	}
	refused := map[string]struct {
		url  string
		body []byte
		code int
	}{
		"forged (another key)": {hookURL, signedHookBody("not-the-tenant-key", seeded[1].Emails[0]), http.StatusForbidden},
		"unsigned":             {hookURL, signedHookBody("", seeded[1].Emails[0]), http.StatusForbidden},
		"wrong route secret":   {hookURL[:strings.LastIndex(hookURL, "/")+1] + "guess", signedHookBody(devenv.SandboxUnisenderKey, seeded[1].Emails[0]), http.StatusNotFound},
	}
	for name, r := range refused {
		if code := postHook(t, r.url, r.body); code != r.code {
			t.Errorf("%s delivery got %d; want %d", name, code, r.code)
		}
	}
	s.setStatus(t, seeded[1].Emails[0], unisenderemu.StatusUnsubscribed) // a real event after them, as a barrier
	s.waitMarked(t, seeded[1].ID, tagUnsubscribed, 1)
	s.waitMarked(t, first.ID, tagUnsubscribed, 1)
	if n := countRoute(s.kommoLog(t)[logBefore:], "POST /api/v4/contacts/notes"); n != 2 {
		t.Errorf("%d note requests to Kommo after the repeated and refused deliveries; want 2 (one per outcome)", n)
	}

	// Resubscribed through Unisender's own form: the tag goes, a note says so.
	s.setStatus(t, email, unisenderemu.StatusActive)
	s.waitMarked(t, first.ID, "", 2)
	s.waitMarked(t, twin.ID, "", 2)
}

// TestWriteBackCatchesUpAfterHookOutage: while the webhook server is down,
// Unisender's retries deliver the event once it is back; when the hook
// was stopped after its retries, the next reconcile registers it again and
// its pull marks the address whose event was lost.
func TestWriteBackCatchesUpAfterHookOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	s := start(t, ctx, devenv.Options{SeedContacts: 10, SandboxHookRetry: 2 * time.Second, SandboxHookMaxAttempts: 3}, &v1alpha1.WriteBack{})
	seeded := s.seededContacts(t)
	server := s.env.Processes["webhookserver"]

	server.Stop()
	s.setStatus(t, seeded[0].Emails[0], unisenderemu.StatusUnsubscribed)
	devtest.WaitUntil(t, "a failed delivery", within, func() (bool, string) {
		h, _ := s.hook(t)
		return h.Failed > 0, hookState(h)
	})
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	s.waitMarked(t, seeded[0].ID, tagUnsubscribed, 1)

	server.Stop()
	s.setStatus(t, seeded[1].Emails[0], unisenderemu.StatusUnsubscribed)
	devtest.WaitUntil(t, "the hook stopped after its retries", within, func() (bool, string) {
		h, _ := s.hook(t)
		return h.Status == unisenderemu.HookStopped, hookState(h)
	})
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	s.requestReconcile(t, ctx)
	devtest.WaitUntil(t, "the hook registered again", within, func() (bool, string) {
		h, _ := s.hook(t)
		return h.Status == unisenderemu.HookActive, hookState(h)
	})
	s.waitMarked(t, seeded[1].ID, tagUnsubscribed, 1)
	s.waitMarked(t, seeded[0].ID, tagUnsubscribed, 1)
}

// TestWriteBackPullAloneWithPushDisabled: with push disabled no hook is
// registered, and the resync's pull alone marks an unsubscribed and a
// bounced address.
func TestWriteBackPullAloneWithPushDisabled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	s := start(t, ctx, devenv.Options{SeedContacts: 10}, &v1alpha1.WriteBack{Push: v1alpha1.WriteBackPush{Disabled: true}})
	seeded := s.seededContacts(t)
	if h, ok := s.hook(t); ok {
		t.Fatalf("a hook is registered with push disabled: %s", hookState(h))
	}
	s.setStatus(t, seeded[0].Emails[0], unisenderemu.StatusUnsubscribed)
	s.unisender(t, http.MethodPut, "/contacts/"+seeded[1].Emails[0]+"/availability", map[string]string{"availability": "unreachable"}, nil)
	s.requestReconcile(t, ctx)
	s.waitMarked(t, seeded[0].ID, tagUnsubscribed, 1)
	s.waitMarked(t, seeded[1].ID, tagUnreachable, 1)
	s.waitMarked(t, seeded[2].ID, "", 0)
}

// TestWriteBackBurstStaysWithinKommoLimit: WRITEBACK_BURST addresses
// unsubscribed at once are all marked, and Kommo's request log shows no
// 1-second window above the account's limit (7) meanwhile. make test runs
// 150 (about 25 s of a saturated budget); make writeback-burst runs the
// 1,000 of issue 17, about 3.5 minutes: each address costs one Kommo search.
func TestWriteBackBurstStaysWithinKommoLimit(t *testing.T) {
	burst := 150
	if v, err := strconv.Atoi(os.Getenv("WRITEBACK_BURST")); err == nil && v > 0 {
		burst = v
	}
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	s := start(t, ctx, devenv.Options{SeedContacts: burst + burst/3}, &v1alpha1.WriteBack{})
	var members []unisenderemu.Member
	s.unisender(t, http.MethodGet, fmt.Sprintf("/lists/%d/members", s.listID), nil, &members)
	members = slices.DeleteFunc(members, func(m unisenderemu.Member) bool { return m.Email == "" }) // phone-only
	if len(members) < burst {
		t.Fatalf("%d addresses in the list; want %d", len(members), burst)
	}
	emails := make([]string, burst)
	for i := range emails {
		emails[i] = members[i].Email
	}
	t0 := time.Now()
	s.unisender(t, http.MethodPut, "/statuses", map[string]any{"emails": emails, "status": unisenderemu.StatusUnsubscribed}, nil)
	devtest.WaitUntil(t, fmt.Sprintf("every holder of the %d addresses tagged", burst), 8*time.Minute, func() (bool, string) {
		held := map[string]bool{} // addresses with a holder (a contact may hold several)
		holders, tagged := 0, 0
		for _, c := range s.seededContacts(t) {
			mine := slices.DeleteFunc(slices.Clone(c.Emails), func(e string) bool { return !slices.Contains(emails, strings.ToLower(e)) })
			if len(mine) == 0 {
				continue
			}
			holders++
			for _, e := range mine {
				held[strings.ToLower(e)] = true
			}
			if slices.Contains(c.Tags, tagUnsubscribed) {
				tagged++
			}
		}
		return len(held) == len(emails) && tagged == holders, fmt.Sprintf("%d of %d holders tagged, %d addresses held", tagged, holders, len(held))
	})
	t.Logf("%d unsubscribes written back in %v", burst, time.Since(t0).Round(time.Second))
	peak, at := busiestSecond(s.kommoLog(t), t0)
	if peak > 7 {
		t.Errorf("%d Kommo requests in the second from %s; want at most 7", peak, at.Format(time.StampMilli))
	}
	t.Logf("busiest second of Kommo requests since the burst: %d (limit 7)", peak)
}

// busiestSecond is the most requests of the log in any sliding second
// starting at a request from t0 on, and where that second starts.
func busiestSecond(log []kommoemu.LogEntry, t0 time.Time) (int, time.Time) {
	var times []time.Time
	for _, e := range log {
		if !e.Time.Before(t0) && e.Account == devenv.SandboxSubdomain {
			times = append(times, e.Time)
		}
	}
	peak, at, j := 0, time.Time{}, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < time.Second {
			j++
		}
		if j-i > peak {
			peak, at = j-i, times[i]
		}
	}
	return peak, at
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// hookState describes the hook without its URL, which holds the secret.
func hookState(h unisenderemu.HookView) string {
	return fmt.Sprintf("status %q, %d delivered, %d failed, %d pending", h.Status, h.Delivered, h.Failed, h.Pending)
}
