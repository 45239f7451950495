package packaging

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// helm install and upgrade against an API server that has never seen the
// CRDs, as on a fresh cluster: the release creates and owns them.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	t.Parallel()
	env := helmCluster.get(t)
	ctx := context.Background()
	const ns, release = "kommo-unisender-full", "full"
	env.createNamespaces(t, nil, "tenants", "tenants-b")
	// full-values.yaml enables a ServiceMonitor: a minimal CRD stands in
	// for the Prometheus Operator's.
	if err := env.installServiceMonitorCRD(); err != nil {
		t.Fatal(err)
	}

	// With tenants and CRDs in one first install, Helm cannot map the tenant
	// kinds before the CRDs exist; values.yaml says to add tenants with an
	// upgrade. This pins that behaviour so the advice stays true.
	t.Run("tenants need the CRDs first", func(t *testing.T) {
		_, err := env.helmErr("install", "first", chartDir, "-n", "first", "--create-namespace", "--dry-run=server",
			"--set", "tenants[0].name=acme", "--set", "tenants[0].binding.integrationRef.name=acme",
			"--set", "tenants[0].binding.apiKeySecretRef.name=k", "--set", "tenants[0].binding.apiKeySecretRef.key=k",
			"--set", "tenants[0].binding.list.id=1")
		if err == nil || !strings.Contains(err.Error(), "ensure CRDs are installed first") {
			t.Fatalf("want Helm's missing-CRD error, got %v", err)
		}
	})

	// Install with the defaults: CRDs, bundled stores, generated DB passwords.
	env.helm(t, "install", release, chartDir, "-n", ns, "--create-namespace", "-f", ciValuesFile("defaults"))
	for _, name := range []string{"kommointegrations.sync.kommo-unisender.io", "unisenderbindings.sync.kommo-unisender.io"} {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := env.client.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			t.Fatalf("CRD %s not installed: %v", name, err)
		}
		if crd.Annotations["meta.helm.sh/release-name"] != release {
			t.Errorf("CRD %s is not owned by the release: %v", name, crd.Annotations)
		}
	}
	passwords := secretData(t, env, ns, release+"-kommo-unisender-mysql")
	if len(passwords["mariadb-password"]) != 32 || len(passwords["mariadb-root-password"]) != 32 {
		t.Fatalf("generated MariaDB passwords have unexpected lengths")
	}

	// An upgrade keeps the generated passwords: the database was initialized
	// with them.
	env.helm(t, "upgrade", release, chartDir, "-n", ns, "-f", ciValuesFile("defaults"))
	again := secretData(t, env, ns, release+"-kommo-unisender-mysql")
	if string(again["mariadb-password"]) != string(passwords["mariadb-password"]) {
		t.Error("helm upgrade changed the MariaDB password")
	}

	// Upgrade to everything on: tenants (the CRDs exist now), HPA, Ingress,
	// NetworkPolicies, namespace-scoped RBAC. The volumes keep the size and
	// class they were installed with: a StatefulSet's volumeClaimTemplates
	// are immutable (values.yaml says so).
	out := env.helm(t, "upgrade", release, chartDir, "-n", ns, "-f", ciValuesFile("full"),
		"--set", "mysql.bundled.persistence.size=8Gi", "--set", "mysql.bundled.persistence.storageClass=",
		"--set", "beanstalkd.bundled.persistence.size=2Gi")
	if want := "https://kommo-hooks.example.com/kommo/webhooks/<namespace>.<binding>/<secret>"; !strings.Contains(out, want) {
		t.Errorf("NOTES lack the webhook URL pattern %s:\n%s", want, out)
	}
	if !strings.Contains(out, `kubectl -n "$NS" get secret "$B-webhook"`) {
		t.Errorf("NOTES lack the command reading the webhook secret:\n%s", out)
	}
	for _, ref := range []struct{ group, version, kind, ns, name string }{
		{"sync.kommo-unisender.io", "v1alpha1", "KommoIntegration", "tenants", "acme"},
		{"sync.kommo-unisender.io", "v1alpha1", "UnisenderBinding", "tenants", "acme"},
		{"sync.kommo-unisender.io", "v1alpha1", "UnisenderBinding", "tenants", "acme-vip"},
		{"autoscaling", "v2", "HorizontalPodAutoscaler", ns, release + "-kommo-unisender-worker"},
		{"networking.k8s.io", "v1", "Ingress", ns, release + "-kommo-unisender-webhook"},
		{"rbac.authorization.k8s.io", "v1", "Role", "tenants", release + "-kommo-unisender-manager"},
		{"rbac.authorization.k8s.io", "v1", "Role", "tenants-b", release + "-kommo-unisender-worker"},
		{"networking.k8s.io", "v1", "NetworkPolicy", ns, release + "-kommo-unisender-egress"},
		{"monitoring.coreos.com", "v1", "ServiceMonitor", ns, release + "-kommo-unisender"},
	} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: ref.group, Version: ref.version, Kind: ref.kind})
		if err := env.client.Get(ctx, client.ObjectKey{Namespace: ref.ns, Name: ref.name}, u); err != nil {
			t.Errorf("%s %s/%s missing after the upgrade: %v", ref.kind, ref.ns, ref.name, err)
		}
	}
	// The cluster-wide roles of the defaults gave way to namespaced ones...
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"})
	if err := env.client.Get(ctx, client.ObjectKey{Name: release + "-kommo-unisender-manager"}, u); err == nil {
		t.Error("the manager ClusterRole survived the switch to watchNamespaces")
	}
	// ...but the generated MariaDB Secret stays although no longer rendered
	// (helm.sh/resource-policy: keep): its passwords unlock the data.
	secretData(t, env, ns, release+"-kommo-unisender-mysql")

	// A second release alongside, reusing the first one's CRDs.
	env.helm(t, "install", "external", chartDir, "-n", "kus-external", "--create-namespace",
		"-f", ciValuesFile("external"), "--set", "crds.enabled=false")

	// Uninstalling keeps the CRDs (and with them every tenant of any release).
	env.helm(t, "uninstall", release, "-n", ns, "--wait=false")
	var crd apiextensionsv1.CustomResourceDefinition
	if err := env.client.Get(ctx, client.ObjectKey{Name: "unisenderbindings.sync.kommo-unisender.io"}, &crd); err != nil {
		t.Errorf("CRD removed by helm uninstall despite crds.keep: %v", err)
	}
	if out := env.helm(t, "list", "-A", "-q"); strings.TrimSpace(out) != "external" {
		t.Errorf("releases after uninstall: %q", out)
	}
}

func secretData(t *testing.T, env *kubeEnv, ns, name string) map[string][]byte {
	t.Helper()
	var s corev1.Secret
	if err := env.client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, name, err)
	}
	return s.Data
}
