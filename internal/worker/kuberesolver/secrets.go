package kuberesolver

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// CacheOptions configure the worker's cache, which serves as the Resolver's
// Bindings: bindings and integrations of the watched namespaces (all when
// watched is empty). It holds no Secret: workers may only get the Secrets
// they read, by name (see ManagedSecretReader), never list them.
func CacheOptions(scheme *runtime.Scheme, watched []string) cache.Options {
	return cache.Options{
		Scheme: scheme, DefaultNamespaces: namespaces.CacheConfig(watched),
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// DefaultSecretTTL is how long ManagedSecretReader reuses a Secret. An
// access token the manager replaced stays valid until it expires, so a
// worker using the previous one for this long is fine.
const DefaultSecretTTL = 10 * time.Second

// workerReadKeys are the only keys a worker reads from the operator's
// Secrets: an integration's access token and its expiry, and a
// widget-delivered API key. Refresh tokens (only the manager refreshes)
// and anything else are not kept.
var workerReadKeys = []string{tokens.KeyAccessToken, tokens.KeyExpiresAt, contract.WidgetKeySecretKey}

// ManagedSecretReader reads the operator's Secrets (token and widget-key
// Secrets) for the Resolver's ManagedSecrets: one get by name per Secret
// and TTL, since the Kommo clients ask for the token before every request,
// keeping only workerReadKeys.
type ManagedSecretReader struct {
	client.Reader
	TTL time.Duration

	mu   sync.Mutex
	read map[types.NamespacedName]readSecret
}

type readSecret struct {
	secret *corev1.Secret
	at     time.Time
}

// NewManagedSecretReader reads through r.
func NewManagedSecretReader(r client.Reader) *ManagedSecretReader {
	return &ManagedSecretReader{Reader: r, TTL: DefaultSecretTTL, read: map[types.NamespacedName]readSecret{}}
}

// Get implements client.Reader; objects other than Secrets go straight
// through.
func (m *ManagedSecretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	out, ok := obj.(*corev1.Secret)
	if !ok {
		return m.Reader.Get(ctx, key, obj, opts...)
	}
	m.mu.Lock()
	hit, found := m.read[key]
	m.mu.Unlock()
	if !found || time.Since(hit.at) >= m.TTL {
		var s corev1.Secret
		if err := m.Reader.Get(ctx, key, &s, opts...); err != nil {
			return err
		}
		hit = readSecret{secret: keepWhatWorkersRead(&s), at: time.Now()}
		m.mu.Lock()
		m.read[key] = hit
		m.mu.Unlock()
	}
	hit.secret.DeepCopyInto(out)
	return nil
}

// keepWhatWorkersRead is s's metadata and its keys in workerReadKeys.
func keepWhatWorkersRead(s *corev1.Secret) *corev1.Secret {
	out := &corev1.Secret{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
			Labels: s.Labels, DeletionTimestamp: s.DeletionTimestamp,
		},
		Type: s.Type,
	}
	for _, k := range workerReadKeys {
		if v, ok := s.Data[k]; ok {
			if out.Data == nil {
				out.Data = map[string][]byte{}
			}
			out.Data[k] = v
		}
	}
	return out
}
