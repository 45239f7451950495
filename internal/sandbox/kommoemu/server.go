// Package kommoemu emulates Kommo's (amoCRM's) API as an in-process
// http.Handler, following docs/kommo-api.md and docs/kommo-webhooks.md ("the
// reference" below): accounts, contacts and companies with custom fields,
// the OAuth token endpoint with rotating refresh tokens, HAL pages that end
// with 204, the webhook registry and webhook delivery, a per-account rate
// limit that turns into a 403 block when abused, fault knobs and a request
// log.
//
// # Addressing accounts
//
// One handler serves every account. A request names its account by a path
// prefix: a client for account "acme" uses the base URL
// <emulator URL>/_acct/acme, so the token endpoint is
// <emulator URL>/_acct/acme/oauth2/access_token and the API is under
// <emulator URL>/_acct/acme/api/v4/…, exactly as on acme.kommo.com. Without
// the prefix, the first label of the Host header names the account
// (acme.localhost:8080), as on Kommo itself. Links in answers (_links.next)
// are absolute and keep the form the request used.
//
// The admin API is under /_admin/ (see admin.go); it has no authentication:
// the emulator is for tests and local development only.
//
// # Clocks
//
// Options.Clock drives business time: code and token lifetimes, created_at
// and updated_at, and the webhook failure window. The request log, the rate
// limit and the block window use wall time, because clients pace themselves
// in wall time.
package kommoemu

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Defaults, per the reference where it has one.
const (
	DefaultAccessTokenTTL       = 24 * time.Hour
	DefaultRefreshTokenTTL      = 90 * 24 * time.Hour
	AuthCodeTTL                 = 20 * time.Minute
	DefaultRateLimit            = 7
	DefaultBlockWindow          = time.Minute
	DefaultWebhookTimeout       = 2 * time.Second
	DefaultWebhookMaxFailures   = 100
	DefaultWebhookFailureWindow = 2 * time.Hour
	DefaultWebhookMaxBatch      = 50
	DefaultContactsPageLimit    = 50
	MaxContactsPageLimit        = 250
	defaultMaxHang              = 2 * time.Minute
	defaultMaxLogEntries        = 100_000
	maxBodyBytes                = 1 << 20
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Clock is business time (see the package doc); nil means time.Now.
	Clock func() time.Time
	// AccessTokenTTL is the lifetime of OAuth access tokens; 0 = 24 h.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of refresh tokens; 0 = 90 days.
	RefreshTokenTTL time.Duration
	// RateLimit is requests per second per account (burst: the same number,
	// at least 1); 0 means DefaultRateLimit, a negative value unlimited.
	RateLimit float64
	// BlockAfter429s blocks an account once it has drawn this many
	// rate-limit 429s within BlockWindow; from then on every request of the
	// account gets 403 with an HTML page. 0 never blocks.
	BlockAfter429s int
	// BlockWindow is the window of BlockAfter429s; 0 = 1 min.
	BlockWindow time.Duration
	// RetryAfter, if positive, is sent as Retry-After (seconds) on 429.
	// Whether Kommo sends it is unverified, so the default sends none.
	RetryAfter int
	// NextOnFullPage makes contact pages carry _links.next whenever the page
	// is full, so a listing whose size is a multiple of the limit ends with a
	// 204 page. Off, next appears only when more contacts follow. Which one
	// Kommo does is unverified; clients must handle both.
	NextOnFullPage bool
	// OmitOldPipelineID leaves old_pipeline_id out of status_lead
	// deliveries of a lead moved to another pipeline: whether Kommo sends it
	// is unverified, and the sync must not need it.
	OmitOldPipelineID bool
	// WebhookTimeout bounds each delivery; 0 = 2 s.
	WebhookTimeout time.Duration
	// WebhookBatchWindow collects changes for this long after the first one
	// and delivers them together (several contacts per request); 0 sends
	// whatever is queued at once.
	WebhookBatchWindow time.Duration
	// WebhookMaxBatch caps the events in one delivery; 0 = 50.
	WebhookMaxBatch int
	// WebhookMaxFailures disables a hook when its failures within
	// WebhookFailureWindow exceed it; 0 = 100.
	WebhookMaxFailures int
	// WebhookFailureWindow is the failure-counting window; 0 = 2 h.
	WebhookFailureWindow time.Duration
	// HTTPClient sends deliveries; nil means a plain client.
	HTTPClient *http.Client
	// Seed seeds the RNG behind the error rate and SeedContacts; 0 means 1.
	Seed uint64
	// MaxHang bounds a hung request when the client never gives up; 0 = 2 min.
	MaxHang time.Duration
	// MaxLogEntries bounds the request log (oldest dropped); 0 = 100,000.
	MaxLogEntries int
}

func (o *Options) setDefaults() {
	setDefault(&o.AccessTokenTTL, DefaultAccessTokenTTL)
	setDefault(&o.RefreshTokenTTL, DefaultRefreshTokenTTL)
	setDefault(&o.RateLimit, DefaultRateLimit)
	setDefault(&o.BlockWindow, DefaultBlockWindow)
	setDefault(&o.WebhookTimeout, DefaultWebhookTimeout)
	setDefault(&o.WebhookMaxBatch, DefaultWebhookMaxBatch)
	setDefault(&o.WebhookMaxFailures, DefaultWebhookMaxFailures)
	setDefault(&o.WebhookFailureWindow, DefaultWebhookFailureWindow)
	setDefault(&o.Seed, 1)
	setDefault(&o.MaxHang, defaultMaxHang)
	setDefault(&o.MaxLogEntries, defaultMaxLogEntries)
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Server is the emulator. Create it with New and stop it with Close; it is
// safe for concurrent use.
type Server struct {
	opts  Options
	admin *http.ServeMux

	mu       sync.Mutex
	accounts map[string]*account // by subdomain
	oauth    oauthState
	nextID   int64 // contacts, companies, hooks, tags: one sequence, like Kommo's large ids
	stats    statsState
	faults   faultState
	rng      *rand.Rand

	ctx     context.Context // ends at Close: stops deliveries and hangs
	stop    context.CancelFunc
	workers sync.WaitGroup
}

// New returns an emulator with no accounts; add them with AddAccount.
func New(opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:     opts,
		accounts: make(map[string]*account),
		oauth:    newOAuthState(),
		nextID:   5_100_000,
		stats:    newStatsState(),
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)), //nolint:gosec // test data, not secrets
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.admin = http.NewServeMux()
	s.registerAdmin(s.admin)
	return s
}

// Close stops webhook delivery (queued deliveries are dropped) and releases
// hung requests, then waits for the delivery workers to finish.
func (s *Server) Close() {
	s.stop()
	s.workers.Wait()
}

func (s *Server) now() time.Time { return s.opts.Clock() }

func (s *Server) newID() int64 {
	s.nextID++
	return s.nextID
}
