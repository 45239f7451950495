package kommo

import (
	"encoding/json"
	"net/http"
	"strings"
	"unicode"
)

// endpointKind tells classify which rules apply: the token endpoint answers
// 400/401 for dead grants, the API answers 401 for a bad access token.
type endpointKind int

const (
	endpointAPI endpointKind = iota
	endpointCodeGrant
	endpointRefreshGrant
)

// problem is Kommo's problem+json body. The OAuth endpoint is built on
// league/oauth2-server, whose plain error/error_description/message fields
// are read too in case an answer carries them.
type problem struct {
	Type             string `json:"type"`
	Title            string `json:"title"`
	Detail           string `json:"detail"`
	Hint             string `json:"hint"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Message          string `json:"message"`
}

// Bounds on server text in errors, in runes.
const (
	maxTextLen    = 200
	maxSnippetLen = 120
)

// classify turns a non-2xx answer into an *APIError. secrets are strings the
// client sent (token, client secret, code) that must not come back in the
// error even if the server echoes them.
func classify(op string, ep endpointKind, status int, body []byte, secrets []string) *APIError {
	e := &APIError{Op: op, Status: status}
	var p problem
	if json.Unmarshal(body, &p) == nil {
		e.Title = sanitize(p.Title, secrets)
		e.Detail = sanitize(firstNonEmpty(p.Detail, p.ErrorDescription, p.Message), secrets)
		e.Hint = sanitize(p.Hint, secrets)
	} else if len(body) > 0 {
		// A blocked account answers with an HTML page: keep a short, tag-free
		// snippet for the operator, never the page itself.
		e.Detail = clip(sanitize(stripTags(string(body)), secrets), maxSnippetLen)
	}
	e.Kind = kindOf(ep, status, p)
	return e
}

func kindOf(ep endpointKind, status int, p problem) ErrorKind {
	switch {
	case status == http.StatusForbidden:
		return KindAccountBlocked
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status >= 500:
		return KindServer
	case status == http.StatusNotFound:
		return KindNotFound
	case ep != endpointAPI && (status == http.StatusBadRequest || status == http.StatusUnauthorized):
		return grantKind(ep, p)
	case status == http.StatusUnauthorized:
		return KindUnauthorized
	case status >= 400:
		return KindBadRequest
	}
	return KindUnexpected
}

// grantKind reads a token-endpoint refusal. Kommo's bodies are generic
// ("invalid request") and only the hint tells the cases apart, so the rules
// are tolerant: anything that is not about the client itself means the
// grant (code or refresh token) is dead.
func grantKind(ep endpointKind, p problem) ErrorKind {
	text := strings.ToLower(strings.Join([]string{p.Error, p.Title, p.Detail, p.Hint, p.ErrorDescription, p.Message}, " "))
	if p.Error == "invalid_client" || strings.Contains(text, "client authentication failed") ||
		strings.Contains(text, "redirect_uri") || strings.Contains(text, "redirect uri") {
		return KindInvalidClient
	}
	if ep == endpointRefreshGrant {
		return KindTokenRevoked
	}
	return KindInvalidGrant
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// sanitize removes secrets and control characters, collapses whitespace and
// bounds the length of a server-supplied string before it enters an error.
func sanitize(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	return clip(s, maxTextLen)
}

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// stripTags drops HTML tags and the contents of <script> and <style>.
func stripTags(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		s = s[i:]
		lower := strings.ToLower(s)
		for _, tag := range []string{"script", "style"} {
			if strings.HasPrefix(lower, "<"+tag) {
				if end := strings.Index(lower, "</"+tag); end >= 0 {
					s, lower = s[end:], lower[end:]
				}
			}
		}
		j := strings.IndexByte(s, '>')
		if j < 0 {
			break
		}
		s = s[j+1:]
	}
	return b.String()
}
