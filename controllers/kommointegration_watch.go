package controllers

import (
	"bytes"
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/secretwatch"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// indexIntegrationSecrets indexes KommoIntegrations by the names of the
// user Secrets they read (client secret, code, long-lived token, the
// callback code Secret), so a Secret event finds its integrations.
const indexIntegrationSecrets = "kommointegration.secretNames"

// integrationSecretNames is the index function.
func integrationSecretNames(o client.Object) []string {
	ki, ok := o.(*v1alpha1.KommoIntegration)
	if !ok {
		return nil
	}
	var names []string
	for _, ref := range []*v1alpha1.SecretKeySelector{ki.Spec.ClientSecretRef, ki.Spec.AuthorizationCodeRef, ki.Spec.LongLivedTokenRef} {
		if ref != nil {
			names = append(names, ref.Name)
		}
	}
	if ki.Spec.OAuthCallback != nil {
		names = append(names, tokens.OAuthCodeSecretName(ki.Name))
	}
	return names
}

// SetupWithManager registers the reconciler. It watches the integrations
// (spec changes and the reconcile-request annotation; status writes do not
// trigger), the token Secrets it owns (only when their data changes: a
// claim or its release is no news), the metadata of the user Secrets the
// specs reference (through the label-free metadata cache), and deleted
// UnisenderBindings (which may release a pending deletion).
func (r *KommoIntegrationReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("kommointegration-controller")
	}
	if r.Metrics == nil {
		r.Metrics = DefaultTokenMetrics()
	}
	if r.HolderID == "" {
		r.HolderID = defaultHolderID()
	}
	if r.SecretMetadata == nil {
		c, err := secretwatch.New(mgr)
		if err != nil {
			return err
		}
		r.SecretMetadata = c
	}
	if r.Store == nil {
		mgr.GetLogger().WithName("kommointegration").Info(
			"no MySQL store: token and account calls to Kommo are paced per process only, outside the integrations' shared request budgets")
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.KommoIntegration{}, indexIntegrationSecrets, integrationSecretNames); err != nil {
		return err
	}
	if err := indexAppAndClientID(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.KommoIntegration{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}, builder.WithPredicates(secretDataChanged())).
		Watches(&v1alpha1.UnisenderBinding{},
			handler.EnqueueRequestsFromMapFunc(bindingIntegration),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc: func(event.CreateEvent) bool { return false },
				UpdateFunc: func(event.UpdateEvent) bool { return false },
				DeleteFunc: func(event.DeleteEvent) bool { return true },
			})).
		Watches(&v1alpha1.KommoApp{}, handler.EnqueueRequestsFromMapFunc(r.integrationsOfApp(mgr.GetClient()))).
		WatchesRawSource(secretwatch.Source(r.SecretMetadata, r.integrationsForSecret(mgr.GetClient()))).
		WithOptions(r.Controller).
		Named("kommointegration").
		Complete(r)
}

// secretDataChanged passes creations, deletions and updates that change a
// Secret's data or the refused-account mark (which holds the integration
// stalled).
func secretDataChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Secret)
			n, ok2 := e.ObjectNew.(*corev1.Secret)
			return !ok1 || !ok2 || !maps.EqualFunc(o.Data, n.Data, bytes.Equal) ||
				o.Annotations[RefusedAccountAnnotation] != n.Annotations[RefusedAccountAnnotation]
		},
	}
}

// bindingIntegration maps a binding to the integration it refers to.
func bindingIntegration(_ context.Context, o client.Object) []reconcile.Request {
	b, ok := o.(*v1alpha1.UnisenderBinding)
	if !ok || b.Spec.IntegrationRef.Name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Spec.IntegrationRef.Name}}}
}

// integrationsForSecret maps a Secret's metadata to the integrations that
// reference it. Token Secrets are left to the Owns watch.
func (r *KommoIntegrationReconciler) integrationsForSecret(c client.Reader) secretwatch.MapFunc {
	return func(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
		if owner := metav1.GetControllerOf(s); owner != nil && owner.Kind == "KommoIntegration" &&
			owner.APIVersion == v1alpha1.GroupVersion.String() {
			return nil
		}
		var list v1alpha1.KommoIntegrationList
		if err := c.List(ctx, &list, client.InNamespace(s.Namespace),
			client.MatchingFields{indexIntegrationSecrets: s.Name}); err != nil {
			logf.FromContext(ctx).Error(err, "listing KommoIntegrations for a Secret", "secret", s.Name)
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, ki := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ki)})
		}
		return reqs
	}
}
