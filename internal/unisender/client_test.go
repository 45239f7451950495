package unisender_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

const apiKey = "6cknyh3pzk9d1dgjy-test-key"

// env is the emulator behind a real HTTP server, with one account.
type env struct {
	emu *unisenderemu.Server
	url string
}

func newEnv(t *testing.T, opts unisenderemu.Options) *env {
	t.Helper()
	emu, srv := sandboxtest.Unisender(t, opts)
	emu.AddAPIKey(apiKey)
	return &env{emu: emu, url: srv.URL}
}

// client has no rate cap and near-instant backoff unless opts say otherwise.
func (e *env) client(opts ...unisender.Option) *unisender.Client {
	base := []unisender.Option{
		unisender.WithRateLimit(0, 0),
		unisender.WithBackoff(time.Millisecond, 5*time.Millisecond),
	}
	return unisender.NewClient(e.url, apiKey, append(base, opts...)...)
}

func (e *env) calls(method string) int { return e.emu.Stats().Calls[method] }

func TestImportSplitsIntoCallsOf500AndRebasesTheLog(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	rows := make([][]string, 1201)
	for i := range rows {
		rows[i] = []string{fmt.Sprintf("user%04d@example.com", i), fmt.Sprintf("User %d", i)}
	}
	rows[0][0] = "info@example.com"   // role address, first chunk
	rows[750][0] = "not-an-address"   // second chunk
	rows[1200][0] = "broken@@example" // third chunk, last row

	res, err := e.client().ImportContacts(context.Background(), unisender.ImportRequest{
		FieldNames: []string{"email", "Name"}, Rows: rows,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 1201 || res.Inserted != 1198 || res.NewEmails != 1198 || res.Invalid != 3 {
		t.Fatalf("merged totals %+v, want total 1201, inserted 1198, invalid 3", res)
	}
	var indexes []int
	for _, l := range res.Log {
		indexes = append(indexes, l.Index)
	}
	if !slices.Equal(indexes, []int{0, 750, 1200}) || res.Log[0].Code != unisenderemu.LogRoleAddress {
		t.Fatalf("log %+v, want rows 0 (role), 750 and 1200 of the caller's slice", res.Log)
	}

	var sizes []int
	for _, r := range e.emu.Stats().Requests {
		if r.Method == "importContacts" {
			sizes = append(sizes, r.Rows)
		}
	}
	if !slices.Equal(sizes, []int{500, 500, 201}) {
		t.Fatalf("importContacts calls carried %v rows, want exactly [500 500 201]", sizes)
	}
	if c, ok := e.emu.Contact(apiKey, "user1199@example.com"); !ok || c.Fields["Name"] != "User 1199" {
		t.Fatalf("row 1199 not stored with its Name: %+v", c)
	}
}

func TestImportRefusesRaggedRowsWithoutCalling(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	_, err := e.client().ImportContacts(context.Background(), unisender.ImportRequest{
		FieldNames: []string{"email", "Name"}, Rows: [][]string{{"a@example.com"}},
	})
	if !errors.Is(err, unisender.ErrInvalidArgument) || !unisender.IsPermanentForRequest(err) {
		t.Fatalf("err %v, want ErrInvalidArgument", err)
	}
	if n := e.calls("importContacts"); n != 0 {
		t.Fatalf("%d calls made for a ragged request", n)
	}
}

func TestImportFailureReportsFirstRowNotImported(t *testing.T) {
	// One call per minute on a stopped clock: the first chunk goes
	// through, the second is refused however often it is retried.
	stopped := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, unisenderemu.Options{Clock: func() time.Time { return stopped }, RateLimitPerMinute: 1})
	rows := make([][]string, 700)
	for i := range rows {
		rows[i] = []string{fmt.Sprintf("u%d@example.com", i)}
	}
	res, err := e.client().ImportContacts(context.Background(), unisender.ImportRequest{FieldNames: []string{"email"}, Rows: rows})
	var ie *unisender.ImportError
	if !errors.As(err, &ie) || ie.FirstRow != 500 {
		t.Fatalf("err %v, want an ImportError from row 500", err)
	}
	if !errors.Is(err, unisender.ErrRateLimited) || !unisender.IsTransient(err) {
		t.Fatalf("err %v, want the transient rate-limit error inside", err)
	}
	if res == nil || res.Total != 500 || res.Inserted != 500 {
		t.Fatalf("partial result %+v, want the first 500 rows", res)
	}
	if n := e.calls("importContacts"); n != 4 {
		t.Fatalf("%d calls, want 4 (one chunk, then one try and two retries)", n)
	}
}

func TestInvalidKeyIsPermanentAndNotRetried(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	const wrongKey = "wrong-key-0000"
	c := unisender.NewClient(e.url, wrongKey, unisender.WithRateLimit(0, 0), unisender.WithBackoff(time.Millisecond, time.Millisecond))
	err := c.Validate(context.Background())
	var apiErr *unisender.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_api_key" {
		t.Fatalf("err %v, want an APIError with code invalid_api_key", err)
	}
	if !errors.Is(err, unisender.ErrInvalidAPIKey) || !unisender.IsPermanentForTenant(err) || unisender.IsTransient(err) {
		t.Fatalf("err %v: want ErrInvalidAPIKey, permanent for the tenant, not transient", err)
	}
	if n := e.calls("getLists"); n != 1 {
		t.Fatalf("%d calls logged, want 1 (no retry)", n)
	}
	if strings.Contains(err.Error(), wrongKey) {
		t.Fatalf("error shows the key: %v", err)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	for _, forced := range []unisenderemu.ForcedError{
		{Code: "retry_later"},
		{Code: "api_call_limit_exceeded_for_api_key"},
		{Code: "api_call_limit_exceeded_for_ip"},
		{Code: "unspecified"},
		{HTTPStatus: http.StatusServiceUnavailable},
		{HTTPStatus: http.StatusBadGateway},
	} {
		name := forced.Code + fmt.Sprint(forced.HTTPStatus)
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, unisenderemu.Options{})
			e.emu.ForceErrors(2, forced)
			if _, err := e.client().GetLists(context.Background()); err != nil {
				t.Fatalf("after 2 transient failures: %v, want success on the 3rd call", err)
			}
			if n := e.calls("getLists"); n != 3 {
				t.Fatalf("%d calls, want 3", n)
			}
		})
	}
}

func TestRetriesAreBoundedAndPermanentErrorsNotRetried(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.ForceErrors(10, unisenderemu.ForcedError{Code: "retry_later"})
	_, err := e.client(unisender.WithMaxRetries(3)).GetLists(context.Background())
	if !unisender.IsTransient(err) || e.calls("getLists") != 4 {
		t.Fatalf("err %v after %d calls, want transient after 4", err, e.calls("getLists"))
	}

	for _, forced := range []unisenderemu.ForcedError{
		{Code: "invalid_arg"}, {Code: "access_denied"}, {Code: "not_enough_money"}, {Code: "unknown_method"},
		{HTTPStatus: http.StatusNotFound},
	} {
		e := newEnv(t, unisenderemu.Options{})
		e.emu.ForceErrors(1, forced)
		_, err := e.client().GetLists(context.Background())
		if err == nil || unisender.IsTransient(err) || e.calls("getLists") != 1 {
			t.Errorf("%+v: err %v after %d calls, want a permanent error after 1", forced, err, e.calls("getLists"))
		}
	}
}

// attempts counts the requests a client hands to its transport: with calls
// that time out, the emulator may not have logged a late attempt yet.
type attempts struct{ n atomic.Int32 }

func (a *attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	a.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}

func (a *attempts) option() unisender.Option {
	return unisender.WithHTTPClient(&http.Client{Transport: a})
}

func TestTimeoutIsRetried(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.HangNext(1)
	var tries attempts
	if _, err := e.client(unisender.WithTimeout(300*time.Millisecond), tries.option()).GetLists(context.Background()); err != nil {
		t.Fatalf("after one hung call: %v", err)
	}
	if n := tries.n.Load(); n < 2 {
		t.Fatalf("%d attempts, want a retry after the hung one", n)
	}
}

func TestImportRetriesAtMostTwiceOnTimeout(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.HangNext(10)
	var tries attempts
	c := e.client(unisender.WithTimeout(300*time.Millisecond), unisender.WithMaxRetries(5), tries.option())
	_, err := c.ImportContacts(context.Background(), unisender.ImportRequest{
		FieldNames: []string{"email"}, Rows: [][]string{{"a@example.com"}},
	})
	var te *unisender.TransportError
	if !errors.As(err, &te) || !te.Timeout || !unisender.IsTransient(err) {
		t.Fatalf("err %v, want a transient timeout", err)
	}
	if n := tries.n.Load(); n != 3 {
		t.Fatalf("%d importContacts attempts, want 3 (one try, two retries)", n)
	}
}

func TestCallerCancellationStopsWithoutRetry(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	e.emu.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var tries attempts
	_, err := e.client(tries.option()).GetLists(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || unisender.IsTransient(err) || tries.n.Load() != 1 {
		t.Fatalf("err %v after %d attempts, want the caller's deadline after 1", err, tries.n.Load())
	}
}

func TestRateLimitAdherence(t *testing.T) {
	// The default limiter: 1200 calls a minute, 20 a second, burst 1.
	const perSecond, burst, calls = unisender.DefaultRateLimitPerMinute / 60, unisender.DefaultBurst, 44
	e := newEnv(t, unisenderemu.Options{})
	c := unisender.NewClient(e.url, apiKey)
	// One caller at a time: each call arrives before the limiter releases
	// the next, so the emulator's arrival stamps keep the limiter's spacing
	// whatever the scheduling delays. (Concurrent callers share the same
	// token bucket, but delays between its release and the wire can bunch
	// their arrivals by a call or two.) Without a limiter, 44 calls land
	// within one second.
	for range calls {
		if _, err := c.GetLists(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	var times []time.Time
	for _, r := range e.emu.Stats().Requests {
		times = append(times, r.Time)
	}
	if len(times) != calls {
		t.Fatalf("%d calls logged, want %d", len(times), calls)
	}
	if n, start := busiestSecond(times); n > perSecond+burst {
		t.Fatalf("%d calls in the second from %s, want at most %d+%d", n, start.Format(time.StampMicro), perSecond, burst)
	}
}

// busiestSecond returns the most calls in any window [t, t+1s) starting at
// a call, and that window's start.
func busiestSecond(times []time.Time) (int, time.Time) {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	best, at := 0, time.Time{}
	for i, start := range times {
		n := sort.Search(len(times), func(j int) bool { return !times[j].Before(start.Add(time.Second)) }) - i
		if n > best {
			best, at = n, start
		}
	}
	return best, at
}

func TestAPIKeyNeverLeaks(t *testing.T) {
	e := newEnv(t, unisenderemu.Options{})
	c := e.client(unisender.WithTimeout(300*time.Millisecond), unisender.WithMaxRetries(0))
	ctx := context.Background()
	var errs []error
	// A server message that echoes the key, a bare 503, a timeout, an
	// invalid argument.
	e.emu.ForceErrors(1, unisenderemu.ForcedError{Code: "invalid_arg", Message: "bad request api_key=" + apiKey})
	_, err := c.GetLists(ctx)
	errs = append(errs, err)
	e.emu.ForceErrors(1, unisenderemu.ForcedError{HTTPStatus: http.StatusServiceUnavailable})
	_, err = c.GetLists(ctx)
	errs = append(errs, err)
	e.emu.HangNext(1)
	_, err = c.GetLists(ctx)
	errs = append(errs, err)
	_, err = c.CreateList(ctx, "")
	errs = append(errs, err)
	// Nobody listening at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, err = unisender.NewClient(dead.URL, apiKey, unisender.WithMaxRetries(0)).GetLists(ctx)
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), apiKey) {
				t.Fatalf("case %d: error chain shows the key: %v", i, e)
			}
		}
	}
	var apiErr *unisender.APIError
	if !errors.As(errs[0], &apiErr) || !strings.Contains(apiErr.Message, "[redacted]") {
		t.Fatalf("echoed key not redacted: %v", errs[0])
	}

	stats := e.emu.Stats()
	for _, r := range stats.Requests {
		if r.KeyInURL || strings.Contains(r.URL, apiKey) {
			t.Fatalf("request %+v carried the key in its URL", r)
		}
	}
	dump, _ := json.Marshal(stats)
	if strings.Contains(string(dump), apiKey) {
		t.Fatal("the emulator's request log holds the key")
	}
}
