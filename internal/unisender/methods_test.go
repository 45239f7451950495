package unisender_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

func TestListsAndFieldsRoundTrip(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	c, ctx := e.client(), context.Background()
	id, err := c.CreateList(ctx, "Kommo contacts")
	if err != nil {
		t.Fatal(err)
	}
	lists, err := c.GetLists(ctx)
	if err != nil || !slices.Equal(lists, []unisender.List{{ID: id, Title: "Kommo contacts"}}) {
		t.Fatalf("GetLists = %+v, %v", lists, err)
	}
	if _, err := c.CreateList(ctx, "Kommo contacts"); !errors.Is(err, unisender.ErrInvalidArgument) {
		t.Fatalf("duplicate title: %v, want ErrInvalidArgument", err)
	}

	fid, err := c.CreateField(ctx, "kommo_id", "number")
	if err != nil {
		t.Fatal(err)
	}
	fields, err := c.GetFields(ctx)
	if err != nil || !slices.Contains(fields, unisender.Field{ID: fid, Name: "kommo_id", Type: "number"}) {
		t.Fatalf("GetFields = %+v, %v", fields, err)
	}
	if _, err := c.CreateField(ctx, "9bad", "string"); !unisender.IsPermanentForRequest(err) {
		t.Fatalf("bad field name: %v, want a permanent request error", err)
	}
}

func TestCreateListAfterLostAnswerReturnsTheList(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	// The first attempt creates the list but its answer is lost; the retry
	// is refused as a duplicate.
	e.emu.ForceErrors(1, unisenderemu.ForcedError{HTTPStatus: http.StatusServiceUnavailable, AfterCall: true})
	id, err := e.client().CreateList(context.Background(), "Kommo")
	if err != nil {
		t.Fatal(err)
	}
	lists := e.emu.Lists(apiKey)
	if len(lists) != 1 || lists[0].ID != id {
		t.Fatalf("emulator lists %+v, client got id %d", lists, id)
	}

	e.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "retry_later", AfterCall: true})
	fid, err := e.client().CreateField(context.Background(), "Company", "string")
	if err != nil {
		t.Fatal(err)
	}
	if f := e.emu.Fields(apiKey); f[len(f)-1].ID != fid {
		t.Fatalf("emulator fields %+v, client got id %d", f, fid)
	}
}

func TestSubscribeGetContactExclude(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	c, ctx := e.client(), context.Background()
	l1, _ := c.CreateList(ctx, "One")
	l2, _ := c.CreateList(ctx, "Two")
	pid, err := c.Subscribe(ctx, unisender.SubscribeRequest{
		ListIDs:     []int64{l1, l2},
		Fields:      map[string]string{"email": "ann@example.com", "Name": "Ann", "phone": "+79261232323"},
		Tags:        []string{"kommo", "vip"},
		DoubleOptin: 3,
	})
	if err != nil || pid == 0 {
		t.Fatalf("Subscribe = %d, %v", pid, err)
	}
	stored, _ := e.emu.Contact(apiKey, "ann@example.com")
	if stored.ID != pid || stored.Phone != "+79261232323" || !slices.Equal(stored.Tags, []string{"kommo", "vip"}) {
		t.Fatalf("emulator holds %+v", stored)
	}

	got, err := c.GetContact(ctx, "ann@example.com", unisender.GetContactOptions{IncludeLists: true, IncludeFields: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []unisender.ListMembership{{ID: l1, Status: "active"}, {ID: l2, Status: "active"}}
	if got.Email != "ann@example.com" || got.Status != "active" || got.Fields["Name"] != "Ann" || !slices.Equal(got.Lists, want) {
		t.Fatalf("GetContact = %+v", got)
	}

	if err := c.Exclude(ctx, unisender.ContactEmail, "ann@example.com", []int64{l1}); err != nil {
		t.Fatal(err)
	}
	after, err := c.GetContact(ctx, "ann@example.com", unisender.GetContactOptions{IncludeLists: true})
	if err != nil {
		t.Fatal(err)
	}
	var active []int64
	for _, l := range after.Lists {
		if l.Status == "active" {
			active = append(active, l.ID)
		}
	}
	if !slices.Equal(active, []int64{l2}) {
		t.Fatalf("after exclude from one: active in %v (%+v), want only %d", active, after.Lists, l2)
	}
	if stored, _ := e.emu.Contact(apiKey, "ann@example.com"); stored.Status != unisenderemu.StatusActive {
		t.Fatalf("exclude changed the global status to %q", stored.Status)
	}

	_, err = c.GetContact(ctx, "nobody@example.com", unisender.GetContactOptions{})
	if !errors.Is(err, unisender.ErrContactNotFound) || !errors.Is(err, unisender.ErrInvalidArgument) {
		t.Fatalf("unknown contact: %v, want ErrContactNotFound", err)
	}
}

func TestImportOptionsReachTheServer(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	c, ctx := e.client(), context.Background()
	l1, _ := c.CreateList(ctx, "One")
	l2, _ := c.CreateList(ctx, "Two")
	if _, err := c.ImportContacts(ctx, unisender.ImportRequest{
		FieldNames: []string{"email", "email_list_ids", "tags"},
		Rows:       [][]string{{"a@example.com", itoa(l1) + "," + itoa(l2), "x"}},
	}); err != nil {
		t.Fatal(err)
	}
	res, err := c.ImportContacts(ctx, unisender.ImportRequest{
		FieldNames:    []string{"email", "email_list_ids", "tags"},
		Rows:          [][]string{{"a@example.com", itoa(l1), "y"}},
		OverwriteTags: true, OverwriteLists: true,
	})
	if err != nil || res.Updated != 1 {
		t.Fatalf("overwrite import: %+v, %v", res, err)
	}
	got, _ := e.emu.Contact(apiKey, "a@example.com")
	if !slices.Equal(got.Tags, []string{"y"}) || got.Lists[l2] != unisenderemu.ListExcluded {
		t.Fatalf("after overwrite: %+v", got)
	}

	res, err = c.ImportContacts(ctx, unisender.ImportRequest{FieldNames: []string{"email", "delete"}, Rows: [][]string{{"a@example.com", "1"}}})
	if err != nil || res.Deleted != 1 {
		t.Fatalf("delete: %+v, %v", res, err)
	}
	if res, err := c.ImportContacts(ctx, unisender.ImportRequest{FieldNames: []string{"email"}}); err != nil || res.Total != 0 || e.calls("importContacts") != 3 {
		t.Fatalf("empty import: %+v, %v, %d calls", res, err, e.calls("importContacts"))
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
