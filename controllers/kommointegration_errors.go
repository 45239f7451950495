package controllers

import (
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// The sub-steps of the KommoIntegration reconciler return one of these
// kinds of error; finish turns each into conditions and a requeue. Any
// other error is transient: counted in failedAttempts and retried with
// exponential backoff. No error message ever holds a secret: Kommo errors
// come sanitized from internal/kommo, and ours name Secrets and keys only.

// stallError is permanent: a human must act (the message says what). No
// retry until the spec or a referenced Secret changes.
type stallError struct {
	reason  string
	message string
}

func (e *stallError) Error() string { return e.reason + ": " + e.message }

func stall(reason, format string, args ...any) error {
	return &stallError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// waitError: the object waits for something outside the operator (a
// Secret to be created, an admin to authorize). Not a failure; checked
// again after `after` and whenever the awaited Secret appears.
type waitError struct {
	reason  string
	message string
	after   time.Duration
}

func (e *waitError) Error() string { return e.reason + ": " + e.message }

// busyError: another replica is refreshing, or the cache lags behind a
// write. Nothing to report; look again shortly.
type busyError struct {
	why   string
	after time.Duration
}

func (e *busyError) Error() string { return e.why }

// busyAfterConflict turns an optimistic-concurrency Conflict (someone else
// wrote the Secret first) and a live claim into busyError; other errors
// pass through. A claim is waited out (its holder's persist also triggers
// a reconcile through the watch on the token Secret).
func busyAfterConflict(err error, now time.Time, retry time.Duration) error {
	var claimed *tokens.ClaimedError
	switch {
	case errors.As(err, &claimed):
		return &busyError{why: err.Error(), after: max(claimed.Until.Sub(now), 0) + retry/2}
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return &busyError{why: err.Error(), after: retry}
	}
	return err
}

// kommoFailure classifies a failed Kommo call: permanent refusals stall
// with a reason that says what to do (todo completes the sentence for the
// token source in use), everything else is transient.
func kommoFailure(err error, what, todo string) error {
	switch {
	case errors.Is(err, kommo.ErrInvalidClient):
		return stall(v1alpha1.ReasonInvalidClient,
			"Kommo refused the client credentials while trying to %s: check spec.clientID, the client secret (spec.clientSecretRef) and spec.redirectURI against the integration's \"Keys and scopes\" in Kommo (%v)", what, err)
	case errors.Is(err, kommo.ErrTokenRevoked):
		return stall(v1alpha1.ReasonTokenRevoked,
			"Kommo refused the refresh token (revoked, expired or already used) while trying to %s: authorize again: %s (%v)", what, todo, err)
	case errors.Is(err, kommo.ErrInvalidGrant):
		return stall(v1alpha1.ReasonAuthorizationCodeInvalid,
			"Kommo refused the authorization code (codes live 20 minutes and work once): %s (%v)", todo, err)
	case errors.Is(err, kommo.ErrAccountBlocked):
		return stall(v1alpha1.ReasonAccountBlocked,
			"Kommo answers 403 for this account (blocked, usually after too many requests) while trying to %s: ask Kommo support to lift the block, then set the annotation %s to force a reconcile (%v)", what, v1alpha1.ReconcileRequestAnnotation, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// reauthorizeHint completes "authorize again: …" for the spec's source.
func reauthorizeHint(obj *v1alpha1.KommoIntegration) string {
	s := obj.Spec
	switch s.TokenSource() {
	case v1alpha1.TokenSourceAuthorizationCode:
		return fmt.Sprintf("put a new authorization code into Secret %q key %q", s.AuthorizationCodeRef.Name, s.AuthorizationCodeRef.Key)
	case v1alpha1.TokenSourceOAuthCallback:
		return "an account admin opens status.authorizationURL and grants access again"
	case v1alpha1.TokenSourceLongLivedToken:
		return fmt.Sprintf("generate a new long-lived token in Kommo and put it into Secret %q key %q", s.LongLivedTokenRef.Name, s.LongLivedTokenRef.Key)
	}
	return "provide a new first-token source"
}

// isWait reports whether err is a waitError.
func isWait(err error) bool {
	var w *waitError
	return errors.As(err, &w)
}
