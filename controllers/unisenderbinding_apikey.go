package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// reconcileAPIKey reads the API key and has Unisender check it. The check is
// getLists, whose answer the list step uses too.
func (r *UnisenderBindingReconciler) reconcileAPIKey(ctx context.Context, p *bindingPass) (time.Duration, error) {
	key, source, err := r.apiKey(ctx, p.obj)
	if err != nil {
		var w *outcome.Waiting
		if errors.As(err, &w) {
			status.MarkFalse(p.obj, v1alpha1.ConditionKeyValid, w.Reason, "%s", w.Message)
		}
		return 0, err
	}
	p.keySource = source
	p.uni = r.unisenderClientFor(key)
	lists, err := p.uni.GetLists(ctx)
	if err != nil {
		err = unisenderKeyFailure(err, source)
		var st *outcome.Stalling
		if errors.As(err, &st) {
			status.MarkFalse(p.obj, v1alpha1.ConditionKeyValid, st.Reason, "%s", st.Message)
			return 0, err
		}
		return 0, fmt.Errorf("checking the Unisender API key: %w", err)
	}
	p.lists = lists
	status.MarkTrue(p.obj, v1alpha1.ConditionKeyValid, v1alpha1.ReasonSucceeded, "Unisender accepted the API key in %s", source)
	return 0, nil
}

// apiKey returns the Unisender API key and where it came from: the
// widget-delivered Secret when spec.allowWidgetKey is set and it exists
// (it is operator-managed, so it is read through the cache), otherwise
// spec.apiKeySecretRef (a user Secret, read with the API reader). A
// missing Secret or key is an outcome.Waiting: the Secret watch brings the
// binding back when it appears.
func (r *UnisenderBindingReconciler) apiKey(ctx context.Context, obj *v1alpha1.UnisenderBinding) (key, source string, err error) {
	if obj.Spec.AllowWidgetKey {
		name := contract.WidgetKeySecretName(obj.Name)
		var s corev1.Secret
		err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, &s)
		switch {
		case err == nil && len(s.Data[contract.WidgetKeySecretKey]) > 0:
			return string(s.Data[contract.WidgetKeySecretKey]), fmt.Sprintf("Secret %q key %q (from the Kommo widget)", name, contract.WidgetKeySecretKey), nil
		case err != nil && !apierrors.IsNotFound(err):
			return "", "", fmt.Errorf("reading Secret %q: %w", name, err)
		}
	}
	ref := obj.Spec.APIKeySecretRef
	source = fmt.Sprintf("Secret %q key %q", ref.Name, ref.Key)
	var s corev1.Secret
	err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, &s)
	if apierrors.IsNotFound(err) {
		return "", source, outcome.Wait(bindingWaitRecheck, v1alpha1.ReasonSecretNotFound,
			"Secret %q (spec.apiKeySecretRef) not found in namespace %q", ref.Name, obj.Namespace)
	}
	if err != nil {
		return "", source, fmt.Errorf("reading Secret %q: %w", ref.Name, err)
	}
	v := s.Data[ref.Key]
	if len(v) == 0 {
		return "", source, outcome.Wait(bindingWaitRecheck, v1alpha1.ReasonSecretNotFound,
			"Secret %q has no key %q (spec.apiKeySecretRef)", ref.Name, ref.Key)
	}
	return string(v), source, nil
}
