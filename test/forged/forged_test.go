// Package forged sends forged Kommo webhooks — bodies written by whoever
// holds the tenant's webhook URL, which every Kommo admin can list — through
// the real system: the webhook server, beanstalkd, the worker, MariaDB and
// the Kommo and Unisender emulators, each a process as `make dev` runs them.
// A webhook only names contacts; the worker reads them from Kommo, so a
// forged body can cost a read, never a change (issue 14).
//
//	go run ./hack/testenv -- go test -run Forged ./test/forged/
//
// (after `make test-tools`, with KOMMO_UNISENDER_BIN set as make test-run sets it).
package forged

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
)

// maxInt64 is the updated_at a forger pins a contact with.
const maxInt64 = "9223372036854775807"

// TestForgedWebhooks runs each forged body against one running system, in
// order; each case checks the list against Kommo's truth and the
// emulators' call counts.
func TestForgedWebhooks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	started := time.Now()
	s := start(t, ctx)
	t.Logf("system up, %d contacts imported, in %v", seedContacts, time.Since(started).Round(time.Millisecond))

	cases := []struct {
		name string
		run  func(t *testing.T, s *system)
	}{
		{"deletes of 2,000 contacts Kommo has remove none", forgedMassDelete},
		{"updated_at=2^63-1 does not pin a contact", forgedPinnedUpdate},
		{"an update disagreeing with Kommo leaves Kommo's state", forgedDisagreeingUpdate},
		{"a delete of a contact deleted in Kommo removes it", forgedTrueDelete},
		{"an add of a contact Kommo does not have adds and mails nothing", forgedAdd},
	}
	for _, tc := range cases {
		t0 := time.Now()
		ok := t.Run(tc.name, func(t *testing.T) { tc.run(t, s) })
		t.Logf("%s: %v", tc.name, time.Since(t0).Round(time.Millisecond))
		if !ok {
			return // later cases assume the list converged on Kommo
		}
	}
	s.waitConverged(t)
	t.Logf("total %v", time.Since(started).Round(time.Millisecond))
}

// forgedMassDelete: a body deleting 2,000 contacts that all exist in Kommo
// is split into 8 jobs; the worker reads the 2,000 from Kommo (8 filtered
// reads), finds them all, and changes nothing: no address leaves the list,
// no Unisender call is made.
func forgedMassDelete(t *testing.T, s *system) {
	persons := s.persons(t)
	if len(persons) < 2000 {
		t.Fatalf("Kommo has %d people, want at least 2,000", len(persons))
	}
	form := s.form()
	for i, c := range persons[:2000] {
		form.Set(fmt.Sprintf("contacts[delete][%d][id]", i), strconv.FormatInt(c.ID, 10))
		form.Set(fmt.Sprintf("contacts[delete][%d][type]", i), "contact")
	}
	before := s.listEmails(t)
	if len(before) < 1500 {
		t.Fatalf("the list holds %d addresses before; the import should have put about 2,000 there", len(before))
	}
	calls, reads, q := s.unisenderCalls(t), s.kommoRequests(t), s.queueStats(t)

	s.post(t, form)
	s.waitDrained(t, q, 2000/250)

	after := s.listEmails(t)
	if removed := devtest.Minus(before, after); len(removed) > 0 || !slices.Equal(before, after) {
		t.Errorf("%d addresses left the list after forged deletes of contacts Kommo still has (e.g. %.5v); %d appeared",
			len(removed), removed, len(devtest.Minus(after, before)))
	}
	callsAfter, readsAfter := s.unisenderCalls(t), s.kommoRequests(t)
	if n := callsAfter["importContacts"] - calls["importContacts"]; n != 0 {
		t.Errorf("%d importContacts calls for contacts Kommo holds unchanged, want none", n)
	}
	lists := readsAfter["GET /api/v4/contacts"] - reads["GET /api/v4/contacts"]
	singles := readsAfter["GET /api/v4/contacts/{id}"] - reads["GET /api/v4/contacts/{id}"]
	if lists < 8 || lists > 24 {
		t.Errorf("the worker made %d filtered contact reads for 2,000 ids, want 8 (≤ 250 ids each) up to a few retries", lists)
	}
	if singles != 0 {
		t.Errorf("the worker made %d single-contact reads, want none: every id was in Kommo's answer", singles)
	}
	t.Logf("2,000 forged deletes: %d list addresses before and after, %d filtered Kommo reads, %d single reads, %d Unisender calls",
		len(after), lists, singles, callsAfter["importContacts"]-calls["importContacts"])
}

// onePerson picks a Kommo person with exactly one address that is in the
// list, skipping ids already used.
func onePerson(t *testing.T, s *system, skip ...int64) adminContact {
	t.Helper()
	listed := s.members(t)
	for _, c := range s.persons(t) {
		if len(c.Emails) == 1 && listed[c.Emails[0]].ListStatus == "active" && !slices.Contains(skip, c.ID) {
			return c
		}
	}
	t.Fatal("no Kommo person with one listed address")
	return adminContact{}
}

// forgedPinnedUpdate: an update claiming updated_at = 2^63−1 (and a forged
// address) for a real contact changes nothing, and later real edits in
// Kommo still reach the list.
func forgedPinnedUpdate(t *testing.T, s *system) {
	c := onePerson(t, s, s.used...)
	s.used = append(s.used, c.ID)
	real := c.Emails[0]
	form := s.form()
	s.contactForm(form, "update", 0, c.ID, "Pinned", "pinned@forged.example", maxInt64)
	q := s.queueStats(t)
	s.post(t, form)
	s.waitDrained(t, q, 1)
	if !s.inList(t, real) || s.unisenderKnows(t, "pinned@forged.example") {
		t.Fatalf("after the forged update: %s in the list %v, forged address known to Unisender %v; want true, false",
			real, s.inList(t, real), s.unisenderKnows(t, "pinned@forged.example"))
	}
	for i, email := range []string{"first-edit@example.com", "second-edit@example.com"} {
		s.updateContact(t, c.ID, fmt.Sprintf("Edited %d", i), email)
		prev := real
		devtest.WaitUntil(t, "a real edit after the pinning webhook to reach the list", 30*time.Second, func() (bool, string) {
			in, out := s.inList(t, email), s.inList(t, prev)
			return in && !out, fmt.Sprintf("%s in the list: %v; %s in the list: %v", email, in, prev, out)
		})
		real = email
	}
}

// forgedDisagreeingUpdate: an update whose body gives a real contact
// another address and name leaves the list with Kommo's state.
func forgedDisagreeingUpdate(t *testing.T, s *system) {
	c := onePerson(t, s, s.used...)
	s.used = append(s.used, c.ID)
	const forged = "someone-else@forged.example"
	form := s.form()
	s.contactForm(form, "update", 0, c.ID, "Forged Name", forged, strconv.FormatInt(time.Now().Unix()+3600, 10))
	before := s.listEmails(t)
	q := s.queueStats(t)
	s.post(t, form)
	s.waitDrained(t, q, 1)
	if !s.inList(t, c.Emails[0]) {
		t.Errorf("%s (Kommo's address of contact %d) left the list after a forged update", c.Emails[0], c.ID)
	}
	if s.unisenderKnows(t, forged) {
		t.Errorf("the forged address %s reached Unisender", forged)
	}
	if after := s.listEmails(t); !slices.Equal(before, after) {
		t.Errorf("the list changed: %v left, %v came", devtest.Minus(before, after), devtest.Minus(after, before))
	}
}

// forgedTrueDelete: a contact deleted in Kommo while its webhook is lost
// (the hook disabled) stays in the list; a delete naming it — forged or
// late, it tells the truth — removes it, because Kommo confirms it is gone.
func forgedTrueDelete(t *testing.T, s *system) {
	c := onePerson(t, s, s.used...)
	s.used = append(s.used, c.ID)
	s.setHookDisabled(t, true)
	t.Cleanup(func() { s.setHookDisabled(t, false) })
	q, deliveries := s.queueStats(t), s.kommoDeliveries(t)
	s.deleteContact(t, c.ID)
	s.kommoIdle(t) // every delivery Kommo would make has been made
	if d := s.kommoDeliveries(t); d != deliveries || !s.inList(t, c.Emails[0]) {
		t.Fatalf("with the hook disabled Kommo delivered %d webhooks; %s in the list: %v (want 0, true)",
			d-deliveries, c.Emails[0], s.inList(t, c.Emails[0]))
	}
	form := s.form()
	form.Set("contacts[delete][0][id]", strconv.FormatInt(c.ID, 10))
	form.Set("contacts[delete][0][type]", "contact")
	s.post(t, form)
	s.waitDrained(t, q, 1)
	if s.inList(t, c.Emails[0]) {
		t.Errorf("%s is still in the list after a delete of contact %d, which Kommo no longer has", c.Emails[0], c.ID)
	}
}

// forgedAdd: with doubleOptin Invite (every address new to the list gets
// an invitation mail), an add naming an id no Kommo contact has and an
// address no Kommo contact has puts nothing in the list and mails nothing.
// A real contact created before and after shows invitations do go out.
func forgedAdd(t *testing.T, s *system) {
	s.setDoubleOptin(t, v1alpha1.DoubleOptinInvite)
	t.Cleanup(func() { s.setDoubleOptin(t, v1alpha1.DoubleOptinConsentHeld) })
	calls := s.unisenderCalls(t)
	invited := func(email string) {
		t.Helper()
		devtest.WaitUntil(t, "an invitation to "+email, 30*time.Second, func() (bool, string) {
			m, inv := s.members(t)[email], s.invitation(t, email)
			return m.Status == "invited" && inv == "sent", fmt.Sprintf("Unisender: %+v; invitation %q", m, inv)
		})
	}
	// The worker resolves the binding from its cache: until it sees Invite
	// a new address would join without a letter, so the first control
	// waits for the letter.
	s.createContact(t, "Control Before", "control-before@example.com")
	invited("control-before@example.com")

	const forged = "victim@forged.example"
	persons := s.persons(t)
	ghost := persons[len(persons)-1].ID + 1_000_000 // an id Kommo never gave
	form := s.form()
	s.contactForm(form, "add", 0, ghost, "Victim", forged, strconv.FormatInt(time.Now().Unix(), 10))
	q := s.queueStats(t)
	s.post(t, form)
	s.waitDrained(t, q, 1)

	s.createContact(t, "Control After", "control-after@example.com")
	invited("control-after@example.com")
	if s.unisenderKnows(t, forged) {
		t.Errorf("the forged address %s reached Unisender", forged)
	}
	if inv := s.invitation(t, forged); inv != "" {
		t.Errorf("an invitation (%s) was queued for the forged address", inv)
	}
	if n := s.unisenderCalls(t)["subscribe"] - calls["subscribe"]; n != 2 {
		t.Errorf("%d subscribe calls (invitations mailed), want 2: the two real contacts'", n)
	}
}
