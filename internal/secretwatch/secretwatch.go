// Package secretwatch lets reconcilers react to the Secrets their specs
// reference (client secrets, API keys, authorization codes) without caching
// Secret data: the manager's own cache holds only the operator's Secrets
// (label sync.kommo-unisender.io/managed=true), and this one watches the
// metadata of every Secret, stripped down to what a mapping needs.
package secretwatch

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
)

// New returns a metadata-only cache of Secrets in every namespace, with no
// label selector, added to mgr (which starts it). Its objects keep name,
// namespace, uid, resourceVersion, labels and owner references: the
// annotations are dropped because kubectl's last-applied-configuration
// annotation carries a Secret's data. One cache serves every reconciler.
//
// watched limits the watch (empty: all namespaces), like the manager's
// own cache.
func New(mgr manager.Manager, watched ...string) (cache.Cache, error) {
	opts := cache.Options{
		HTTPClient:        mgr.GetHTTPClient(),
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultTransform:  stripMetadata,
		DefaultNamespaces: namespaces.CacheConfig(watched),
	}
	c, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return nil, fmt.Errorf("creating the Secret metadata cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return nil, fmt.Errorf("adding the Secret metadata cache to the manager: %w", err)
	}
	return c, nil
}

// Object is the watched type: metadata of a core/v1 Secret.
func Object() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{
		APIVersion: corev1.SchemeGroupVersion.String(), Kind: "Secret"}}
}

// MapFunc maps a Secret's metadata to the requests it should trigger.
type MapFunc = handler.TypedMapFunc[*metav1.PartialObjectMetadata, reconcile.Request]

// Source is a controller source of Secret metadata events from c, each
// mapped to requests by fn.
func Source(c cache.Cache, fn MapFunc) source.Source {
	return source.Kind(c, Object(), handler.TypedEnqueueRequestsFromMapFunc(fn))
}

func stripMetadata(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: m.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			Labels: m.Labels, OwnerReferences: m.OwnerReferences, DeletionTimestamp: m.DeletionTimestamp,
		},
	}, nil
}
