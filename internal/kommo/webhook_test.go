package kommo

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
)

// The Kommo webhook samples are embedded by internal/fixtures.

func fixtureForm(tb testing.TB, name string) url.Values {
	tb.Helper()
	form, err := fixtures.KommoWebhook(name)
	if err != nil {
		tb.Fatal(err)
	}
	return form
}

// fixtureBody is the fixture as Kommo POSTs it: each key and value
// URL-encoded, joined with '&' in file order.
func fixtureBody(tb testing.TB, name string) string {
	tb.Helper()
	body, err := fixtures.KommoWebhookBody(name)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func fixtureNames(tb testing.TB) []string {
	names := fixtures.KommoWebhookNames()
	if len(names) == 0 {
		tb.Fatal("no Kommo webhook fixtures embedded")
	}
	return names
}

// form builds url.Values from "key=value" lines (split at the first '=').
func form(lines ...string) url.Values {
	v := url.Values{}
	for _, l := range lines {
		k, val, _ := strings.Cut(l, "=")
		v.Add(k, val)
	}
	return v
}

func mustParse(t *testing.T, f url.Values) *WebhookPayload {
	t.Helper()
	p, err := ParseWebhook(f)
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	return p
}

// mustParseBody parses a raw body, as the server does.
func mustParseBody(t *testing.T, body string) *WebhookPayload {
	t.Helper()
	p, err := ParseWebhookBody([]byte(body))
	if err != nil {
		t.Fatalf("ParseWebhookBody: %v", err)
	}
	return p
}

func TestParseWebhookAddFixture(t *testing.T) {
	p := mustParseBody(t, fixtureBody(t, "add-contact.form"))
	want := &WebhookPayload{
		AccountID: 31415926,
		Subdomain: "acmetrading",
		Events: []WebhookEvent{{
			Action: ActionAdd,
			Contact: Contact{
				ID:     5100201,
				Type:   ContactTypeContact,
				Name:   "Maria Lopez",
				Emails: []string{"maria.lopez@example.com"},
				Phones: []string{"+34 611 222 333"},
				CustomFields: []CustomField{
					{ID: 812345, Name: "Phone", Code: "PHONE", Values: []FieldValue{{Value: "+34 611 222 333", EnumID: 1364056}}},
					{ID: 812347, Name: "Email", Code: "EMAIL", Values: []FieldValue{{Value: "maria.lopez@example.com", EnumID: 1364060}}},
				},
				ResponsibleUserID: 7700101,
				CreatedAt:         1764150000,
				UpdatedAt:         1764150000,
				AccountID:         31415926,
			},
		}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("payload:\n got %+v\nwant %+v", p, want)
	}
}

func TestParseWebhookUpdateContactAndCompanyFixture(t *testing.T) {
	p := mustParseBody(t, fixtureBody(t, "update-contact-and-company.form"))
	if p.AccountID != 31415926 || p.Subdomain != "acmetrading" {
		t.Fatalf("account = %d %q, want 31415926 acmetrading (the account keys come last)", p.AccountID, p.Subdomain)
	}
	if len(p.Events) != 2 {
		t.Fatalf("got %d events, want 2: %+v", len(p.Events), p.Events)
	}
	person, company := p.Events[0], p.Events[1]
	if person.Action != ActionUpdate || company.Action != ActionUpdate {
		t.Errorf("actions = %s, %s; want update, update", person.Action, company.Action)
	}

	// The person: both new addresses, in order; the date field without a
	// [value] key; non-contiguous field indexes kept in index order; the tag.
	c := person.Contact
	if c.ID != 5100201 || c.Type != ContactTypeContact || c.IsCompany() || c.Name != "Maria Lopez Garcia" {
		t.Errorf("person = id %d type %q name %q", c.ID, c.Type, c.Name)
	}
	if want := []string{"maria@lopez-garcia.example", "m.lopez@example.org"}; !slices.Equal(c.Emails, want) {
		t.Errorf("person e-mails = %q, want %q", c.Emails, want)
	}
	if c.Phones != nil {
		t.Errorf("person phones = %q, want none", c.Phones)
	}
	wantFields := []CustomField{
		{ID: 812347, Name: "Email", Code: "EMAIL", Values: []FieldValue{
			{Value: "maria@lopez-garcia.example", EnumID: 1364060},
			{Value: "m.lopez@example.org", EnumID: 1364062},
		}},
		{ID: 812390, Name: "Birthday", Values: []FieldValue{{Value: "1104537600"}}},
	}
	if !reflect.DeepEqual(c.CustomFields, wantFields) {
		t.Errorf("person fields:\n got %+v\nwant %+v", c.CustomFields, wantFields)
	}
	if !slices.Equal(c.Tags, []string{"newsletter"}) {
		t.Errorf("person tags = %q, want [newsletter]", c.Tags)
	}
	if c.CreatedAt != 1764150000 || c.UpdatedAt != 1764153600 || c.ResponsibleUserID != 7700101 || c.AccountID != 31415926 {
		t.Errorf("person created %d updated %d responsible %d account %d", c.CreatedAt, c.UpdatedAt, c.ResponsibleUserID, c.AccountID)
	}

	// The company arrives under contacts and must be recognisable.
	co := company.Contact
	if co.ID != 6200001 || co.Type != ContactTypeCompany || !co.IsCompany() || co.Name != "Lopez Trading SL" {
		t.Errorf("company = id %d type %q name %q", co.ID, co.Type, co.Name)
	}
	if !slices.Equal(co.Emails, []string{"office@lopeztrading.example"}) || co.UpdatedAt != 1764153601 {
		t.Errorf("company e-mails %q updated %d", co.Emails, co.UpdatedAt)
	}
	if co.AccountID != 31415926 {
		t.Errorf("company account = %d, want the body's account 31415926", co.AccountID)
	}
}

func TestParseWebhookDeleteFixture(t *testing.T) {
	p := mustParseBody(t, fixtureBody(t, "delete-contact.form"))
	want := &WebhookPayload{
		AccountID: 31415926,
		Subdomain: "acmetrading",
		Events: []WebhookEvent{{
			Action:  ActionDelete,
			Contact: Contact{ID: 5100201, Type: ContactTypeContact, AccountID: 31415926},
		}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("payload:\n got %+v\nwant %+v", p, want)
	}
}

func TestParseWebhookEveryFixtureFromTheWire(t *testing.T) {
	// The raw body in Kommo's key order, as the HTTP server sees it, and
	// the decoded form (through ParseWebhook, in sorted key order) agree.
	for _, name := range fixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			if got, want := mustParseBody(t, fixtureBody(t, name)), mustParse(t, fixtureForm(t, name)); !reflect.DeepEqual(got, want) {
				t.Fatalf("from the wire:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseWebhookIgnoresWhatItDoesNotRead(t *testing.T) {
	p := mustParse(t, form(
		"account[id]=7",
		"customers[add][0][id]=900",       // another entity
		"customers[add][x]][[=whatever",   // another entity, however shaped
		"leads[note][0][id]=900",          // a lead action not read
		"contacts[restore][0][id]=1",      // an action not subscribed to
		"contacts[note][0][note][text]=x", // idem, other shape
		"contacts[responsible][zz]=1",     // idem, bad index: still not ours
		"contacts[add][3][id]=11",
		"contacts[add][3][linked_leads_id][900]=900",
		"contacts[add][3][group_id]=0",
		"contacts[add][3][custom_fields][0][id]=5",
		"contacts[add][3][custom_fields][0][field_type]=2",
		"contacts[add][3][custom_fields][0][values][0][value]=Main st",
		"contacts[add][3][custom_fields][0][values][0][subtype]=address_line_1",
		"account[_links][self]=https://x.kommo.com",
		"account[whatever][deep]=1",
	))
	want := []WebhookEvent{{Action: ActionAdd, Contact: Contact{
		ID: 11, Type: ContactTypeContact, AccountID: 7,
		CustomFields: []CustomField{{ID: 5, Values: []FieldValue{{Value: "Main st"}}}},
	}}}
	if !reflect.DeepEqual(p.Events, want) {
		t.Fatalf("events:\n got %+v\nwant %+v", p.Events, want)
	}
}

func TestParseWebhookAccountOnlyHasNoEvents(t *testing.T) {
	p := mustParse(t, form("account[id]=7", "account[subdomain]=shop"))
	if p.AccountID != 7 || p.Subdomain != "shop" || len(p.Events) != 0 {
		t.Fatalf("got %+v, want account 7 shop and no events", p)
	}
}

func TestParseWebhookContactPoints(t *testing.T) {
	// E-mails and phones are found by code, wherever the field sits, with
	// every value kept, trimmed, empties dropped, case and duplicates kept.
	p := mustParse(t, form(
		"account[id]=7",
		"contacts[update][0][id]=1",
		"contacts[update][0][custom_fields][7][id]=1",
		"contacts[update][0][custom_fields][7][code]=email",
		"contacts[update][0][custom_fields][7][values][2][value]= Second@Example.com ",
		"contacts[update][0][custom_fields][7][values][0][value]=first@example.com",
		"contacts[update][0][custom_fields][7][values][1][value]=   ",
		"contacts[update][0][custom_fields][2][id]=2",
		"contacts[update][0][custom_fields][2][code]=PHONE",
		"contacts[update][0][custom_fields][2][values][0][value]=+1 555 0100",
		"contacts[update][0][custom_fields][2][values][5][value]=+1 555 0101",
		"contacts[update][0][custom_fields][3][id]=3",
		"contacts[update][0][custom_fields][3][name]=Email", // a name is not a code
		"contacts[update][0][custom_fields][3][values][0][value]=not-an-email-field@example.com",
		"contacts[update][0][custom_fields][9][id]=4",
		"contacts[update][0][custom_fields][9][code]=EMAIL",
		"contacts[update][0][custom_fields][9][values][0][value]=first@example.com",
	))
	c := p.Events[0].Contact
	if want := []string{"first@example.com", "Second@Example.com", "first@example.com"}; !slices.Equal(c.Emails, want) {
		t.Errorf("e-mails = %q, want %q", c.Emails, want)
	}
	if want := []string{"+1 555 0100", "+1 555 0101"}; !slices.Equal(c.Phones, want) {
		t.Errorf("phones = %q, want %q", c.Phones, want)
	}
}

func TestParseWebhookDeleteKeepsOnlyTheIdentity(t *testing.T) {
	p := mustParse(t, form(
		"account[id]=7",
		"contacts[delete][4][id]=99",
		"contacts[delete][4][name]=Gone",
		"contacts[delete][4][type]=company",
	))
	want := Contact{ID: 99, Type: ContactTypeCompany, AccountID: 7}
	if len(p.Events) != 1 || p.Events[0].Action != ActionDelete || !reflect.DeepEqual(p.Events[0].Contact, want) {
		t.Fatalf("events = %+v, want one delete of %+v", p.Events, want)
	}
}

func TestParseWebhookLegacyDateKeys(t *testing.T) {
	// Without created_at/updated_at, date_create/last_modified are used.
	p := mustParse(t, form("account[id]=7", "contacts[add][0][id]=1",
		"contacts[add][0][date_create]=100", "contacts[add][0][last_modified]=200"))
	if c := p.Events[0].Contact; c.CreatedAt != 100 || c.UpdatedAt != 200 {
		t.Fatalf("created %d updated %d, want 100 200", c.CreatedAt, c.UpdatedAt)
	}
}

// sparseSpec is one contact of a generated multi-action body.
type sparseSpec struct {
	action Action
	index  int
	id     int64
}

func sparseBody(n int) (url.Values, []sparseSpec) {
	actions := []Action{ActionDelete, ActionUpdate, ActionAdd}
	f := url.Values{"account[id]": {"555"}, "account[subdomain]": {"sparse"}}
	var specs []sparseSpec
	for i := range n {
		s := sparseSpec{
			action: actions[i%3],
			index:  (i*7919 + 13) % (MaxWebhookIndex + 1), // distinct, scattered, up to the cap
			id:     int64(1000 + i),
		}
		specs = append(specs, s)
		pre := fmt.Sprintf("contacts[%s][%d]", s.action, s.index)
		f.Set(pre+"[id]", fmt.Sprint(s.id))
		if s.action == ActionDelete {
			continue
		}
		f.Set(pre+"[name]", fmt.Sprintf("Person %d", s.id))
		f.Set(pre+"[updated_at]", fmt.Sprint(1764150000+s.id))
		// Field index and value index vary too.
		fi, vi := i%5*3, i%4*2
		f.Set(fmt.Sprintf("%s[custom_fields][%d][id]", pre, fi), "812347")
		f.Set(fmt.Sprintf("%s[custom_fields][%d][code]", pre, fi), "EMAIL")
		f.Set(fmt.Sprintf("%s[custom_fields][%d][values][%d][value]", pre, fi, vi), fmt.Sprintf("p%d@example.com", s.id))
		if i%2 == 0 {
			f.Set(pre+"[type]", "company")
		}
	}
	return f, specs
}

func TestParseWebhookManySparseContactsAcrossActions(t *testing.T) {
	body, specs := sparseBody(60)
	p := mustParse(t, body)
	if len(p.Events) != len(specs) {
		t.Fatalf("got %d events, want %d", len(p.Events), len(specs))
	}
	// Expected order: add, update, delete; within an action by index.
	rank := map[Action]int{ActionAdd: 0, ActionUpdate: 1, ActionDelete: 2}
	slices.SortFunc(specs, func(a, b sparseSpec) int {
		return cmp.Or(rank[a.action]-rank[b.action], a.index-b.index)
	})
	for i, s := range specs {
		ev := p.Events[i]
		if ev.Action != s.action || ev.Contact.ID != s.id {
			t.Fatalf("event %d = %s %d, want %s %d (index %d)", i, ev.Action, ev.Contact.ID, s.action, s.id, s.index)
		}
		if s.action == ActionDelete {
			continue
		}
		if want := []string{fmt.Sprintf("p%d@example.com", s.id)}; !slices.Equal(ev.Contact.Emails, want) {
			t.Errorf("contact %d e-mails = %q, want %q", s.id, ev.Contact.Emails, want)
		}
		if ev.Contact.UpdatedAt != 1764150000+s.id {
			t.Errorf("contact %d updated_at = %d", s.id, ev.Contact.UpdatedAt)
		}
		wantType := ContactTypeContact
		if (s.id-1000)%2 == 0 {
			wantType = ContactTypeCompany
		}
		if ev.Contact.Type != wantType {
			t.Errorf("contact %d type = %q, want %q", s.id, ev.Contact.Type, wantType)
		}
	}
}

func TestParseWebhookMalformed(t *testing.T) {
	const acct = "account[id]=7"
	tooMany := url.Values{"account[id]": {"7"}}
	for i := 0; i <= MaxWebhookContacts; i++ {
		action := []string{"add", "update", "delete"}[i%3]
		tooMany.Set(fmt.Sprintf("contacts[%s][%d][id]", action, i), "1")
	}
	cases := []struct {
		name    string
		body    url.Values
		wantKey string // WebhookError.Key
		wantMsg string // part of the message
	}{
		{"no account id", form("account[subdomain]=x", "contacts[add][0][id]=1"), "account[id]", "missing"},
		{"empty body", url.Values{}, "account[id]", "missing"},
		{"account id not a number", form("account[id]=acme"), "account[id]", `"acme" is not a non-negative integer`},
		{"account id zero", form("account[id]=0"), "account[id]", "positive"},
		{"account id twice", form("account[id]=7", "account[id]=8"), "account[id]", "given more than once"},
		{"account id nested", form("account[id][x]=7"), "account[id][x]", `"id" takes no sub-keys`},
		{"bare account key", form("account=7"), "account", "want account[field]"},
		{"bare contacts key", form(acct, "contacts=1"), "contacts", "want contacts[action][index][field]"},
		{"action without index", form(acct, "contacts[add]=1"), "contacts[add]", "want contacts[add][index][field]"},
		{"index without field", form(acct, "contacts[update][0]=1"), "contacts[update][0]", "want contacts[update][index][field]"},
		{"index not a number", form(acct, "contacts[add][first][id]=1"), "contacts[add][first][id]", `index "first" is not a decimal`},
		{"negative index", form(acct, "contacts[add][-1][id]=1"), "contacts[add][-1][id]", `index "-1"`},
		{"index with leading zero", form(acct, "contacts[add][01][id]=1"), "contacts[add][01][id]", "leading zeros"},
		{"index above cap", form(acct, "contacts[add][10001][id]=1"), "contacts[add][10001][id]", "above the limit of 10000"},
		{"absurd index", form(acct, "contacts[add][99999999999999999999][id]=1"), "contacts[add][99999999999999999999][id]", "above the limit"},
		{"too many contacts", tooMany, "", "more than 2000 contacts"},
		{"missing contact id", form(acct, "contacts[add][0][name]=Ann"), "contacts[add][0]", "missing id"},
		{"contact id not a number", form(acct, "contacts[add][0][id]=abc"), "contacts[add][0][id]", `"abc" is not a non-negative integer`},
		{"contact id negative", form(acct, "contacts[delete][0][id]=-5"), "contacts[delete][0][id]", `"-5" is not a non-negative integer`},
		{"contact id zero", form(acct, "contacts[add][0][id]=0"), "contacts[add][0][id]", "positive"},
		{"contact id overflow", form(acct, "contacts[add][0][id]=99999999999999999999"), "contacts[add][0][id]", "does not fit in 64 bits"},
		{"contact id twice", form(acct, "contacts[add][0][id]=1", "contacts[add][0][id]=2"), "contacts[add][0][id]", "given more than once"},
		{"updated_at not a number", form(acct, "contacts[update][0][id]=1", "contacts[update][0][updated_at]=yesterday"), "contacts[update][0][updated_at]", `"yesterday" is not a unix timestamp`},
		{"unknown type", form(acct, "contacts[add][0][id]=1", "contacts[add][0][type]=lead"), "contacts[add][0][type]", `unknown contact type "lead"`},
		{"scalar with sub-key", form(acct, "contacts[add][0][id][0]=1"), "contacts[add][0][id][0]", `"id" takes no sub-keys`},
		{"other account's contact", form(acct, "contacts[add][0][id]=1", "contacts[add][0][account_id]=8"), "contacts[add][0][account_id]", "contact of account 8 in a body from account[id] 7"},
		{"unclosed bracket", form(acct, "contacts[add][0][id=1"), "contacts[add][0][id", "'[' without a matching ']'"},
		{"bracket inside brackets", form(acct, "contacts[add[0][id]=1"), "contacts[add[0][id]", "'[' inside brackets"},
		{"stray closing bracket", form(acct, "contacts[add]][0][id]=1"), "contacts[add]][0][id]", "text after ']'"},
		{"closing bracket in name", form(acct, "contacts]x=1"), "contacts]x", "']' without a matching '['"},
		{"empty brackets", form(acct, "contacts[][0][id]=1"), "contacts[][0][id]", "empty brackets"},
		{"text after bracket", form(acct, "contacts[add][0]id=1"), "contacts[add][0]id", "text after ']'"},
		{"too deep", form(acct, "contacts[add][0][a][b][c][d][e][f][g][h][i][j]=1"), "contacts[add][0][a][b][c][d][e][f][g][h][i][j]", "deeper than 12"},
		{"custom field without index", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields]=1"), "contacts[add][0][custom_fields]", "want custom_fields[index][attribute]"},
		{"custom field without id", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][2][code]=EMAIL"), "contacts[add][0][custom_fields][2]", "missing id"},
		{"custom field id not a number", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][0][id]=x"), "contacts[add][0][custom_fields][0][id]", `"x" is not`},
		{"custom field bad index", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][a][id]=5"), "contacts[add][0][custom_fields][a][id]", `index "a"`},
		{"values without index", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][0][id]=5", "contacts[add][0][custom_fields][0][values]=x"), "contacts[add][0][custom_fields][0][values]", "want values[index]"},
		{"value bare and keyed", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][0][id]=5",
			"contacts[add][0][custom_fields][0][values][0]=a", "contacts[add][0][custom_fields][0][values][0][value]=b"),
			"contacts[add][0][custom_fields][0][values][0]", "given both as values[0] and values[0][value]"},
		{"enum not a number", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][0][id]=5",
			"contacts[add][0][custom_fields][0][values][0][enum]=WORK"), "contacts[add][0][custom_fields][0][values][0][enum]", `"WORK" is not`},
		{"value nested", form(acct, "contacts[add][0][id]=1", "contacts[add][0][custom_fields][0][id]=5",
			"contacts[add][0][custom_fields][0][values][0][value][x]=a"), "contacts[add][0][custom_fields][0][values][0][value][x]", `"value" takes no sub-keys`},
		{"tag without index", form(acct, "contacts[add][0][id]=1", "contacts[add][0][tags][name]=vip"), "contacts[add][0][tags][name]", "want tags[index][id|name]"},
		{"tag id not a number", form(acct, "contacts[add][0][id]=1", "contacts[add][0][tags][0][id]=vip"), "contacts[add][0][tags][0][id]", `"vip" is not`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseWebhook(tc.body)
			if err == nil {
				t.Fatalf("no error; parsed %+v", p)
			}
			if p != nil {
				t.Errorf("a payload came back with the error: %+v", p)
			}
			if !errors.Is(err, ErrMalformedWebhook) {
				t.Errorf("error %v is not ErrMalformedWebhook", err)
			}
			var we *WebhookError
			if !errors.As(err, &we) {
				t.Fatalf("error %T is not a *WebhookError", err)
			}
			if tc.wantKey != "" && we.Key != tc.wantKey {
				t.Errorf("key = %q, want %q (error: %v)", we.Key, tc.wantKey, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

func TestParseWebhookErrorIsDeterministic(t *testing.T) {
	// Three problems in one body: the first in body order is reported, and
	// the same one every time (the parser is pooled: no state may leak).
	body := []byte("account[id]=7&contacts[add][1][id]=y&contacts[add][0][id]=x&contacts[update][z][id]=1")
	_, want := ParseWebhookBody(body)
	var we *WebhookError
	if !errors.As(want, &we) || we.Key != "contacts[add][1][id]" {
		t.Fatalf("error %v, want the first bad key in body order, contacts[add][1][id]", want)
	}
	// Through ParseWebhook the form is encoded with sorted keys, so the
	// lexicographically first bad key is reported, whatever the map order.
	f, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	_, wantForm := ParseWebhook(f)
	if !errors.As(wantForm, &we) || we.Key != "contacts[add][0][id]" {
		t.Fatalf("error %v, want contacts[add][0][id]", wantForm)
	}
	for range 50 {
		if _, err := ParseWebhookBody(body); err == nil || err.Error() != want.Error() {
			t.Fatalf("errors differ between runs: %v / %v", want, err)
		}
		if _, err := ParseWebhook(f); err == nil || err.Error() != wantForm.Error() {
			t.Fatalf("form errors differ between runs: %v / %v", wantForm, err)
		}
	}
}

func TestParseWebhookBodyRefusesRepeatedKeys(t *testing.T) {
	// A key the parser reads, given twice, is an error (which value would
	// win?), apart or next to each other; a key it ignores may repeat.
	const base = "account[id]=1&contacts[add][0][id]=2&contacts[add][0][custom_fields][0][id]=3"
	const c = "contacts[add][0]"
	for _, key := range []string{
		"account[subdomain]", c + "[name]", c + "[first_name]", c + "[last_name]", c + "[type]",
		c + "[responsible_user_id]", c + "[account_id]", c + "[created_at]", c + "[date_create]",
		c + "[updated_at]", c + "[last_modified]", c + "[custom_fields][0][name]", c + "[custom_fields][0][code]",
		c + "[custom_fields][0][values][0]", c + "[custom_fields][0][values][0][value]",
		c + "[custom_fields][0][values][0][enum]", c + "[tags][0][id]", c + "[tags][0][name]",
		"leads[status][0][id]",
	} {
		value := "1"
		if strings.HasSuffix(key, "[type]") {
			value = "company"
		}
		pair := key + "=" + value
		for _, body := range []string{base + "&" + pair + "&" + pair, pair + "&" + base + "&" + pair} {
			_, err := ParseWebhookBody([]byte(body))
			var we *WebhookError
			if !errors.As(err, &we) || we.Key != key || we.Reason != "given more than once" {
				t.Errorf("%s: error %v, want %s given more than once", body, err, key)
			}
		}
	}
	for _, key := range []string{"account[_links][self]", c + "[group_id]", c + "[custom_fields][0][field_type]",
		c + "[custom_fields][0][values][0][subtype]", c + "[tags][0][color]", "contacts[note][0][id]", "leads[note][0][id]",
		"leads[status][0][status_id]"} {
		mustParseBody(t, base+"&leads[status][0][id]=5&"+key+"=1&"+key+"=1")
	}
}

func TestParseWebhookBodyMalformedEncoding(t *testing.T) {
	// What url.ParseQuery refuses is refused, wherever it is, including in
	// keys and values of entities the parser otherwise ignores.
	const ok = "account[id]=7&contacts[add][0][id]=1"
	cases := []struct {
		name, body string
		wantKey    string
	}{
		{"bad escape in a key", ok + "&contacts[add][0][na%zzme]=Ann", "contacts[add][0][na%zzme]"},
		{"bad escape in an ignored key", "leads%5Badd%zz=1&" + ok, "leads%5Badd%zz"},
		{"escape cut short in a key", ok + "&account%5", "account%5"},
		{"bad escape in a value", ok + "&contacts[add][0][name]=secret%G1", "contacts[add][0][name]"},
		{"bad escape in an ignored value", "leads[add][0][name]=secret%&" + ok, "leads[add][0][name]"},
		{"escape cut short at the end", ok + "&contacts[add][0][name]=secret%4", "contacts[add][0][name]"},
		{"semicolon separator", "account[id]=7;contacts[add][0][id]=1", "(body)"},
		{"semicolon in an ignored value", ok + "&leads[add][0][name]=a;b", "(body)"},
		{"semicolon in a key", ok + "&lea;ds=1", "(body)"},
		{"semicolon after a bad escape", ok + "&x=%zz;", "(body)"},
		{"too many pairs", strings.Repeat("&", maxFormPairs) + ok, "(body)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := url.ParseQuery(tc.body); err == nil {
				t.Fatalf("url.ParseQuery accepts the body: the case tests nothing")
			}
			p, err := ParseWebhookBody([]byte(tc.body))
			if err == nil || p != nil {
				t.Fatalf("got %+v, %v; want an error", p, err)
			}
			var we *WebhookError
			if !errors.Is(err, ErrMalformedWebhook) || !errors.As(err, &we) {
				t.Fatalf("error %v (%T) is not a *WebhookError matching ErrMalformedWebhook", err, err)
			}
			if we.Key != tc.wantKey || !strings.HasPrefix(we.Reason, "malformed form encoding") {
				t.Errorf("key %q reason %q, want key %q and a form encoding reason", we.Key, we.Reason, tc.wantKey)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
	// At the limit, the body is fine.
	body := strings.Repeat("&", maxFormPairs-2) + ok
	if _, err := url.ParseQuery(body); err != nil {
		t.Fatal(err)
	}
	mustParseBody(t, body)
}

func TestParseWebhookBodyDoesNotAliasTheBody(t *testing.T) {
	// The server recycles the body's buffer once the payload is built.
	body := []byte(fixtureBody(t, "update-contact-and-company.form"))
	p, err := ParseWebhookBody(body)
	if err != nil {
		t.Fatal(err)
	}
	want := mustParseBody(t, fixtureBody(t, "update-contact-and-company.form"))
	for i := range body {
		body[i] = 'X'
	}
	_, _ = ParseWebhookBody(body) // and the parser's buffers are reused
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("payload changed with the body:\n got %+v\nwant %+v", p, want)
	}
}

func TestParseWebhookBodySlicesAreIndependent(t *testing.T) {
	// Contacts share backing arrays; appending to one must not write into
	// the next.
	p := mustParseBody(t, "account[id]=7"+
		"&contacts[add][0][id]=1&contacts[add][0][tags][0][name]=a&contacts[add][0][custom_fields][0][id]=5&contacts[add][0][custom_fields][0][values][0][value]=x"+
		"&contacts[add][1][id]=2&contacts[add][1][tags][0][name]=b&contacts[add][1][custom_fields][0][id]=6&contacts[add][1][custom_fields][0][values][0][value]=y")
	first, second := &p.Events[0].Contact, p.Events[1].Contact
	first.Tags = append(first.Tags, "mine")
	first.CustomFields = append(first.CustomFields, CustomField{ID: 99})
	first.CustomFields[0].Values = append(first.CustomFields[0].Values, FieldValue{Value: "mine"})
	if !slices.Equal(second.Tags, []string{"b"}) || second.CustomFields[0].ID != 6 || second.CustomFields[0].Values[0].Value != "y" {
		t.Fatalf("second contact changed: %+v", second)
	}
}

// encodeShuffled encodes f as a body with its pairs in an order of perm's
// choosing (Encode sorts them).
func encodeShuffled(f url.Values, perm func(n int) []int) string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		for _, v := range f[k] {
			pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	out := make([]string, len(pairs))
	for i, j := range perm(len(pairs)) {
		out[i] = pairs[j]
	}
	return strings.Join(out, "&")
}

func TestParseWebhookBodyAnyKeyOrder(t *testing.T) {
	// Kommo sends each item's keys together, indexes rising; the parser's
	// shortcuts for that must not change the result of any other order.
	f, _ := sparseBody(400)
	want := mustParse(t, f)
	rng := rand.New(rand.NewPCG(1, 2))
	orders := map[string]func(n int) []int{
		"sorted": func(n int) []int {
			perm := make([]int, n)
			for i := range perm {
				perm[i] = i
			}
			return perm
		},
		"reversed": func(n int) []int {
			perm := make([]int, n)
			for i := range perm {
				perm[i] = n - 1 - i
			}
			return perm
		},
		"shuffled": rng.Perm,
	}
	for name, perm := range orders {
		t.Run(name, func(t *testing.T) {
			if got := mustParseBody(t, encodeShuffled(f, perm)); !reflect.DeepEqual(got, want) {
				t.Fatalf("payload differs from the sorted form's")
			}
		})
	}
}

func TestParseWebhookBodyHostileBodiesStayCheap(t *testing.T) {
	// Bodies at the limits, in orders that defeat the parser's shortcuts:
	// each must parse (or fail) in time linear-ish in its size.
	var many, deep, fields strings.Builder
	many.WriteString("account[id]=7")
	for i := MaxWebhookContacts - 1; i >= 0; i-- { // descending: no shortcut
		fmt.Fprintf(&many, "&contacts[%s][%d][id]=%d", actionsByRank[i%3], MaxWebhookIndex-i, i+1)
		fmt.Fprintf(&many, "&contacts[%s][%d][custom_fields][%d][id]=%d", actionsByRank[i%3], MaxWebhookIndex-i, i, i+1)
	}
	deep.WriteString("account[id]=7&contacts[add][0][id]=1")
	for range maxFormPairs - 2 {
		deep.WriteString("&contacts[add][0][a][b][c][d][e][f][g][h]=1")
	}
	fields.WriteString("account[id]=7&contacts[add][0][id]=1")
	for j := maxFormPairs - 5; j >= 0; j-- {
		fmt.Fprintf(&fields, "&contacts[add][0][custom_fields][%d][values][%d][value]=v", j%2, j)
	}
	fields.WriteString("&contacts[add][0][custom_fields][1][id]=6&contacts[add][0][custom_fields][0][id]=5")
	for name, body := range map[string]string{"many contacts": many.String(), "deep keys": deep.String(), "many values": fields.String()} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			p, err := ParseWebhookBody([]byte(body))
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%d bytes took %v", len(body), d)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes: %d events in %v", len(body), len(p.Events), time.Since(start))
		})
	}
}

func TestEncodeWebhookRoundTripsFixtures(t *testing.T) {
	for _, name := range fixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			p := mustParse(t, fixtureForm(t, name))
			// Through the wire encoding, as the sandbox will POST it.
			wire, err := url.ParseQuery(EncodeWebhook(p).Encode())
			if err != nil {
				t.Fatal(err)
			}
			if again := mustParse(t, wire); !reflect.DeepEqual(again, p) {
				t.Fatalf("round trip changed the payload:\n got %+v\nwant %+v", again, p)
			}
		})
	}
}

func TestEncodeWebhookWritesKommoShape(t *testing.T) {
	// Encoding what was parsed from a fixture gives the fixture's keys and
	// values back, less the keys the parser does not keep.
	notKept := map[string]bool{
		"contacts[add][0][group_id]":         true,
		"contacts[add][0][created_user_id]":  true,
		"contacts[add][0][modified_user_id]": true,
	}
	for _, name := range []string{"add-contact.form", "delete-contact.form"} {
		t.Run(name, func(t *testing.T) {
			fixture := fixtureForm(t, name)
			got := EncodeWebhook(mustParse(t, fixture))
			for k, v := range got {
				if !slices.Equal(fixture[k], v) {
					t.Errorf("encoded %s=%q, fixture has %q", k, v, fixture[k])
				}
			}
			for k := range fixture {
				if _, ok := got[k]; !ok && !notKept[k] {
					t.Errorf("encoded body lacks fixture key %s", k)
				}
			}
		})
	}
}

func TestEncodeWebhookRoundTripsABuiltPayload(t *testing.T) {
	// What the sandbox will do: build contacts, encode, deliver.
	person := Contact{
		ID: 1, Type: ContactTypeContact, Name: "Ann Lee", FirstName: "Ann", LastName: "Lee",
		Tags: []string{"vip", "newsletter"},
		CustomFields: []CustomField{
			{ID: 10, Name: "Email", Code: FieldCodeEmail, Values: []FieldValue{{Value: "ann@example.com", EnumID: 3}, {Value: "a+b&c=d@example.com"}}},
			{ID: 11, Name: "Phone", Code: FieldCodePhone, Values: []FieldValue{{Value: "+1 (555) 010-0000", EnumID: 4}}},
			{ID: 12, Name: "Notes", Values: []FieldValue{{Value: "line1\nline2 [not a key]"}}},
		},
		ResponsibleUserID: 77, CreatedAt: 100, UpdatedAt: 200, AccountID: 42,
	}
	person.DeriveContactPoints()
	company := Contact{ID: 2, Type: ContactTypeCompany, Name: "Acme", UpdatedAt: 300, AccountID: 42}
	p := &WebhookPayload{AccountID: 42, Subdomain: "acme", Events: []WebhookEvent{
		{Action: ActionAdd, Contact: person},
		{Action: ActionUpdate, Contact: company},
		{Action: ActionUpdate, Contact: person},
		{Action: ActionDelete, Contact: Contact{ID: 3, Type: ContactTypeContact, AccountID: 42}},
	}}
	wire, err := url.ParseQuery(EncodeWebhook(p).Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParse(t, wire); !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
	}
	if got := wire.Get("account[_links][self]"); got != "https://acme.kommo.com" {
		t.Errorf("account[_links][self] = %q", got)
	}
	if got := wire.Get("contacts[update][1][custom_fields][0][values][1][value]"); got != "a+b&c=d@example.com" {
		t.Errorf("second e-mail of the second update = %q", got)
	}
}

// BenchmarkParseWebhook measures a one-contact add (the common delivery) and
// a 50-contact mixed body (a batched one), each parsed from the raw body.
func BenchmarkParseWebhook(b *testing.B) {
	fiftyPayload := &WebhookPayload{AccountID: 31415926, Subdomain: "acmetrading"}
	for i := range 50 {
		c := Contact{
			ID: int64(5100000 + i), Type: ContactTypeContact, Name: fmt.Sprintf("Person %d", i),
			ResponsibleUserID: 7700101, CreatedAt: 1764150000, UpdatedAt: 1764150000 + int64(i), AccountID: 31415926,
			Tags: []string{"newsletter"},
			CustomFields: []CustomField{
				{ID: 812345, Name: "Phone", Code: FieldCodePhone, Values: []FieldValue{{Value: "+34 611 222 333", EnumID: 1364056}}},
				{ID: 812347, Name: "Email", Code: FieldCodeEmail, Values: []FieldValue{{Value: fmt.Sprintf("p%d@example.com", i), EnumID: 1364060}}},
			},
		}
		fiftyPayload.Events = append(fiftyPayload.Events, WebhookEvent{Action: []Action{ActionAdd, ActionUpdate, ActionDelete}[i%3], Contact: c})
	}
	bodies := []struct {
		name, body string
		events     int
	}{
		{"add-contact", fixtureBody(b, "add-contact.form"), 1},
		{"50-contacts", EncodeWebhook(fiftyPayload).Encode(), 50},
	}
	for _, bb := range bodies {
		// The raw body, as the server hands it over: ParseWebhookBody is
		// all it pays (it used to pay url.ParseQuery and ParseWebhook).
		b.Run(bb.name, func(b *testing.B) {
			body := []byte(bb.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if p, err := ParseWebhookBody(body); err != nil || len(p.Events) != bb.events {
					b.Fatalf("parse: %v", err)
				}
			}
		})
	}
}

// TestParseWebhookErrorKeyIsBounded: a hostile key of any length is named
// in the error by its first maxErrorKey bytes at most.
func TestParseWebhookErrorKeyIsBounded(t *testing.T) {
	long := "contacts[add][0][" + strings.Repeat("é", 5000) + "[x]=1"
	_, err := ParseWebhookBody([]byte("account[id]=1&" + long))
	var we *WebhookError
	if !errors.As(err, &we) {
		t.Fatalf("want a *WebhookError, got %v", err)
	}
	if len(we.Key) > maxErrorKey+len("…") || !strings.HasSuffix(we.Key, "…") || !utf8.ValidString(we.Key) {
		t.Fatalf("key of %d bytes %q… not cut to %d valid bytes", len(we.Key), we.Key[:20], maxErrorKey)
	}
}
