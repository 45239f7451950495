// Package outcome is the one error vocabulary of the reconcilers, in the
// shape of Flux's serror: a step returns a Stalling, Waiting or Busy error,
// or any other error (transient: retried with backoff), and Finish turns it
// into the kstatus conditions, an event, the retry record and the requeue,
// then patches the status once. No message ever holds a secret: client
// errors come sanitized from internal/kommo and internal/unisender, and the
// reconcilers' own name Secrets and keys only.
package outcome

import (
	"errors"
	"fmt"
	"time"
)

// Stalling is permanent: a human must act (the message says what). Stalled
// is set, a Warning event emitted, and nothing is retried until the spec or
// a watched object changes.
type Stalling struct {
	Reason  string
	Message string
}

func (e *Stalling) Error() string { return e.Reason + ": " + e.Message }

// Stall returns a Stalling error.
func Stall(reason, format string, args ...any) error {
	return &Stalling{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Waiting: the object waits for something outside it (a Secret to be
// created, an admin to authorize, the integration to become Ready). Not a
// failure: Reconciling is set with the reason, and the object is looked at
// again after After and whenever the awaited object changes.
type Waiting struct {
	Reason  string
	Message string
	After   time.Duration
}

func (e *Waiting) Error() string { return e.Reason + ": " + e.Message }

// Wait returns a Waiting error.
func Wait(after time.Duration, reason, format string, args ...any) error {
	return &Waiting{Reason: reason, Message: fmt.Sprintf(format, args...), After: after}
}

// Busy: another writer is at the object's data (another replica's claim,
// a cache behind a write). Nothing to report, nothing counted; look again
// after After.
type Busy struct {
	Why   string
	After time.Duration
}

func (e *Busy) Error() string { return e.Why }

// Kind classifies the end of a pass.
type Kind int

const (
	// Succeeded: the steps returned no error.
	Succeeded Kind = iota
	// Busied: a Busy error.
	Busied
	// Waited: a Waiting error.
	Waited
	// Stalled: a Stalling error.
	Stalled
	// Retrying: any other error; counted and retried with backoff.
	Retrying
)

// String names the kind, for logs.
func (k Kind) String() string {
	switch k {
	case Succeeded:
		return "Succeeded"
	case Busied:
		return "Busy"
	case Waited:
		return "Waiting"
	case Stalled:
		return "Stalled"
	case Retrying:
		return "Retrying"
	}
	return "Unknown"
}

// Outcome is a pass's end as Finish classified and recorded it; a
// reconciler's Mark hook reads it.
type Outcome struct {
	Kind Kind
	// Reason and Message: the Stalling or Waiting error's; for Retrying,
	// ProgressingWithRetry and "attempt n failed: …; retrying in …".
	Reason, Message string
}

// IsWaiting reports whether err is (or wraps) a Waiting error.
func IsWaiting(err error) bool {
	var w *Waiting
	return errors.As(err, &w)
}
