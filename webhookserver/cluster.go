package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// Cluster is what the OAuth callback and the widget routes read and write
// in Kubernetes.
type Cluster interface {
	// Integration returns the KommoIntegration key names, or ErrNotFound.
	Integration(ctx context.Context, key types.NamespacedName) (*v1alpha1.KommoIntegration, error)
	// IntegrationsByClientID returns every KommoIntegration whose client
	// id is clientID: its own spec.clientID, or that of the KommoApp its
	// spec.appRef names (one Kommo integration may serve several accounts).
	IntegrationsByClientID(ctx context.Context, clientID string) ([]v1alpha1.KommoIntegration, error)
	// BindingsOf returns the UnisenderBindings whose integrationRef names ki,
	// sorted by name.
	BindingsOf(ctx context.Context, ki *v1alpha1.KommoIntegration) ([]v1alpha1.UnisenderBinding, error)
	// OAuthClient returns the integration's client id, redirect URI and
	// client secret: its own (spec.clientSecretRef), or its KommoApp's
	// (a Secret in the operator's namespace).
	OAuthClient(ctx context.Context, ki *v1alpha1.KommoIntegration) (*OAuthClient, error)
	// StateKey returns the key OAuth states are signed with
	// (tokens.StateKeySecretName in the operator's namespace).
	StateKey(ctx context.Context) ([]byte, error)
	// PutOwnedSecret creates or replaces the data of the Secret name in
	// owner's namespace, labelled managed and owned by owner. It refuses
	// (ErrForeignSecret) to touch a Secret of that name that owner does not
	// own. With a claim, the write also records the claim's token in the
	// Secret and is refused (ErrTokenReused) if that token wrote it before.
	PutOwnedSecret(ctx context.Context, owner client.Object, name string, data map[string][]byte, claim *TokenClaim) error
	// PutOAuthCode writes code into ki's callback Secret like
	// PutOwnedSecret, recording the state's use (claim); it refuses
	// (ErrCodePending) while the Secret still holds a code the reconciler
	// has not spent.
	PutOAuthCode(ctx context.Context, ki *v1alpha1.KommoIntegration, code string, claim *TokenClaim) error
}

// OAuthClient is the Kommo integration an integration authenticates as.
type OAuthClient struct {
	ClientID, RedirectURI string
	Secret                []byte
	// App names the KommoApp, "" for an integration's own client. Only an
	// app's secret is out of every tenant's reach.
	App string
}

// Errors of a Cluster.
var (
	ErrNotFound = errors.New("not found")
	// ErrForeignSecret: a Secret with the name the operator writes exists
	// and is not the operator's; it is left alone.
	ErrForeignSecret = errors.New("a Secret with that name exists and is not managed by the operator for this object")
	// ErrNoClientSecret: the integration names no client secret, or the
	// Secret, key or KommoApp is missing.
	ErrNoClientSecret = errors.New("the integration's client secret is not available")
	// ErrCodePending: the callback Secret holds a code not yet spent.
	ErrCodePending = errors.New("an authorization code is waiting to be spent")
)

// Field indexes of the cache.
const (
	indexClientID    = "spec.clientID" // of integrations, or "app:<name>" for spec.appRef
	indexAppClientID = "app.spec.clientID"
	indexIntegration = "spec.integrationRef.name"
)

// KubeOptions configure NewKube.
type KubeOptions struct {
	// Namespaces restricts the watches to these namespaces; empty means
	// all.
	Namespaces []string
	// OperatorNamespace holds the OAuth state key and the KommoApps'
	// client secrets.
	OperatorNamespace string
	// ClientSecretTTL is how long a client secret read from the API server
	// is reused (default 30 s): an unauthenticated caller who names an
	// integration must not cost a Secret read per request.
	ClientSecretTTL time.Duration
	// SyncTimeout bounds Start's wait for the cache (default 2 min).
	SyncTimeout time.Duration
}

// Kube is the Kubernetes side of the server: a controller-runtime cache of
// UnisenderBindings, KommoIntegrations and the operator's own Secrets
// (label sync.kommo-unisender.io/managed=true only, their data reduced to
// the webhook secret), the TenantIndex fed by it, an uncached client for
// the user Secrets holding client secrets, and the writes of the callback
// and widget routes.
type Kube struct {
	cache   cache.Cache
	direct  client.Client
	scheme  *runtime.Scheme
	tenants *TenantIndex
	secrets secretTTLCache
	regs    []toolscache.ResourceEventHandlerRegistration
	syncFor time.Duration
	opNS    string
}

var _ Cluster = (*Kube)(nil)

// NewKube builds the cache and its index; Start runs them.
func NewKube(cfg *rest.Config, opts KubeOptions) (*Kube, error) {
	scheme, err := contract.Scheme()
	if err != nil {
		return nil, err
	}
	copts := cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Label:     labels.SelectorFromSet(labels.Set{tokens.ManagedLabel: tokens.ManagedLabelValue}),
				Transform: keepWebhookSecretOnly,
			},
		},
		DefaultNamespaces: namespaces.CacheConfig(opts.Namespaces),
		DefaultTransform:  cache.TransformStripManagedFields(),
	}
	c, err := cache.New(cfg, copts)
	if err != nil {
		return nil, fmt.Errorf("creating the cache: %w", err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the API client: %w", err)
	}
	ttl := opts.ClientSecretTTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	syncFor := opts.SyncTimeout
	if syncFor <= 0 {
		syncFor = 2 * time.Minute
	}
	k := &Kube{cache: c, direct: direct, scheme: scheme, tenants: NewTenantIndex(),
		secrets: secretTTLCache{ttl: ttl, entries: map[string]cachedSecret{}}, syncFor: syncFor, opNS: opts.OperatorNamespace}
	return k, nil
}

// Tenants is the webhook route's Directory.
func (k *Kube) Tenants() *TenantIndex { return k.tenants }

// Start registers the indexes and event handlers, starts the cache (it
// runs until ctx ends) and returns once the cache and the tenant index
// hold the current state, so that the server never answers 404 to a tenant
// that exists; or an error after SyncTimeout.
func (k *Kube) Start(ctx context.Context) error {
	if err := k.cache.IndexField(ctx, &v1alpha1.KommoIntegration{}, indexClientID, func(o client.Object) []string {
		ki := o.(*v1alpha1.KommoIntegration)
		if ki.Spec.AppRef != nil {
			return []string{"app:" + ki.Spec.AppRef.Name}
		}
		return []string{ki.Spec.ClientID}
	}); err != nil {
		return fmt.Errorf("indexing integrations by client id: %w", err)
	}
	if err := k.cache.IndexField(ctx, &v1alpha1.KommoApp{}, indexAppClientID, func(o client.Object) []string {
		return []string{o.(*v1alpha1.KommoApp).Spec.ClientID}
	}); err != nil {
		return fmt.Errorf("indexing apps by client id: %w", err)
	}
	if err := k.cache.IndexField(ctx, &v1alpha1.UnisenderBinding{}, indexIntegration, func(o client.Object) []string {
		return []string{o.(*v1alpha1.UnisenderBinding).Spec.IntegrationRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing bindings by integration: %w", err)
	}
	handlers := []struct {
		obj client.Object
		h   toolscache.ResourceEventHandler
	}{
		{&v1alpha1.UnisenderBinding{}, k.tenants.BindingHandler()},
		{&v1alpha1.KommoIntegration{}, k.tenants.IntegrationHandler()},
		{&corev1.Secret{}, k.tenants.SecretHandler()},
	}
	for _, h := range handlers {
		inf, err := k.cache.GetInformer(ctx, h.obj)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", h.obj, err)
		}
		reg, err := inf.AddEventHandler(h.h)
		if err != nil {
			return fmt.Errorf("event handler for %T: %w", h.obj, err)
		}
		k.regs = append(k.regs, reg)
	}
	errc := make(chan error, 1)
	go func() { errc <- k.cache.Start(ctx) }()
	wait, cancel := context.WithTimeout(ctx, k.syncFor)
	defer cancel()
	if !k.cache.WaitForCacheSync(wait) {
		select {
		case err := <-errc:
			return fmt.Errorf("cache stopped before syncing: %w", err)
		default:
			return errors.New("the cache did not sync")
		}
	}
	synced := func() bool {
		for _, r := range k.regs {
			if !r.HasSynced() {
				return false
			}
		}
		return true
	}
	for !synced() {
		select {
		case <-wait.Done():
			return fmt.Errorf("the tenant index did not sync: %w", wait.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Integration implements Cluster.
func (k *Kube) Integration(ctx context.Context, key types.NamespacedName) (*v1alpha1.KommoIntegration, error) {
	var ki v1alpha1.KommoIntegration
	if err := k.cache.Get(ctx, key, &ki); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &ki, nil
}

// IntegrationsByClientID implements Cluster.
func (k *Kube) IntegrationsByClientID(ctx context.Context, clientID string) ([]v1alpha1.KommoIntegration, error) {
	if clientID == "" {
		return nil, nil
	}
	var apps v1alpha1.KommoAppList
	if err := k.cache.List(ctx, &apps, client.MatchingFields{indexAppClientID: clientID}); err != nil {
		return nil, err
	}
	keys := []string{clientID}
	for _, app := range apps.Items {
		keys = append(keys, "app:"+app.Name)
	}
	var out []v1alpha1.KommoIntegration
	for _, key := range keys {
		var list v1alpha1.KommoIntegrationList
		if err := k.cache.List(ctx, &list, client.MatchingFields{indexClientID: key}); err != nil {
			return nil, err
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

// BindingsOf implements Cluster.
func (k *Kube) BindingsOf(ctx context.Context, ki *v1alpha1.KommoIntegration) ([]v1alpha1.UnisenderBinding, error) {
	var list v1alpha1.UnisenderBindingList
	if err := k.cache.List(ctx, &list, client.InNamespace(ki.Namespace), client.MatchingFields{indexIntegration: ki.Name}); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.UnisenderBinding) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

// OAuthClient implements Cluster.
func (k *Kube) OAuthClient(ctx context.Context, ki *v1alpha1.KommoIntegration) (*OAuthClient, error) {
	if ki.Spec.AppRef == nil {
		secret, err := k.secretValue(ctx, ki.Namespace, ki.Spec.ClientSecretRef)
		if err != nil {
			return nil, err
		}
		return &OAuthClient{ClientID: ki.Spec.ClientID, RedirectURI: ki.Spec.RedirectURI, Secret: secret}, nil
	}
	var app v1alpha1.KommoApp
	if err := k.cache.Get(ctx, types.NamespacedName{Name: ki.Spec.AppRef.Name}, &app); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, ErrNoClientSecret
		}
		return nil, err
	}
	if k.opNS == "" {
		return nil, ErrNoClientSecret
	}
	secret, err := k.secretValue(ctx, k.opNS, &app.Spec.ClientSecretRef)
	if err != nil {
		return nil, err
	}
	return &OAuthClient{ClientID: app.Spec.ClientID, RedirectURI: app.Spec.RedirectURI, Secret: secret, App: app.Name}, nil
}

// StateKey implements Cluster.
//
// The key is random bytes, read as they are: the user Secrets secretValue
// reads are text and get trimmed, which would change a key that starts or
// ends with a whitespace byte (about one in twenty) and refuse every state.
func (k *Kube) StateKey(ctx context.Context) ([]byte, error) {
	const id = "\x00oauth-state-key" // no namespace/name/key id can start with NUL
	if v, ok := k.secrets.get(id); ok {
		return v, nil
	}
	v, err := tokens.LoadStateKey(ctx, k.direct, k.opNS)
	if errors.Is(err, tokens.ErrNoStateKey) {
		return nil, ErrNoClientSecret
	}
	if err != nil {
		return nil, err
	}
	k.secrets.put(id, v)
	return v, nil
}

// secretValue reads one key of a Secret that is not in the cache (it
// holds the operator's labelled Secrets only, reduced to the webhook
// secret) from the API server, at most once per ClientSecretTTL per key:
// an unauthenticated caller who names an integration must not cost a
// Secret read per request.
func (k *Kube) secretValue(ctx context.Context, namespace string, ref *v1alpha1.SecretKeySelector) ([]byte, error) {
	if namespace == "" || ref == nil || ref.Name == "" || ref.Key == "" {
		return nil, ErrNoClientSecret
	}
	id := namespace + "/" + ref.Name + "/" + ref.Key
	if v, ok := k.secrets.get(id); ok {
		return v, nil
	}
	var s corev1.Secret
	if err := k.direct.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, ErrNoClientSecret
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, ref.Name, err)
	}
	v := []byte(strings.TrimSpace(string(s.Data[ref.Key])))
	if len(v) == 0 {
		return nil, ErrNoClientSecret
	}
	k.secrets.put(id, v)
	return v, nil
}

// PutOwnedSecret implements Cluster. It reads and writes the API server
// directly (the cache holds only part of a Secret's data) and retries a
// write that lost a race; the retry reads the winner's claims.
func (k *Kube) PutOwnedSecret(ctx context.Context, owner client.Object, name string, data map[string][]byte, claim *TokenClaim) error {
	return k.putWithRetries(ctx, owner, name, data, claim, nil)
}

// PutOAuthCode implements Cluster.
func (k *Kube) PutOAuthCode(ctx context.Context, ki *v1alpha1.KommoIntegration, code string, claim *TokenClaim) error {
	return k.putWithRetries(ctx, ki, tokens.OAuthCodeSecretName(ki.Name), map[string][]byte{tokens.OAuthCodeKey: []byte(code)}, claim,
		func(s *corev1.Secret) error {
			if len(s.Data[tokens.OAuthCodeKey]) > 0 {
				return ErrCodePending
			}
			return nil
		})
}

func (k *Kube) putWithRetries(ctx context.Context, owner client.Object, name string, data map[string][]byte, claim *TokenClaim, check func(*corev1.Secret) error) error {
	var err error
	for range 3 {
		if err = k.putOwnedSecret(ctx, owner, name, data, claim, check); !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return err
}

// putOwnedSecret writes one version; check, if set, may refuse the write
// after seeing the Secret as stored (the write carries the
// resourceVersion read, so what check saw is what is replaced).
func (k *Kube) putOwnedSecret(ctx context.Context, owner client.Object, name string, data map[string][]byte, claim *TokenClaim, check func(*corev1.Secret) error) error {
	var s corev1.Secret
	err := k.direct.Get(ctx, types.NamespacedName{Namespace: owner.GetNamespace(), Name: name}, &s)
	create := apierrors.IsNotFound(err)
	switch {
	case create:
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: owner.GetNamespace(), Name: name,
				Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue}},
			Type: corev1.SecretTypeOpaque,
		}
		if err := controllerutil.SetOwnerReference(owner, &s, k.scheme); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("reading Secret %q: %w", name, err)
	case s.Labels[tokens.ManagedLabel] != tokens.ManagedLabelValue || !ownedBy(&s, owner):
		return fmt.Errorf("writing Secret %q: %w", name, ErrForeignSecret)
	}
	if check != nil {
		if err := check(&s); err != nil {
			return err
		}
	}
	if claim != nil {
		used, err := claim.record(s.Annotations[UsedTokensAnnotation])
		if err != nil {
			return err
		}
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, UsedTokensAnnotation, used)
	}
	s.Data = data
	s.StringData = nil
	if create {
		return k.direct.Create(ctx, &s)
	}
	return k.direct.Update(ctx, &s) // carries the resourceVersion read
}

func ownedBy(s *corev1.Secret, owner client.Object) bool {
	for _, ref := range s.OwnerReferences {
		if ref.UID == owner.GetUID() {
			return true
		}
	}
	return false
}

// keepWebhookSecretOnly reduces a cached Secret to its metadata and the
// webhook secret: the operator's token Secrets and widget keys have no
// business in this process's memory.
func keepWebhookSecretOnly(in any) (any, error) {
	s, ok := in.(*corev1.Secret)
	if !ok {
		return in, nil
	}
	out := &corev1.Secret{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
			Labels: s.Labels, OwnerReferences: s.OwnerReferences, DeletionTimestamp: s.DeletionTimestamp,
		},
		Type: s.Type,
	}
	if v, ok := s.Data[contract.WebhookSecretKey]; ok {
		out.Data = map[string][]byte{contract.WebhookSecretKey: v}
	}
	return out, nil
}

// secretTTLCache remembers client secrets for a short time.
type secretTTLCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]cachedSecret
}

type cachedSecret struct {
	value   []byte
	expires time.Time
}

func (c *secretTTLCache) get(id string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || time.Now().After(e.expires) {
		delete(c.entries, id)
		return nil, false
	}
	return e.value, true
}

func (c *secretTTLCache) put(id string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[id] = cachedSecret{value: v, expires: time.Now().Add(c.ttl)}
}
