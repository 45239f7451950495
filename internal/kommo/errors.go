package kommo

import (
	"errors"
	"fmt"
	"strings"
)

// ErrorKind says what an APIError means for the caller.
type ErrorKind string

// The kinds of API errors. Each maps to one sentinel error below so callers
// can test with errors.Is without reading status codes.
const (
	KindUnauthorized   ErrorKind = "unauthorized"    // 401 on an API call: token expired, wrong, or integration disabled
	KindTokenRevoked   ErrorKind = "token_revoked"   // refresh token used, expired or revoked: authorize again
	KindInvalidGrant   ErrorKind = "invalid_grant"   // authorization code expired, used or unknown
	KindInvalidClient  ErrorKind = "invalid_client"  // client id/secret refused by the token endpoint
	KindAccountBlocked ErrorKind = "account_blocked" // 403: the account is blocked, stop all work
	KindRateLimited    ErrorKind = "rate_limited"    // 429 after retries ran out
	KindNotFound       ErrorKind = "not_found"       // 404
	KindBadRequest     ErrorKind = "bad_request"     // other 4xx: our request is wrong
	KindServer         ErrorKind = "server"          // 5xx after retries ran out
	KindUnexpected     ErrorKind = "unexpected"      // a status or body we do not understand
)

// Sentinels for errors.Is. An *APIError matches the sentinel of its Kind.
var (
	ErrUnauthorized   = errors.New("kommo: unauthorized")
	ErrTokenRevoked   = errors.New("kommo: refresh token revoked or expired")
	ErrInvalidGrant   = errors.New("kommo: authorization code invalid or expired")
	ErrInvalidClient  = errors.New("kommo: client credentials refused")
	ErrAccountBlocked = errors.New("kommo: account blocked")
	ErrRateLimited    = errors.New("kommo: rate limited")
	ErrNotFound       = errors.New("kommo: not found")
	ErrBadRequest     = errors.New("kommo: bad request")
	ErrServer         = errors.New("kommo: server error")
)

// ErrNotSent wraps the error of a call that failed before any of its
// requests was sent (waiting for the rate limit or the shared budget, or
// for a token): Kommo cannot have acted on it. Callers holding something
// for the duration of a call that might have reached Kommo (a refresh
// claim) can let go at once.
var ErrNotSent = errors.New("not sent")

var kindSentinel = map[ErrorKind]error{
	KindUnauthorized:   ErrUnauthorized,
	KindTokenRevoked:   ErrTokenRevoked,
	KindInvalidGrant:   ErrInvalidGrant,
	KindInvalidClient:  ErrInvalidClient,
	KindAccountBlocked: ErrAccountBlocked,
	KindRateLimited:    ErrRateLimited,
	KindNotFound:       ErrNotFound,
	KindBadRequest:     ErrBadRequest,
	KindServer:         ErrServer,
}

// APIError is an answer from Kommo that is not a success. Title, Detail and
// Hint come from the problem+json body, shortened and with any secret the
// client knows of removed; a non-JSON body (the HTML of a blocked account)
// leaves only a short sanitized snippet in Detail.
type APIError struct {
	Op     string // "GET /api/v4/contacts": method and path, never the query or a secret
	Status int
	Kind   ErrorKind
	Title  string
	Detail string
	Hint   string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kommo: %s: HTTP %d %s", e.Op, e.Status, e.Kind)
	for _, part := range []string{e.Title, e.Detail} {
		if part != "" {
			b.WriteString(": ")
			b.WriteString(part)
		}
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", e.Hint)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrTokenRevoked) and friends work.
func (e *APIError) Is(target error) bool {
	s, ok := kindSentinel[e.Kind]
	return ok && s == target
}

// IsPermanent reports whether retrying later cannot help: the token or code
// is dead, the client credentials are wrong, or the account is blocked. A
// human has to act (authorize again, fix the secret, call Kommo support).
func IsPermanent(err error) bool {
	return errors.Is(err, ErrTokenRevoked) || errors.Is(err, ErrInvalidClient) ||
		errors.Is(err, ErrAccountBlocked) || errors.Is(err, ErrInvalidGrant)
}
