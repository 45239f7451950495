package tokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrExpired means the stored access token has expired: the
// KommoIntegration has not refreshed it (yet).
var ErrExpired = errors.New("stored access token has expired")

// Source is a kommo.TokenSource for every component but the
// KommoIntegration reconciler: it reads the access token persisted in the
// integration's token Secret, through whatever reader it is given (a cache
// scoped to managed Secrets, or an API reader). It never refreshes.
type Source struct {
	reader client.Reader
	key    types.NamespacedName
	now    func() time.Time
}

// NewSource reads the token of the KommoIntegration namespace/integration.
func NewSource(r client.Reader, namespace, integration string) *Source {
	return &Source{reader: r, key: types.NamespacedName{Namespace: namespace, Name: SecretName(integration)}, now: time.Now}
}

// Pair returns the stored pair. Errors name the Secret, never its content.
func (s *Source) Pair(ctx context.Context) (Pair, error) {
	var sec corev1.Secret
	if err := s.reader.Get(ctx, s.key, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return Pair{}, fmt.Errorf("token Secret %s not found: the KommoIntegration has not obtained a token yet: %w", s.key, ErrNoToken)
		}
		return Pair{}, fmt.Errorf("reading token Secret %s: %w", s.key, err)
	}
	p, err := FromSecret(&sec)
	if err != nil {
		return Pair{}, fmt.Errorf("token Secret %s: %w", s.key, err)
	}
	return p, nil
}

// Token returns the stored access token, or an error when there is none or
// it has expired.
func (s *Source) Token(ctx context.Context) (string, error) {
	p, err := s.Pair(ctx)
	if err != nil {
		return "", err
	}
	if p.ExpiredAt(s.now()) {
		return "", fmt.Errorf("token Secret %s: %w at %s", s.key, ErrExpired, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return p.AccessToken, nil
}
