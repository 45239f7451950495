package unisenderemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

func TestErrorsComeInsideHTTP200(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.fails(t, "wrong-key", "getLists", nil, "invalid_api_key")
	e.fails(t, "", "getLists", nil, "invalid_api_key")
	e.fails(t, testKey, "sendRocket", nil, "unknown_method")
}

func TestListsAndFields(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	id := e.createList(t, "Kommo contacts")
	e.fails(t, testKey, "createList", url.Values{"title": {"Kommo contacts"}}, "invalid_arg")
	e.fails(t, testKey, "createList", url.Values{"title": {"  "}}, "invalid_arg")
	var lists []struct {
		ID    int64
		Title string
	}
	e.ok(t, "getLists", nil, &lists)
	if len(lists) != 1 || lists[0].ID != id || lists[0].Title != "Kommo contacts" {
		t.Fatalf("getLists = %+v", lists)
	}

	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Company", true}, {"kommo_id", true}, {"a-b_9", true},
		{"9lives", false}, {"_x", false}, {"Имя", false}, {"has space", false}, {"", false}, {"email", false}, {"email_status", false},
	} {
		r := e.call(t, testKey, "createField", url.Values{"name": {tc.name}, "type": {"string"}})
		if (r.Error == nil) != tc.ok {
			t.Errorf("createField %q: accepted=%v, want %v (code %q)", tc.name, r.Error == nil, tc.ok, r.Code)
		}
	}
	e.fails(t, testKey, "createField", url.Values{"name": {"Company"}, "type": {"string"}}, "invalid_arg")
	e.fails(t, testKey, "createField", url.Values{"name": {"Other"}, "type": {"blob"}}, "invalid_arg")
	e.ok(t, "createField", url.Values{"name": {"company"}, "type": {"text"}}, nil) // names are case-sensitive

	var fields []struct {
		ID         int64
		Name, Type string
	}
	e.ok(t, "getFields", nil, &fields)
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "Name,Company,kommo_id,a-b_9,company" {
		t.Fatalf("getFields names = %v", names)
	}
}

func TestAccountsAreSeparate(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.AddAPIKey("other-key")
	e.createList(t, "Mine")
	var lists []any
	r := e.call(t, "other-key", "getLists", nil)
	if err := json.Unmarshal(r.Result, &lists); err != nil || len(lists) != 0 {
		t.Fatalf("other account sees %s", r.Result)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	clock := sandboxtest.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, unisenderemu.Options{Clock: clock.Now, RateLimitPerMinute: 3})
	e.emu.AddAPIKey("other-key")
	for range 3 {
		e.ok(t, "getLists", nil, nil)
		clock.Advance(10 * time.Second)
	}
	e.fails(t, testKey, "getLists", nil, "api_call_limit_exceeded_for_api_key")
	if r := e.call(t, "other-key", "getLists", nil); r.Error != nil {
		t.Fatalf("another key was limited too: %s", r.Code)
	}
	clock.Advance(31 * time.Second) // the first call leaves the 60 s window
	e.ok(t, "getLists", nil, nil)
	e.fails(t, testKey, "getLists", nil, "api_call_limit_exceeded_for_api_key")
}

func TestSubscribeHasItsOwnLimit(t *testing.T) {
	clock := sandboxtest.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, unisenderemu.Options{Clock: clock.Now, SubscribeLimitPerMinute: 2})
	list := e.createList(t, "One")
	args := subscribeArgs(strconv.FormatInt(list, 10), "a@example.com")
	e.ok(t, "subscribe", args, nil)
	e.ok(t, "subscribe", args, nil)
	e.fails(t, testKey, "subscribe", args, "api_call_limit_exceeded_for_api_key")
	e.ok(t, "getLists", nil, nil)
	clock.Advance(61 * time.Second)
	e.ok(t, "subscribe", args, nil)
}

func TestRequestLogNeverHoldsTheKey(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.importRows(t, []string{"email"}, [][]string{{"a@example.com"}, {"b@example.com"}})
	// A client that leaks the key in the URL is flagged, and the log still
	// does not hold it.
	resp, err := http.Get(e.srv.URL + "/en/api/getLists?format=json&api_key=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	stats := e.emu.Stats()
	if len(stats.Requests) != 2 || stats.Calls["importContacts"] != 1 || stats.Calls["getLists"] != 1 {
		t.Fatalf("stats %+v", stats)
	}
	imp, get := stats.Requests[0], stats.Requests[1]
	if imp.Rows != 2 || imp.KeyInURL || imp.Tenant != unisenderemu.TenantLabel(testKey) || imp.Time.IsZero() {
		t.Fatalf("import record %+v", imp)
	}
	if !get.KeyInURL || get.ErrorCode != "" || get.HTTPStatus != http.StatusOK {
		t.Fatalf("GET record %+v, want KeyInURL and success", get)
	}
	dump, _ := json.Marshal(stats)
	if strings.Contains(string(dump), testKey) {
		t.Fatalf("request log holds the API key: %s", dump)
	}
}

func TestForcedErrorsAndHTTPStatus(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.ForceErrors(2, unisenderemu.ForcedError{Code: "retry_later"})
	e.emu.ForceErrors(1, unisenderemu.ForcedError{HTTPStatus: http.StatusServiceUnavailable})
	e.fails(t, testKey, "getLists", nil, "retry_later")
	e.fails(t, "even-a-bad-key", "getLists", nil, "retry_later")
	if r := e.call(t, testKey, "getLists", nil); r.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("third call: HTTP %d, want 503", r.HTTPStatus)
	}
	e.ok(t, "getLists", nil, nil)
	codes := []string{}
	for _, r := range e.emu.Stats().Requests {
		codes = append(codes, r.ErrorCode)
	}
	if strings.Join(codes, ",") != "retry_later,retry_later,," {
		t.Fatalf("logged codes %q", codes)
	}
}

func TestForcedErrorAfterCallChangesState(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "retry_later", AfterCall: true})
	e.fails(t, testKey, "createList", url.Values{"title": {"Lost answer"}}, "retry_later")
	if lists := e.emu.Lists(testKey); len(lists) != 1 || lists[0].Title != "Lost answer" {
		t.Fatalf("lists %+v, want the list created despite the error answer", lists)
	}
}

func TestTransientErrorRateIsSeeded(t *testing.T) {
	outcomes := func() string {
		e := newEnv(t, unisenderemu.Options{Seed: 7})
		e.emu.SetTransientErrorRate(0.5, unisenderemu.TransientMixed)
		var b strings.Builder
		for range 40 {
			r := e.call(t, testKey, "getLists", nil)
			switch {
			case r.HTTPStatus == http.StatusServiceUnavailable:
				b.WriteByte('5')
			case r.Code == "retry_later":
				b.WriteByte('r')
			case r.Error == nil:
				b.WriteByte('.')
			default:
				t.Fatalf("unexpected answer %+v", r)
			}
		}
		return b.String()
	}
	first, second := outcomes(), outcomes()
	if first != second {
		t.Fatalf("same seed, different faults:\n%s\n%s", first, second)
	}
	for _, c := range ".r5" {
		if !strings.ContainsRune(first, c) {
			t.Fatalf("40 calls at rate 0.5 mixed never produced %q: %s", c, first)
		}
	}
}

func TestHangLastsUntilTheClientGivesUp(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.HangNext(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/en/api/getLists?format=json",
		strings.NewReader(url.Values{"api_key": {testKey}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	done := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		done <- err
	}()
	// Give up only once the emulator holds the call.
	for len(e.emu.Stats().Requests) == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("hung call answered: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("hung call: err %v, want the client's cancellation", err)
	}
	if e.emu.Faults().PendingHangs != 0 {
		t.Fatal("the hang was not used up")
	}
	e.ok(t, "getLists", nil, nil) // only one call hangs
}

func TestLatencyDelaysCalls(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/en/api/getLists",
		strings.NewReader(url.Values{"api_key": {testKey}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with 1 s latency a 50 ms call gave %v, want a deadline error", err)
	}
	e.emu.ClearFaults()
	e.ok(t, "getLists", nil, nil)
}
