package kommo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

func fixedClock() func() time.Time {
	t := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return t }
}

func (e *emuEnv) code(t *testing.T) string {
	t.Helper()
	code, err := e.emu.IssueAuthCode("acme", clientID)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestExchangeCodeThenUseTheToken(t *testing.T) {
	now := fixedClock()
	e := newEmu(t, kommoemu.Options{AccessTokenTTL: 6 * time.Hour})
	c := e.client(t, kommo.WithClock(now))
	tok, err := c.ExchangeCode(context.Background(), creds, e.code(t))
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 6*3600 || !tok.ExpiresAt.Equal(now().Add(6*time.Hour)) ||
		tok.RefreshToken == "" || tok.ServerTime == 0 {
		t.Errorf("token %+v", tok)
	}
	acct, err := e.client(t, kommo.WithTokenSource(kommo.StaticToken(tok.AccessToken))).Account(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if acct.Subdomain != "acme" || acct.ID == 0 {
		t.Errorf("account %+v", acct)
	}
}

func TestExchangeCodeRefusals(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t)
	code := e.code(t)

	wrongSecret := creds
	wrongSecret.ClientSecret = "guessed"
	if _, err := c.ExchangeCode(context.Background(), wrongSecret, code); !errors.Is(err, kommo.ErrInvalidClient) || !kommo.IsPermanent(err) {
		t.Errorf("wrong secret: %v, want permanent ErrInvalidClient", err)
	}
	wrongRedirect := creds
	wrongRedirect.RedirectURI = "https://elsewhere.example/cb"
	if _, err := c.ExchangeCode(context.Background(), wrongRedirect, code); !errors.Is(err, kommo.ErrInvalidClient) {
		t.Errorf("wrong redirect_uri: %v, want ErrInvalidClient", err)
	}
	if _, err := c.ExchangeCode(context.Background(), creds, code); err != nil {
		t.Fatalf("good exchange after refusals: %v", err)
	}
	if _, err := c.ExchangeCode(context.Background(), creds, code); !errors.Is(err, kommo.ErrInvalidGrant) || !kommo.IsPermanent(err) {
		t.Errorf("used code: %v, want permanent ErrInvalidGrant", err)
	}
	if n := e.requests("POST /oauth2/access_token"); n != 4 {
		t.Errorf("%d token requests, want 4 (refusals are not retried)", n)
	}
}

// Refresh rotates the pair; once the new pair is used, the old refresh
// token is revoked and using it again surfaces as ErrTokenRevoked.
func TestRefreshWithAUsedTokenIsRevoked(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t)
	first, err := c.ExchangeCode(context.Background(), creds, e.code(t))
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Refresh(context.Background(), creds, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if _, err := e.client(t, kommo.WithTokenSource(kommo.StaticToken(second.AccessToken))).Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(context.Background(), creds, first.RefreshToken)
	if !errors.Is(err, kommo.ErrTokenRevoked) || !kommo.IsPermanent(err) {
		t.Fatalf("reused refresh token: %v, want permanent ErrTokenRevoked", err)
	}
	var apiErr *kommo.APIError
	if !errors.As(err, &apiErr) || apiErr.Hint != "Token has been revoked" {
		t.Errorf("APIError %+v, want the revoked hint", apiErr)
	}
	if got := e.emu.Stats().ReusedRefreshTokens; got != 1 {
		t.Errorf("emulator counted %d reused refresh tokens, want 1", got)
	}
	if _, err := c.Refresh(context.Background(), creds, second.RefreshToken); err != nil {
		t.Errorf("the current refresh token: %v", err)
	}
}
