package webhookserver

import (
	"context"
	"fmt"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

var _ HookKeys = (*Kube)(nil)

// UnisenderKey implements HookKeys: the binding's API key, read as the
// worker reads it (the widget-delivered key when spec.allowWidgetKey and it
// exists, else spec.apiKeySecretRef), at most once per ClientSecretTTL.
func (k *Kube) UnisenderKey(ctx context.Context, key tenant.Key) (string, error) {
	var b v1alpha1.UnisenderBinding
	if err := k.cache.Get(ctx, key.NamespacedName(), &b); err != nil {
		return "", fmt.Errorf("reading UnisenderBinding %s: %w", key, err)
	}
	if b.Spec.AllowWidgetKey {
		ref := &v1alpha1.SecretKeySelector{Name: contract.WidgetKeySecretName(b.Name), Key: contract.WidgetKeySecretKey}
		if v, err := k.secretValue(ctx, b.Namespace, ref); err == nil {
			return string(v), nil
		}
	}
	v, err := k.secretValue(ctx, b.Namespace, &b.Spec.APIKeySecretRef)
	if err != nil {
		return "", fmt.Errorf("reading the Unisender API key of %s: %w", key, err)
	}
	return string(v), nil
}
