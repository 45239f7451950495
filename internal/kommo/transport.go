package kommo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sleep"
)

// call is one logical API call; do may send it several times.
type call struct {
	method  string
	ref     string // API path ("/api/v4/contacts") or an absolute link from a response
	body    []byte // JSON body, nil for none
	auth    bool   // send the TokenSource's bearer token
	ep      endpointKind
	secrets []string // strings that must never reach an error (client secret, code, refresh token)
}

type reply struct {
	status int
	body   []byte
}

// do sends cl under the rate limit, retrying network errors, 429 and 5xx
// with exponential backoff and full jitter, and returns the first 2xx answer
// or a classified error. Other 4xx are returned at once: repeating them
// cannot help, and repeating a 403 could prolong a block.
func (c *Client) do(ctx context.Context, cl call) (*reply, error) {
	u, err := c.resolve(cl.ref)
	if err != nil {
		return nil, err
	}
	op := cl.method + " " + u.Path // never the query or a body: no secret travels there
	sent := false                  // whether any attempt put a request on the wire
	fail := func(err error) error {
		if !sent {
			err = fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return fmt.Errorf("kommo: %s: %w", op, err)
	}
	for attempt := 0; ; attempt++ {
		release, err := c.pacer.acquire(ctx)
		if err != nil {
			return nil, fail(fmt.Errorf("waiting for the rate limit: %w", err))
		}
		rep, token, hdr, err := c.attempt(ctx, u, cl)
		release()
		sent = sent || !errors.Is(err, errBeforeSend)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fail(ctx.Err())
		case err != nil:
			if attempt >= c.maxRetries || errors.Is(err, errTokenSource) || errors.Is(err, errBudget) {
				return nil, fail(err)
			}
			wait = c.backoff(attempt)
		case rep.status >= 200 && rep.status < 300:
			return rep, nil
		default:
			apiErr := classify(op, cl.ep, rep.status, rep.body, append(slices.Clip(cl.secrets), token))
			if !retryable(rep.status) || attempt >= c.maxRetries {
				return nil, apiErr
			}
			wait = c.retryWait(attempt, hdr)
		}
		if err := sleep.For(ctx, wait); err != nil {
			return nil, fail(err)
		}
	}
}

var (
	errTokenSource = errors.New("token source failed")
	errBudget      = errors.New("waiting for the shared rate budget")
	// errBeforeSend marks an attempt that failed before its request left.
	errBeforeSend = errors.New("before sending")
)

// attempt sends one HTTP request bounded by the per-attempt timeout. It
// returns the bearer token it used so a classified error can redact it.
// The shared budget is taken last, right before sending, so that as little
// as possible lies between the slot and the request's arrival; waiting for
// it does not eat into the attempt's timeout.
func (c *Client) attempt(ctx context.Context, u *url.URL, cl call) (*reply, string, http.Header, error) {
	token, err := c.bearer(ctx, cl)
	if err != nil {
		return nil, "", nil, beforeSend(err)
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	if c.budget != nil {
		if err := c.budget.Take(ctx); err != nil {
			return nil, "", nil, beforeSend(fmt.Errorf("%w: %w", errBudget, err))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, "", nil, beforeSend(fmt.Errorf("building request: %w", stripURL(err)))
	}
	req.Header.Set("Accept", "application/hal+json, application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, token, nil, stripURL(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return nil, token, nil, fmt.Errorf("reading answer: %w", stripURL(err))
	}
	return &reply{status: resp.StatusCode, body: data}, token, resp.Header, nil
}

// beforeSend marks err as a failure before the request was sent, wrapping
// it without changing its message.
func beforeSend(err error) error { return notSentYet{err} }

type notSentYet struct{ error }

func (e notSentYet) Unwrap() []error { return []error{e.error, errBeforeSend} }

// bearer returns the token for cl, if it needs one, bounded by the
// per-attempt timeout.
func (c *Client) bearer(ctx context.Context, cl call) (string, error) {
	if !cl.auth {
		return "", nil
	}
	if c.tokens == nil {
		return "", fmt.Errorf("%w: no token source configured", errTokenSource)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	token, err := c.tokens.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errTokenSource, err)
	}
	return token, nil
}

// stripURL removes the *url.Error wrapper, whose message repeats the URL;
// the op in our own message already names the endpoint.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// backoff is "full jitter": a random wait in [0, min(cap, base·2^attempt)).
func (c *Client) backoff(attempt int) time.Duration {
	ceiling := c.backoffCap
	if attempt < 32 {
		if d := c.backoffBase << attempt; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling) //nolint:gosec // jitter needs no cryptographic randomness
}

// retryWait honours Retry-After (seconds or an HTTP date) when the answer
// has one, capped by DefaultMaxRetryAfter; Kommo is not documented to send it.
func (c *Client) retryWait(attempt int, h http.Header) time.Duration {
	ra := h.Get("Retry-After")
	if ra == "" {
		return c.backoff(attempt)
	}
	var d time.Duration
	if secs, err := strconv.Atoi(ra); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(ra); err == nil {
		d = time.Until(t)
	} else {
		return c.backoff(attempt)
	}
	return min(max(d, 0), DefaultMaxRetryAfter)
}
