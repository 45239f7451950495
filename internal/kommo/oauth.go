package kommo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// OAuthCredentials identify the integration at the token endpoint.
type OAuthCredentials struct {
	ClientID     string
	ClientSecret string
	RedirectURI  string // must equal the integration's Redirect URI, on refresh too
}

// Token is a token endpoint answer. Kommo rotates refresh tokens: every
// refresh returns a new RefreshToken and the caller must persist it before
// anything uses the new pair.
type Token struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	ExpiresIn    int64     // seconds, as sent
	ExpiresAt    time.Time // the client's clock at receipt + ExpiresIn
	ServerTime   int64     // unix seconds, when the server sends it
}

type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Code         string `json:"code,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	RedirectURI  string `json:"redirect_uri"`
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ServerTime   int64  `json:"server_time"`
}

const tokenPath = "/oauth2/access_token" //nolint:gosec // a URL path, not a credential

// ExchangeCode trades an authorization code (valid 20 minutes, single use)
// for the first token pair. A dead code gives ErrInvalidGrant, refused
// credentials ErrInvalidClient.
func (c *Client) ExchangeCode(ctx context.Context, creds OAuthCredentials, code string) (*Token, error) {
	req := tokenRequest{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		GrantType: "authorization_code", Code: code, RedirectURI: creds.RedirectURI}
	return c.token(ctx, req, endpointCodeGrant, "exchange authorization code", creds.ClientSecret, code)
}

// Refresh trades a refresh token for a new pair. A used, expired or revoked
// refresh token gives ErrTokenRevoked: the account must authorize again.
// Callers must never run two refreshes of one account at once.
func (c *Client) Refresh(ctx context.Context, creds OAuthCredentials, refreshToken string) (*Token, error) {
	req := tokenRequest{ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		GrantType: "refresh_token", RefreshToken: refreshToken, RedirectURI: creds.RedirectURI}
	return c.token(ctx, req, endpointRefreshGrant, "refresh token", creds.ClientSecret, refreshToken)
}

func (c *Client) token(ctx context.Context, req tokenRequest, ep endpointKind, what string, secrets ...string) (*Token, error) {
	body, err := json.Marshal(req) //nolint:gosec // the token endpoint is where the client secret must go
	if err != nil {
		return nil, fmt.Errorf("kommo: %s: encoding request: %w", what, err)
	}
	rep, err := c.do(ctx, call{method: "POST", ref: tokenPath, body: body, ep: ep, secrets: secrets})
	if err != nil {
		return nil, err
	}
	var tr tokenResponse
	if err := json.Unmarshal(rep.body, &tr); err != nil {
		return nil, fmt.Errorf("kommo: %s: decoding answer: %w", what, err)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("kommo: " + what + ": answer has no access_token")
	}
	return &Token{
		AccessToken:  tr.AccessToken,
		RefreshToken: tr.RefreshToken,
		TokenType:    tr.TokenType,
		ExpiresIn:    tr.ExpiresIn,
		ExpiresAt:    c.now().Add(time.Duration(tr.ExpiresIn) * time.Second),
		ServerTime:   tr.ServerTime,
	}, nil
}
