package kommo_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
)

const (
	clientID     = "integration-1"
	clientSecret = "client-secret-Xq9vT2"
	redirectURI  = "https://operator.example/oauth/callback"
)

var creds = kommo.OAuthCredentials{ClientID: clientID, ClientSecret: clientSecret, RedirectURI: redirectURI}

// emuEnv is the Kommo emulator behind a real HTTP server, with account
// "acme" and a registered integration.
type emuEnv struct {
	emu  *kommoemu.Server
	srv  *httptest.Server
	base string // the account's base URL, what a KommoIntegration would name
}

func newEmu(t testing.TB, opts kommoemu.Options) *emuEnv {
	t.Helper()
	if opts.RateLimit == 0 {
		opts.RateLimit = -1 // the client's own limiter is under test where it matters
	}
	emu, srv := sandboxtest.Kommo(t, opts)
	if _, err := emu.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterClient(clientID, clientSecret, redirectURI); err != nil {
		t.Fatal(err)
	}
	return &emuEnv{emu: emu, srv: srv, base: srv.URL + "/_acct/acme"}
}

// longLived issues a long-lived token of acme.
func (e *emuEnv) longLived(t testing.TB) string {
	t.Helper()
	tok, err := e.emu.IssueLongLivedToken("acme", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client returns a fast client for tests: no rate limit unless given,
// millisecond backoff.
func (e *emuEnv) client(t testing.TB, opts ...kommo.Option) *kommo.Client {
	t.Helper()
	base := []kommo.Option{
		kommo.WithHTTPClient(e.srv.Client()),
		kommo.WithRateLimit(0, 1),
		kommo.WithBackoff(time.Millisecond, 5*time.Millisecond),
		kommo.WithTokenSource(kommo.StaticToken(e.longLived(t))),
	}
	return kommo.NewClient(e.base, append(base, opts...)...)
}

// requests counts logged requests to a route.
func (e *emuEnv) requests(route string) int {
	return e.emu.Stats().Requests[route]
}
