package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

func TestServesSeededEmulators(t *testing.T) {
	kp, _ := testenv.FreePort()
	up, _ := testenv.FreePort()
	kAddr, uAddr := fmt.Sprintf("127.0.0.1:%d", kp), fmt.Sprintf("127.0.0.1:%d", up)
	t.Setenv("SANDBOX_CLIENT_SECRET", "sandbox-secret")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--kommo-listen", kAddr, "--unisender-listen", uAddr,
			"--seed-subdomain", "acme", "--seed-contacts", "300", "--seed-client-id", "client-1",
			"--seed-redirect-uri", "https://example.com/oauth/callback", "--seed-unisender-key", "dev-key"})
	}()
	waitHTTP(t, "http://"+kAddr+"/_admin/accounts")

	var accounts []struct{ Subdomain string }
	getJSON(t, "http://"+kAddr+"/_admin/accounts", &accounts)
	if len(accounts) != 1 || accounts[0].Subdomain != "acme" {
		t.Fatalf("accounts = %+v", accounts)
	}
	var code struct{ Code string }
	resp, err := http.Post("http://"+kAddr+"/_admin/accounts/acme/codes", "application/json", strings.NewReader(`{"client_id":"client-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&code)
	resp.Body.Close()
	kc := kommo.NewClient("http://"+kAddr+"/_acct/acme", kommo.WithRateLimit(-1, 1))
	tok, err := kc.ExchangeCode(ctx, kommo.OAuthCredentials{ClientID: "client-1", ClientSecret: "sandbox-secret", RedirectURI: "https://example.com/oauth/callback"}, code.Code)
	if err != nil {
		t.Fatalf("code exchange against the seeded client: %v", err)
	}
	kc = kommo.NewClient("http://"+kAddr+"/_acct/acme", kommo.WithRateLimit(-1, 1), kommo.WithTokenSource(kommo.StaticToken(tok.AccessToken)))
	seen := 0
	if err := kc.ListContacts(ctx, kommo.ListContactsOptions{}, func(p []kommo.Contact) error { seen += len(p); return nil }); err != nil || seen != 300 {
		t.Fatalf("listed %d contacts (%v), want the 300 seeded", seen, err)
	}
	if _, err := unisender.NewClient("http://"+uAddr, "dev-key").GetLists(ctx); err != nil {
		t.Fatalf("Unisender emulator refused the seeded key: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%s never answered", url)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
