// Package tokens is the shape of the operator-owned token Secret of a
// KommoIntegration and the rules around it: how a token pair is stored, how
// a refresh is claimed so that only one process at a time spends a refresh
// token, and a read-side TokenSource for every other component.
//
// Only the KommoIntegration reconciler writes the Secret, always with
// optimistic concurrency (the resourceVersion it read). Everyone else reads
// what is persisted, never a pair that is still in flight.
package tokens

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Labels, annotations and keys of operator-owned Secrets.
const (
	// ManagedLabel marks every Secret the operator owns, so caches can be
	// scoped to them (value ManagedLabelValue).
	ManagedLabel      = "sync.kommo-unisender.io/managed"
	ManagedLabelValue = "true"

	// ClaimAnnotation holds a refresh claim: "<holder>/<deadline RFC 3339>".
	ClaimAnnotation = "sync.kommo-unisender.io/refresh-claim"
	// ObtainedAtAnnotation: when the stored pair was obtained (RFC 3339).
	ObtainedAtAnnotation = "sync.kommo-unisender.io/obtained-at"
	// CodeHashAnnotation: SHA-256 (hex) of the last authorization code
	// spent (successfully or not), so the same code is never sent twice
	// and a new one is recognised. A used code is worthless; its hash even
	// more so.
	CodeHashAnnotation = "sync.kommo-unisender.io/authorization-code-sha256"
	// SourceHashAnnotation: SHA-256 (hex) of the long-lived token copied
	// from the user's Secret, to notice when the user replaces it.
	SourceHashAnnotation = "sync.kommo-unisender.io/source-token-sha256"

	KeyAccessToken  = "access_token"
	KeyRefreshToken = "refresh_token"
	KeyExpiresAt    = "expires_at"

	// OAuthCodeKey is the key of the callback Secret holding the code.
	OAuthCodeKey = "code"
)

// SecretName is the name of the token Secret of an integration.
func SecretName(integration string) string { return integration + "-tokens" }

// OAuthCodeSecretName is the Secret the /oauth/callback route writes the
// authorization code into (key OAuthCodeKey) for an integration with
// spec.oauthCallback. The reconciler deletes it once the code is spent.
func OAuthCodeSecretName(integration string) string { return integration + "-oauth-code" }

// Pair is a stored token pair. RefreshToken is empty for a long-lived token;
// ExpiresAt is zero when unknown.
type Pair struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
}

// ErrNoToken means the token Secret holds no access token (yet).
var ErrNoToken = errors.New("no access token stored yet")

// FromSecret reads the pair stored in s. A Secret without an access token
// gives ErrNoToken; a malformed expiry is an error (naming the key only).
func FromSecret(s *corev1.Secret) (Pair, error) {
	p := Pair{
		AccessToken:  string(s.Data[KeyAccessToken]),
		RefreshToken: string(s.Data[KeyRefreshToken]),
	}
	if p.AccessToken == "" {
		return Pair{}, ErrNoToken
	}
	if raw := string(s.Data[KeyExpiresAt]); raw != "" {
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return Pair{}, fmt.Errorf("token Secret %s: key %s is not an RFC 3339 time", s.Name, KeyExpiresAt)
		}
		p.ExpiresAt = t
	}
	return p, nil
}

// Store writes the pair into s (data only; the caller updates the Secret).
func (p Pair) Store(s *corev1.Secret) {
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[KeyAccessToken] = []byte(p.AccessToken)
	s.Data[KeyRefreshToken] = []byte(p.RefreshToken)
	if p.ExpiresAt.IsZero() {
		delete(s.Data, KeyExpiresAt)
	} else {
		s.Data[KeyExpiresAt] = []byte(p.ExpiresAt.UTC().Format(time.RFC3339))
	}
}

// Refreshable reports whether the pair can be refreshed (it has a refresh
// token; a long-lived token has none).
func (p Pair) Refreshable() bool { return p.RefreshToken != "" }

// ExpiredAt reports whether the access token is expired at now. A pair
// with unknown expiry never counts as expired.
func (p Pair) ExpiredAt(now time.Time) bool {
	return !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt)
}
