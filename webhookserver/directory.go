package webhookserver

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// TenantInfo is what the webhook route needs to authenticate a delivery.
type TenantInfo struct {
	Key tenant.Key
	// ID is Key.String(), computed once: it labels jobs, logs and metrics.
	ID string
	// Secret is the path secret Kommo was given in the destination URL.
	// Callers must not modify it.
	Secret []byte
	// AccountID is the Kommo account the tenant's integration is authorized
	// for; 0 while it is not known yet.
	AccountID int64
	// Suspended: the binding's spec.suspend. Its webhooks are answered and
	// not queued; resuming runs a resync.
	Suspended bool
	// WriteBack: the binding has spec.writeBack, so Unisender's event hook
	// may post to it.
	WriteBack bool
}

// Directory finds tenants by the tenant segment of a webhook URL
// ("<namespace>.<name>", as tenant.Key.URLSegment writes it). A segment
// that does not name a tenant with a webhook secret is simply not found,
// so a malformed one needs no parsing.
type Directory interface {
	Tenant(urlSegment string) (TenantInfo, bool)
}

// TenantIndex is the Directory of the running server: three small maps
// kept current by informer event handlers on UnisenderBindings,
// KommoIntegrations and the operator's Secrets. A lookup is three map reads
// under a read lock; nothing is copied from the cache per request, and the
// index keeps only the webhook secret of each Secret, never other data.
type TenantIndex struct {
	mu sync.RWMutex
	// bindings by URL segment.
	bindings map[string]bindingRef
	// accounts: status.accountID of each KommoIntegration.
	accounts map[types.NamespacedName]int64
	// secrets: the contract.WebhookSecretKey value of each managed Secret holding one.
	secrets map[types.NamespacedName][]byte
}

// bindingRef is what the index keeps of a UnisenderBinding.
type bindingRef struct {
	key         tenant.Key
	id          string
	integration string
	secretName  string
	suspended   bool
	writeBack   bool
}

// NewTenantIndex returns an empty index; feed it with its Handler methods.
func NewTenantIndex() *TenantIndex {
	return &TenantIndex{
		bindings: map[string]bindingRef{},
		accounts: map[types.NamespacedName]int64{},
		secrets:  map[types.NamespacedName][]byte{},
	}
}

// Tenant implements Directory. A binding being deleted, or without a
// webhook Secret (yet), is not a tenant Kommo may post to.
func (x *TenantIndex) Tenant(urlSegment string) (TenantInfo, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	b, ok := x.bindings[urlSegment]
	if !ok {
		return TenantInfo{}, false
	}
	secret := x.secrets[types.NamespacedName{Namespace: b.key.Namespace, Name: b.secretName}]
	if len(secret) == 0 {
		return TenantInfo{}, false
	}
	account := x.accounts[types.NamespacedName{Namespace: b.key.Namespace, Name: b.integration}]
	return TenantInfo{Key: b.key, ID: b.id, Secret: secret, AccountID: account, Suspended: b.suspended, WriteBack: b.writeBack}, true
}

// BindingHandler keeps the index's bindings current.
func (x *TenantIndex) BindingHandler() toolscache.ResourceEventHandler {
	return handlerFuncs(func(o *v1alpha1.UnisenderBinding, deleted bool) {
		key := tenant.Key{Namespace: o.Namespace, Name: o.Name}
		x.mu.Lock()
		defer x.mu.Unlock()
		if deleted || !o.DeletionTimestamp.IsZero() || o.Status.WebhookSecretName == "" {
			delete(x.bindings, key.URLSegment())
			return
		}
		x.bindings[key.URLSegment()] = bindingRef{
			key: key, id: key.String(),
			integration: o.Spec.IntegrationRef.Name, secretName: o.Status.WebhookSecretName,
			suspended: o.Spec.Suspend, writeBack: o.Spec.WriteBack != nil,
		}
	})
}

// IntegrationHandler keeps the index's account ids current.
func (x *TenantIndex) IntegrationHandler() toolscache.ResourceEventHandler {
	return handlerFuncs(func(o *v1alpha1.KommoIntegration, deleted bool) {
		key := types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
		x.mu.Lock()
		defer x.mu.Unlock()
		if deleted || o.Status.AccountID == 0 {
			delete(x.accounts, key)
			return
		}
		x.accounts[key] = o.Status.AccountID
	})
}

// SecretHandler keeps the index's webhook secrets current. It copies the
// one value it needs, so the index never aliases the cache's objects.
func (x *TenantIndex) SecretHandler() toolscache.ResourceEventHandler {
	return handlerFuncs(func(o *corev1.Secret, deleted bool) {
		key := types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
		value := o.Data[contract.WebhookSecretKey]
		x.mu.Lock()
		defer x.mu.Unlock()
		if deleted || len(value) == 0 {
			delete(x.secrets, key)
			return
		}
		x.secrets[key] = append([]byte(nil), value...)
	})
}

// handlerFuncs adapts a typed "object changed or deleted" function to an
// informer handler, unwrapping the tombstones of missed deletes.
func handlerFuncs[T any](apply func(obj T, deleted bool)) toolscache.ResourceEventHandler {
	typed := func(obj any, deleted bool) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if o, ok := obj.(T); ok {
			apply(o, deleted)
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { typed(obj, false) },
		UpdateFunc: func(_, obj any) { typed(obj, false) },
		DeleteFunc: func(obj any) { typed(obj, true) },
	}
}
