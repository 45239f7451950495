package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// The workers' ServiceAccount can get the Secrets a worker reads for the
// namespace's bindings — the integration's token Secret, the API-key Secret
// and the widget-key Secret — and no other Secret: not a user Secret next
// to them, not a list of Secrets, not a Secret of another namespace. The
// grant is made by the manager holding only config/rbac/role.yaml (RBAC
// refuses to let anyone grant what it does not hold), follows the bindings,
// and is gone with the last one.
func TestWorkerSecretsRoleGrantsOnlyWhatWorkersRead(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, v1alpha1.AddToScheme(scheme))
	admin, err := client.New(kube.Config, client.Options{Scheme: scheme})
	must(t, err)
	ns, other := testNamespace(t, admin), testNamespace(t, admin)
	for _, n := range []string{ns, other} {
		for _, name := range []string{"kommo-tokens", "acme-unisender", "acme-widget-key", "payroll-db"} {
			must(t, admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: n, Name: name},
				StringData: map[string]string{"k": "v"}}))
		}
	}
	manager := impersonated(t, scheme, managerRoleUser(t, admin), nil)
	worker := impersonated(t, scheme, "system:serviceaccount:kus-system:kus-worker",
		[]string{"system:serviceaccounts", "system:serviceaccounts:kus-system", "system:authenticated"})
	r := &WorkerSecretsReconciler{Client: manager, Worker: types.NamespacedName{Namespace: "kus-system", Name: "kus-worker"}}
	reconcileNS := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: ns}}); err != nil {
			t.Fatalf("reconcile as the manager's role: %v", err)
		}
	}
	canGet := func(namespace, name string) bool {
		t.Helper()
		err := worker.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &corev1.Secret{})
		if err != nil && !apierrors.IsForbidden(err) {
			t.Fatalf("worker get %s/%s: %v", namespace, name, err)
		}
		return err == nil
	}

	b := &v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: "kommo"},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "acme-unisender", Key: "k"},
			List:            v1alpha1.ListSelector{ID: 1}, AllowWidgetKey: true,
		}}
	must(t, admin.Create(ctx, b))
	reconcileNS()
	for name, want := range map[string]bool{
		tokens.SecretName("kommo"): true, "acme-unisender": true, contract.WidgetKeySecretName("acme"): true, "payroll-db": false,
	} {
		if got := canGet(ns, name); got != want {
			t.Errorf("worker can get %s/%s: %v, want %v", ns, name, got, want)
		}
		if canGet(other, name) {
			t.Errorf("worker can get %s/%s in a namespace without bindings", other, name)
		}
	}
	if err := worker.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("worker list Secrets in %s: %v, want Forbidden", ns, err)
	}

	// The grant follows the binding: without the widget key, its Secret is
	// closed again.
	b.Spec.AllowWidgetKey = false
	must(t, admin.Update(ctx, b))
	reconcileNS()
	if canGet(ns, contract.WidgetKeySecretName("acme")) || !canGet(ns, "acme-unisender") {
		t.Error("after allowWidgetKey=false: want the widget-key Secret closed, the API-key Secret open")
	}
	must(t, admin.Delete(ctx, b))
	reconcileNS()
	if canGet(ns, "acme-unisender") || canGet(ns, tokens.SecretName("kommo")) {
		t.Error("the worker still reads the namespace's Secrets after its last binding was deleted")
	}
	err = admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: WorkerSecretsRoleName}, &rbacv1.Role{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("Role after the last binding: %v, want NotFound", err)
	}
}

func testNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "worker-secrets-"}}
	must(t, c.Create(context.Background(), n))
	return n.Name
}

// managerRoleUser binds config/rbac/role.yaml, the manager's generated
// role, to a new user name and returns it.
func managerRoleUser(t *testing.T, admin client.Client) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	must(t, err)
	role := &rbacv1.ClusterRole{}
	must(t, yaml.Unmarshal([]byte(strings.TrimPrefix(string(raw), "---\n")), role))
	role.ObjectMeta = metav1.ObjectMeta{GenerateName: "kus-manager-under-test-"}
	must(t, admin.Create(context.Background(), role))
	user := role.Name
	must(t, admin.Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}))
	return user
}

func impersonated(t *testing.T, scheme *runtime.Scheme, user string, groups []string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(kube.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	must(t, err)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
