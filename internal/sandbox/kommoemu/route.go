package kommoemu

import (
	"context"
	"net/http"
	"strings"
	"time"
)

const acctPrefix = "/_acct/"

// request is what a handler knows about the call it serves.
type request struct {
	*http.Request
	acct *account
	path string // path below the account prefix: /api/v4/contacts
	base string // absolute URL of the account root, for links: http://host/_acct/acme
}

type handlerFunc func(s *Server, w http.ResponseWriter, r *request)

// route finds the handler of an account path; the name is the key of the
// request log ("GET /api/v4/contacts/{id}").
func route(method, path string) (string, handlerFunc) {
	switch {
	case path == "/oauth2/access_token" && method == http.MethodPost:
		return "POST /oauth2/access_token", (*Server).serveToken
	case path == "/api/v4/account" && method == http.MethodGet:
		return "GET /api/v4/account", (*Server).serveAccount
	case path == "/api/v4/contacts" && method == http.MethodGet:
		return "GET /api/v4/contacts", (*Server).serveContacts
	case path == "/api/v4/contacts" && method == http.MethodPatch:
		return "PATCH /api/v4/contacts", (*Server).servePatchContacts
	case path == "/api/v4/contacts/notes" && method == http.MethodPost:
		return "POST /api/v4/contacts/notes", (*Server).serveAddNotes
	case path == contactFieldsPath && method == http.MethodGet:
		return "GET " + contactFieldsPath, (*Server).serveContactFields
	case path == contactFieldsPath && method == http.MethodPost:
		return "POST " + contactFieldsPath, (*Server).serveAddContactFields
	case strings.HasPrefix(path, "/api/v4/contacts/") && method == http.MethodGet:
		return "GET /api/v4/contacts/{id}", (*Server).serveContact
	case path == "/api/v4/leads" && method == http.MethodGet:
		return "GET /api/v4/leads", (*Server).serveLeads
	case path == "/api/v4/leads/pipelines" && method == http.MethodGet:
		return "GET /api/v4/leads/pipelines", (*Server).servePipelines
	case path == "/api/v4/webhooks" && method == http.MethodGet:
		return "GET /api/v4/webhooks", (*Server).serveListWebhooks
	case path == "/api/v4/webhooks" && method == http.MethodPost:
		return "POST /api/v4/webhooks", (*Server).serveSubscribe
	case path == "/api/v4/webhooks" && method == http.MethodDelete:
		return "DELETE /api/v4/webhooks", (*Server).serveUnsubscribe
	}
	return method + " (unknown)", nil
}

// ServeHTTP serves the admin API under /_admin/ and every account's OAuth
// and API endpoints (see the package doc for how an account is named).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_admin/") {
		s.admin.ServeHTTP(w, r)
		return
	}
	arrived := time.Now()
	sub, prefix, path := splitAccount(r)
	name, h := route(r.Method, path)
	sw := &statusWriter{ResponseWriter: w}
	defer func() { s.record(arrived, sub, r.Method, name, r.URL.RawQuery, r.UserAgent(), sw.status) }()

	s.mu.Lock()
	acct := s.accounts[sub]
	s.mu.Unlock()
	if acct == nil {
		writeProblem(sw, http.StatusNotFound, "Not found", "no such account; address it as /_acct/<subdomain>/… or by Host", "")
		return
	}
	if !s.admit(r.Context(), sw, acct) {
		return
	}
	if h == nil {
		writeProblem(sw, http.StatusNotFound, "Not found", "no such endpoint", "")
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, maxBodyBytes)
	h(s, sw, &request{Request: r, acct: acct, path: path, base: scheme(r) + "://" + r.Host + prefix})
}

// admit applies, in order, the block, the fault knobs and the rate limit.
// It answers the request itself and returns false when one of them stops it.
func (s *Server) admit(ctx context.Context, w http.ResponseWriter, acct *account) bool {
	if s.isBlocked(acct) {
		writeBlockedPage(w)
		return false
	}
	if s.applyFaults(ctx, w) {
		return false
	}
	if !s.allowRate(acct) {
		s.writeTooManyRequests(w)
		return false
	}
	return true
}

// splitAccount reads the account from the /_acct/<sub> prefix or, failing
// that, from the first label of the Host header.
func splitAccount(r *http.Request) (sub, prefix, path string) {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, acctPrefix); ok {
		sub, tail, _ := strings.Cut(rest, "/")
		return sub, acctPrefix + sub, "/" + tail
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if label, _, ok := strings.Cut(host, "."); ok {
		return label, "", p
	}
	return "", "", p
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
