package controllers

import (
	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
)

// The integration's base URL receives its client secret, codes and tokens,
// and the answers from it end up in status and events. So before any
// request, both reconcilers check it against the HostPolicy (Kommo's
// domains over https, unless the manager's --allowed-kommo-hosts widens
// it); the worker applies the same policy (internal/worker/kuberesolver).

// checkBaseURL stalls an integration whose base URL is not allowed: a human
// must change spec.baseURL (or the manager's flag).
func (r *KommoIntegrationReconciler) checkBaseURL(obj *v1alpha1.KommoIntegration) error {
	if err := r.KommoHosts.Check(obj.Spec.APIBaseURL()); err != nil {
		return outcome.Stall(v1alpha1.ReasonBaseURLNotAllowed, "spec.baseURL refused, no request sent: %v", err)
	}
	return nil
}

// checkIntegrationBaseURL makes a binding whose integration's base URL is
// not allowed wait (the integration itself stalls with the reason), so that
// neither its reconciles nor its cleanup send the token there.
func (r *UnisenderBindingReconciler) checkIntegrationBaseURL(ki *v1alpha1.KommoIntegration) error {
	if err := r.KommoHosts.Check(ki.Spec.APIBaseURL()); err != nil {
		return outcome.Wait(bindingWaitRecheck, v1alpha1.ReasonBaseURLNotAllowed,
			"KommoIntegration %q: spec.baseURL refused, no request sent: %v", ki.Name, err)
	}
	return nil
}
