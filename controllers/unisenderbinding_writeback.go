package controllers

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
)

// UnisenderHookURL is the URL Unisender posts a tenant's events to.
func UnisenderHookURL(publicBaseURL string, t tenant.Key, secret string) string {
	return strings.TrimRight(publicBaseURL, "/") + contract.UnisenderHookPathPrefix + t.URLSegment() + "/" + secret
}

// reconcileWriteBack registers Unisender's event hook for a binding with
// spec.writeBack (unless push is disabled): on the first pass, on a
// forced reconcile and whenever a resync is due. Registering again is
// harmless (setHook replaces the handler of the same URL) and restarts a
// hook Unisender stopped after failed deliveries, which cannot be read
// back. Whatever the hook missed meanwhile, the resync's pull catches up.
func (r *UnisenderBindingReconciler) reconcileWriteBack(ctx context.Context, p *bindingPass) (time.Duration, error) {
	obj := p.obj
	if !obj.Spec.WriteBack.PushEnabled() {
		status.Remove(obj, v1alpha1.ConditionUnisenderHookRegistered)
		return 0, nil
	}
	masked := UnisenderHookURL(r.PublicBaseURL, p.tenant, maskedSecret)
	cond := status.Get(obj, v1alpha1.ConditionUnisenderHookRegistered)
	known := cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == obj.Generation
	if known && !p.forced && !r.resyncDue(obj) {
		return 0, nil
	}
	push := obj.Spec.WriteBack.Push
	err := p.uni.SetHook(ctx, unisender.Hook{URL: p.hookURL, Events: push.HookEvents(), EventFormat: push.HookEventFormat()})
	if err != nil {
		status.MarkFalse(obj, v1alpha1.ConditionUnisenderHookRegistered, v1alpha1.ReasonHookRegistrationFailed,
			"registering Unisender's event hook failed (the resync's pull still reports the outcomes): %s", err.Error())
		return 0, err
	}
	if cond == nil {
		r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonUnisenderHookRegistered, "RegisterHook", "registered Unisender's event hook at %s", masked)
	}
	status.MarkTrue(obj, v1alpha1.ConditionUnisenderHookRegistered, v1alpha1.ReasonSucceeded, "Unisender event hook registered at %s", masked)
	return 0, nil
}

// writeBackTarget is the resync's pull of the binding's write-back, nil
// without spec.writeBack; its Kommo writes take the background lane's
// share of the account's budget.
func writeBackTarget(p *bindingPass) *writeback.Target {
	obj := p.obj
	if obj.Spec.WriteBack == nil {
		return nil
	}
	return &writeback.Target{Tenant: p.tenant.String(), Spec: obj.Spec.WriteBack, ListID: obj.Status.ListID, Kommo: p.kommoBulk, Unisender: p.uni}
}
