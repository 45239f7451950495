package kommoemu_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

type tokenAnswer struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ServerTime   int64  `json:"server_time"`
}

func (e *env) exchange(t *testing.T, code string) answer {
	t.Helper()
	return e.do(t, "POST", e.base+"/oauth2/access_token", "", map[string]string{
		"client_id": clientID, "client_secret": clientSecret, "grant_type": "authorization_code",
		"code": code, "redirect_uri": redirectURI,
	})
}

func (e *env) refresh(t *testing.T, refreshToken string) answer {
	t.Helper()
	return e.do(t, "POST", e.base+"/oauth2/access_token", "", map[string]string{
		"client_id": clientID, "client_secret": clientSecret, "grant_type": "refresh_token",
		"refresh_token": refreshToken, "redirect_uri": redirectURI,
	})
}

func (e *env) firstPair(t *testing.T) tokenAnswer {
	t.Helper()
	code, err := e.emu.IssueAuthCode("acme", clientID)
	if err != nil {
		t.Fatal(err)
	}
	a := e.exchange(t, code)
	if a.status != http.StatusOK {
		t.Fatalf("code exchange: HTTP %d %s", a.status, a.body)
	}
	return decode[tokenAnswer](t, a)
}

func wantHint(t *testing.T, a answer, status int, hint string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("HTTP %d %s, want %d", a.status, a.body, status)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	if p := decode[problemBody](t, a); p.Hint != hint {
		t.Errorf("hint %q, want %q", p.Hint, hint)
	}
}

func TestCodeExchangeIssuesAWorkingPair(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, kommoemu.Options{Clock: clock.Now, AccessTokenTTL: time.Hour})
	pair := e.firstPair(t)
	if pair.TokenType != "Bearer" || pair.ExpiresIn != 3600 || pair.AccessToken == "" || pair.RefreshToken == "" {
		t.Fatalf("pair %+v", pair)
	}
	if pair.ServerTime != clock.Now().Unix() {
		t.Errorf("server_time %d, want the clock's %d", pair.ServerTime, clock.Now().Unix())
	}
	if a := e.do(t, "GET", e.base+"/api/v4/account", pair.AccessToken, nil); a.status != http.StatusOK {
		t.Fatalf("account with the new token: HTTP %d %s", a.status, a.body)
	}
	clock.Advance(time.Hour)
	if a := e.do(t, "GET", e.base+"/api/v4/account", pair.AccessToken, nil); a.status != http.StatusUnauthorized {
		t.Fatalf("account with an expired token: HTTP %d, want 401", a.status)
	}
	if got := e.emu.Stats().CodeExchanges; got != 1 {
		t.Errorf("CodeExchanges %d, want 1", got)
	}
}

func TestAuthCodeExpiresAfter20MinutesAndWorksOnce(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, kommoemu.Options{Clock: clock.Now})
	early, _ := e.emu.IssueAuthCode("acme", clientID)
	late, _ := e.emu.IssueAuthCode("acme", clientID)

	clock.Advance(20*time.Minute - time.Second)
	if a := e.exchange(t, early); a.status != http.StatusOK {
		t.Fatalf("code at 19m59s: HTTP %d %s", a.status, a.body)
	}
	wantHint(t, e.exchange(t, early), http.StatusBadRequest, "Authorization code has been revoked")

	clock.Advance(time.Second)
	wantHint(t, e.exchange(t, late), http.StatusBadRequest, "Authorization code has expired")
	wantHint(t, e.exchange(t, "def50200unknown"), http.StatusBadRequest, "Cannot decrypt the authorization code")
}

func TestTokenEndpointRefusesBadClientAndRedirect(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	code, _ := e.emu.IssueAuthCode("acme", clientID)
	body := func(secret, redirect string) map[string]string {
		return map[string]string{"client_id": clientID, "client_secret": secret, "grant_type": "authorization_code",
			"code": code, "redirect_uri": redirect}
	}
	url := e.base + "/oauth2/access_token"

	a := e.do(t, "POST", url, "", body("wrong", redirectURI))
	if p := decode[problemBody](t, a); a.status != http.StatusUnauthorized || p.Detail != "Client authentication failed" {
		t.Errorf("wrong secret: HTTP %d %s", a.status, a.body)
	}
	wantHint(t, e.do(t, "POST", url, "", body(clientSecret, "")), http.StatusBadRequest, "Check the `redirect_uri` parameter")
	a = e.do(t, "POST", url, "", body(clientSecret, "https://elsewhere.example/cb"))
	if a.status != http.StatusBadRequest {
		t.Errorf("wrong redirect_uri: HTTP %d", a.status)
	}
	// None of the refusals consumed the code.
	if a := e.exchange(t, code); a.status != http.StatusOK {
		t.Errorf("code after refusals: HTTP %d %s", a.status, a.body)
	}
}

// A refresh token rotates: the old one keeps working while the new pair is
// unused (a lost answer can be retried), and is refused for good once the
// new pair is used.
func TestRefreshTokenRotationGraceAndReuse(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	p1 := e.firstPair(t)

	a := e.refresh(t, p1.RefreshToken)
	if a.status != http.StatusOK {
		t.Fatalf("first refresh: HTTP %d %s", a.status, a.body)
	}
	lost := decode[tokenAnswer](t, a)
	if lost.RefreshToken == p1.RefreshToken || lost.AccessToken == p1.AccessToken {
		t.Fatal("refresh did not rotate the pair")
	}

	// The answer was "lost": the old refresh token still works, and the
	// pair nobody received is dropped.
	a = e.refresh(t, p1.RefreshToken)
	if a.status != http.StatusOK {
		t.Fatalf("refresh in grace: HTTP %d %s", a.status, a.body)
	}
	p2 := decode[tokenAnswer](t, a)
	if a := e.do(t, "GET", e.base+"/api/v4/account", lost.AccessToken, nil); a.status != http.StatusUnauthorized {
		t.Errorf("access token of the superseded pair: HTTP %d, want 401", a.status)
	}
	wantHint(t, e.refresh(t, lost.RefreshToken), http.StatusUnauthorized, "Token has been revoked")

	// Using the new pair ends the grace of the old refresh token.
	if a := e.do(t, "GET", e.base+"/api/v4/account", p2.AccessToken, nil); a.status != http.StatusOK {
		t.Fatalf("account with the new pair: HTTP %d %s", a.status, a.body)
	}
	wantHint(t, e.refresh(t, p1.RefreshToken), http.StatusUnauthorized, "Token has been revoked")

	// The chain goes on from the new refresh token, and refreshing with it
	// also ends the grace of its predecessor.
	a = e.refresh(t, p2.RefreshToken)
	if a.status != http.StatusOK {
		t.Fatalf("refresh with the new token: HTTP %d %s", a.status, a.body)
	}
	p3 := decode[tokenAnswer](t, a)
	if a := e.refresh(t, p3.RefreshToken); a.status != http.StatusOK {
		t.Fatalf("refresh with p3: HTTP %d", a.status)
	}
	wantHint(t, e.refresh(t, p2.RefreshToken), http.StatusUnauthorized, "Token has been revoked")

	st := e.emu.Stats()
	if st.Refreshes != 4 || st.GraceRefreshes != 1 || st.ReusedRefreshTokens != 3 {
		t.Errorf("stats: refreshes %d grace %d reused %d, want 4, 1, 3", st.Refreshes, st.GraceRefreshes, st.ReusedRefreshTokens)
	}
}

func TestRefreshTokenExpires(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, kommoemu.Options{Clock: clock.Now, RefreshTokenTTL: 48 * time.Hour})
	p := e.firstPair(t)
	clock.Advance(48 * time.Hour)
	wantHint(t, e.refresh(t, p.RefreshToken), http.StatusUnauthorized, "Token has expired")
}

func TestTokensAreBoundToTheirAccount(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	if _, err := e.emu.AddAccount("other"); err != nil {
		t.Fatal(err)
	}
	tok := e.token(t)
	if a := e.do(t, "GET", e.srv.URL+"/_acct/other/api/v4/account", tok, nil); a.status != http.StatusUnauthorized {
		t.Errorf("acme's token on other: HTTP %d, want 401", a.status)
	}
	if a := e.do(t, "GET", e.base+"/api/v4/account", "", nil); a.status != http.StatusUnauthorized {
		t.Errorf("no token: HTTP %d, want 401", a.status)
	}
	if err := e.emu.RevokeTokens("acme"); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, "GET", e.base+"/api/v4/account", tok, nil); a.status != http.StatusUnauthorized {
		t.Errorf("revoked token: HTTP %d, want 401", a.status)
	}
}
