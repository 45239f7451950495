package unisenderemu_test

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

func numberedRows(n int) [][]string {
	rows := make([][]string, n)
	for i := range rows {
		rows[i] = []string{fmt.Sprintf("user%04d@example.com", i)}
	}
	return rows
}

func TestImportRefusesMoreThan500Rows(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.fails(t, testKey, "importContacts", importArgs([]string{"email"}, numberedRows(501)), "invalid_arg")
	if got := len(e.emu.Contacts(testKey)); got != 0 {
		t.Fatalf("a refused import stored %d contacts, want 0", got)
	}

	res := e.importRows(t, []string{"email"}, numberedRows(500))
	if res.Total != 500 || res.Inserted != 500 || res.NewEmails != 500 {
		t.Fatalf("500 rows: got %+v, want total=inserted=new_emails=500", res)
	}
	if got := e.emu.Stats().Requests[1].Rows; got != 500 {
		t.Fatalf("request log rows = %d, want 500", got)
	}
}

func TestImportRejectsBadAndRoleAddressesPerRow(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	rows := [][]string{
		{"ann@example.com"},
		{"info@example.com"},
		{"not-an-address"},
		{"Bob@Example.com"},
		{"NoReply@example.com"},
		{"eve@localhost"},
		{"Ann <ann2@example.com>"},
		{"support@example.org"},
	}
	res := e.importRows(t, []string{"email"}, rows)
	if res.Total != 8 || res.Inserted != 2 || res.Invalid != 6 {
		t.Fatalf("got %+v, want total 8, inserted 2, invalid 6", res)
	}
	wantLog := map[int]string{
		1: unisenderemu.LogRoleAddress, 2: unisenderemu.LogInvalidEmail, 4: unisenderemu.LogRoleAddress,
		5: unisenderemu.LogInvalidEmail, 6: unisenderemu.LogInvalidEmail, 7: unisenderemu.LogRoleAddress,
	}
	if len(res.Log) != len(wantLog) {
		t.Fatalf("log has %d entries, want %d: %+v", len(res.Log), len(wantLog), res.Log)
	}
	for _, entry := range res.Log {
		if wantLog[entry.Index] != entry.Code || entry.Message == "" {
			t.Errorf("log entry %+v: want code %q and a message", entry, wantLog[entry.Index])
		}
	}
	var emails []string
	for _, c := range e.emu.Contacts(testKey) {
		emails = append(emails, c.Email)
	}
	if !slices.Equal(emails, []string{"ann@example.com", "bob@example.com"}) {
		t.Fatalf("stored %v, want the two valid addresses (lower-cased)", emails)
	}
}

func TestImportDeleteRemovesContact(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	list := e.createList(t, "Kommo")
	ids := strconv.FormatInt(list, 10)
	e.importRows(t, []string{"email", "email_list_ids"}, [][]string{{"a@example.com", ids}, {"b@example.com", ids}})

	res := e.importRows(t, []string{"email", "delete"}, [][]string{{"a@example.com", "1"}, {"b@example.com", "0"}, {"ghost@example.com", "1"}})
	if res.Deleted != 1 || res.Updated != 1 || res.Invalid != 0 {
		t.Fatalf("got %+v, want deleted 1 (the ghost is not counted), updated 1", res)
	}
	if _, ok := e.emu.Contact(testKey, "a@example.com"); ok {
		t.Fatal("a@example.com still exists after delete=1")
	}
	members := e.emu.ListMembers(testKey, list)
	if len(members) != 1 || members[0].Email != "b@example.com" {
		t.Fatalf("list members %+v, want only b@example.com", members)
	}
}

func TestImportNeverRevivesUnsubscribedOrBlocked(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	list := e.createList(t, "Kommo")
	ids := strconv.FormatInt(list, 10)
	e.importRows(t, []string{"email", "email_list_ids", "email_status"},
		[][]string{{"gone@example.com", ids, "active"}, {"banned@example.com", ids, "active"}, {"stay@example.com", ids, "new"}})
	if err := e.emu.SetContactStatus(testKey, "gone@example.com", unisenderemu.StatusUnsubscribed); err != nil {
		t.Fatal(err)
	}
	if err := e.emu.SetContactStatus(testKey, "banned@example.com", unisenderemu.StatusBlocked); err != nil {
		t.Fatal(err)
	}

	res := e.importRows(t, []string{"email", "email_list_ids", "email_status"},
		[][]string{{"gone@example.com", ids, "active"}, {"banned@example.com", ids, "new"}, {"stay@example.com", ids, "active"}})
	if res.Updated != 3 || res.Invalid != 0 {
		t.Fatalf("got %+v, want 3 rows updated", res)
	}
	for email, want := range map[string]string{
		"gone@example.com":   unisenderemu.StatusUnsubscribed,
		"banned@example.com": unisenderemu.StatusBlocked,
		"stay@example.com":   unisenderemu.StatusActive,
	} {
		if got := e.contact(t, email).Status; got != want {
			t.Errorf("%s: status %q, want %q", email, got, want)
		}
	}
	if got := e.emu.RevivalAttempts(); got != 2 {
		t.Fatalf("RevivalAttempts = %d, want 2", got)
	}

	// A row without email_status is an ordinary update, not an attempt.
	e.importRows(t, []string{"email", "Name"}, [][]string{{"gone@example.com", "Gone"}})
	if got := e.emu.RevivalAttempts(); got != 2 {
		t.Fatalf("RevivalAttempts after a field update = %d, want still 2", got)
	}
}

func TestImportArgumentErrors(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	many := []string{"email"}
	for i := range 51 {
		name := fmt.Sprintf("F%d", i)
		e.ok(t, "createField", url.Values{"name": {name}, "type": {"string"}}, nil)
		many = append(many, name)
	}
	cases := map[string]url.Values{
		"no field_names":        importArgs(nil, [][]string{{"a@example.com"}}),
		"no email or phone":     importArgs([]string{"Name"}, [][]string{{"Ann"}}),
		"unknown user field":    importArgs([]string{"email", "Surname"}, [][]string{{"a@example.com", "X"}}),
		"51 user fields":        importArgs(many, [][]string{{"a@example.com"}}),
		"cell beyond columns":   importArgs([]string{"email"}, [][]string{{"a@example.com", "extra"}}),
		"bad overwrite_tags":    importArgs([]string{"email"}, [][]string{{"a@example.com"}}, "overwrite_tags", "yes"),
		"duplicate column name": importArgs([]string{"email", "Email"}, [][]string{{"a@example.com", "b@example.com"}}),
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) { e.fails(t, testKey, "importContacts", args, "invalid_arg") })
	}
	if got := len(e.emu.Contacts(testKey)); got != 0 {
		t.Fatalf("refused imports stored %d contacts", got)
	}
}

func TestImportRowChecks(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.ok(t, "createField", url.Values{"name": {"Age"}, "type": {"number"}}, nil)
	list := e.createList(t, "L")
	ids := strconv.FormatInt(list, 10)
	res := e.importRows(t, []string{"email", "phone", "email_status", "email_list_ids", "tags", "Age"}, [][]string{
		{"ok@example.com", "+79261232323", "active", ids, "a,b", "42"},
		{"", "", "", "", "", ""},
		{"p@example.com", "8-926-123", "", "", "", ""},
		{"s@example.com", "", "blocked", "", "", ""},
		{"l@example.com", "", "", "999999", "", ""},
		{"t@example.com", "", "", "", "1,2,3,4,5,6,7,8,9,10,11", ""},
		{"n@example.com", "", "", "", "", "forty"},
	})
	want := []string{"", unisenderemu.LogNoContact, unisenderemu.LogInvalidPhone, unisenderemu.LogInvalidStatus,
		unisenderemu.LogInvalidListID, unisenderemu.LogTooManyTags, unisenderemu.LogInvalidFieldValue}
	if res.Inserted != 1 || res.Invalid != 6 || len(res.Log) != 6 {
		t.Fatalf("got %+v, want 1 inserted and 6 rejected", res)
	}
	for _, entry := range res.Log {
		if want[entry.Index] != entry.Code {
			t.Errorf("row %d: code %q, want %q", entry.Index, entry.Code, want[entry.Index])
		}
	}
	c := e.contact(t, "ok@example.com")
	if c.Phone != "+79261232323" || c.Status != "active" || c.Fields["Age"] != "42" || !slices.Equal(c.Tags, []string{"a", "b"}) || c.Lists[list] != unisenderemu.ListActive {
		t.Fatalf("stored %+v", c)
	}
}

func TestImportOverwriteTagsAndLists(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	l1, l2 := e.createList(t, "One"), e.createList(t, "Two")
	both := fmt.Sprintf("%d,%d", l1, l2)
	fields := []string{"email", "email_list_ids", "tags"}
	e.importRows(t, fields, [][]string{{"a@example.com", both, "x,y"}})

	e.importRows(t, fields, [][]string{{"a@example.com", strconv.FormatInt(l1, 10), "z"}})
	c := e.contact(t, "a@example.com")
	if !slices.Equal(c.Tags, []string{"x", "y", "z"}) || c.Lists[l2] != unisenderemu.ListActive {
		t.Fatalf("without overwrite: tags %v lists %v, want tags added and both lists kept", c.Tags, c.Lists)
	}

	e.importRows(t, fields, [][]string{{"a@example.com", strconv.FormatInt(l1, 10), "z"}}, "overwrite_tags", "1", "overwrite_lists", "1")
	c = e.contact(t, "a@example.com")
	if !slices.Equal(c.Tags, []string{"z"}) || c.Lists[l1] != unisenderemu.ListActive || c.Lists[l2] != unisenderemu.ListExcluded {
		t.Fatalf("with overwrite: tags %v lists %v, want tags [z], excluded from list two", c.Tags, c.Lists)
	}
	if c.Status != unisenderemu.StatusNew {
		t.Fatalf("overwrite_lists changed the global status to %q", c.Status)
	}
}

func TestImportPerListUnsubscribeSticks(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	l1 := e.createList(t, "One")
	id := strconv.FormatInt(l1, 10)
	e.importRows(t, []string{"email", "email_unsubscribed_list_ids"}, [][]string{{"a@example.com", id}})
	e.importRows(t, []string{"email", "email_list_ids"}, [][]string{{"a@example.com", id}})
	if got := e.contact(t, "a@example.com").Lists[l1]; got != unisenderemu.ListUnsubscribed {
		t.Fatalf("list status %q after re-adding, want it to stay unsubscribed", got)
	}
}
