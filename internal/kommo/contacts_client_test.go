package kommo_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// listAll collects every contact of a listing and the page sizes.
func listAll(t *testing.T, c *kommo.Client, opts kommo.ListContactsOptions) ([]kommo.Contact, []int) {
	t.Helper()
	var all []kommo.Contact
	var sizes []int
	err := c.ListContacts(context.Background(), opts, func(page []kommo.Contact) error {
		all = append(all, page...)
		sizes = append(sizes, len(page))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all, sizes
}

func ids(cs []kommo.Contact) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	slices.Sort(out)
	return out
}

func TestListContactsPagesToTheEnd(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	if err := e.emu.SeedContacts("acme", 1001); err != nil {
		t.Fatal(err)
	}
	want, _ := e.emu.Contacts("acme")
	got, sizes := listAll(t, e.client(t), kommo.ListContactsOptions{})
	if !slices.Equal(sizes, []int{250, 250, 250, 250, 1}) {
		t.Errorf("page sizes %v, want 4×250 and 1", sizes)
	}
	if !slices.Equal(ids(got), ids(want)) {
		t.Errorf("got %d contacts, want the %d seeded", len(got), len(want))
	}
}

// When Kommo gives a next link on a full last page, the next page is a 204
// and the listing ends there.
func TestListContactsStopsAt204(t *testing.T) {
	e := newEmu(t, kommoemu.Options{NextOnFullPage: true})
	if err := e.emu.SeedContacts("acme", 1000); err != nil {
		t.Fatal(err)
	}
	got, sizes := listAll(t, e.client(t), kommo.ListContactsOptions{})
	if len(got) != 1000 || len(sizes) != 4 {
		t.Errorf("%d contacts in pages %v, want 1000 in 4", len(got), sizes)
	}
	st := e.emu.Stats()
	if st.Requests["GET /api/v4/contacts"] != 5 || st.Statuses[http.StatusNoContent] != 1 {
		t.Errorf("%d listing requests, %d answered 204; want 5 and 1", st.Requests["GET /api/v4/contacts"], st.Statuses[http.StatusNoContent])
	}
}

func TestListContactsEmptyAccount(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	got, sizes := listAll(t, e.client(t), kommo.ListContactsOptions{})
	if len(got) != 0 || len(sizes) != 0 {
		t.Errorf("empty account gave %d pages", len(sizes))
	}
}

func TestListContactsUpdatedFromAndOrder(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	if err := e.emu.SeedContacts("acme", 600); err != nil {
		t.Fatal(err)
	}
	all, _ := e.emu.Contacts("acme")
	from := all[300].UpdatedAt
	var want []kommo.Contact
	for _, c := range all {
		if c.UpdatedAt >= from {
			want = append(want, c)
		}
	}
	got, _ := listAll(t, e.client(t), kommo.ListContactsOptions{UpdatedFrom: from, Order: kommo.OrderUpdatedAsc, Limit: 100})
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("got %d contacts, want %d updated at or after %d", len(got), len(want), from)
	}
	if !slices.IsSortedFunc(got, func(a, b kommo.Contact) int { return int(a.UpdatedAt - b.UpdatedAt) }) {
		t.Error("not in updated_at order")
	}
	first := e.emu.RequestLog()[0].Query
	if !strings.Contains(first, "filter%5Bupdated_at%5D%5Bfrom%5D=") || !strings.Contains(first, "order%5Bupdated_at%5D=asc") {
		t.Errorf("first query %q lacks the filter or the order", first)
	}
}

func TestListContactsRejectsBadOrderAndStopsOnCallbackError(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	_ = e.emu.SeedContacts("acme", 300)
	c := e.client(t)
	if err := c.ListContacts(context.Background(), kommo.ListContactsOptions{Order: "name:asc"}, func([]kommo.Contact) error { return nil }); err == nil {
		t.Error("order name:asc accepted")
	}
	stop := errors.New("stop")
	err := c.ListContacts(context.Background(), kommo.ListContactsOptions{}, func([]kommo.Contact) error { return stop })
	if !errors.Is(err, stop) || e.requests("GET /api/v4/contacts") != 1 {
		t.Errorf("err %v after %d requests; want the callback's error after 1", err, e.requests("GET /api/v4/contacts"))
	}
}

func TestContactDecoding(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	bare, _ := e.emu.CreateContact("acme", kommo.Contact{Name: "Bare"})
	full, _ := e.emu.CreateContact("acme", kommo.Contact{FirstName: "Ana", LastName: "Ruiz", ResponsibleUserID: 77,
		Emails: []string{"ana@example.com", "a.ruiz@example.org"}, Phones: []string{"+34 600 000 001", "+34 600 000 002"},
		Tags:         []string{"vip", "newsletter"},
		CustomFields: []kommo.CustomField{{Name: "Position", Values: []kommo.FieldValue{{Value: "CTO"}}}}})
	c := e.client(t)

	got, err := c.GetContact(context.Background(), bare.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Bare" || got.CustomFields != nil || got.Emails != nil || got.Type != kommo.ContactTypeContact {
		t.Errorf("bare contact %+v", got)
	}
	got, err = c.GetContact(context.Background(), full.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.FirstName != "Ana" || got.LastName != "Ruiz" || got.Name != "Ana Ruiz" || got.ResponsibleUserID != 77 ||
		!slices.Equal(got.Emails, full.Emails) || !slices.Equal(got.Phones, full.Phones) ||
		!slices.Equal(got.Tags, []string{"vip", "newsletter"}) || len(got.CustomFields) != 3 ||
		got.UpdatedAt != full.UpdatedAt || got.CreatedAt != full.CreatedAt || got.AccountID != full.AccountID {
		t.Errorf("decoded %+v\nstored  %+v", got, full)
	}
	for _, f := range got.CustomFields {
		if f.Code == kommo.FieldCodeEmail && (f.Values[0].EnumCode != "WORK" || f.Values[0].EnumID == 0) {
			t.Errorf("e-mail enum %+v", f.Values[0])
		}
	}

	_ = e.emu.DeleteContact("acme", full.ID)
	if _, err := c.GetContact(context.Background(), full.ID); !errors.Is(err, kommo.ErrNotFound) {
		t.Errorf("deleted contact: %v, want ErrNotFound", err)
	}
}
