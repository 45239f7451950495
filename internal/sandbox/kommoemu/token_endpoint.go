package kommoemu

import (
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
)

// Hints of the token endpoint. Kommo's OAuth server (league/oauth2-server)
// tells its refusals apart only by these.
const (
	hintRevoked         = "Token has been revoked"
	hintRefreshExpired  = "Token has expired"
	hintRefreshUnknown  = "Cannot decrypt the refresh token"
	hintRefreshClient   = "Token is not linked to client"
	hintCodeExpired     = "Authorization code has expired"
	hintCodeRevoked     = "Authorization code has been revoked"
	hintCodeUnknown     = "Cannot decrypt the authorization code"
	hintCodeClient      = "Authorization code was not issued to this client"
	hintRedirectMissing = "Check the `redirect_uri` parameter"
	hintRedirectWrong   = "redirect_uri does not match the integration's Redirect URI"
	hintGrantType       = "The authorization grant type is not supported by the authorization server"
)

type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Code         string `json:"code"`
	RefreshToken string `json:"refresh_token"`
	RedirectURI  string `json:"redirect_uri"`
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ServerTime   int64  `json:"server_time"`
}

// serveToken is POST /oauth2/access_token: JSON (or form) body, the
// authorization_code and refresh_token grants, redirect_uri required on
// both.
func (s *Server) serveToken(w http.ResponseWriter, r *request) {
	req, ok := readTokenRequest(r)
	if !ok {
		writeOAuthProblem(w, http.StatusBadRequest, "The request body is neither JSON nor a form")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.GrantType != "authorization_code" && req.GrantType != "refresh_token" {
		writeOAuthProblem(w, http.StatusBadRequest, hintGrantType)
		return
	}
	cl, known := s.oauth.clients[req.ClientID]
	if !known || subtle.ConstantTimeCompare([]byte(cl.secret), []byte(req.ClientSecret)) != 1 {
		writeInvalidClient(w)
		return
	}
	switch {
	case req.RedirectURI == "":
		writeOAuthProblem(w, http.StatusBadRequest, hintRedirectMissing)
		return
	case req.RedirectURI != cl.redirectURI:
		writeOAuthProblem(w, http.StatusBadRequest, hintRedirectWrong)
		return
	}
	var g *grant
	if req.GrantType == "authorization_code" {
		g = s.exchangeCode(w, r.acct, req)
	} else {
		g = s.refreshGrant(w, r.acct, req)
	}
	if g == nil {
		return
	}
	writeJSON(w, http.StatusOK, "application/json", tokenResponse{
		TokenType:    "Bearer",
		ExpiresIn:    int64(s.opts.AccessTokenTTL.Seconds()),
		AccessToken:  g.access,
		RefreshToken: g.refresh,
		ServerTime:   s.now().Unix(),
	})
}

func readTokenRequest(r *request) (tokenRequest, bool) {
	var req tokenRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" {
		if r.ParseForm() != nil {
			return req, false
		}
		f := r.PostForm
		return tokenRequest{ClientID: f.Get("client_id"), ClientSecret: f.Get("client_secret"),
			GrantType: f.Get("grant_type"), Code: f.Get("code"), RefreshToken: f.Get("refresh_token"),
			RedirectURI: f.Get("redirect_uri")}, true
	}
	return req, json.NewDecoder(r.Body).Decode(&req) == nil
}

// exchangeCode runs the authorization_code grant; the caller holds s.mu.
func (s *Server) exchangeCode(w http.ResponseWriter, a *account, req tokenRequest) *grant {
	c := s.oauth.codes[req.Code]
	switch {
	case c == nil:
		writeOAuthProblem(w, http.StatusBadRequest, hintCodeUnknown)
	case c.clientID != req.ClientID || c.account != a:
		writeOAuthProblem(w, http.StatusBadRequest, hintCodeClient)
	case c.used:
		writeOAuthProblem(w, http.StatusBadRequest, hintCodeRevoked)
	case !s.now().Before(c.expires):
		writeOAuthProblem(w, http.StatusBadRequest, hintCodeExpired)
	default:
		c.used = true
		s.stats.CodeExchanges++
		return s.issuePair(a, req.ClientID, nil)
	}
	return nil
}

// refreshGrant runs the refresh_token grant with rotation and grace; the
// caller holds s.mu.
func (s *Server) refreshGrant(w http.ResponseWriter, a *account, req tokenRequest) *grant {
	old := s.oauth.refresh[strings.TrimSpace(req.RefreshToken)]
	switch {
	case old == nil || old.account != a:
		writeOAuthProblem(w, http.StatusUnauthorized, hintRefreshUnknown)
		return nil
	case old.clientID != req.ClientID:
		writeOAuthProblem(w, http.StatusUnauthorized, hintRefreshClient)
		return nil
	case old.refreshRevoked:
		s.stats.ReusedRefreshTokens++
		writeOAuthProblem(w, http.StatusUnauthorized, hintRevoked)
		return nil
	case !s.now().Before(old.refreshExpires):
		writeOAuthProblem(w, http.StatusUnauthorized, hintRefreshExpired)
		return nil
	}
	if lost := old.next; lost != nil {
		// Rotated before, but its successor was never used: the answer
		// was lost. The successor is dropped and a new pair replaces it.
		lost.accessRevoked, lost.refreshRevoked = true, true
		s.stats.GraceRefreshes++
	}
	old.markUsed()
	s.stats.Refreshes++
	return s.issuePair(a, req.ClientID, old)
}
