package kommoemu

import (
	"net/http"
	"strings"
)

// authenticate checks the bearer token of an API call against the account
// and answers 401 if it does not hold. A good token counts as the first use
// of its pair (ending the grace of the refresh token before it). The
// caller must not hold s.mu.
func (s *Server) authenticate(w http.ResponseWriter, r *request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", "an Authorization: Bearer header is required", "")
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.oauth.access[strings.TrimSpace(token)]
	switch {
	case g == nil || g.account != r.acct:
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", "the access token is not valid for this account", "")
	case g.accessRevoked:
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", "the access token has been revoked", "")
	case !s.now().Before(g.accessExpires):
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", "the access token has expired", "")
	default:
		g.markUsed()
		return true
	}
	return false
}
