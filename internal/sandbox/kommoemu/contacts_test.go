package kommoemu_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

type halPage struct {
	Page  int `json:"_page"`
	Links map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
	Embedded struct {
		Contacts []struct {
			ID                 int64            `json:"id"`
			UpdatedAt          int64            `json:"updated_at"`
			CustomFieldsValues []rawField       `json:"custom_fields_values"`
			Embedded           map[string][]any `json:"_embedded"`
		} `json:"contacts"`
	} `json:"_embedded"`
}

type rawField struct {
	FieldCode *string `json:"field_code"`
	Values    []struct {
		Value    string `json:"value"`
		EnumCode string `json:"enum_code"`
	} `json:"values"`
}

// walk follows _links.next from the first page and returns the pages and
// the status of the last answer.
func (e *env) walk(t *testing.T, token, query string) ([]halPage, int) {
	t.Helper()
	var pages []halPage
	next := e.base + "/api/v4/contacts?" + query
	for next != "" {
		a := e.do(t, "GET", next, token, nil)
		if a.status == http.StatusNoContent {
			if len(a.body) != 0 {
				t.Errorf("204 with a body: %q", a.body)
			}
			return pages, a.status
		}
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %s", next, a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "application/hal+json" {
			t.Errorf("Content-Type %q", ct)
		}
		p := decode[halPage](t, a)
		pages = append(pages, p)
		next = p.Links["next"].Href
		if len(pages) > 100 {
			t.Fatal("paging does not end")
		}
	}
	return pages, http.StatusOK
}

func countContacts(pages []halPage) (n int, ids map[int64]bool) {
	ids = map[int64]bool{}
	for _, p := range pages {
		for _, c := range p.Embedded.Contacts {
			ids[c.ID] = true
			n++
		}
	}
	return n, ids
}

func TestPagingEndsWith204WhenNextIsGivenOnFullPages(t *testing.T) {
	e := newEnv(t, kommoemu.Options{NextOnFullPage: true})
	if err := e.emu.SeedContacts("acme", 500); err != nil {
		t.Fatal(err)
	}
	pages, last := e.walk(t, e.token(t), "limit=250")
	n, ids := countContacts(pages)
	if len(pages) != 2 || last != http.StatusNoContent || n != 500 || len(ids) != 500 {
		t.Fatalf("%d pages, last HTTP %d, %d contacts (%d distinct); want 2 pages then 204, 500 contacts", len(pages), last, n, len(ids))
	}
	if got := e.emu.Stats().Statuses[http.StatusNoContent]; got != 1 {
		t.Errorf("emulator answered %d 204s, want 1", got)
	}
}

func TestPagingGivesNextOnlyWhenMoreFollow(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	if err := e.emu.SeedContacts("acme", 501); err != nil {
		t.Fatal(err)
	}
	pages, last := e.walk(t, e.token(t), "limit=250")
	n, _ := countContacts(pages)
	if len(pages) != 3 || last != http.StatusOK || n != 501 || len(pages[2].Embedded.Contacts) != 1 {
		t.Fatalf("%d pages, last HTTP %d, %d contacts; want 3 pages, the last with 1", len(pages), last, n)
	}
	if pages[1].Links["prev"].Href == "" || pages[0].Links["self"].Href == "" {
		t.Error("self/prev links missing")
	}
}

func TestEmptyListingIs204(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	a := e.do(t, "GET", e.base+"/api/v4/contacts", e.token(t), nil)
	if a.status != http.StatusNoContent || len(a.body) != 0 {
		t.Fatalf("HTTP %d %q, want 204 with no body", a.status, a.body)
	}
}

func TestListingValidatesLimitAndOrder(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	tok := e.token(t)
	for _, q := range []string{"limit=251", "limit=0", "page=0", "order[name]=asc", "order[id]=up", "filter[updated_at][from]=yesterday"} {
		a := e.do(t, "GET", e.base+"/api/v4/contacts?"+q, tok, nil)
		if a.status != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", q, a.status)
		}
	}
}

func TestListingFiltersAndOrders(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	if err := e.emu.SeedContacts("acme", 300); err != nil {
		t.Fatal(err)
	}
	all, _ := e.emu.Contacts("acme")
	from := all[150].UpdatedAt
	want := 0
	for _, c := range all {
		if c.UpdatedAt >= from {
			want++
		}
	}
	q := url.Values{"filter[updated_at][from]": {strconv.FormatInt(from, 10)}, "order[updated_at]": {"asc"}, "limit": {"100"}}
	pages, _ := e.walk(t, e.token(t), q.Encode())
	var prev int64
	got := 0
	for _, p := range pages {
		for _, c := range p.Embedded.Contacts {
			if c.UpdatedAt < from || c.UpdatedAt < prev {
				t.Fatalf("contact %d updated_at %d: below the filter %d or out of order after %d", c.ID, c.UpdatedAt, from, prev)
			}
			prev = c.UpdatedAt
			got++
		}
	}
	if got != want {
		t.Errorf("%d contacts, want %d", got, want)
	}

	ids := url.Values{"filter[id][]": {strconv.FormatInt(all[3].ID, 10), strconv.FormatInt(all[7].ID, 10)}}
	pages, _ = e.walk(t, e.token(t), ids.Encode())
	if n, set := countContacts(pages); n != 2 || !set[all[3].ID] || !set[all[7].ID] {
		t.Errorf("filter[id][]: got %v", set)
	}
}

func TestContactJSONShape(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	bare, err := e.emu.CreateContact("acme", kommo.Contact{Name: "No Fields"})
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.emu.CreateContact("acme", kommo.Contact{FirstName: "Ana", LastName: "Ruiz",
		Emails: []string{"ana@example.com", "a.ruiz@example.org"}, Phones: []string{"+34 600 000 001"}, Tags: []string{"vip"}})
	if err != nil {
		t.Fatal(err)
	}
	if full.Name != "Ana Ruiz" {
		t.Errorf("name %q, want it built from first and last", full.Name)
	}
	tok := e.token(t)
	a := e.do(t, "GET", e.base+"/api/v4/contacts/"+strconv.FormatInt(bare.ID, 10), tok, nil)
	if a.status != http.StatusOK || !containsJSON(a.body, `"custom_fields_values":null`) {
		t.Errorf("contact without fields: HTTP %d %s; want custom_fields_values null", a.status, a.body)
	}
	a = e.do(t, "GET", e.base+"/api/v4/contacts/"+strconv.FormatInt(full.ID, 10), tok, nil)
	for _, want := range []string{`"field_code":"EMAIL"`, `"value":"a.ruiz@example.org"`, `"enum_code":"WORK"`,
		`"field_code":"PHONE"`, `"name":"vip"`, `"first_name":"Ana"`} {
		if !containsJSON(a.body, want) {
			t.Errorf("contact JSON lacks %s: %s", want, a.body)
		}
	}
	if err := e.emu.DeleteContact("acme", full.ID); err != nil {
		t.Fatal(err)
	}
	a = e.do(t, "GET", e.base+"/api/v4/contacts/"+strconv.FormatInt(full.ID, 10), tok, nil)
	if a.status != http.StatusNoContent {
		t.Errorf("deleted contact: HTTP %d, want 204", a.status)
	}
}

func containsJSON(body []byte, s string) bool { return strings.Contains(string(body), s) }

func TestUpdatedAtGrowsWithinOneSecond(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, kommoemu.Options{Clock: clock.Now})
	c, _ := e.emu.CreateContact("acme", kommo.Contact{Name: "A"})
	u1, _ := e.emu.UpdateContact("acme", kommo.Contact{ID: c.ID, Name: "B"})
	u2, _ := e.emu.UpdateContact("acme", kommo.Contact{ID: c.ID, Name: "C"})
	if c.UpdatedAt >= u1.UpdatedAt || u1.UpdatedAt >= u2.UpdatedAt {
		t.Errorf("updated_at %d, %d, %d: want strictly increasing", c.UpdatedAt, u1.UpdatedAt, u2.UpdatedAt)
	}
	clock.Advance(time.Hour)
	u3, _ := e.emu.UpdateContact("acme", kommo.Contact{ID: c.ID, Name: "D"})
	if u3.UpdatedAt != clock.Now().Unix() {
		t.Errorf("updated_at %d, want the clock's %d", u3.UpdatedAt, clock.Now().Unix())
	}
}

func TestHostHeaderNamesTheAccount(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v4/account", nil)
	req.Host = "acme.kommo.localhost"
	req.Header.Set("Authorization", "Bearer "+e.token(t))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("by Host: HTTP %d", resp.StatusCode)
	}
}
