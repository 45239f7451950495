// Package unisender is a small typed client for the Unisender e-mail
// marketing API (api.unisender.com), per docs/unisender-api.md ("the
// reference" below): form-encoded POSTs with the API key in the body,
// errors inside HTTP 200 mapped to typed errors, a per-key rate limiter,
// bounded retries with backoff for transient failures only, and
// importContacts split into calls of at most 500 rows. The API key never appears in a URL or an error, and
// the client logs nothing.
package unisender

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/kommo-unisender/kommo-unisender/internal/sleep"
)

// Defaults, per the reference.
const (
	DefaultBaseURL            = "https://api.unisender.com"
	DefaultLang               = "en"
	DefaultRateLimitPerMinute = 1200 // the figure most clients quote; unverified
	DefaultBurst              = 1
	DefaultTimeout            = 35 * time.Second // importContacts answers within 30 s
	DefaultMaxRetries         = 3
	DefaultBackoffBase        = 500 * time.Millisecond
	DefaultBackoffMax         = 30 * time.Second
	// MaxImportRows is the most rows one importContacts call may carry.
	MaxImportRows = 500
	// importMaxRetries: "if no answer, retry at most twice".
	importMaxRetries = 2
	maxResponseBytes = 16 << 20
)

// Client calls the API with one key. It is safe for concurrent use; all
// goroutines share its rate limiter.
type Client struct {
	base        string
	apiKey      string
	hc          *http.Client
	limiter     *rate.Limiter
	maxRetries  int
	backoffBase time.Duration
	backoffMax  time.Duration
	timeout     time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a new http.Client with no
// overall timeout; the per-call timeout applies).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRateLimit caps calls at perMinute, spread evenly (perMinute/60 per
// second) with the given burst; perMinute <= 0 removes the cap.
func WithRateLimit(perMinute, burst int) Option {
	return func(c *Client) {
		if perMinute <= 0 {
			c.limiter = rate.NewLimiter(rate.Inf, 1)
			return
		}
		c.limiter = rate.NewLimiter(rate.Limit(float64(perMinute)/60), max(burst, 1))
	}
}

// WithMaxRetries sets how many times a transient failure is retried
// (default 3; importContacts never retries more than twice).
func WithMaxRetries(n int) Option { return func(c *Client) { c.maxRetries = max(n, 0) } }

// WithBackoff sets the first retry delay and its cap; delays double per
// attempt, with jitter.
func WithBackoff(base, maxDelay time.Duration) Option {
	return func(c *Client) { c.backoffBase, c.backoffMax = base, maxDelay }
}

// WithTimeout bounds each attempt of each call (default 35 s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// NewClient returns a client for baseURL (DefaultBaseURL in production, an
// emulator's URL in tests) and apiKey.
func NewClient(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		base:        strings.TrimRight(baseURL, "/"),
		apiKey:      apiKey,
		hc:          &http.Client{},
		limiter:     rate.NewLimiter(rate.Limit(float64(DefaultRateLimitPerMinute)/60), DefaultBurst),
		maxRetries:  DefaultMaxRetries,
		backoffBase: DefaultBackoffBase,
		backoffMax:  DefaultBackoffMax,
		timeout:     DefaultTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// KeyID names the client's API key without revealing it: "key-" and the
// first 16 bytes of its SHA-256 in hex. Unisender keys are long random
// strings, so the digest cannot be turned back into the key. It lets
// processes that share a key share its call budgets (store.TakeCall).
func (c *Client) KeyID() string {
	sum := sha256.Sum256([]byte(c.apiKey))
	return "key-" + hex.EncodeToString(sum[:16])
}

// callOutcome tells a caller whether an earlier attempt may have reached the
// server, so that non-idempotent methods can recover.
type callOutcome struct{ retried bool }

// call runs method, retrying transient failures up to maxRetries times, and
// decodes the result into out (if non-nil).
func (c *Client) call(ctx context.Context, method string, form url.Values, maxRetries int, out any) (callOutcome, error) {
	var o callOutcome
	for attempt := 0; ; attempt++ {
		err := c.once(ctx, method, form, out)
		if err == nil || !IsTransient(err) || attempt >= maxRetries {
			return o, err
		}
		if sleep.For(ctx, c.backoff(attempt)) != nil {
			return o, err
		}
		o.retried = true
	}
}

// backoff is the delay before retry number attempt+1: exponential, capped,
// with "equal jitter" (half fixed, half random) so that retries of many
// workers spread out.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.backoffMax
	if attempt < 30 {
		d = min(c.backoffBase<<attempt, c.backoffMax)
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// once makes one attempt: wait for the limiter, POST, decode.
func (c *Client) once(ctx context.Context, method string, form url.Values, out any) error {
	if err := c.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("unisender: %s: waiting for the rate limiter: %w", method, err)
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoint(method), strings.NewReader(c.body(form)))
	if err != nil {
		return invalidRequest(method, "cannot build request for base URL")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(ctx, method, 0, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return c.transportError(ctx, method, resp.StatusCode, err)
	}
	return c.decode(method, resp.StatusCode, raw, out)
}

// endpoint is the URL of a method; it never carries the key.
func (c *Client) endpoint(method string) string {
	return c.base + "/" + DefaultLang + "/api/" + method + "?format=json"
}

// body encodes the arguments with the key, which travels only here.
func (c *Client) body(form url.Values) string {
	b := make(url.Values, len(form)+1)
	for k, v := range form {
		b[k] = v
	}
	b.Set("api_key", c.apiKey)
	return b.Encode()
}

// transportError wraps a failed exchange. A cancelled or expired caller
// context is returned as such (not transient: the caller gave up).
func (c *Client) transportError(ctx context.Context, method string, status int, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("unisender: %s: %w", method, ctx.Err())
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	msg := c.redact(err.Error())
	if timeout {
		msg = fmt.Sprintf("no answer within %s: %s", c.timeout, msg)
	}
	return &TransportError{Method: method, StatusCode: status, Timeout: timeout, Err: err, msg: msg}
}

// envelope is every answer: {"result":…} or {"error":…,"code":…}.
type envelope struct {
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
	Code   string          `json:"code"`
}

// decode turns an answer into out or a typed error. A body with "error" is a
// failure whatever the status; a non-2xx without one is a transport failure.
func (c *Client) decode(method string, status int, raw []byte, out any) error {
	var env envelope
	jsonErr := json.Unmarshal(raw, &env)
	if jsonErr == nil && hasError(env.Error) {
		code := env.Code
		if code == "" {
			code = "unspecified"
		}
		return &APIError{Method: method, Code: code, Message: c.redact(errorText(env.Error))}
	}
	if status < 200 || status > 299 {
		return &TransportError{Method: method, StatusCode: status, msg: fmt.Sprintf("HTTP %d", status)}
	}
	if jsonErr != nil {
		return &TransportError{Method: method, StatusCode: status, Err: jsonErr, msg: "answer is not the JSON envelope"}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return &TransportError{Method: method, StatusCode: status, Err: err, msg: "unexpected result shape: " + c.redact(err.Error())}
	}
	return nil
}

func hasError(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null" && s != `""` && s != "false"
}

func errorText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// redact removes the API key from text that came from elsewhere (a server
// message may echo arguments).
func (c *Client) redact(s string) string {
	if c.apiKey == "" {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "[redacted]")
}
