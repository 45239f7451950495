package kommoemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// oauthClient is a registered integration.
type oauthClient struct {
	secret      string
	redirectURI string
}

type authCode struct {
	clientID string
	account  *account
	expires  time.Time
	used     bool
}

// grant is one issued token pair (or a long-lived token, with no refresh
// token). Rotation links pairs: refreshing pair P issues pair N with
// N.prev = P. P's refresh token stays usable (the grace for a lost answer)
// until N is first used, by an API call with N's access token or a refresh
// with N's refresh token; then P's refresh token is revoked for good.
type grant struct {
	account        *account
	clientID       string
	access         string
	refresh        string // "" for a long-lived token
	accessExpires  time.Time
	refreshExpires time.Time
	accessRevoked  bool
	refreshRevoked bool
	used           bool
	prev, next     *grant
}

type oauthState struct {
	clients map[string]oauthClient
	codes   map[string]*authCode
	access  map[string]*grant
	refresh map[string]*grant
}

func newOAuthState() oauthState {
	return oauthState{
		clients: map[string]oauthClient{},
		codes:   map[string]*authCode{},
		access:  map[string]*grant{},
		refresh: map[string]*grant{},
	}
}

// RegisterClient registers (or re-registers) an integration. Integrations
// are global, as on Kommo: one client id can be installed in any account.
func (s *Server) RegisterClient(clientID, clientSecret, redirectURI string) error {
	if clientID == "" || clientSecret == "" || redirectURI == "" {
		return errors.New("kommoemu: client id, secret and redirect URI are all required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.clients[clientID] = oauthClient{secret: clientSecret, redirectURI: redirectURI}
	return nil
}

// IssueAuthCode issues an authorization code of the account for the
// integration, as the consent screen would. It expires after 20 minutes of
// Options.Clock and works once.
func (s *Server) IssueAuthCode(subdomain, clientID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return "", err
	}
	if _, ok := s.oauth.clients[clientID]; !ok {
		return "", errors.New("kommoemu: unknown client id")
	}
	code := "def50200" + randomHex(48)
	s.oauth.codes[code] = &authCode{clientID: clientID, account: a, expires: s.now().Add(AuthCodeTTL)}
	return code, nil
}

// IssueLongLivedToken issues a private integration's long-lived token: an
// access token valid for ttl with no refresh token.
func (s *Server) IssueLongLivedToken(subdomain string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errors.New("kommoemu: a long-lived token needs a positive lifetime")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return "", err
	}
	g := &grant{account: a, clientID: "long-lived", accessExpires: s.now().Add(ttl)}
	g.access = s.accessToken(g)
	s.oauth.access[g.access] = g
	return g.access, nil
}

// RevokeTokens revokes every token of the account, as when an admin
// disables the integration: API calls then get 401, refreshes the revoked
// hint.
func (s *Server) RevokeTokens(subdomain string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	for _, g := range s.oauth.access {
		if g.account == a {
			g.accessRevoked, g.refreshRevoked = true, true
		}
	}
	return nil
}

// issuePair creates a token pair; the caller holds s.mu.
func (s *Server) issuePair(a *account, clientID string, prev *grant) *grant {
	now := s.now()
	g := &grant{
		account: a, clientID: clientID, prev: prev,
		refresh:        "def50200" + randomHex(96),
		accessExpires:  now.Add(s.opts.AccessTokenTTL),
		refreshExpires: now.Add(s.opts.RefreshTokenTTL),
	}
	g.access = s.accessToken(g)
	s.oauth.access[g.access] = g
	s.oauth.refresh[g.refresh] = g
	if prev != nil {
		prev.next = g
	}
	return g
}

// markUsed records the first use of a pair, which ends the grace of the
// refresh token it replaced.
func (g *grant) markUsed() {
	if g.used {
		return
	}
	g.used = true
	if g.prev != nil {
		g.prev.refreshRevoked = true
	}
}

// accessToken shapes an access token like Kommo's: a JWT carrying the
// account and client. Its signature is random; nothing here checks it.
func (s *Server) accessToken(g *grant) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"RS256"}`))
	claims, _ := json.Marshal(map[string]any{
		"aud": g.clientID, "jti": randomHex(20), "iat": s.now().Unix(), "nbf": s.now().Unix(),
		"exp": g.accessExpires.Unix(), "sub": "0", "account_id": g.account.ID,
		"api_domain": "api-c.kommo.com", "scopes": []string{"crm", "notifications"},
	})
	return header + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(randomBytes(64))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("kommoemu: crypto/rand: %v", err)) // cannot happen on supported platforms
	}
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
