// Package kommo speaks Kommo's (amoCRM's) API: OAuth, account, contacts and
// webhook subscriptions, with a per-account rate limiter, bounded retries
// and typed errors; and it parses Kommo's webhook bodies.
//
// One Client serves one account. Its pacer bounds the requests in flight
// and their pace within one process; a Budget (WithBudget) is what bounds
// the account's rate across every process that calls it.
package kommo

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// TokenSource yields the bearer token for API calls: an OAuth access token
// kept fresh by the caller, or a long-lived token (StaticToken).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource for a long-lived token.
type StaticToken string

// Token returns the token itself.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// Defaults. Kommo allows 7 requests per second per integration.
const (
	DefaultRate          = 7
	DefaultBurst         = 1
	DefaultMaxRetries    = 5
	DefaultBackoffBase   = 500 * time.Millisecond
	DefaultBackoffCap    = 30 * time.Second
	DefaultTimeout       = 30 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
	maxBodyBytes         = 32 << 20
)

// Client calls one Kommo account. It is safe for concurrent use; all calls
// share its rate limiter.
type Client struct {
	base        *url.URL
	hc          *http.Client
	pacer       *pacer // nil: no rate limit
	budget      Budget // nil: no shared budget
	maxRetries  int
	backoffBase time.Duration
	backoffCap  time.Duration
	timeout     time.Duration
	tokens      TokenSource
	now         func() time.Time
	userAgent   string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, TLS). Its own Timeout
// should be zero or larger than WithTimeout's.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRateLimit sets requests per second and burst: how many requests may
// be in flight at once (see pacer). rps <= 0 means no limit.
func WithRateLimit(rps float64, burst int) Option {
	return func(c *Client) { c.pacer = newPacer(rps, burst) }
}

// Budget is a request budget shared with other clients of the same
// integration, in this process or others (internal/budget keeps one in
// MySQL). Take blocks until one request may be sent, or returns an error:
// the context's when it ends, or the budget's own failure, after which
// nothing is sent.
type Budget interface {
	Take(ctx context.Context) error
}

// WithBudget makes every HTTP attempt (first tries and retries, token
// endpoint calls included) take one request from b right before it is
// sent, after the pacer admitted it. nil means no shared budget.
func WithBudget(b Budget) Option { return func(c *Client) { c.budget = b } }

// WithMaxRetries bounds the retries of one call after its first attempt.
func WithMaxRetries(n int) Option { return func(c *Client) { c.maxRetries = max(n, 0) } }

// WithBackoff sets the base and the cap of the exponential backoff.
func WithBackoff(base, maxDelay time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffCap = base, maxDelay }
}

// WithTimeout bounds each HTTP attempt.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithTokenSource sets where API calls get their bearer token.
func WithTokenSource(ts TokenSource) Option { return func(c *Client) { c.tokens = ts } }

// WithClock sets the clock used to compute Token.ExpiresAt.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// NewClient returns a client for the account at baseURL, e.g.
// "https://acme.kommo.com" (or an emulator URL). A malformed baseURL makes
// every call fail with an error that says so.
func NewClient(baseURL string, opts ...Option) *Client {
	c := &Client{
		hc:          &http.Client{},
		pacer:       newPacer(DefaultRate, DefaultBurst),
		maxRetries:  DefaultMaxRetries,
		backoffBase: DefaultBackoffBase,
		backoffCap:  DefaultBackoffCap,
		timeout:     DefaultTimeout,
		now:         time.Now,
		userAgent:   "kommo-unisender",
	}
	if u, err := url.Parse(strings.TrimRight(baseURL, "/")); err == nil && u.Scheme != "" && u.Host != "" {
		c.base = u
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// resolve turns an API path or an absolute link from a response into a URL
// on the client's own host. A link to any other host is refused so the
// bearer token never leaves for it.
func (c *Client) resolve(ref string) (*url.URL, error) {
	if c.base == nil {
		return nil, fmt.Errorf("kommo: client has no valid base URL")
	}
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("kommo: malformed link")
	}
	if r.IsAbs() {
		if r.Scheme != c.base.Scheme || r.Host != c.base.Host {
			return nil, fmt.Errorf("kommo: link points to another host (%s), refusing to follow it", r.Host)
		}
		return r, nil
	}
	u := *c.base
	u.Path = c.base.Path + "/" + strings.TrimLeft(r.Path, "/")
	u.RawQuery = r.RawQuery
	return &u, nil
}
