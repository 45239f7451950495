package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/secretwatch"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// Field indexes of UnisenderBindings, so that an event on an integration or
// a Secret finds its bindings without listing them all.
const (
	indexBindingIntegration = "unisenderbinding.integrationRef"
	indexBindingSecrets     = "unisenderbinding.secretNames"
)

func bindingIntegrationName(o client.Object) []string {
	b, ok := o.(*v1alpha1.UnisenderBinding)
	if !ok || b.Spec.IntegrationRef.Name == "" {
		return nil
	}
	return []string{b.Spec.IntegrationRef.Name}
}

// bindingSecretNames: the API key Secret and, when the widget may deliver
// the key, the widget's Secret.
func bindingSecretNames(o client.Object) []string {
	b, ok := o.(*v1alpha1.UnisenderBinding)
	if !ok {
		return nil
	}
	var names []string
	if b.Spec.APIKeySecretRef.Name != "" {
		names = append(names, b.Spec.APIKeySecretRef.Name)
	}
	if b.Spec.AllowWidgetKey {
		names = append(names, contract.WidgetKeySecretName(b.Name))
	}
	return names
}

// SetupWithManager registers the reconciler and its import runner (a
// manager.Runnable, so imports run on the leader only and stop with the
// manager). It watches the bindings (spec changes and the reconcile-request
// annotation; status writes do not trigger), the webhook Secrets it owns,
// the KommoIntegrations the bindings refer to (not their token
// bookkeeping), the metadata of the API key Secrets (through the label-free
// metadata cache), and the end of import runs.
func (r *UnisenderBindingReconciler) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	if r.Store == nil {
		return errors.New("the UnisenderBinding reconciler needs the MySQL store (--mysql-dsn)")
	}
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
		r.Recorder = mgr.GetEventRecorder("unisenderbinding-controller")
	}
	if r.SecretMetadata == nil {
		c, err := secretwatch.New(mgr)
		if err != nil {
			return err
		}
		r.SecretMetadata = c
	}
	r.reported = map[tenant.Key]time.Time{}
	r.wake = make(chan event.TypedGenericEvent[*v1alpha1.UnisenderBinding], 1024)
	r.runner = &importer.Runner{
		Importer: &importer.Importer{Store: r.Store, Metrics: r.metrics()},
		OnFinish: r.wakeUp,
		Now:      r.now,
	}
	if err := mgr.Add(r.runner); err != nil {
		return fmt.Errorf("adding the import runner: %w", err)
	}
	if err := mgr.Add(resyncRequests{r: r}); err != nil {
		return fmt.Errorf("adding the resync request poller: %w", err)
	}
	if err := mgr.Add(r.healthLoop()); err != nil {
		return fmt.Errorf("adding the binding health loop: %w", err)
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.UnisenderBinding{}, indexBindingIntegration, bindingIntegrationName); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.UnisenderBinding{}, indexBindingSecrets, bindingSecretNames); err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		For(&v1alpha1.UnisenderBinding{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Watches(&v1alpha1.KommoIntegration{}, handler.EnqueueRequestsFromMapFunc(r.bindingsOfIntegration),
			builder.WithPredicates(integrationChangedForBindings())).
		Watches(&v1alpha1.UnisenderBinding{}, handler.EnqueueRequestsFromMapFunc(r.bindingsRefusedAList)).
		WatchesRawSource(secretwatch.Source(r.SecretMetadata, r.bindingsOfSecret)).
		WatchesRawSource(source.Channel(r.wake, &handler.TypedEnqueueRequestForObject[*v1alpha1.UnisenderBinding]{})).
		WithOptions(r.Controller).
		Named("unisenderbinding").
		Complete(r)
}

func (r *UnisenderBindingReconciler) healthLoop() *bindingHealth {
	if r.HealthMetrics == nil {
		r.HealthMetrics = DefaultHealthMetrics()
	}
	interval := r.HealthInterval
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	return &bindingHealth{client: r.Client, store: r.Store, metrics: r.HealthMetrics, interval: interval}
}

func (r *UnisenderBindingReconciler) metrics() *importer.Metrics {
	if r.Metrics == nil {
		r.Metrics = importer.DefaultMetrics()
	}
	return r.Metrics
}

// wakeUp has the binding reconciled now that its run ended. It never
// blocks the run: if the channel is full, the periodic requeue collects.
func (r *UnisenderBindingReconciler) wakeUp(t tenant.Key) {
	obj := &v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name}}
	select {
	case r.wake <- event.TypedGenericEvent[*v1alpha1.UnisenderBinding]{Object: obj}:
	default:
	}
}

// bindingsOfIntegration maps an integration to the bindings that use it.
func (r *UnisenderBindingReconciler) bindingsOfIntegration(ctx context.Context, o client.Object) []reconcile.Request {
	return r.bindingsMatching(ctx, o.GetNamespace(), indexBindingIntegration, o.GetName())
}

// bindingsOfSecret maps a Secret's metadata to the bindings that read it.
func (r *UnisenderBindingReconciler) bindingsOfSecret(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
	return r.bindingsMatching(ctx, s.Namespace, indexBindingSecrets, s.Name)
}

func (r *UnisenderBindingReconciler) bindingsMatching(ctx context.Context, ns, index, value string) []reconcile.Request {
	var list v1alpha1.UnisenderBindingList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{index: value}); err != nil {
		logf.FromContext(ctx).Error(err, "listing UnisenderBindings", "index", index)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
