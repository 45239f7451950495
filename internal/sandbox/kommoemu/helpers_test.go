package kommoemu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
)

// newFakeClock is business time the test moves by hand.
func newFakeClock() *sandboxtest.Clock {
	return sandboxtest.NewClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
}

// env is an emulator behind a real HTTP server with one account, "acme".
type env struct {
	emu  *kommoemu.Server
	srv  *httptest.Server
	base string // account base URL
}

const (
	clientID     = "integration-1"
	clientSecret = "s3cr3t-client-secret"
	redirectURI  = "https://operator.example/oauth/callback"
)

func newEnv(t *testing.T, opts kommoemu.Options) *env {
	t.Helper()
	if opts.RateLimit == 0 {
		opts.RateLimit = -1 // most tests are not about the rate limit
	}
	emu, srv := sandboxtest.Kommo(t, opts)
	if _, err := emu.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterClient(clientID, clientSecret, redirectURI); err != nil {
		t.Fatal(err)
	}
	return &env{emu: emu, srv: srv, base: srv.URL + "/_acct/acme"}
}

// token issues a long-lived token of acme.
func (e *env) token(t *testing.T) string {
	t.Helper()
	tok, err := e.emu.IssueLongLivedToken("acme", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with an optional bearer token and JSON body.
func (e *env) do(t *testing.T, method, url, token string, body any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

func decode[T any](t *testing.T, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decoding %q: %v", a.body, err)
	}
	return v
}

type problemBody struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Hint   string `json:"hint"`
}
