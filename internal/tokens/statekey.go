package tokens

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The key OAuth states are signed with: random bytes the manager generates
// once into a Secret of the operator's namespace, which the webhook server
// reads. Tenants have no access to that namespace.
const (
	StateKeySecretName = "kommo-unisender-oauth-state-key" //nolint:gosec // a Secret's name, not a credential
	StateKeyKey        = "key"
	stateKeyBytes      = 32
)

// ErrNoStateKey: the state key Secret does not exist (yet) or is unusable.
var ErrNoStateKey = errors.New("the OAuth state key Secret is missing or empty")

// LoadStateKey reads the state key from namespace.
func LoadStateKey(ctx context.Context, r client.Reader, namespace string) ([]byte, error) {
	if namespace == "" {
		return nil, fmt.Errorf("%w: no operator namespace is configured", ErrNoStateKey)
	}
	var s corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: StateKeySecretName}, &s)
	if apierrors.IsNotFound(err) {
		return nil, ErrNoStateKey
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, StateKeySecretName, err)
	}
	if len(s.Data[StateKeyKey]) < stateKeyBytes {
		return nil, ErrNoStateKey
	}
	return s.Data[StateKeyKey], nil
}

// EnsureStateKey reads the state key, generating it first when missing.
// Two managers racing to create it agree on the one the API server kept.
func EnsureStateKey(ctx context.Context, c client.Client, r client.Reader, namespace string) ([]byte, error) {
	key, err := LoadStateKey(ctx, r, namespace)
	if !errors.Is(err, ErrNoStateKey) || namespace == "" {
		return key, err
	}
	v := make([]byte, stateKeyBytes)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: StateKeySecretName,
			Labels: map[string]string{ManagedLabel: ManagedLabelValue}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{StateKeyKey: v},
	}
	if err := c.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating Secret %s/%s: %w", namespace, StateKeySecretName, err)
	}
	return LoadStateKey(ctx, r, namespace)
}
