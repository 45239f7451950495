package controllers

import (
	"context"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// WorkerSecretsRoleName names the Role and RoleBinding the
// WorkerSecretsReconciler keeps in each namespace with bindings.
const WorkerSecretsRoleName = "kommo-unisender-worker-secrets" //nolint:gosec // a Role name, not a credential

// WorkerSecretsReconciler lets the workers read exactly the Secrets a
// worker reads in a namespace — the token Secrets of the integrations the
// bindings use, the bindings' API-key Secrets (spec.apiKeySecretRef) and
// their widget-key Secrets — and no other: a Role granting get with those
// resourceNames, bound to the workers' ServiceAccount. RBAC cannot select
// Secrets by label, so a static Role would open every Secret of a tenant's
// namespace to the workers; the names, though, are known here. Requests
// name a namespace (Name), not an object.
type WorkerSecretsReconciler struct {
	client.Client
	// Worker is the workers' ServiceAccount.
	Worker types.NamespacedName
}

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=create;patch;delete

// Reconcile applies the namespace's Role and RoleBinding, or deletes them
// when no binding is left.
func (r *WorkerSecretsReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	names, err := r.secretNames(ctx, req.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(names) == 0 {
		return ctrl.Result{}, r.remove(ctx, req.Name)
	}
	return ctrl.Result{}, r.apply(ctx, req.Name, names)
}

// secretNames are the Secrets workers read for the namespace's bindings,
// sorted and without duplicates (the Role then changes only when they do).
func (r *WorkerSecretsReconciler) secretNames(ctx context.Context, namespace string) ([]string, error) {
	var list v1alpha1.UnisenderBindingList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	var names []string
	for _, b := range list.Items {
		names = append(names, tokens.SecretName(b.Spec.IntegrationRef.Name), b.Spec.APIKeySecretRef.Name)
		if b.Spec.AllowWidgetKey {
			names = append(names, contract.WidgetKeySecretName(b.Name))
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (r *WorkerSecretsReconciler) apply(ctx context.Context, namespace string, names []string) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "kommo-unisender"}
	role := rbacv1ac.Role(WorkerSecretsRoleName, namespace).WithLabels(labels).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("secrets").WithVerbs("get").WithResourceNames(names...))
	if err := r.Apply(ctx, role, client.FieldOwner("kommo-unisender-manager"), client.ForceOwnership); err != nil {
		return err
	}
	binding := rbacv1ac.RoleBinding(WorkerSecretsRoleName, namespace).WithLabels(labels).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(WorkerSecretsRoleName)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(r.Worker.Name).WithNamespace(r.Worker.Namespace))
	return r.Apply(ctx, binding, client.FieldOwner("kommo-unisender-manager"), client.ForceOwnership)
}

func (r *WorkerSecretsReconciler) remove(ctx context.Context, namespace string) error {
	meta := metav1.ObjectMeta{Namespace: namespace, Name: WorkerSecretsRoleName}
	for _, obj := range []client.Object{&rbacv1.RoleBinding{ObjectMeta: meta}, &rbacv1.Role{ObjectMeta: meta}} {
		if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// SetupWithManager reconciles a namespace whenever one of its bindings
// changes.
func (r *WorkerSecretsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	byNamespace := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
	})
	return ctrl.NewControllerManagedBy(mgr).Named("workersecrets").
		Watches(&v1alpha1.UnisenderBinding{}, byNamespace).
		Complete(r)
}
