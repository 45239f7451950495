package packaging

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
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
		// Workers: read bindings and Secrets, write nothing.
		{worker, "watch", sync, "unisenderbindings", "tenants", true},
		{worker, "get", "", "secrets", "tenants", true},
		{worker, "watch", "", "secrets", "tenants", true},
		{worker, "watch", sync, "kommointegrations", "tenants", true}, // reads contacts with the integration's token
		{worker, "patch", sync, "kommointegrations", "tenants", false},
		{worker, "create", "", "secrets", "tenants", false},
		{worker, "update", "", "secrets", "tenants", false},
		{worker, "patch", sync, "unisenderbindings", "tenants", false},
		{worker, "patch", sync, "unisenderbindings/status", "tenants", false},
		{worker, "create", "coordination.k8s.io", "leases", "kommo-unisender-system", false},
	})
}

// With watchNamespaces the chart grants Secrets and tenants only there.
func TestChartRBACWatchNamespaces(t *testing.T) {
	t.Parallel()
	env := applyCI(t, "full")
	const (
		manager = "system:serviceaccount:kommo-unisender-full:full-kommo-unisender-manager"
		worker  = "system:serviceaccount:kommo-unisender-full:full-kommo-unisender-worker"
	)
	checkAccess(t, env, []access{
		{manager, "list", "", "secrets", "tenants", true},
		{manager, "patch", "sync.kommo-unisender.io", "unisenderbindings/status", "tenants", true},
		{manager, "list", "", "secrets", "default", false},
		{manager, "list", "", "secrets", "", false}, // not cluster-wide
		{manager, "get", "sync.kommo-unisender.io", "unisenderbindings", "default", false},
		{manager, "update", "coordination.k8s.io", "leases", "kommo-unisender-full", true},
		{worker, "list", "", "secrets", "tenants", true},
		{worker, "get", "", "secrets", "default", false},
		{worker, "list", "", "secrets", "", false},
	})
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
