package packaging

import (
	"context"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// access is one question to the API server's authorizer.
type access struct {
	user      string
	verb      string
	group     string
	resource  string
	namespace string
	allowed   bool
}

// The RBAC installed by config/default grants each program what it needs and
// no more, as the API server's own authorizer answers it.
func TestKustomizeRBACLeastPrivilege(t *testing.T) {
	t.Parallel()
	env := applyKustomize(t)
	const (
		manager = "system:serviceaccount:kommo-unisender-system:kommo-unisender-controller-manager"
		worker  = "system:serviceaccount:kommo-unisender-system:kommo-unisender-worker"
		sync    = "sync.kommo-unisender.io"
	)
	checkAccess(t, env, []access{
		// Manager pod (reconcilers + webhook server sidecar).
		{manager, "watch", sync, "unisenderbindings", "tenants", true},
		{manager, "patch", sync, "unisenderbindings/status", "tenants", true},
		{manager, "update", sync, "kommointegrations/finalizers", "tenants", true},
		{manager, "create", "", "secrets", "tenants", true}, // token, webhook, oauth-code, widget-key Secrets
		{manager, "create", "coordination.k8s.io", "leases", "kommo-unisender-system", true},
		{manager, "create", "", "events", "tenants", true},
		{manager, "create", sync, "unisenderbindings", "tenants", false},
		{manager, "delete", sync, "kommointegrations", "tenants", false},
		{manager, "create", "apps", "deployments", "tenants", false},
		{manager, "create", "", "pods", "tenants", false},
		// The manager grants the workers their Secrets by name
		// (controllers.WorkerSecretsReconciler), which needs Roles and
		// RoleBindings, but not the power to grant what it does not hold.
		{manager, "create", "rbac.authorization.k8s.io", "roles", "tenants", true},
		{manager, "patch", "rbac.authorization.k8s.io", "rolebindings", "tenants", true},
		{manager, "escalate", "rbac.authorization.k8s.io", "roles", "tenants", false},
		{manager, "bind", "rbac.authorization.k8s.io", "clusterroles", "", false},
		{manager, "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", false},
		// Workers: read bindings, write nothing, and no Secret at all from
		// their static role (see above).
		{worker, "watch", sync, "unisenderbindings", "tenants", true},
		{worker, "get", "", "secrets", "tenants", false},
		{worker, "list", "", "secrets", "tenants", false},
		{worker, "watch", sync, "kommointegrations", "tenants", true}, // reads contacts with the integration's token
		{worker, "patch", sync, "kommointegrations", "tenants", false},
		{worker, "create", "", "secrets", "tenants", false},
		{worker, "update", "", "secrets", "tenants", false},
		{worker, "patch", sync, "unisenderbindings", "tenants", false},
		{worker, "patch", sync, "unisenderbindings/status", "tenants", false},
		{worker, "create", "coordination.k8s.io", "leases", "kommo-unisender-system", false},
	})
}

// With a list of watchNamespaces the chart grants Secrets and tenants in
// each listed namespace and nowhere else, as the API server's authorizer
// answers it.
func TestChartRBACWatchNamespaces(t *testing.T) {
	t.Parallel()
	env := applyCI(t, "full")
	const (
		manager = "system:serviceaccount:kommo-unisender-full:full-kommo-unisender-manager"
		worker  = "system:serviceaccount:kommo-unisender-full:full-kommo-unisender-worker"
		sync    = "sync.kommo-unisender.io"
	)
	var cases []access
	for _, ns := range []string{"tenants", "tenants-b"} {
		cases = append(cases,
			access{manager, "list", "", "secrets", ns, true},
			access{manager, "create", "", "secrets", ns, true},
			access{manager, "patch", sync, "unisenderbindings/status", ns, true},
			access{manager, "patch", "rbac.authorization.k8s.io", "roles", ns, true},
			access{worker, "get", "", "secrets", ns, false}, // only by name, granted by the manager
			access{worker, "list", "", "secrets", ns, false},
			access{worker, "watch", sync, "unisenderbindings", ns, true},
			access{worker, "create", "", "secrets", ns, false},
		)
	}
	cases = append(cases,
		access{manager, "get", "", "secrets", "default", false},
		access{manager, "list", "", "secrets", "", false}, // not cluster-wide
		access{manager, "get", sync, "unisenderbindings", "default", false},
		access{manager, "update", "coordination.k8s.io", "leases", "kommo-unisender-full", true},
		// The operator's own Secrets (OAuth state key, KommoApp client
		// secrets) live in the release namespace: read and written by name.
		access{manager, "get", "", "secrets", "kommo-unisender-full", true},
		access{manager, "create", "", "secrets", "kommo-unisender-full", true},
		access{manager, "list", "", "secrets", "kommo-unisender-full", false},
		access{manager, "get", sync, "kommoapps", "", true},
		access{worker, "get", "", "secrets", "default", false},
		access{worker, "get", "", "secrets", "kommo-unisender-full", false}, // not even the release's own
		access{worker, "list", "", "secrets", "", false},
		access{worker, "list", sync, "unisenderbindings", "", false},
	)
	checkAccess(t, env, cases)
}

// The namespaced rendering binds nothing cluster-wide to the operator's
// ServiceAccounts, and gives each program a Role and RoleBinding in every
// listed namespace; the only cluster-scoped grants left are the ones on
// the operator's cluster-scoped kinds (the "-cluster" ClusterRoles).
func TestChartRBACNamespacedRendering(t *testing.T) {
	objs := decodeManifests(t, renderCI(t, "full"))
	const prefix = "full-kommo-unisender-"
	roles := map[string]bool{} // kind/namespace/name
	for _, o := range objs {
		switch o.GetKind() {
		case "Role", "RoleBinding":
			roles[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = true
		case "ClusterRoleBinding":
			if strings.HasSuffix(o.GetName(), "-cluster") {
				continue // cluster-scoped kinds only: TestChartRBACClusterScopedKindsInNamespacedMode
			}
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				if name, _ := s.(map[string]any)["name"].(string); strings.HasPrefix(name, prefix) {
					t.Errorf("ClusterRoleBinding %s grants %s cluster-wide", o.GetName(), name)
				}
			}
		}
	}
	for _, ns := range []string{"tenants", "tenants-b"} {
		for _, program := range []string{"manager", "webhookserver", "worker"} {
			for _, kind := range []string{"Role", "RoleBinding"} {
				if !roles[kind+"/"+ns+"/"+prefix+program] {
					t.Errorf("no %s %s%s in %s", kind, prefix, program, ns)
				}
			}
		}
	}
}

// A rule on a cluster-scoped kind of the operator (KommoApp) cannot live in
// a Role: in namespaced mode it goes to a "-cluster" ClusterRole of its own
// (with only such rules), bound to the program's ServiceAccount.
func TestChartRBACClusterScopedKindsInNamespacedMode(t *testing.T) {
	out, err := runHelm("template", "x", chartDir, "--namespace", "ops", "--kube-version", "1.37.0", "--set", "watchNamespaces={a}")
	if err != nil {
		t.Fatal(err)
	}
	idx := byKind(decodeManifests(t, []byte(out)))
	for _, program := range []string{"manager", "webhookserver"} {
		name := "x-kommo-unisender-" + program
		cr := idx["ClusterRole"][name+"-cluster"]
		if cr == nil || idx["ClusterRoleBinding"][name+"-cluster"] == nil {
			t.Fatalf("no ClusterRole and binding %s-cluster for the rules on the cluster-scoped kommoapps", name)
		}
		if res := ruleResources(cr); len(res) == 0 || slices.ContainsFunc(res, func(r string) bool { return !strings.HasPrefix(r, "kommoapps") }) {
			t.Errorf("%s-cluster grants %v, want kommoapps only", name, res)
		}
		if res := ruleResources(idx["Role"][name]); slices.ContainsFunc(res, func(r string) bool { return strings.HasPrefix(r, "kommoapps") }) || !slices.Contains(res, "kommointegrations") {
			t.Errorf("Role %s grants %v: want kommointegrations kept, kommoapps moved out", name, res)
		}
	}
	if idx["ClusterRole"]["x-kommo-unisender-worker-cluster"] != nil {
		t.Error("a -cluster ClusterRole is rendered for the worker, which has no cluster-scoped rule")
	}
}

// ruleResources lists the resources every rule of a Role or ClusterRole names.
func ruleResources(role *unstructured.Unstructured) []string {
	if role == nil {
		return nil
	}
	var out []string
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, r := range rules {
		res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
		out = append(out, res...)
	}
	return out
}

// Impersonating the chart's ServiceAccounts: reading a Secret outside the
// watched namespaces is forbidden to the manager pod (with its webhook
// server) and allowed inside them; the workers read none by their static
// grants, only those the manager grants them by name
// (controllers.TestWorkerSecretsRoleGrantsOnlyWhatWorkersRead).
func TestChartSecretsReadableOnlyInWatchedNamespaces(t *testing.T) {
	t.Parallel()
	env := applyCI(t, "full")
	ctx := context.Background()
	for _, ns := range []string{"default", "tenants", "tenants-b"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-secret"},
			StringData: map[string]string{"password": "not-the-operators"}}
		if err := env.client.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	readable := map[string]map[string]bool{
		"full-kommo-unisender-manager": {"default": false, "tenants": true, "tenants-b": true},
		"full-kommo-unisender-worker":  {"default": false, "tenants": false, "tenants-b": false},
	}
	for sa, byNS := range readable {
		c := env.impersonatedClient(t, "kommo-unisender-full", sa)
		for ns, allowed := range byNS {
			var s corev1.Secret
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "user-secret"}, &s)
			switch {
			case allowed && err != nil:
				t.Errorf("%s reading a Secret in %s: %v", sa, ns, err)
			case !allowed && !apierrors.IsForbidden(err):
				t.Errorf("%s reading a Secret in %s: %v, want Forbidden", sa, ns, err)
			}
		}
	}
}

func checkAccess(t *testing.T, env *kubeEnv, cases []access) {
	t.Helper()
	for _, c := range cases {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   c.user,
			Groups: []string{"system:serviceaccounts", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: c.namespace, Verb: c.verb, Group: c.group, Resource: c.resource,
			},
		}}
		if err := env.client.Create(context.Background(), sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allowed {
			t.Errorf("%s %s %s/%s in %q: allowed=%v, want %v", c.user, c.verb, c.group, c.resource, c.namespace, sar.Status.Allowed, c.allowed)
		}
	}
}
