package unisenderemu_test

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

func subscribeArgs(listIDs string, email string, extra ...string) url.Values {
	v := url.Values{"list_ids": {listIDs}, "fields[email]": {email}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestSubscribeNeverRevivesUnsubscribed(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	list := e.createList(t, "Kommo")
	ids := strconv.FormatInt(list, 10)
	var first struct {
		PersonID int64 `json:"person_id"`
	}
	e.ok(t, "subscribe", subscribeArgs(ids, "gone@example.com", "double_optin", "3", "fields[Name]", "Old"), &first)
	if first.PersonID == 0 {
		t.Fatal("subscribe returned no person_id")
	}
	if err := e.emu.SetContactStatus(testKey, "gone@example.com", unisenderemu.StatusUnsubscribed); err != nil {
		t.Fatal(err)
	}

	// The import with email_status=active and subscribe with overwrite=1 are
	// the two ways a careless sync would try to bring the contact back.
	e.importRows(t, []string{"email", "email_status"}, [][]string{{"gone@example.com", "active"}})
	var again struct {
		PersonID int64 `json:"person_id"`
	}
	e.ok(t, "subscribe", subscribeArgs(ids, "gone@example.com", "double_optin", "3", "overwrite", "1", "fields[Name]", "New"), &again)

	c := e.contact(t, "gone@example.com")
	if c.Status != unisenderemu.StatusUnsubscribed || c.Fields["Name"] != "Old" {
		t.Fatalf("contact after revival attempts: %+v, want unsubscribed and untouched", c)
	}
	if again.PersonID != first.PersonID {
		t.Fatalf("person_id %d, want the existing %d", again.PersonID, first.PersonID)
	}
	if got := e.emu.RevivalAttempts(); got != 2 {
		t.Fatalf("RevivalAttempts = %d, want 2", got)
	}
}

func TestSubscribeToListTheContactLeftCountsAttempt(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	l1, l2 := e.createList(t, "One"), e.createList(t, "Two")
	e.ok(t, "subscribe", subscribeArgs(strconv.FormatInt(l1, 10), "a@example.com", "double_optin", "3"), nil)
	e.ok(t, "unsubscribe", url.Values{"contact_type": {"email"}, "contact": {"a@example.com"}, "list_ids": {strconv.FormatInt(l1, 10)}}, nil)

	e.ok(t, "subscribe", subscribeArgs(fmt.Sprintf("%d,%d", l1, l2), "a@example.com", "double_optin", "3"), nil)
	c := e.contact(t, "a@example.com")
	if c.Lists[l1] != unisenderemu.ListUnsubscribed || c.Lists[l2] != unisenderemu.ListActive || c.Status != unisenderemu.StatusActive {
		t.Fatalf("contact %+v: want still unsubscribed from one, active in two", c)
	}
	if got := e.emu.RevivalAttempts(); got != 1 {
		t.Fatalf("RevivalAttempts = %d, want 1", got)
	}
}

func TestSubscribeDoubleOptinAndOverwrite(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.ok(t, "createField", url.Values{"name": {"City"}, "type": {"string"}}, nil)
	l1, l2 := e.createList(t, "One"), e.createList(t, "Two")
	one, two := strconv.FormatInt(l1, 10), strconv.FormatInt(l2, 10)

	e.ok(t, "subscribe", subscribeArgs(one, "invite@example.com"), nil)
	if got := e.contact(t, "invite@example.com").Status; got != unisenderemu.StatusInvited {
		t.Fatalf("double_optin=0: status %q, want invited", got)
	}

	e.ok(t, "subscribe", subscribeArgs(one, "a@example.com", "double_optin", "3", "fields[Name]", "Ann", "fields[City]", "Oslo", "tags", "x"), nil)
	e.ok(t, "subscribe", subscribeArgs(two, "a@example.com", "double_optin", "3", "fields[Name]", "Anna", "tags", "y"), nil)
	c := e.contact(t, "a@example.com")
	if c.Status != unisenderemu.StatusActive || c.Fields["Name"] != "Ann" || !slices.Equal(c.Tags, []string{"x", "y"}) {
		t.Fatalf("overwrite=0: %+v, want existing Name kept and tags added", c)
	}

	e.ok(t, "subscribe", subscribeArgs(two, "a@example.com", "double_optin", "3", "overwrite", "2", "fields[Name]", "Anna"), nil)
	if c = e.contact(t, "a@example.com"); c.Fields["Name"] != "Anna" || c.Fields["City"] != "Oslo" {
		t.Fatalf("overwrite=2: fields %v, want Name replaced and City kept", c.Fields)
	}

	e.ok(t, "subscribe", subscribeArgs(two, "a@example.com", "double_optin", "3", "overwrite", "1", "fields[Name]", "A", "tags", "z"), nil)
	c = e.contact(t, "a@example.com")
	if c.Fields["City"] != "" || c.Fields["Name"] != "A" || !slices.Equal(c.Tags, []string{"z"}) || c.Lists[l1] != unisenderemu.ListExcluded {
		t.Fatalf("overwrite=1: %+v, want fields and tags replaced, excluded from list one", c)
	}
}

func TestSubscribeArgumentErrors(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	ids := strconv.FormatInt(e.createList(t, "One"), 10)
	cases := map[string]url.Values{
		"no list_ids":      subscribeArgs("", "a@example.com"),
		"unknown list":     subscribeArgs("424242", "a@example.com"),
		"no email":         {"list_ids": {ids}},
		"bad email":        subscribeArgs(ids, "a@"),
		"bad double_optin": subscribeArgs(ids, "a@example.com", "double_optin", "2"),
		"bad overwrite":    subscribeArgs(ids, "a@example.com", "overwrite", "3"),
		"unknown field":    subscribeArgs(ids, "a@example.com", "fields[Nope]", "x"),
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) { e.fails(t, testKey, "subscribe", args, "invalid_arg") })
	}
}

func TestExcludeRemovesFromListWithoutUnsubscribing(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	l1, l2 := e.createList(t, "One"), e.createList(t, "Two")
	both := fmt.Sprintf("%d,%d", l1, l2)
	e.importRows(t, []string{"email", "email_list_ids", "email_status"}, [][]string{{"a@example.com", both, "active"}})

	e.ok(t, "exclude", url.Values{"contact_type": {"email"}, "contact": {"a@example.com"}, "list_ids": {strconv.FormatInt(l1, 10)}}, nil)
	c := e.contact(t, "a@example.com")
	if c.Status != unisenderemu.StatusActive || c.Lists[l1] != unisenderemu.ListExcluded || c.Lists[l2] != unisenderemu.ListActive {
		t.Fatalf("after exclude: %+v, want active, excluded from one only", c)
	}
	var in bool
	e.ok(t, "isContactInLists", url.Values{"email": {"a@example.com"}, "list_ids": {strconv.FormatInt(l1, 10)}}, &in)
	if in {
		t.Fatal("isContactInLists says the excluded contact is still in list one")
	}

	// An excluded contact can come back, unlike an unsubscribed one.
	e.importRows(t, []string{"email", "email_list_ids"}, [][]string{{"a@example.com", strconv.FormatInt(l1, 10)}})
	if got := e.contact(t, "a@example.com").Lists[l1]; got != unisenderemu.ListActive {
		t.Fatalf("re-added excluded contact: list status %q, want active", got)
	}
	if e.emu.RevivalAttempts() != 0 {
		t.Fatal("re-adding an excluded contact counted as a revival attempt")
	}

	e.ok(t, "exclude", url.Values{"contact_type": {"email"}, "contact": {"a@example.com"}}, nil)
	c = e.contact(t, "a@example.com")
	if c.Lists[l1] != unisenderemu.ListExcluded || c.Lists[l2] != unisenderemu.ListExcluded || c.Status != unisenderemu.StatusActive {
		t.Fatalf("exclude without list_ids: %+v, want excluded from all, still active", c)
	}
	e.ok(t, "exclude", url.Values{"contact_type": {"email"}, "contact": {"nobody@example.com"}}, nil)
	e.fails(t, testKey, "exclude", url.Values{"contact_type": {"fax"}, "contact": {"a@example.com"}}, "invalid_arg")
}

func TestUnsubscribeWithoutListsIsGlobal(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	ids := strconv.FormatInt(e.createList(t, "One"), 10)
	e.ok(t, "subscribe", subscribeArgs(ids, "a@example.com", "double_optin", "3"), nil)
	e.ok(t, "unsubscribe", url.Values{"contact_type": {"email"}, "contact": {"a@example.com"}}, nil)
	if got := e.contact(t, "a@example.com").Status; got != unisenderemu.StatusUnsubscribed {
		t.Fatalf("status %q, want unsubscribed", got)
	}
}

func TestIsContactInListsConditions(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	l1, l2 := e.createList(t, "One"), e.createList(t, "Two")
	e.importRows(t, []string{"email", "email_list_ids"}, [][]string{{"a@example.com", strconv.FormatInt(l1, 10)}})
	both := fmt.Sprintf("%d,%d", l1, l2)
	for _, tc := range []struct {
		email, condition string
		want             bool
	}{
		{"a@example.com", "or", true},
		{"a@example.com", "", true},
		{"a@example.com", "and", false},
		{"nobody@example.com", "or", false},
	} {
		var got bool
		e.ok(t, "isContactInLists", url.Values{"email": {tc.email}, "list_ids": {both}, "condition": {tc.condition}}, &got)
		if got != tc.want {
			t.Errorf("%s %q: got %v, want %v", tc.email, tc.condition, got, tc.want)
		}
	}
	e.fails(t, testKey, "isContactInLists", url.Values{"email": {"a@example.com"}, "list_ids": {both}, "condition": {"xor"}}, "invalid_arg")
}

func TestGetContactShape(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	list := e.createList(t, "One")
	e.importRows(t, []string{"email", "email_list_ids", "Name", "email_status"},
		[][]string{{"a@example.com", strconv.FormatInt(list, 10), "Ann", "active"}})

	var got struct {
		Email struct {
			Email, Status string
			AddedAt       string `json:"added_at"`
		}
		Fields map[string]string
		Lists  []struct {
			ID     int64
			Status string
		}
	}
	e.ok(t, "getContact", url.Values{"email": {"A@example.com"}, "include_lists": {"1"}, "include_fields": {"1"}}, &got)
	if got.Email.Email != "a@example.com" || got.Email.Status != "active" || len(got.Email.AddedAt) != len("2006-01-02 15:04:05") {
		t.Fatalf("email part %+v", got.Email)
	}
	if got.Fields["Name"] != "Ann" || len(got.Lists) != 1 || got.Lists[0].ID != list || got.Lists[0].Status != "active" {
		t.Fatalf("fields %v lists %+v", got.Fields, got.Lists)
	}

	var bare map[string]any
	e.ok(t, "getContact", url.Values{"email": {"a@example.com"}}, &bare)
	if _, has := bare["lists"]; has {
		t.Fatal("lists returned without include_lists=1")
	}
	r := e.fails(t, testKey, "getContact", url.Values{"email": {"nobody@example.com"}}, "invalid_arg")
	if *r.Error != unisenderemu.ContactNotFoundMessage {
		t.Fatalf("not-found message %q", *r.Error)
	}
}
