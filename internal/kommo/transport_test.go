package kommo_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// The client's pace holds where Kommo counts it: no 1-second window of the
// emulator's request log holds more than the configured rate, though four
// goroutines share the client and the machine may stall any of them. With
// burst b the bound is b·⌈rate/b⌉, which is the rate itself here.
func TestRateLimitAdherence(t *testing.T) {
	for _, burst := range []int{1, 4} {
		t.Run(fmt.Sprintf("burst%d", burst), func(t *testing.T) {
			t.Parallel()
			const rps, calls = 20, 50
			e := newEmu(t, kommoemu.Options{})
			c := e.client(t, kommo.WithRateLimit(rps, burst))
			var wg sync.WaitGroup
			errs := make(chan error, calls)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < calls; i += 4 {
						if _, err := c.Account(context.Background()); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			log := e.emu.RequestLog()
			if len(log) != calls {
				t.Fatalf("%d requests logged, want %d", len(log), calls)
			}
			if n, at := kommoemu.BusiestWindow(log, time.Second); n > rps {
				t.Errorf("%d requests within 1 s starting at %v, want at most %d", n, at, rps)
			}
		})
	}
}

// eventually polls get until it returns want or 5 s pass, and returns the
// last value.
func eventually(get func() int, want int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := get()
	for n != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		n = get()
	}
	return n
}

func TestTooManyRequestsStormIsBackedOff(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t, kommo.WithMaxRetries(5))
	e.emu.Force429(4)
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatalf("after a 4×429 storm: %v", err)
	}
	if n := e.requests("GET /api/v4/account"); n != 5 {
		t.Errorf("%d attempts, want 5 (4 refused, 1 served)", n)
	}

	e.emu.ResetStats()
	e.emu.Force429(10)
	_, err := c.Account(context.Background())
	if !errors.Is(err, kommo.ErrRateLimited) || kommo.IsPermanent(err) {
		t.Errorf("storm past the retries: %v, want ErrRateLimited (not permanent)", err)
	}
	if n := e.requests("GET /api/v4/account"); n != 6 {
		t.Errorf("%d attempts, want 6 (1 + 5 retries)", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	e := newEmu(t, kommoemu.Options{RetryAfter: 1})
	c := e.client(t)
	e.emu.Force429(1)
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := e.emu.RequestLog()
	if len(log) != 2 {
		t.Fatalf("%d requests, want 2", len(log))
	}
	// A lower bound only: the client may never come back sooner.
	if gap := log[1].Time.Sub(log[0].Time); gap < 900*time.Millisecond {
		t.Errorf("retried after %v despite Retry-After: 1", gap)
	}
}

func TestServerErrorsAndHangsAreRetried(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t, kommo.WithTimeout(100*time.Millisecond))
	e.emu.Force5xx(2)
	e.emu.HangNext(1)
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The hung attempt is logged when the emulator notices the client left.
	if n := eventually(func() int { return e.requests("GET /api/v4/account") }, 4); n != 4 {
		t.Errorf("%d attempts, want 4 (hang, 503, 503, served)", n)
	}
	e.emu.SetErrorRate(1)
	_, err := e.client(t, kommo.WithMaxRetries(2)).Account(context.Background())
	if !errors.Is(err, kommo.ErrServer) {
		t.Errorf("persistent 500: %v, want ErrServer", err)
	}
}

func TestContextEndsTheCall(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t)
	e.emu.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Account(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the context's deadline", err)
	}
}

// A blocked account stops the client at once: no retry, a typed permanent
// error, and none of the HTML page in the message.
func TestBlockedAccountStopsAtOnce(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t)
	if err := e.emu.SetBlocked("acme", true); err != nil {
		t.Fatal(err)
	}
	_, err := c.Account(context.Background())
	if !errors.Is(err, kommo.ErrAccountBlocked) || !kommo.IsPermanent(err) {
		t.Fatalf("err %v, want permanent ErrAccountBlocked", err)
	}
	var apiErr *kommo.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Fatalf("err %#v, want *APIError with status 403", err)
	}
	if msg := err.Error(); strings.ContainsAny(msg, "<>") || strings.Contains(msg, "dataLayer") || len(msg) > 300 {
		t.Errorf("error carries the page: %q", msg)
	}
	if n := e.requests("GET /api/v4/account"); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestUnauthorizedIsNotRetried(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t, kommo.WithTokenSource(kommo.StaticToken("not-a-token")))
	_, err := c.Account(context.Background())
	if !errors.Is(err, kommo.ErrUnauthorized) || kommo.IsPermanent(err) {
		t.Errorf("err %v, want ErrUnauthorized, not permanent", err)
	}
	if n := e.requests("GET /api/v4/account"); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// The client refuses a next link to another host: the bearer token must
// not follow it.
func TestForeignNextLinkIsRefused(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	_ = e.emu.SeedContacts("acme", 3)
	// The emulator builds links from the Host header; a request that
	// names another host gets links to that host.
	c := e.client(t, kommo.WithHTTPClient(&http.Client{Transport: hostRewriter{e.srv.Client().Transport, "evil.example"}}),
		kommo.WithRateLimit(0, 1))
	err := c.ListContacts(context.Background(), kommo.ListContactsOptions{Limit: 1}, func([]kommo.Contact) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "another host") {
		t.Errorf("err %v, want a refusal to follow the link", err)
	}
}

// hostRewriter sends requests with another Host header (the emulator
// still routes them by the /_acct/ prefix).
type hostRewriter struct {
	rt   http.RoundTripper
	host string
}

func (h hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = h.host
	return h.rt.RoundTrip(r)
}
