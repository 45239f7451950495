// Package unisenderemu emulates the Unisender e-mail marketing API
// (api.unisender.com) as an in-process http.Handler, following
// docs/unisender-api.md ("the reference" below): API keys as accounts,
// lists, user fields, contacts with global and per-list statuses,
// importContacts with its 500-row limit and per-row log,
// subscribe/exclude/unsubscribe, errors inside HTTP 200, per-key rate
// limits, fault knobs and a request log.
//
// It stands in for a SaaS that tests cannot reach. Where the reference marks
// a behaviour unverified, the emulator picks one reading and documents it on
// the method concerned.
package unisenderemu

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// Default limits, per the reference.
const (
	MaxImportRows                  = 500
	MaxImportUserFields            = 50
	MaxTags                        = 10
	DefaultSubscribeLimitPerMinute = 300
	defaultMaxHang                 = 2 * time.Minute
	maxBodyBytes                   = 32 << 20
	defaultMaxLogEntries           = 100_000
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Clock stamps the request log, the rate-limit windows and contact
	// timestamps. Nil means time.Now. Added latency and hangs use real time.
	Clock func() time.Time
	// RateLimitPerMinute caps API calls per key over any 60 s; 0 = unlimited.
	RateLimitPerMinute int
	// SubscribeLimitPerMinute caps subscribe calls per key over any 60 s;
	// 0 means the documented 300, a negative value means unlimited.
	SubscribeLimitPerMinute int
	// Seed seeds the RNG behind the transient error rate; 0 means 1.
	Seed uint64
	// RoleLocalParts are the local parts importContacts rejects as role
	// addresses; nil means DefaultRoleLocalParts.
	RoleLocalParts []string
	// MaxHang bounds a hung call when the client never gives up; 0 = 2 min.
	MaxHang time.Duration
	// MaxLogEntries bounds the request log (oldest dropped); 0 = 100,000.
	MaxLogEntries int
	// HookRetryInterval spaces the attempts of a failed hook delivery;
	// 0 = DefaultHookRetryInterval (10 min).
	HookRetryInterval time.Duration
	// HookMaxAttempts failed attempts stop the hook; 0 =
	// DefaultHookMaxAttempts (24 h of attempts every 10 min).
	HookMaxAttempts int
}

// DefaultRoleLocalParts are rejected by importContacts as role addresses.
// The reference names info@, sales@ and no-reply@; the rest are the usual
// suspects of such filters.
var DefaultRoleLocalParts = []string{
	"info", "sales", "no-reply", "noreply", "admin", "support", "all",
	"abuse", "postmaster", "webmaster", "hostmaster", "mailer-daemon",
}

// Server is the emulator. Create it with New; it is safe for concurrent use.
type Server struct {
	opts  Options
	roles map[string]bool
	mux   *http.ServeMux

	mu       sync.Mutex
	accounts map[string]*account // by API key
	nextID   int64
	stats    statsState
	faults   faultState
	rng      *rand.Rand

	closeOnce sync.Once
	closed    chan struct{}

	hookOnce sync.Once     // starts the hook delivery loop
	hookWake chan struct{} // wakes it
}

// New returns an emulator with no API keys; add them with AddAPIKey.
func New(opts Options) *Server {
	if opts.SubscribeLimitPerMinute == 0 {
		opts.SubscribeLimitPerMinute = DefaultSubscribeLimitPerMinute
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.RoleLocalParts == nil {
		opts.RoleLocalParts = DefaultRoleLocalParts
	}
	if opts.MaxHang <= 0 {
		opts.MaxHang = defaultMaxHang
	}
	if opts.MaxLogEntries <= 0 {
		opts.MaxLogEntries = defaultMaxLogEntries
	}
	s := &Server{
		opts:     opts,
		roles:    make(map[string]bool),
		accounts: make(map[string]*account),
		nextID:   1000,
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		closed:   make(chan struct{}),
		stats:    newStatsState(),
	}
	for _, r := range opts.RoleLocalParts {
		s.roles[strings.ToLower(r)] = true
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/{lang}/api/{method...}", s.serveAPI)
	s.registerAdmin(s.mux)
	return s
}

// ServeHTTP serves the API under /{lang}/api/{method} and the admin API
// under /_admin/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases calls hung by HangNext so that an httptest.Server wrapping
// this handler can shut down. The emulator keeps serving afterwards, without
// hangs.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

func (s *Server) now() time.Time {
	if s.opts.Clock != nil {
		return s.opts.Clock()
	}
	return time.Now()
}

// apiError is an error answered inside HTTP 200, as Unisender does.
type apiError struct {
	Code    string
	Message string
}

func errInvalidArg(msg string) *apiError { return &apiError{Code: "invalid_arg", Message: msg} }

var validLangs = map[string]bool{"en": true, "ru": true, "it": true, "ua": true}

// serveAPI runs one API call: record it, apply the fault knobs, then
// authenticate, rate-limit and dispatch.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if !validLangs[r.PathValue("lang")] || (r.Method != http.MethodPost && r.Method != http.MethodGet) {
		http.NotFound(w, r)
		return
	}
	method := r.PathValue("method")
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	parseErr := r.ParseForm()
	rec := s.record(r, method)

	status, body := s.answer(r.Context(), method, r.Form, parseErr)
	s.finish(rec, status, body)
	if status == 0 { // the client went away during a hang
		return
	}
	writeAnswer(w, status, body)
}

// answer decides the reply: an HTTP status and a body (an envelope, or nil
// for a bare status). Status 0 means nobody is listening any more.
func (s *Server) answer(ctx context.Context, method string, form formValues, parseErr error) (int, any) {
	status, body, faulted, after := s.applyFaults(ctx)
	if faulted {
		return status, body
	}
	if parseErr != nil {
		return http.StatusOK, errorEnvelope(errInvalidArg("cannot parse request body"))
	}
	result, aerr := s.call(method, form)
	if after != nil {
		return after.answer()
	}
	if aerr != nil {
		return http.StatusOK, errorEnvelope(aerr)
	}
	return http.StatusOK, map[string]any{"result": result}
}

// call authenticates, rate-limits and runs the method under the state lock.
func (s *Server) call(method string, form formValues) (any, *apiError) {
	handler, known := methods[method]
	s.mu.Lock()
	defer s.mu.Unlock()
	acct := s.accounts[form.Get("api_key")]
	if acct == nil {
		return nil, &apiError{Code: "invalid_api_key", Message: "AK100310-02"}
	}
	if !known {
		return nil, &apiError{Code: "unknown_method", Message: "Unknown method: " + truncate.Text(method, 60)}
	}
	if aerr := s.admit(acct, method); aerr != nil {
		return nil, aerr
	}
	return handler(s, acct, form)
}

func errorEnvelope(e *apiError) map[string]any {
	return map[string]any{"error": e.Message, "code": e.Code}
}

func writeAnswer(w http.ResponseWriter, status int, body any) {
	if body == nil {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
