package webhookserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// corsPolicy lets the Kommo widget, running in the account's pages, call
// the widget routes from the browser. The token travels in a header, not a
// cookie, so credentials are never allowed.
type corsPolicy struct {
	exact    map[string]bool
	suffixes []originSuffix
}

// originSuffix is a "scheme://*.domain" pattern.
type originSuffix struct {
	scheme string
	suffix string // ".domain"
}

const (
	corsAllowHeaders = "X-Auth-Token, Content-Type"
	corsAllowMethods = "GET, POST, OPTIONS"
	corsMaxAge       = "600"
)

func newCORSPolicy(patterns []string) (corsPolicy, error) {
	p := corsPolicy{exact: map[string]bool{}}
	for _, raw := range patterns {
		pat := strings.ToLower(strings.TrimSpace(raw))
		if pat == "" {
			continue
		}
		scheme, host, ok := strings.Cut(pat, "://")
		if !ok || (scheme != "https" && scheme != "http") || host == "" || strings.ContainsAny(host, "/?#@") {
			return corsPolicy{}, fmt.Errorf("allowed origin %q: want scheme://host[:port] or scheme://*.domain", raw)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.ContainsAny(rest, "*:") || !strings.Contains(rest, ".") {
				return corsPolicy{}, fmt.Errorf("allowed origin %q: a wildcard needs a domain of at least two labels and no port", raw)
			}
			p.suffixes = append(p.suffixes, originSuffix{scheme: scheme, suffix: "." + rest})
			continue
		}
		if strings.Contains(host, "*") {
			return corsPolicy{}, fmt.Errorf("allowed origin %q: '*' is allowed only as the first label", raw)
		}
		p.exact[scheme+"://"+host] = true
	}
	return p, nil
}

// allows reports whether a request's Origin header is allowed.
func (p corsPolicy) allows(origin string) bool {
	if origin == "" {
		return false
	}
	origin = strings.ToLower(origin)
	if p.exact[origin] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Port() != "" {
		return false
	}
	for _, s := range p.suffixes {
		if u.Scheme != s.scheme {
			continue
		}
		sub, ok := strings.CutSuffix(u.Host, s.suffix)
		if ok && validSubdomain(sub) {
			return true
		}
	}
	return false
}

// validSubdomain: one or more DNS labels of letters, digits and hyphens.
func validSubdomain(s string) bool {
	if s == "" {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// wrap adds the CORS answer headers for allowed origins. A request from
// another origin is still served (browsers never send one: the custom
// header forces a preflight, which is refused), but the browser will not
// let the page read the answer.
func (p corsPolicy) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); p.allows(origin) {
			w.Header().Set("Access-Control-Allow-Origin", origin)
		}
		h.ServeHTTP(w, r)
	})
}

// preflight answers OPTIONS: 204 with the grants for an allowed origin,
// 403 otherwise.
func (p corsPolicy) preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if !p.allows(origin) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}
