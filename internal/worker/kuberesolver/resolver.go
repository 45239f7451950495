// Package kuberesolver is the worker's production TenantResolver: it reads a
// tenant's UnisenderBinding and KommoIntegration (from a controller-runtime
// cache) and its Unisender API key Secret, and hands out one Unisender
// client per API key, so all the tenants and goroutines using a key share
// its rate limiter, and one Kommo client per integration, reading the
// access token the manager keeps in the integration's token Secret.
package kuberesolver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
)

// DefaultKeyTTL is how long an API key read from a Secret is reused before
// it is read again.
const DefaultKeyTTL = 30 * time.Second

// Options configure a Resolver.
type Options struct {
	// Bindings reads UnisenderBindings and KommoIntegrations: a
	// controller-runtime cache, so that resolving a tenant per batch costs
	// no API request.
	Bindings client.Reader
	// Secrets reads the user's API key Secrets (spec.apiKeySecretRef). They
	// carry no label a scoped cache could select, so this is normally the
	// API server itself (a client.Client); keys are memoised for KeyTTL.
	Secrets client.Reader
	// Live reads from the API server itself. A binding the cache does not
	// hold is looked up there before its events are dropped as gone: a
	// binding just created reaches the worker's cache a moment after its
	// first webhook can reach the worker. Nil means Secrets (normally the
	// API server).
	Live client.Reader
	// ManagedSecrets reads the operator-managed Secrets (the widget key, the
	// integration's tokens): a ManagedSecretReader in the worker. Nil means
	// Secrets.
	ManagedSecrets client.Reader
	// NewKommoClient makes the client of an integration's account at
	// baseURL, reading its token from tokens and pacing its requests at rps
	// within the account's shared budget. It is called once per
	// integration (and again when its URL or rate changes).
	NewKommoClient func(integration tenant.Key, baseURL string, rps int, tokens kommo.TokenSource) *kommo.Client
	// KommoHosts are the base URLs a Kommo client may be made for (the
	// zero value: Kommo's domains over https), as in the manager: the
	// token is sent there.
	KommoHosts kommo.HostPolicy
	// UnisenderBaseURL is the API's base URL (unisender.DefaultBaseURL in
	// production, the sandbox in development).
	UnisenderBaseURL string
	// ClientOptions are applied to every Unisender client made.
	ClientOptions []unisender.Option
	// KeyTTL: default DefaultKeyTTL.
	KeyTTL time.Duration
}

// Resolver implements worker.TenantResolver and worker.KeyForgetter.
type Resolver struct {
	o   Options
	now func() time.Time

	mu      sync.Mutex
	keys    map[tenant.Key]cachedKey
	clients map[[sha256.Size]byte]*unisender.Client // by hash of the key: the map never holds a key in clear
	kommo   map[string]*kommo.Client                // by integration, base URL and rate
}

type cachedKey struct {
	source string // where it was read from; a spec change reads it again
	key    string
	readAt time.Time
}

var (
	_ worker.TenantResolver = (*Resolver)(nil)
	_ worker.KeyForgetter   = (*Resolver)(nil)
)

// New returns a Resolver.
func New(o Options) *Resolver {
	if o.KeyTTL <= 0 {
		o.KeyTTL = DefaultKeyTTL
	}
	if o.ManagedSecrets == nil {
		o.ManagedSecrets = o.Secrets
	}
	if o.Live == nil {
		o.Live = o.Secrets
	}
	if o.UnisenderBaseURL == "" {
		o.UnisenderBaseURL = unisender.DefaultBaseURL
	}
	return &Resolver{o: o, now: time.Now, keys: map[tenant.Key]cachedKey{},
		clients: map[[sha256.Size]byte]*unisender.Client{}, kommo: map[string]*kommo.Client{}}
}

// Resolve returns the sync configuration of the tenant's UnisenderBinding.
// A binding that is gone or being deleted is worker.ErrTenantGone, one
// that is suspended worker.ErrTenantSuspended; one that has no list yet, has a spec change the operator has
// not reconciled yet (the list or the fields may not exist), or whose API
// key Secret is missing is worker.ErrTenantNotReady.
func (r *Resolver) Resolve(ctx context.Context, key tenant.Key) (syncer.Tenant, error) {
	var b v1alpha1.UnisenderBinding
	err := r.o.Bindings.Get(ctx, key.NamespacedName(), &b)
	if apierrors.IsNotFound(err) {
		return syncer.Tenant{}, r.uncachedBinding(ctx, key)
	}
	switch {
	case err != nil:
		return syncer.Tenant{}, fmt.Errorf("reading UnisenderBinding %s: %w", key, err)
	case !b.DeletionTimestamp.IsZero():
		return syncer.Tenant{}, fmt.Errorf("%w: UnisenderBinding %s is being deleted", worker.ErrTenantGone, key)
	case b.Spec.Suspend:
		return syncer.Tenant{}, fmt.Errorf("%w: UnisenderBinding %s is suspended", worker.ErrTenantSuspended, key)
	case b.Status.ListID == 0:
		return syncer.Tenant{}, fmt.Errorf("%w: UnisenderBinding %s has no Unisender list yet", worker.ErrTenantNotReady, key)
	case b.Status.ObservedGeneration != b.Generation:
		return syncer.Tenant{}, fmt.Errorf("%w: UnisenderBinding %s changed (generation %d) and the operator has not applied it yet",
			worker.ErrTenantNotReady, key, b.Generation)
	}
	reader, err := r.kommoReader(ctx, key, &b)
	if err != nil {
		return syncer.Tenant{}, err
	}
	apiKey, err := r.apiKey(ctx, key, &b)
	if err != nil {
		return syncer.Tenant{}, err
	}
	policy := b.Spec.DeletionPolicy
	if policy == "" {
		policy = v1alpha1.DeletionPolicyExclude
	}
	sharers, err := r.listSharers(ctx, &b)
	if err != nil {
		return syncer.Tenant{}, err
	}
	var resolved []v1alpha1.ResolvedPipeline
	if b.Status.Selector != nil {
		resolved = b.Status.Selector.Pipelines
	}
	seg, err := segment.New(b.Spec.Selector, resolved)
	if err != nil {
		return syncer.Tenant{}, fmt.Errorf("%w: UnisenderBinding %s: %w", worker.ErrTenantNotReady, key, err)
	}
	c := r.client(apiKey)
	return syncer.Tenant{
		Key: key.String(), Mapper: mapping.New(b.Spec, b.Status.ListID), Segment: seg,
		DeletionPolicy: policy, Unisender: c, Kommo: segment.ReaderFor(seg, reader),
		DoubleOptin: b.Spec.DoubleOptin, Inviter: c, ListSharers: sharers, Tags: c,
		WriteBack: writeBackTarget(key, &b, reader, c),
	}, nil
}

// writeBackTarget is the binding's write-back, nil without spec.writeBack:
// its Kommo writes go through the integration's client, within the
// account's shared budget.
func writeBackTarget(key tenant.Key, b *v1alpha1.UnisenderBinding, k *kommo.Client, u *unisender.Client) *writeback.Target {
	if b.Spec.WriteBack == nil {
		return nil
	}
	return &writeback.Target{Tenant: key.String(), Spec: b.Spec.WriteBack, ListID: b.Status.ListID, Kommo: k, Unisender: u}
}

// listSharers returns the tenants of the other bindings sharing b's
// Unisender list (spec.list.shared on both, as the manager recorded in
// their status): an address b drops stays while one of them holds it. Only
// the namespaces the worker's cache holds are seen, so a worker limited to
// one namespace (--namespace) serves lists shared within it.
func (r *Resolver) listSharers(ctx context.Context, b *v1alpha1.UnisenderBinding) ([]string, error) {
	if !b.Spec.List.Shared {
		return nil, nil
	}
	var list v1alpha1.UnisenderBindingList
	if err := r.o.Bindings.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing UnisenderBindings sharing list %d: %w", b.Status.ListID, err)
	}
	var keys []string
	for i := range list.Items {
		if o := &list.Items[i]; b.SharesListWith(o) {
			keys = append(keys, tenant.Key{Namespace: o.Namespace, Name: o.Name}.String())
		}
	}
	return keys, nil
}

// uncachedBinding tells why a binding the cache does not hold cannot be
// resolved: worker.ErrTenantGone only when the API server has no such
// binding either; one it has is not in the cache yet, and its events wait
// (worker.ErrTenantNotReady) instead of being dropped.
func (r *Resolver) uncachedBinding(ctx context.Context, key tenant.Key) error {
	var b v1alpha1.UnisenderBinding
	err := r.o.Live.Get(ctx, key.NamespacedName(), &b)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: UnisenderBinding %s not found", worker.ErrTenantGone, key)
	case err != nil:
		return fmt.Errorf("reading UnisenderBinding %s from the API server (the cache does not hold it): %w", key, err)
	case !b.DeletionTimestamp.IsZero():
		return fmt.Errorf("%w: UnisenderBinding %s is being deleted", worker.ErrTenantGone, key)
	}
	return fmt.Errorf("%w: UnisenderBinding %s exists but is not in the worker's cache yet", worker.ErrTenantNotReady, key)
}

// kommoReader returns the client of the binding's KommoIntegration. An
// integration that is missing, suspended, not authorized (a revoked token,
// a blocked account: a human must act) or whose base URL is outside
// Options.KommoHosts (its token would go there) makes the tenant not ready,
// so its jobs wait without spending their attempts.
func (r *Resolver) kommoReader(ctx context.Context, key tenant.Key, b *v1alpha1.UnisenderBinding) (*kommo.Client, error) {
	var ki v1alpha1.KommoIntegration
	name := types.NamespacedName{Namespace: b.Namespace, Name: b.Spec.IntegrationRef.Name}
	err := r.o.Bindings.Get(ctx, name, &ki)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: KommoIntegration %s not found", worker.ErrTenantNotReady, name)
	case err != nil:
		return nil, fmt.Errorf("reading KommoIntegration %s: %w", name, err)
	case ki.Spec.Suspend:
		return nil, fmt.Errorf("%w: KommoIntegration %s is suspended", worker.ErrTenantNotReady, name)
	case !meta.IsStatusConditionTrue(ki.Status.Conditions, v1alpha1.ConditionAuthorized):
		return nil, fmt.Errorf("%w: KommoIntegration %s is not authorized", worker.ErrTenantNotReady, name)
	case r.o.NewKommoClient == nil:
		return nil, fmt.Errorf("resolver for %s: no Kommo client constructor configured", key)
	}
	base, rps := ki.Spec.APIBaseURL(), ki.Spec.RequestsPerSecond()
	if err := r.o.KommoHosts.Check(base); err != nil {
		return nil, fmt.Errorf("%w: KommoIntegration %s: %w", worker.ErrTenantNotReady, name, err)
	}
	id := fmt.Sprintf("%s|%s|%d", name, base, rps)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.kommo[id]; ok {
		return c, nil
	}
	ts := tokens.NewSource(r.o.ManagedSecrets, ki.Namespace, ki.Name)
	c := r.o.NewKommoClient(tenant.Key{Namespace: ki.Namespace, Name: ki.Name}, base, rps, ts)
	r.kommo[id] = c
	return c, nil
}

// Forget drops the tenant's memoised API key, so the next Resolve reads
// the Secret again (the worker calls it when Unisender refused the key).
func (r *Resolver) Forget(key tenant.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, key)
}

// apiKey returns the binding's API key: the widget-delivered one when the
// binding allows it and it exists, otherwise spec.apiKeySecretRef's.
func (r *Resolver) apiKey(ctx context.Context, key tenant.Key, b *v1alpha1.UnisenderBinding) (string, error) {
	ref := b.Spec.APIKeySecretRef
	source := fmt.Sprintf("%t|%s|%s", b.Spec.AllowWidgetKey, ref.Name, ref.Key)
	r.mu.Lock()
	cached, ok := r.keys[key]
	r.mu.Unlock()
	if ok && cached.source == source && r.now().Sub(cached.readAt) < r.o.KeyTTL {
		return cached.key, nil
	}
	apiKey, err := r.readKey(ctx, b)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.keys[key] = cachedKey{source: source, key: apiKey, readAt: r.now()}
	r.mu.Unlock()
	return apiKey, nil
}

func (r *Resolver) readKey(ctx context.Context, b *v1alpha1.UnisenderBinding) (string, error) {
	if b.Spec.AllowWidgetKey {
		v, found, err := r.secretValue(ctx, r.o.ManagedSecrets, b.Namespace, contract.WidgetKeySecretName(b.Name), contract.WidgetKeySecretKey)
		if err != nil {
			return "", err
		}
		if found {
			return v, nil
		}
	}
	ref := b.Spec.APIKeySecretRef
	v, found, err := r.secretValue(ctx, r.o.Secrets, b.Namespace, ref.Name, ref.Key)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%w: Secret %s/%s has no key %q (spec.apiKeySecretRef)", worker.ErrTenantNotReady, b.Namespace, ref.Name, ref.Key)
	}
	return v, nil
}

// secretValue reads one key of a Secret; found is false when the Secret or
// the key does not exist or is empty. Errors name the Secret, never a value.
func (r *Resolver) secretValue(ctx context.Context, reader client.Reader, namespace, name, key string) (string, bool, error) {
	var s corev1.Secret
	err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	v := s.Data[key]
	return string(v), len(v) > 0, nil
}

// client returns the Unisender client of an API key, made once.
func (r *Resolver) client(apiKey string) *unisender.Client {
	id := sha256.Sum256([]byte(r.o.UnisenderBaseURL + "\x00" + apiKey))
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[id]; ok {
		return c
	}
	c := unisender.NewClient(r.o.UnisenderBaseURL, apiKey, r.o.ClientOptions...)
	r.clients[id] = c
	return c
}
