package controllers

import (
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// How the KommoIntegration reconciler's steps classify what went wrong, in
// the vocabulary of internal/outcome.

// busyAfterConflict turns an optimistic-concurrency Conflict (someone else
// wrote the Secret first) and a live claim into outcome.Busy; other errors
// pass through. A claim is waited out (its holder's persist also triggers
// a reconcile through the watch on the token Secret).
func busyAfterConflict(err error, now time.Time, retry time.Duration) error {
	var claimed *tokens.ClaimedError
	switch {
	case errors.As(err, &claimed):
		return &outcome.Busy{Why: err.Error(), After: max(claimed.Until.Sub(now), 0) + retry/2}
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return &outcome.Busy{Why: err.Error(), After: retry}
	}
	return err
}

// kommoFailure classifies a failed Kommo call: permanent refusals stall
// with a reason that says what to do (todo completes the sentence for the
// token source in use), everything else is transient.
func kommoFailure(err error, what, todo string) error {
	switch {
	case errors.Is(err, kommo.ErrInvalidClient):
		return outcome.Stall(v1alpha1.ReasonInvalidClient,
			"Kommo refused the client credentials while trying to %s: check spec.clientID, the client secret (spec.clientSecretRef) and spec.redirectURI against the integration's \"Keys and scopes\" in Kommo (%v)", what, err)
	case errors.Is(err, kommo.ErrTokenRevoked):
		return outcome.Stall(v1alpha1.ReasonTokenRevoked,
			"Kommo refused the refresh token (revoked, expired or already used) while trying to %s: authorize again: %s (%v)", what, todo, err)
	case errors.Is(err, kommo.ErrInvalidGrant):
		return outcome.Stall(v1alpha1.ReasonAuthorizationCodeInvalid,
			"Kommo refused the authorization code (codes live 20 minutes and work once): %s (%v)", todo, err)
	case errors.Is(err, kommo.ErrAccountBlocked):
		return outcome.Stall(v1alpha1.ReasonAccountBlocked,
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
