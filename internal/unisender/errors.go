package unisender

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels for errors.Is. An *APIError matches the one its code maps to.
var (
	ErrInvalidAPIKey   = errors.New("unisender: invalid API key")                 // invalid_api_key
	ErrAccessDenied    = errors.New("unisender: access denied")                   // access_denied
	ErrNotEnoughMoney  = errors.New("unisender: not enough money on the account") // not_enough_money
	ErrInvalidArgument = errors.New("unisender: invalid argument")                // invalid_arg, or refused before sending
	ErrUnknownMethod   = errors.New("unisender: unknown method")                  // unknown_method
	ErrRateLimited     = errors.New("unisender: API call limit exceeded")         // api_call_limit_exceeded_*
	// ErrContactNotFound matches getContact's invalid_arg answer whose
	// message says "not found" (the real wording is unverified).
	ErrContactNotFound = errors.New("unisender: contact not found")
)

// Kind says what a failure means for the caller.
type Kind int

const (
	// Transient: retry later (retry_later, call limits, unspecified,
	// timeouts, 5xx).
	Transient Kind = iota + 1
	// PermanentForTenant: the key or the account is unusable until a human
	// acts (invalid_api_key, access_denied, not_enough_money); surface it on
	// the binding's status.
	PermanentForTenant
	// PermanentForRequest: this request will never succeed as sent
	// (invalid_arg, unknown_method, codes this client does not know).
	PermanentForRequest
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case PermanentForTenant:
		return "permanent for the tenant"
	case PermanentForRequest:
		return "permanent for the request"
	}
	return "unknown"
}

// APIError is an error answer ({"error":…,"code":…}, inside HTTP 200 or
// not). Message never holds the API key: the client redacts it.
type APIError struct {
	Method  string // API method called, e.g. importContacts
	Code    string // Unisender's code, e.g. invalid_arg
	Message string // Unisender's message, redacted
}

func (e *APIError) Error() string {
	return fmt.Sprintf("unisender: %s: %s: %s", e.Method, e.Code, e.Message)
}

// Kind classifies the code as the reference does.
func (e *APIError) Kind() Kind {
	switch e.Code {
	case "retry_later", "api_call_limit_exceeded_for_api_key", "api_call_limit_exceeded_for_ip", "unspecified":
		return Transient
	case "invalid_api_key", "access_denied", "not_enough_money":
		return PermanentForTenant
	}
	return PermanentForRequest
}

// Is maps the code to the package sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrInvalidAPIKey:
		return e.Code == "invalid_api_key"
	case ErrAccessDenied:
		return e.Code == "access_denied"
	case ErrNotEnoughMoney:
		return e.Code == "not_enough_money"
	case ErrInvalidArgument:
		return e.Code == "invalid_arg"
	case ErrUnknownMethod:
		return e.Code == "unknown_method"
	case ErrRateLimited:
		return strings.HasPrefix(e.Code, "api_call_limit_exceeded")
	case ErrContactNotFound:
		return e.Method == "getContact" && e.Code == "invalid_arg" && strings.Contains(strings.ToLower(e.Message), "not found")
	}
	return false
}

// TransportError is a call that got no usable answer: a network failure, a
// timeout, a non-2xx status without an error body, or a body that is not
// the JSON envelope.
type TransportError struct {
	Method     string
	StatusCode int  // HTTP status, 0 if none arrived
	Timeout    bool // the per-call timeout expired
	Err        error
	msg        string // redacted description
}

func (e *TransportError) Error() string { return "unisender: " + e.Method + ": " + e.msg }

// Unwrap gives the underlying network or decoding error.
func (e *TransportError) Unwrap() error { return e.Err }

// Kind: timeouts, network failures, 5xx, 408, 429 and garbled answers are
// transient; another status (a 404 from a wrong base URL, say) will not heal
// by retrying.
func (e *TransportError) Kind() Kind {
	switch {
	case e.StatusCode == 0, e.StatusCode >= 500,
		e.StatusCode == http.StatusTooManyRequests, e.StatusCode == http.StatusRequestTimeout,
		e.StatusCode >= 200 && e.StatusCode < 300:
		return Transient
	}
	return PermanentForRequest
}

// ImportError reports the chunk of an ImportContacts call that failed; rows
// before FirstRow were imported.
type ImportError struct {
	FirstRow int // index in the caller's Rows of the first row not imported
	Err      error
}

func (e *ImportError) Error() string {
	return fmt.Sprintf("%v (rows from %d on not imported)", e.Err, e.FirstRow)
}

func (e *ImportError) Unwrap() error { return e.Err }

// KindOf classifies any error this package returns; 0 for errors it did not
// make (a cancelled context, for one).
func KindOf(err error) Kind {
	var k interface{ Kind() Kind }
	if errors.As(err, &k) {
		return k.Kind()
	}
	if errors.Is(err, ErrInvalidArgument) {
		return PermanentForRequest
	}
	return 0
}

// IsTransient reports an error worth retrying later.
func IsTransient(err error) bool { return KindOf(err) == Transient }

// IsPermanentForTenant reports an error that stops all work for the tenant
// until its key or account is fixed.
func IsPermanentForTenant(err error) bool { return KindOf(err) == PermanentForTenant }

// IsPermanentForRequest reports an error that retrying the same request
// cannot fix.
func IsPermanentForRequest(err error) bool { return KindOf(err) == PermanentForRequest }

// invalidRequest is a request refused before sending.
func invalidRequest(method, format string, args ...any) error {
	return fmt.Errorf("unisender: %s: %s: %w", method, fmt.Sprintf(format, args...), ErrInvalidArgument)
}
