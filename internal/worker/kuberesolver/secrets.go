package kuberesolver

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// CacheOptions configure the worker's cache, which serves as the Resolver's
// Bindings and ManagedSecrets: bindings and integrations of the watched
// namespaces (all when watched is empty), and of the Secrets only the
// operator's own (label sync.kommo-unisender.io/managed=true, selected by
// the API server, so no other Secret is ever listed), reduced by
// KeepWhatWorkersRead.
func CacheOptions(scheme *runtime.Scheme, watched []string) cache.Options {
	return cache.Options{
		Scheme: scheme, DefaultNamespaces: namespaces.CacheConfig(watched),
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Label:     labels.SelectorFromSet(labels.Set{tokens.ManagedLabel: tokens.ManagedLabelValue}),
			Transform: KeepWhatWorkersRead,
		}},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// workerReadKeys are the only Secret keys a worker reads: an integration's
// access token and its expiry, and a widget-delivered API key. Refresh
// tokens (only the manager refreshes), webhook URL secrets and pending
// authorization codes stay out of the worker's memory.
var workerReadKeys = []string{tokens.KeyAccessToken, tokens.KeyExpiresAt, widgetKeySecretKey}

// KeepWhatWorkersRead is the transform of the worker's cache of managed
// Secrets: metadata and the keys in workerReadKeys, nothing else.
func KeepWhatWorkersRead(in any) (any, error) {
	s, ok := in.(*corev1.Secret)
	if !ok {
		return in, nil
	}
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
	return out, nil
}
