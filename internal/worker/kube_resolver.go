package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/controllers"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// apiKeyTTL bounds how long a tenant's API key is served from memory: a key
// rotated in its Secret is picked up within it (or at once when Unisender
// refuses the old one, through Forget).
const apiKeyTTL = time.Minute

// KubeResolver resolves tenants from their UnisenderBindings: the list the
// operator found or created, the mapping and deletion policy of the spec,
// and the API key from the Secret the binding names (or the widget's, when
// the binding allows it).
type KubeResolver struct {
	// Reader reads bindings and the operator's managed Secrets (a cache).
	Reader client.Reader
	// APIReader reads the user's API-key Secrets, which are not cached.
	APIReader client.Reader
	// NewClient builds the Unisender client of an API key.
	NewClient func(apiKey string) *unisender.Client

	mu   sync.Mutex
	keys map[tenant.Key]cachedKey
}

type cachedKey struct {
	apiKey  string
	client  *unisender.Client
	fetched time.Time
}

// Resolve implements TenantResolver.
func (r *KubeResolver) Resolve(ctx context.Context, key tenant.Key) (syncer.Tenant, error) {
	var b syncv1.UnisenderBinding
	if err := r.Reader.Get(ctx, key.NamespacedName(), &b); err != nil {
		if apierrors.IsNotFound(err) {
			return syncer.Tenant{}, fmt.Errorf("%w: binding %s not found", ErrTenantGone, key)
		}
		return syncer.Tenant{}, err
	}
	switch {
	case !b.DeletionTimestamp.IsZero():
		return syncer.Tenant{}, fmt.Errorf("%w: binding %s is being deleted", ErrTenantGone, key)
	case b.Spec.Suspend:
		return syncer.Tenant{}, fmt.Errorf("%w: binding %s is suspended", ErrTenantNotReady, key)
	case b.Status.ListID == 0:
		return syncer.Tenant{}, fmt.Errorf("%w: binding %s has no Unisender list yet", ErrTenantNotReady, key)
	case b.Status.ObservedGeneration != b.Generation:
		return syncer.Tenant{}, fmt.Errorf("%w: binding %s has a spec change the operator has not applied yet", ErrTenantNotReady, key)
	}
	c, err := r.client(ctx, key, &b)
	if err != nil {
		return syncer.Tenant{}, err
	}
	policy := b.Spec.DeletionPolicy
	if policy == "" {
		policy = syncv1.DeletionPolicyExclude
	}
	return syncer.Tenant{Key: key.String(), Mapper: mapping.New(b.Spec, b.Status.ListID), DeletionPolicy: policy, Unisender: c}, nil
}

// Forget implements KeyForgetter.
func (r *KubeResolver) Forget(key tenant.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, key)
}

func (r *KubeResolver) client(ctx context.Context, key tenant.Key, b *syncv1.UnisenderBinding) (*unisender.Client, error) {
	r.mu.Lock()
	cached, ok := r.keys[key]
	r.mu.Unlock()
	if ok && time.Since(cached.fetched) < apiKeyTTL {
		return cached.client, nil
	}
	apiKey, err := r.apiKey(ctx, b)
	if err != nil {
		return nil, err
	}
	if ok && cached.apiKey == apiKey {
		cached.fetched = time.Now()
	} else {
		cached = cachedKey{apiKey: apiKey, client: r.NewClient(apiKey), fetched: time.Now()}
	}
	r.mu.Lock()
	if r.keys == nil {
		r.keys = map[tenant.Key]cachedKey{}
	}
	r.keys[key] = cached
	r.mu.Unlock()
	return cached.client, nil
}

// apiKey reads the key the binding uses: the widget's when allowed and
// present, else the Secret of spec.apiKeySecretRef.
func (r *KubeResolver) apiKey(ctx context.Context, b *syncv1.UnisenderBinding) (string, error) {
	if b.Spec.AllowWidgetKey {
		var s corev1.Secret
		err := r.Reader.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: controllers.WidgetKeySecretName(b.Name)}, &s)
		if err == nil && len(s.Data[controllers.WidgetKeySecretKey]) > 0 {
			return string(s.Data[controllers.WidgetKeySecretKey]), nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return "", err
		}
	}
	ref := b.Spec.APIKeySecretRef
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%w: API key Secret %q not found", ErrTenantNotReady, ref.Name)
		}
		return "", err
	}
	v := s.Data[ref.Key]
	if len(v) == 0 {
		return "", fmt.Errorf("%w: Secret %q has no key %q", ErrTenantNotReady, ref.Name, ref.Key)
	}
	return string(v), nil
}
