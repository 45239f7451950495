package packaging

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kustomizeApplied server-side applies config/default once per run to the
// apply control plane; tests that need the operator's RBAC in place call it.
var (
	kustomizeApplied sync.Once
	kustomizeErr     error
)

func applyKustomize(t *testing.T) *kubeEnv {
	t.Helper()
	env := applyCluster.get(t)
	manifests := kustomize(t, repoPath("config", "default"))
	kustomizeApplied.Do(func() {
		_, kustomizeErr = env.kubectlErr(manifests, "apply", "--server-side", "--field-manager=kustomize-default", "-f", "-")
	})
	if kustomizeErr != nil {
		t.Fatalf("applying config/default: %v", kustomizeErr)
	}
	return env
}

func TestKustomizeDefaultApplies(t *testing.T) {
	t.Parallel()
	env := applyKustomize(t)
	objs := decodeManifests(t, kustomize(t, repoPath("config", "default")))
	if len(objs) < 20 {
		t.Fatalf("config/default builds only %d objects", len(objs))
	}
	// Every object is on the server as built (a dry run would not show it).
	for _, o := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := env.client.Get(context.Background(), client.ObjectKeyFromObject(o), got); err != nil {
			t.Errorf("%s %s/%s not found after apply: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	// A second apply of the same build changes nothing and conflicts with nothing.
	out := env.apply(t, kustomize(t, repoPath("config", "default")), "kustomize-default")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(line, "serverside-applied") {
			t.Errorf("re-apply: %s", line)
		}
	}
}

// Each CI rendering of the chart is applied as a user of `helm template`
// (Argo CD, say) would, into its own namespace.
func TestHelmTemplateApplies(t *testing.T) {
	t.Parallel()
	env := applyCluster.get(t)
	for _, values := range ciValues {
		t.Run(values, func(t *testing.T) {
			applyCI(t, values)
			for _, o := range decodeManifests(t, renderCI(t, values)) {
				got := &unstructured.Unstructured{}
				got.SetGroupVersionKind(o.GroupVersionKind())
				key := client.ObjectKeyFromObject(o)
				if err := env.client.Get(context.Background(), key, got); err != nil {
					t.Errorf("%s %s not found after apply: %v", o.GetKind(), key, err)
				}
			}
		})
	}
}

var appliedCI sync.Map // values name -> *applyResult

type applyResult struct {
	once sync.Once
	err  error
}

// applyCI server-side applies one CI rendering to the apply control plane,
// once per run. The three renderings share the CRDs (cluster-scoped) and
// label them each with their own release (app.kubernetes.io/instance),
// hence --force-conflicts; the kustomize build sets no label a rendering
// sets differently, so it applies without forcing whatever ran first.
func applyCI(t *testing.T, values string) *kubeEnv {
	t.Helper()
	env := applyCluster.get(t)
	manifests := renderCI(t, values)
	r, _ := appliedCI.LoadOrStore(values, &applyResult{})
	res := r.(*applyResult)
	res.once.Do(func() {
		namespaces := []string{releaseNamespace(values)}
		if values == "full" {
			namespaces = append(namespaces, "tenants", "tenants-b")
			if res.err = env.installServiceMonitorCRD(); res.err != nil {
				return
			}
		}
		for _, ns := range namespaces {
			if _, res.err = env.kubectlErr(nil, "create", "namespace", ns); res.err != nil {
				return
			}
		}
		_, res.err = env.kubectlErr(manifests, "apply", "--server-side", "--field-manager=helm-template-"+values, "--force-conflicts", "-f", "-")
	})
	if res.err != nil {
		t.Fatalf("applying the %s rendering: %v", values, res.err)
	}
	return env
}

// The optional ServiceMonitor of config/prometheus applies next to config/default.
func TestKustomizePrometheusApplies(t *testing.T) {
	t.Parallel()
	env := applyKustomize(t)
	if err := env.installServiceMonitorCRD(); err != nil {
		t.Fatal(err)
	}
	out := env.apply(t, kustomize(t, repoPath("config", "prometheus")), "kustomize-prometheus")
	if !strings.Contains(out, "servicemonitor.monitoring.coreos.com/kommo-unisender-metrics serverside-applied") {
		t.Errorf("apply output:\n%s", out)
	}
}

// installServiceMonitorCRD installs a minimal stand-in for the Prometheus
// Operator's ServiceMonitor CRD (idempotent) and waits until it serves.
func (e *kubeEnv) installServiceMonitorCRD() error {
	crd, err := os.ReadFile("testdata/servicemonitor-crd.yaml")
	if err != nil {
		return err
	}
	if _, err := e.kubectlErr(crd, "apply", "--server-side", "--field-manager=packaging-test", "-f", "-"); err != nil {
		return err
	}
	_, err = e.kubectlErr(nil, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=30s")
	return err
}

// The samples users start from are accepted by the CRDs' validation.
func TestSamplesApply(t *testing.T) {
	t.Parallel()
	env := applyCluster.get(t)
	env.createNamespaces(t, nil, "samples")
	out := env.kubectl(t, nil, "apply", "--server-side", "--field-manager=samples", "-n", "samples", "-k", repoPath("config", "samples"))
	for _, want := range []string{"kommointegration.sync.kommo-unisender.io/example", "unisenderbinding.sync.kommo-unisender.io/example"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %s:\n%s", want, out)
		}
	}
	// And a broken sample is refused, so the acceptance above means something.
	broken := strings.Replace(string(readFile(t, "../../config/samples/sync_v1alpha1_unisenderbinding.yaml")),
		"deletionPolicy: Exclude", "deletionPolicy: Sometimes", 1)
	if _, err := env.kubectlErr([]byte(broken), "apply", "--server-side", "--field-manager=samples", "-n", "samples", "--dry-run=server", "-f", "-"); err == nil {
		t.Error("a UnisenderBinding with deletionPolicy: Sometimes was accepted")
	}
}

// config/argocd adds the health checks to an existing argocd-cm without
// touching its other keys.
func TestArgoCDConfigMapApplies(t *testing.T) {
	t.Parallel()
	env := applyCluster.get(t)
	env.createNamespaces(t, nil, "argocd")
	env.apply(t, []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/part-of: argocd
data:
  url: https://argocd.example.com
`), "argocd-install")
	env.apply(t, kustomize(t, repoPath("config", "argocd")), "kommo-unisender")
	var cm corev1.ConfigMap
	if err := env.client.Get(context.Background(), client.ObjectKey{Namespace: "argocd", Name: "argocd-cm"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["url"] != "https://argocd.example.com" {
		t.Errorf("argocd-cm lost its own keys: %v", cm.Data)
	}
	for _, kind := range []string{"KommoIntegration", "UnisenderBinding"} {
		key := "resource.customizations.health.sync.kommo-unisender.io_" + kind
		want := string(readFile(t, "../../config/argocd/health/sync.kommo-unisender.io/"+kind+"/health.lua"))
		if cm.Data[key] != want {
			t.Errorf("argocd-cm %s is not %s/health.lua", key, kind)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
