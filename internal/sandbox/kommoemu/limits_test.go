package kommoemu_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// Bursting past the rate gets 429s; enough of them block the account, and
// then every request, the token endpoint included, gets an HTML 403.
func TestRateLimitThenBlock(t *testing.T) {
	e := newEnv(t, kommoemu.Options{RateLimit: 5, BlockAfter429s: 3, RetryAfter: 2})
	tok := e.token(t)
	var statuses []int
	for range 12 {
		a := e.do(t, "GET", e.base+"/api/v4/account", tok, nil)
		statuses = append(statuses, a.status)
		if a.status == http.StatusTooManyRequests && a.header.Get("Retry-After") != "2" {
			t.Errorf("429 without the configured Retry-After: %q", a.header.Get("Retry-After"))
		}
	}
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	// The bucket holds 5; the burst of 12 arrives well within a second.
	if count[http.StatusOK] < 5 || count[http.StatusTooManyRequests] != 3 || statuses[len(statuses)-1] != http.StatusForbidden {
		t.Fatalf("statuses %v: want ≥5 OK, exactly 3×429, then 403s", statuses)
	}
	a := e.do(t, "POST", e.base+"/oauth2/access_token", "", map[string]string{"grant_type": "refresh_token"})
	if a.status != http.StatusForbidden || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(a.body), "<html") {
		t.Errorf("blocked token endpoint: HTTP %d %s %q", a.status, a.header.Get("Content-Type"), a.body)
	}
	if err := e.emu.SetBlocked("acme", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // refill at least one token (5/s)
	if a := e.do(t, "GET", e.base+"/api/v4/account", tok, nil); a.status != http.StatusOK {
		t.Errorf("after unblocking: HTTP %d", a.status)
	}
}

func TestForcedFaults(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	tok := e.token(t)
	url := e.base + "/api/v4/account"

	e.emu.Force429(2)
	e.emu.Force5xx(1)
	var got []int
	for range 4 {
		got = append(got, e.do(t, "GET", url, tok, nil).status)
	}
	if want := []int{429, 429, 503, 200}; !equalInts(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}

	e.emu.SetErrorRate(1)
	if a := e.do(t, "GET", url, tok, nil); a.status != http.StatusInternalServerError {
		t.Errorf("error rate 1: HTTP %d", a.status)
	}
	e.emu.ClearFaults()

	e.emu.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := e.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("hung request answered HTTP %d", resp.StatusCode)
	}
	if a := e.do(t, "GET", url, tok, nil); a.status != http.StatusOK {
		t.Errorf("after the hang: HTTP %d", a.status)
	}
	if st := e.emu.Stats(); st.RateLimited != 2 {
		t.Errorf("RateLimited %d, want 2", st.RateLimited)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRequestLog(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	tok := e.token(t)
	e.do(t, "GET", e.base+"/api/v4/contacts?limit=10", tok, nil)
	e.do(t, "GET", e.base+"/api/v4/contacts/42", tok, nil)
	log := e.emu.RequestLog()
	if len(log) != 2 || log[0].Route != "GET /api/v4/contacts" || log[0].Query != "limit=10" || log[0].Status != 204 ||
		log[1].Route != "GET /api/v4/contacts/{id}" || log[0].Account != "acme" || log[0].Time.IsZero() {
		t.Fatalf("log %+v", log)
	}
	if st := e.emu.Stats(); st.Requests["GET /api/v4/contacts"] != 1 || st.Statuses[204] != 2 {
		t.Errorf("stats %+v", st)
	}
	e.emu.ResetStats()
	if len(e.emu.RequestLog()) != 0 {
		t.Error("log not reset")
	}
}

// The admin HTTP API drives the same state as the Go API.
func TestAdminHTTP(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	admin := func(method, path string, body any) answer { return e.do(t, method, e.srv.URL+"/_admin"+path, "", body) }

	if a := admin("POST", "/accounts", map[string]string{"subdomain": "beta"}); a.status != http.StatusOK {
		t.Fatalf("add account: HTTP %d %s", a.status, a.body)
	}
	if a := admin("POST", "/accounts", map[string]string{"subdomain": "Bad_Name"}); a.status != http.StatusBadRequest {
		t.Errorf("bad subdomain: HTTP %d", a.status)
	}
	a := admin("POST", "/accounts/beta/contacts", map[string]any{"name": "Ana", "emails": []string{"ana@example.com"}})
	created := decode[kommoemu.AdminContact](t, a)
	if a.status != http.StatusOK || created.ID == 0 || created.Emails[0] != "ana@example.com" {
		t.Fatalf("create contact: HTTP %d %s", a.status, a.body)
	}
	a = admin("PUT", "/accounts/beta/contacts/"+itoa(created.ID), map[string]any{"name": "Ana B", "emails": []string{"b@example.com"}})
	if a.status != http.StatusOK || decode[kommoemu.AdminContact](t, a).Emails[0] != "b@example.com" {
		t.Fatalf("update contact: HTTP %d %s", a.status, a.body)
	}
	if a := admin("POST", "/accounts/beta/seed", map[string]int{"n": 20}); a.status != http.StatusNoContent {
		t.Fatalf("seed: HTTP %d %s", a.status, a.body)
	}
	list := decode[[]kommoemu.AdminContact](t, admin("GET", "/accounts/beta/contacts", nil))
	if len(list) != 21 {
		t.Errorf("%d contacts, want 21", len(list))
	}
	if a := admin("DELETE", "/accounts/beta/contacts/"+itoa(created.ID), nil); a.status != http.StatusNoContent {
		t.Errorf("delete: HTTP %d", a.status)
	}
	if a := admin("DELETE", "/accounts/beta/contacts/"+itoa(created.ID), nil); a.status != http.StatusNotFound {
		t.Errorf("delete again: HTTP %d, want 404", a.status)
	}
	a = admin("POST", "/accounts/beta/long-lived-tokens", map[string]string{"ttl": "720h"})
	tok := decode[map[string]string](t, a)["access_token"]
	if r := e.do(t, "GET", e.srv.URL+"/_acct/beta/api/v4/account", tok, nil); r.status != http.StatusOK {
		t.Errorf("admin-issued token: HTTP %d", r.status)
	}
	if a := admin("PUT", "/faults", map[string]any{"latency": "1ms", "pending_429": 1}); a.status != http.StatusNoContent {
		t.Fatalf("faults: HTTP %d %s", a.status, a.body)
	}
	if f := e.emu.Faults(); f.Latency != time.Millisecond || f.Pending429 != 1 {
		t.Errorf("faults %+v", f)
	}
	var st kommoemu.Stats
	if err := json.Unmarshal(admin("GET", "/stats", nil).body, &st); err != nil || st.Requests["GET /api/v4/account"] != 1 {
		t.Errorf("stats %+v %v", st, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestBusiestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []kommoemu.LogEntry {
		var log []kommoemu.LogEntry
		for _, m := range ms {
			log = append(log, kommoemu.LogEntry{Time: t0.Add(time.Duration(m) * time.Millisecond)})
		}
		return log
	}
	// Out of order, as the log records entries when they end; the window
	// is half-open, so 0 and 1000 are not in one second.
	n, start := kommoemu.BusiestWindow(at(900, 0, 1000, 950, 1899, 1900), time.Second)
	if n != 4 || !start.Equal(t0.Add(900*time.Millisecond)) {
		t.Errorf("busiest window %d at %v, want 4 at +900ms", n, start.Sub(t0))
	}
	if n, _ := kommoemu.BusiestWindow(nil, time.Second); n != 0 {
		t.Errorf("empty log: %d", n)
	}
}
