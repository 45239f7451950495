package unisenderemu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// admin sends one admin request and decodes a JSON answer into out.
func (e *env) admin(t *testing.T, method, path, key, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(unisenderemu.AdminKeyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

func TestAdminHTTP(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	const key = "admin-made-key"
	if code := e.admin(t, "POST", "/_admin/keys", "", `{"key":"`+key+`"}`, nil); code != http.StatusNoContent {
		t.Fatalf("add key: HTTP %d", code)
	}
	var created struct{ ID int64 }
	r := e.call(t, key, "createList", map[string][]string{"title": {"L"}})
	if err := json.Unmarshal(r.Result, &created); err != nil || created.ID == 0 {
		t.Fatalf("createList with the admin-made key: %+v", r)
	}
	e.call(t, key, "importContacts", importArgs([]string{"email", "email_list_ids"},
		[][]string{{"a@example.com", strconv.FormatInt(created.ID, 10)}}))

	var lists []unisenderemu.List
	e.admin(t, "GET", "/_admin/lists", key, "", &lists)
	if len(lists) != 1 || lists[0].Title != "L" {
		t.Fatalf("lists %+v", lists)
	}
	if code := e.admin(t, "PUT", "/_admin/contacts/a@example.com/status", key, `{"status":"unsubscribed"}`, nil); code != http.StatusNoContent {
		t.Fatalf("set status: HTTP %d", code)
	}
	if code := e.admin(t, "PUT", "/_admin/contacts/a@example.com/status", key, `{"status":"gone"}`, nil); code != http.StatusBadRequest {
		t.Fatalf("invalid status: HTTP %d, want 400", code)
	}
	var members []unisenderemu.Member
	e.admin(t, "GET", "/_admin/lists/"+strconv.FormatInt(created.ID, 10)+"/members", key, "", &members)
	if len(members) != 1 || members[0].Status != unisenderemu.StatusUnsubscribed || members[0].ListStatus != unisenderemu.ListActive {
		t.Fatalf("members %+v", members)
	}
	if code := e.admin(t, "GET", "/_admin/lists", "no-such-key", "", nil); code != http.StatusNotFound {
		t.Fatalf("unknown key: HTTP %d, want 404", code)
	}

	e.admin(t, "POST", "/_admin/faults/errors", "", `{"n":1,"code":"retry_later"}`, nil)
	var faults map[string]any
	e.admin(t, "PUT", "/_admin/faults", "", `{"latency":"1ms","transient_error_rate":0,"transient_mode":"http503"}`, &faults)
	if faults["latency"] != "1ms" || faults["transient_mode"] != "http503" || len(faults["pending_forced"].([]any)) != 1 {
		t.Fatalf("faults %v", faults)
	}
	e.fails(t, key, "getLists", nil, "retry_later")

	var stats unisenderemu.Stats
	e.admin(t, "GET", "/_admin/stats", "", "", &stats)
	if stats.Calls["importContacts"] != 1 || stats.Calls["getLists"] != 1 || len(stats.Requests) != 3 {
		t.Fatalf("stats %+v", stats)
	}
	e.admin(t, "DELETE", "/_admin/stats", "", "", nil)
	e.admin(t, "DELETE", "/_admin/faults", "", "", nil)
	if got := e.emu.Stats(); len(got.Requests) != 0 || e.emu.Faults().Latency != 0 {
		t.Fatalf("after reset: %+v %+v", got, e.emu.Faults())
	}
}
