package unisenderemu

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"time"
)

// Request is one API call as the emulator saw it. It never holds the API
// key: Tenant is a label derived from it (see TenantLabel).
type Request struct {
	Time       time.Time `json:"time"`        // arrival, by the emulator's clock
	Method     string    `json:"method"`      // API method name, e.g. importContacts
	Tenant     string    `json:"tenant"`      // TenantLabel of the key; "" if none was sent
	Rows       int       `json:"rows"`        // data rows of an importContacts call
	URL        string    `json:"url"`         // path and query, api_key value redacted
	KeyInURL   bool      `json:"key_in_url"`  // the query string carried api_key (a leak)
	HTTPStatus int       `json:"http_status"` // 0 while in flight or if the client left
	ErrorCode  string    `json:"error_code"`  // API error code answered, "" on success
}

// Stats is a snapshot of what the emulator served.
type Stats struct {
	Calls           map[string]int `json:"calls"` // per method, every call logged
	Requests        []Request      `json:"requests"`
	RevivalAttempts int            `json:"revival_attempts"` // see Server.RevivalAttempts
}

type statsState struct {
	calls    map[string]int
	requests []*Request
	revivals int
}

func newStatsState() statsState { return statsState{calls: make(map[string]int)} }

// TenantLabel is how the request log names the account of an API key: a
// short hash, so the log can be shown without leaking the key.
func TenantLabel(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return "key-" + hex.EncodeToString(sum[:6])
}

// record appends the call to the log on arrival, so that a hung call is
// visible while it hangs.
func (s *Server) record(r *http.Request, method string) *Request {
	rec := &Request{
		Time:     s.now(),
		Method:   method,
		Tenant:   TenantLabel(r.Form.Get("api_key")),
		URL:      redactedURL(r.URL),
		KeyInURL: r.URL.Query().Has("api_key"),
	}
	if method == "importContacts" {
		rec.Rows = len(matrixParam(r.Form, "data"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.calls[method]++
	s.stats.requests = append(s.stats.requests, rec)
	if over := len(s.stats.requests) - s.opts.MaxLogEntries; over > 0 {
		s.stats.requests = append([]*Request(nil), s.stats.requests[over:]...)
	}
	return rec
}

// finish stores the outcome of a logged call.
func (s *Server) finish(rec *Request, status int, body any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec.HTTPStatus = status
	if env, ok := body.(map[string]any); ok {
		if code, ok := env["code"].(string); ok {
			rec.ErrorCode = code
		}
	}
}

func redactedURL(u *url.URL) string {
	q := u.Query()
	if q.Has("api_key") {
		q.Set("api_key", "REDACTED")
	}
	if len(q) == 0 {
		return u.Path
	}
	return u.Path + "?" + q.Encode()
}

// Stats returns a copy of the call counts, the request log and the revival
// counter.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{
		Calls:           make(map[string]int, len(s.stats.calls)),
		Requests:        make([]Request, len(s.stats.requests)),
		RevivalAttempts: s.stats.revivals,
	}
	for m, n := range s.stats.calls {
		out.Calls[m] = n
	}
	for i, r := range s.stats.requests {
		out.Requests[i] = *r
	}
	return out
}

// RevivalAttempts counts calls that tried to bring back a contact that
// unsubscribed or was blocked: an import row setting email_status to another
// value, or a subscribe call for such a contact or for a list it left. The
// emulator refuses each one (the contact keeps its status); a correct sync
// never makes one, so tests assert 0.
func (s *Server) RevivalAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.revivals
}

// ResetStats clears the counts, the log and the revival counter.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStatsState()
}
