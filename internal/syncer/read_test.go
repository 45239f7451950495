package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
)

// kommoEnv is the Kommo emulator with one account and a client of it,
// next to the harness's store and Unisender.
type kommoEnv struct {
	*harness
	kommo  *kommoemu.Server
	client *kommo.Client
}

func newKommoEnv(t *testing.T) *kommoEnv {
	t.Helper()
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	emu, srv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1})
	if _, err := emu.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	token, err := emu.IssueLongLivedToken("acme", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := kommo.NewClient(srv.URL+"/_acct/acme", kommo.WithTokenSource(kommo.StaticToken(token)),
		kommo.WithRateLimit(0, 1), kommo.WithMaxRetries(0))
	e := &kommoEnv{harness: h, kommo: emu, client: client}
	h.tenant.Kommo = client
	return e
}

// create makes n contacts in Kommo, one address each.
func (e *kommoEnv) create(n int) []kommo.Contact {
	e.t.Helper()
	out := make([]kommo.Contact, n)
	for i := range out {
		c, err := e.kommo.CreateContact("acme", kommo.Contact{
			FirstName: "Person", LastName: strconv.Itoa(i), Emails: []string{fmt.Sprintf("p%04d@example.com", i)},
		})
		if err != nil {
			e.t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

// requests returns the requests Kommo served on route, oldest first.
func (e *kommoEnv) requests(route string) []kommoemu.LogEntry {
	var out []kommoemu.LogEntry
	for _, l := range e.kommo.RequestLog() {
		if l.Route == route {
			out = append(out, l)
		}
	}
	return out
}

const (
	routeList = "GET /api/v4/contacts"
	routeOne  = "GET /api/v4/contacts/{id}"
)

// listedIDs returns the ids a listing named in filter[id][].
func listedIDs(t *testing.T, l kommoemu.LogEntry) []int64 {
	t.Helper()
	q, err := url.ParseQuery(l.Query)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, v := range q["filter[id][]"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (e *kommoEnv) now() int64 {
	e.t.Helper()
	n, err := e.st.Now(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *kommoEnv) read(r syncer.ContactReader, ids []int64, known func(int64) bool) []syncer.Current {
	e.t.Helper()
	got, err := syncer.ReadContacts(context.Background(), e.st, r, ids, known)
	if err != nil {
		e.t.Fatalf("ReadContacts: %v", err)
	}
	return got
}

func knowsNone(int64) bool { return false }

func knows(ids ...int64) func(int64) bool {
	return func(id int64) bool { return slices.Contains(ids, id) }
}

func TestReadContactsReadsTheNamedContactsInOneListing(t *testing.T) {
	e := newKommoEnv(t)
	contacts := e.create(5)
	before := e.now()
	got := e.read(e.client, []int64{contacts[3].ID, contacts[1].ID, contacts[3].ID}, knowsNone)
	after := e.now()

	if len(got) != 2 || got[0].ID != contacts[1].ID || got[1].ID != contacts[3].ID {
		t.Fatalf("read %+v; want contacts %d and %d once each, by id", got, contacts[1].ID, contacts[3].ID)
	}
	for i, want := range []kommo.Contact{contacts[1], contacts[3]} {
		c := got[i]
		if c.Gone() || c.Contact.ID != want.ID || !reflect.DeepEqual(c.Contact.Emails, want.Emails) || c.Contact.Name != want.Name {
			t.Fatalf("read %+v; want Kommo's contact %+v", c.Contact, want)
		}
		if c.ReadAt < before || c.ReadAt > after {
			t.Fatalf("ReadAt %d is not the database clock taken for the read (between %d and %d)", c.ReadAt, before, after)
		}
	}
	lists := e.requests(routeList)
	if len(lists) != 1 || len(e.requests(routeOne)) != 0 {
		t.Fatalf("Kommo served %d listings and %d single reads; want one listing", len(lists), len(e.requests(routeOne)))
	}
	if ids := listedIDs(t, lists[0]); !slices.Equal(ids, []int64{contacts[1].ID, contacts[3].ID}) {
		t.Fatalf("the listing named %v; want the two ids", ids)
	}
}

// A contact the store holds as live and the listing leaves out is read on
// its own; Kommo's "no such contact" makes it gone, and the commit of that
// read takes its address out of the list.
func TestReadContactsConfirmsAMissingKnownContactGone(t *testing.T) {
	e := newKommoEnv(t)
	ctx := context.Background()
	contacts := e.create(3)
	ids := []int64{contacts[0].ID, contacts[1].ID, contacts[2].ID}
	e.commit(e.read(e.client, ids, knowsNone))
	if got := e.members(); len(got) != 3 {
		t.Fatalf("members after the first read = %v", got)
	}

	if err := e.kommo.DeleteContact("acme", contacts[1].ID); err != nil {
		t.Fatal(err)
	}
	e.kommo.ResetStats()
	live, err := e.st.LiveAmong(ctx, e.tenant.Key, ids)
	if err != nil {
		t.Fatal(err)
	}
	listedAt := e.now()
	got := e.read(e.client, ids, func(id int64) bool { return live[id] })
	if len(got) != 3 || !got[1].Gone() || got[1].ID != contacts[1].ID || got[0].Gone() || got[2].Gone() {
		t.Fatalf("read %+v; want contact %d gone and the others live", got, contacts[1].ID)
	}
	if got[1].ReadAt < got[0].ReadAt || got[1].ReadAt < listedAt {
		t.Fatalf("the confirmation is stamped %d, before the listing's %d: it was taken after", got[1].ReadAt, got[0].ReadAt)
	}
	one := e.requests(routeOne)
	if len(one) != 1 || len(e.requests(routeList)) != 1 {
		t.Fatalf("Kommo served %d listings and %d single reads; want one of each", len(e.requests(routeList)), len(one))
	}

	out := e.commit(got)
	if out.Deleted != 1 || out.Removed != 1 {
		t.Fatalf("commit of the read = %+v; want one tombstone and its address removed", out)
	}
	if got := e.members(); !reflect.DeepEqual(got, []string{"p0000@example.com", "p0002@example.com"}) {
		t.Fatalf("members = %v", got)
	}
}

// An id the listing leaves out and the store does not hold is skipped with
// no read of its own: a forged webhook naming made-up (or long deleted)
// ids costs one listing per 250 of them, and removes nothing.
func TestReadContactsSkipsMissingUnknownIDsWithoutASingleRead(t *testing.T) {
	e := newKommoEnv(t)
	contacts := e.create(2)
	if err := e.kommo.DeleteContact("acme", contacts[1].ID); err != nil {
		t.Fatal(err)
	}
	e.kommo.ResetStats()
	forged := []int64{contacts[0].ID, contacts[1].ID, 987654321, 987654322}
	got := e.read(e.client, forged, knowsNone)
	if len(got) != 1 || got[0].ID != contacts[0].ID || got[0].Gone() {
		t.Fatalf("read %+v; want only the existing contact", got)
	}
	if one := e.requests(routeOne); len(one) != 0 {
		t.Fatalf("Kommo served %d single reads for ids the store does not hold: %+v", len(one), one)
	}
	if lists := e.requests(routeList); len(lists) != 1 {
		t.Fatalf("Kommo served %d listings, want 1", len(lists))
	}
}

// faultOnSingleRead makes Kommo answer each single read with a 503 (an
// overloaded Kommo or proxy): the listing goes through, the confirmation
// fails. Kommo's answer is the emulator's; only its timing is chosen.
type faultOnSingleRead struct {
	*kommo.Client
	emu *kommoemu.Server
}

func (f faultOnSingleRead) GetContact(ctx context.Context, id int64) (*kommo.Contact, error) {
	f.emu.Force5xx(1)
	return f.Client.GetContact(ctx, id)
}

// Only Kommo's "no such contact" makes a contact gone: any other failure of
// the confirming read fails the whole read, so no tombstone is committed.
func TestReadContactsFailsWhenTheConfirmingReadFails(t *testing.T) {
	e := newKommoEnv(t)
	ctx := context.Background()
	contacts := e.create(2)
	ids := []int64{contacts[0].ID, contacts[1].ID}
	e.commit(e.read(e.client, ids, knowsNone))
	if err := e.kommo.DeleteContact("acme", contacts[1].ID); err != nil {
		t.Fatal(err)
	}
	e.kommo.ResetStats()

	got, err := syncer.ReadContacts(ctx, e.st, faultOnSingleRead{Client: e.client, emu: e.kommo}, ids, knows(ids...))
	if err == nil || errors.Is(err, kommo.ErrNotFound) || got != nil {
		t.Fatalf("ReadContacts = %+v, %v; want no contacts and an error that is not 'not found'", got, err)
	}
	if one := e.requests(routeOne); len(one) != 1 || one[0].Status != 503 {
		t.Fatalf("single reads = %+v; want the one that failed with 503", one)
	}
	if c, err := e.st.GetContact(ctx, e.tenant.Key, contacts[1].ID); err != nil || c.Deleted {
		t.Fatalf("stored %+v, %v; want the contact still live", c, err)
	}
	if got := e.members(); len(got) != 2 {
		t.Fatalf("members = %v; want both kept", got)
	}

	// Kommo answers again: the retried read confirms it gone.
	got = e.read(e.client, ids, knows(ids...))
	if len(got) != 2 || !got[1].Gone() {
		t.Fatalf("retried read = %+v; want contact %d gone", got, contacts[1].ID)
	}
}

// cappedListing answers an id-filtered listing with at most keep contacts,
// as a Kommo that capped filter[id] would.
type cappedListing struct {
	*kommo.Client
	keep int
}

func (c cappedListing) ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func([]kommo.Contact) error) error {
	return c.Client.ListContacts(ctx, opts, func(page []kommo.Contact) error {
		return fn(page[:min(len(page), c.keep)])
	})
}

// A known contact the listing left out although Kommo has it comes back
// live from its own read: a short listing costs requests, never a contact.
func TestReadContactsKeepsAKnownContactTheListingLeftOut(t *testing.T) {
	e := newKommoEnv(t)
	contacts := e.create(3)
	ids := []int64{contacts[0].ID, contacts[1].ID, contacts[2].ID}
	e.kommo.ResetStats()
	got := e.read(cappedListing{Client: e.client, keep: 1}, ids, knows(ids...))
	if len(got) != 3 {
		t.Fatalf("read %d contacts, want 3", len(got))
	}
	for i, c := range got {
		if c.Gone() || c.ID != ids[i] || c.Contact.ID != ids[i] || !reflect.DeepEqual(c.Contact.Emails, contacts[i].Emails) {
			t.Fatalf("contact %d read as %+v; want it live", ids[i], c.Contact)
		}
	}
	if one := e.requests(routeOne); len(one) != 2 {
		t.Fatalf("Kommo served %d single reads, want 2 (the contacts the listing left out)", len(one))
	}
}

// More than 250 ids are read a listing of at most 250 at a time, each
// stamped before it was sent.
func TestReadContactsOfMoreThan250IDsListsSeveralTimes(t *testing.T) {
	e := newKommoEnv(t)
	contacts := e.create(600)
	var ids []int64
	for i := len(contacts) - 1; i >= 0; i-- { // in no particular order, some twice
		ids = append(ids, contacts[i].ID)
		if i%100 == 0 {
			ids = append(ids, contacts[i].ID)
		}
	}
	e.kommo.ResetStats()
	got := e.read(e.client, ids, knowsNone)
	if len(got) != 600 {
		t.Fatalf("read %d contacts, want 600", len(got))
	}
	lists := e.requests(routeList)
	if len(lists) != 3 {
		t.Fatalf("Kommo served %d listings for 600 ids, want 3 (250, 250, 100)", len(lists))
	}
	var named []int64
	for _, l := range lists {
		ids := listedIDs(t, l)
		if len(ids) > syncer.MaxReadIDs {
			t.Fatalf("a listing named %d ids, more than %d", len(ids), syncer.MaxReadIDs)
		}
		named = append(named, ids...)
	}
	slices.Sort(named)
	var want []int64
	for _, c := range contacts {
		want = append(want, c.ID)
	}
	slices.Sort(want)
	if !slices.Equal(named, want) {
		t.Fatalf("the listings named %d ids; want each of the 600 once", len(named))
	}
	stamps := map[int64]bool{}
	for i, c := range got {
		if c.Gone() || c.ID != want[i] {
			t.Fatalf("result %d is %+v; want contact %d, in id order", i, c, want[i])
		}
		if i > 0 && c.ReadAt < got[i-1].ReadAt {
			t.Fatalf("contact %d read at %d, before the previous one's %d: listings are stamped in turn", c.ID, c.ReadAt, got[i-1].ReadAt)
		}
		stamps[c.ReadAt] = true
	}
	if len(stamps) != 3 {
		t.Fatalf("%d distinct read stamps; want one per listing (3)", len(stamps))
	}
	if len(e.requests(routeOne)) != 0 {
		t.Fatal("single reads for contacts every listing returned")
	}
}
