package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// KommoAppReconciler reports on each KommoApp: whether its client secret
// is in place in the operator's namespace, and how many integrations use
// it. The credentials themselves are read by the KommoIntegration
// reconciler and the webhook server.
type KommoAppReconciler struct {
	// Client reads through the manager's cache (apps and integrations).
	client.Client
	// APIReader reads the app's Secret, which is not cached.
	APIReader client.Reader
	// OperatorNamespace holds the apps' Secrets.
	OperatorNamespace string
	// Controller options (tests set SkipNameValidation).
	Controller controller.Options
}

// appRecheck: the operator's namespace is not watched, so a missing Secret
// is looked for again after this long.
const appRecheck = time.Minute

// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=kommoapps/status,verbs=get;update;patch

// Reconcile counts the app's integrations and checks its Secret.
func (r *KommoAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	app := &v1alpha1.KommoApp{}
	if err := r.Get(ctx, req.NamespacedName, app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher := status.NewSerialPatcher(app, r.Client)
	n, err := r.integrationsUsing(ctx, app.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	app.Status.Integrations = n
	res := ctrl.Result{}
	if problem, err := r.secretProblem(ctx, app); err != nil {
		return ctrl.Result{}, err
	} else if problem != "" {
		status.MarkFalse(app, v1alpha1.ConditionReady, v1alpha1.ReasonSecretNotFound, "%s", problem)
		res.RequeueAfter = appRecheck
	} else {
		status.MarkTrue(app, v1alpha1.ConditionReady, v1alpha1.ReasonSucceeded, "client secret in Secret %s/%s", r.OperatorNamespace, app.Spec.ClientSecretRef.Name)
	}
	app.Status.ObservedGeneration = app.Generation
	return res, patcher.Patch(ctx, app)
}

func (r *KommoAppReconciler) integrationsUsing(ctx context.Context, app string) (int32, error) {
	var list v1alpha1.KommoIntegrationList
	if err := r.List(ctx, &list, client.MatchingFields{indexIntegrationApp: app}); err != nil {
		return 0, fmt.Errorf("listing KommoIntegrations: %w", err)
	}
	return int32(len(list.Items)), nil //nolint:gosec // a count of objects
}

// secretProblem says what is wrong with the app's Secret, "" if nothing.
func (r *KommoAppReconciler) secretProblem(ctx context.Context, app *v1alpha1.KommoApp) (string, error) {
	ref := app.Spec.ClientSecretRef
	if r.OperatorNamespace == "" {
		return "the manager has no --operator-namespace to find the client secret in", nil
	}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: r.OperatorNamespace, Name: ref.Name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("Secret %s/%s (spec.clientSecretRef) not found", r.OperatorNamespace, ref.Name), nil
	case err != nil:
		return "", fmt.Errorf("reading Secret %s/%s: %w", r.OperatorNamespace, ref.Name, err)
	case strings.TrimSpace(string(s.Data[ref.Key])) == "":
		return fmt.Sprintf("Secret %s/%s has no key %q or it is empty", r.OperatorNamespace, ref.Name, ref.Key), nil
	}
	return "", nil
}

// SetupWithManager registers the reconciler; it needs the KommoIntegration
// reconciler's index on spec.appRef (set that one up first). Integrations
// coming, going or changing their appRef bring their app back.
func (r *KommoAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.KommoApp{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.KommoIntegration{}, handler.EnqueueRequestsFromMapFunc(appOfIntegration),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(r.Controller).
		Named("kommoapp").
		Complete(r)
}

// appOfIntegration maps an integration to the app it references.
func appOfIntegration(_ context.Context, o client.Object) []reconcile.Request {
	ki, ok := o.(*v1alpha1.KommoIntegration)
	if !ok || ki.Spec.AppRef == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ki.Spec.AppRef.Name}}}
}
