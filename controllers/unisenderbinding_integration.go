package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// reconcileIntegrationRef: the KommoIntegration named by
// spec.integrationRef must exist and be Ready (it holds a usable token).
// Until then the binding waits; the watch on integrations brings it back as
// soon as the integration changes.
func (r *UnisenderBindingReconciler) reconcileIntegrationRef(ctx context.Context, p *bindingPass) (time.Duration, error) {
	ki, err := r.readyIntegration(ctx, p.obj, false)
	if err != nil {
		return 0, err
	}
	p.integration = ki
	p.kommo = r.kommoClientFor(ki, laneForeground)
	p.kommoBulk = r.kommoClientFor(ki, laneBackground)
	return 0, nil
}

// readyIntegration returns the binding's integration if it is Ready, or a
// outcome.Waiting saying why not. When cleaningUp, an integration that exists
// is enough, Ready or not, deleting or not: a deleting integration waits
// for its bindings (and reports Ready=False meanwhile) but keeps the token
// fresh precisely so that they can remove their webhooks; a broken token
// shows in the Kommo call, which the cleanup retries and gives up on.
func (r *UnisenderBindingReconciler) readyIntegration(ctx context.Context, obj *v1alpha1.UnisenderBinding, cleaningUp bool) (*v1alpha1.KommoIntegration, error) {
	name := obj.Spec.IntegrationRef.Name
	ki := &v1alpha1.KommoIntegration{}
	err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, ki)
	if apierrors.IsNotFound(err) {
		return nil, outcome.Wait(bindingWaitRecheck, v1alpha1.ReasonIntegrationNotFound,
			"KommoIntegration %q not found in namespace %q", name, obj.Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading KommoIntegration %q: %w", name, err)
	}
	if err := r.checkIntegrationBaseURL(ki); err != nil {
		return nil, err
	}
	if cleaningUp {
		return ki, nil
	}
	if !ki.DeletionTimestamp.IsZero() {
		return nil, outcome.Wait(bindingWaitRecheck, v1alpha1.ReasonIntegrationNotReady,
			"KommoIntegration %q is being deleted", name)
	}
	if !status.IsTrue(ki, v1alpha1.ConditionReady) {
		why := "it has not reported yet"
		if c := status.Get(ki, v1alpha1.ConditionReady); c != nil {
			why = c.Reason + ": " + c.Message
		}
		return nil, outcome.Wait(bindingWaitRecheck, v1alpha1.ReasonIntegrationNotReady,
			"KommoIntegration %q is not Ready (%s)", name, why)
	}
	return ki, nil
}
