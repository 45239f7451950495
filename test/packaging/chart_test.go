package packaging

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestHelmLint(t *testing.T) {
	for _, values := range ciValues {
		t.Run(values, func(t *testing.T) {
			out, err := runHelm("lint", chartDir, "--strict", "--kube-version", "1.37.0", "-f", ciValuesFile(values))
			if err != nil {
				t.Fatalf("helm lint: %v", err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

// What each CI values file must render, and must not.
func TestHelmTemplate(t *testing.T) {
	cases := map[string]struct {
		present, absent []string // "Kind/name" with the release's fullname as $
	}{
		"defaults": {
			present: []string{
				"CustomResourceDefinition/kommointegrations.sync.kommo-unisender.io",
				"CustomResourceDefinition/unisenderbindings.sync.kommo-unisender.io",
				"Deployment/$-manager", "Deployment/$-worker", "Service/$-webhook", "Service/$-metrics",
				"Service/$-worker-metrics", "StatefulSet/$-mysql", "StatefulSet/$-beanstalkd", "Secret/$-mysql",
				"ClusterRole/$-manager", "ClusterRole/$-webhookserver", "ClusterRole/$-worker",
				"Role/$-leader-election", "PodDisruptionBudget/$-manager", "PodDisruptionBudget/$-worker",
				"ServiceAccount/$-manager", "ServiceAccount/$-worker",
				// NetworkPolicies are on by default.
				"NetworkPolicy/$-manager", "NetworkPolicy/$-worker", "NetworkPolicy/$-egress",
				"NetworkPolicy/$-mysql", "NetworkPolicy/$-beanstalkd",
			},
			absent: []string{"Ingress/$-webhook", "ServiceMonitor/$", "HorizontalPodAutoscaler/$-worker"},
		},
		"external": {
			present: []string{"Deployment/$-manager", "Deployment/$-worker", "NetworkPolicy/$-egress"},
			absent: []string{"StatefulSet/$-mysql", "StatefulSet/$-beanstalkd", "Secret/$-mysql", "PodDisruptionBudget/$-manager",
				"NetworkPolicy/$-mysql", "NetworkPolicy/$-beanstalkd"},
		},
		"full": {
			present: []string{
				"Ingress/$-webhook", "ServiceMonitor/$", "HorizontalPodAutoscaler/$-worker",
				"NetworkPolicy/$-manager", "NetworkPolicy/$-worker", "NetworkPolicy/$-mysql", "NetworkPolicy/$-beanstalkd",
				"Role/$-manager", "RoleBinding/$-manager", "Role/$-worker", "Role/$-webhookserver",
				"ClusterRole/$-manager-cluster", "Role/$-operator-secrets",
				"KommoIntegration/acme", "UnisenderBinding/acme", "UnisenderBinding/acme-vip",
				"StatefulSet/$-mysql",
			},
			absent: []string{"ClusterRole/$-manager", "ClusterRoleBinding/$-manager", "ClusterRole/$-worker",
				"ClusterRole/$-webhookserver", "ClusterRole/$-worker-cluster", "Secret/$-mysql"},
		},
	}
	for _, values := range ciValues {
		c := cases[values]
		t.Run(values, func(t *testing.T) {
			idx := byKind(decodeManifests(t, renderCI(t, values)))
			fullname := values + "-kommo-unisender"
			for _, ref := range c.present {
				kind, name, _ := strings.Cut(strings.ReplaceAll(ref, "$", fullname), "/")
				if idx[kind][name] == nil {
					t.Errorf("%s is not rendered", ref)
				}
			}
			for _, ref := range c.absent {
				kind, name, _ := strings.Cut(strings.ReplaceAll(ref, "$", fullname), "/")
				if idx[kind][name] != nil {
					t.Errorf("%s is rendered but should not be", ref)
				}
			}
		})
	}
}

// Details of the renderings that the API server cannot judge.
func TestHelmTemplateWiring(t *testing.T) {
	t.Run("bundled stores", func(t *testing.T) {
		idx := byKind(decodeManifests(t, renderCI(t, "defaults")))
		worker := podSpec(t, idx["Deployment"]["defaults-kommo-unisender-worker"])
		env := containerEnv(t, worker, "worker")
		if got, want := env["MYSQL_DSN"], "kommo_unisender:$(MYSQL_PASSWORD)@tcp(defaults-kommo-unisender-mysql:3306)/kommo_unisender"; got != want {
			t.Errorf("worker MYSQL_DSN = %q, want %q (password by reference only)", got, want)
		}
		if got := env["BEANSTALKD_ADDR"]; got != "defaults-kommo-unisender-beanstalkd:11300" {
			t.Errorf("worker BEANSTALKD_ADDR = %q", got)
		}
		bs := podSpec(t, idx["StatefulSet"]["defaults-kommo-unisender-beanstalkd"])
		args := strings.Join(stringSlice(containerByName(t, bs, "beanstalkd")["args"]), " ")
		if !strings.Contains(args, "-b /data") {
			t.Errorf("beanstalkd runs without its binlog on the volume: args %q", args)
		}
	})
	t.Run("external stores", func(t *testing.T) {
		idx := byKind(decodeManifests(t, renderCI(t, "external")))
		manager := podSpec(t, idx["Deployment"]["external-kommo-unisender-manager"])
		ref, _, _ := unstructured.NestedString(envVar(t, manager, "manager", "MYSQL_DSN"), "valueFrom", "secretKeyRef", "name")
		if ref != "kommo-unisender-mysql" {
			t.Errorf("manager MYSQL_DSN comes from Secret %q, want kommo-unisender-mysql", ref)
		}
		image, _ := containerByName(t, manager, "manager")["image"].(string)
		if !strings.HasSuffix(image, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
			t.Errorf("image.digest does not pin the image: %s", image)
		}
		args := stringSlice(containerByName(t, manager, "manager")["args"])
		if !contains(args, "--public-base-url=https://kommo-hooks.example.com") {
			t.Errorf("manager args %v lack the public base URL", args)
		}
	})
	t.Run("full", func(t *testing.T) {
		idx := byKind(decodeManifests(t, renderCI(t, "full")))
		manager := podSpec(t, idx["Deployment"]["full-kommo-unisender-manager"])
		args := stringSlice(containerByName(t, manager, "manager")["args"])
		for _, want := range []string{"--namespaces=tenants,tenants-b", "--public-base-url=https://kommo-hooks.example.com", "--leader-election-id=kus-full",
			"--worker-service-account=kommo-unisender-full/full-kommo-unisender-worker"} {
			if !contains(args, want) {
				t.Errorf("manager args %v lack %s", args, want)
			}
		}
		if args := stringSlice(containerByName(t, manager, "webhookserver")["args"]); !contains(args, "--namespaces=tenants,tenants-b") {
			t.Errorf("webhook server args %v do not narrow its watch to the tenants' namespaces", args)
		}
		worker := podSpec(t, idx["Deployment"]["full-kommo-unisender-worker"])
		if args := stringSlice(containerByName(t, worker, "worker")["args"]); !contains(args, "--namespaces=tenants,tenants-b") {
			t.Errorf("worker args %v do not narrow its watch to the tenants' namespaces", args)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(idx["Deployment"]["full-kommo-unisender-worker"].Object, "spec", "replicas"); found {
			t.Error("the worker Deployment sets replicas although the HPA owns them")
		}
		ki := idx["KommoIntegration"]["acme"]
		if got, _, _ := unstructured.NestedString(ki.Object, "spec", "redirectURI"); got != "https://kommo-hooks.example.com/oauth/callback" {
			t.Errorf("tenant redirectURI = %q, want the default from the public URL", got)
		}
		if ki.GetNamespace() != "tenants" {
			t.Errorf("tenant namespace = %q", ki.GetNamespace())
		}
		vip := idx["UnisenderBinding"]["acme-vip"]
		if got, _, _ := unstructured.NestedString(vip.Object, "spec", "integrationRef", "name"); got != "acme" {
			t.Errorf("acme-vip integrationRef = %q", got)
		}
		paths := ingressPaths(t, idx["Ingress"]["full-kommo-unisender-webhook"])
		if want := []string{"/kommo/webhooks/", "/unisender/hooks/", "/oauth/callback", "/widget"}; !reflect.DeepEqual(paths, want) {
			t.Errorf("Ingress routes %v, want only %v (metrics and probes stay internal)", paths, want)
		}
		for _, crd := range idx["CustomResourceDefinition"] {
			if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s lacks helm.sh/resource-policy: keep", crd.GetName())
			}
		}
	})
	t.Run("network policies", func(t *testing.T) {
		for values, metricsNS := range map[string]string{"defaults": "kus-defaults", "full": "monitoring"} {
			idx := byKind(decodeManifests(t, renderCI(t, values)))
			prefix := values + "-kommo-unisender-"
			for _, name := range []string{"manager", "worker", "egress"} {
				if idx["NetworkPolicy"][prefix+name] == nil {
					t.Fatalf("%s: NetworkPolicy %s%s is not rendered", values, prefix, name)
				}
			}
			for _, component := range []string{"manager", "worker"} {
				ingress, _, _ := unstructured.NestedSlice(idx["NetworkPolicy"][prefix+component].Object, "spec", "ingress")
				got, _ := json.Marshal(ingress[len(ingress)-1])
				want := `{"from":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"` + metricsNS + `"}}}],"ports":[{"port":"metrics"}]}`
				if string(got) != want {
					t.Errorf("%s: %s metrics ingress = %s, want %s", values, component, got, want)
				}
			}
			egress, _, _ := unstructured.NestedSlice(idx["NetworkPolicy"][prefix+"egress"].Object, "spec", "egress")
			got, _ := json.Marshal(egress)
			for _, want := range []string{
				`{"ports":[{"port":53,"protocol":"UDP"},{"port":53,"protocol":"TCP"}]}`,
				`{"ports":[{"port":443,"protocol":"TCP"}],"to":[{"ipBlock":{"cidr":"0.0.0.0/0"}},{"ipBlock":{"cidr":"::/0"}}]}`,
				`"app.kubernetes.io/component":"beanstalkd"`, `"app.kubernetes.io/component":"mysql"`,
			} {
				if !strings.Contains(string(got), want) {
					t.Errorf("%s: egress %s lacks %s", values, got, want)
				}
			}
			if values == "full" && !strings.Contains(string(got), `{"ports":[{"port":443,"protocol":"TCP"},{"port":6443,"protocol":"TCP"}],"to":[{"ipBlock":{"cidr":"10.96.0.1/32"}}`) {
				t.Errorf("full: egress to the API server is not limited to kubeAPIServer.cidrs: %s", got)
			}
		}
	})
	t.Run("crds off, not kept", func(t *testing.T) {
		idx := byKind(decodeManifests(t, helmTemplate(t, "x", "x", "--set", "crds.enabled=false")))
		if len(idx["CustomResourceDefinition"]) != 0 {
			t.Error("crds.enabled=false still renders CRDs")
		}
		idx = byKind(decodeManifests(t, helmTemplate(t, "x", "x", "--set", "crds.keep=false")))
		for _, crd := range idx["CustomResourceDefinition"] {
			if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
				t.Errorf("crds.keep=false still keeps %s", crd.GetName())
			}
		}
	})
}

// values.schema.json must turn mistakes into errors, not silently ignored keys.
func TestValuesSchemaRejectsMistakes(t *testing.T) {
	bad := map[string][]string{
		"typo at the top":         {"--set", "replicas=3"},
		"typo in a section":       {"--set", "worker.replica=3"},
		"unknown mysql mode":      {"--set", "mysql.mode=embedded"},
		"external without secret": {"--set", "mysql.mode=external"},
		"beanstalkd address":      {"--set", "beanstalkd.mode=external", "--set", "beanstalkd.external.address=no-port"},
		"tenant without a spec":   {"--set", "tenants[0].name=acme"},
		"tenant name not DNS":     {"--set", "tenants[0].name=Acme", "--set", "tenants[0].binding.list.id=1"},
		"log level":               {"--set", "manager.logLevel=verbose"},
		"public URL":              {"--set", "publicBaseURL=kommo-hooks.example.com"},
		"watch namespace not DNS": {"--set", "watchNamespaces={a,B_b}"},
		"metrics namespace":       {"--set", "networkPolicy.metricsNamespace=Monitoring"},
	}
	for name, args := range bad {
		t.Run(name, func(t *testing.T) {
			out, err := helmTemplateErr("x", "x", args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded; the schema should refuse it\n%.300s", args, out)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Fatalf("refused, but not by values.schema.json: %v", err)
			}
		})
	}
	if _, err := helmTemplateErr("x", "x", "--set", "worker.replicas=3"); err != nil {
		t.Fatalf("a valid override fails: %v", err)
	}
}

// The chart's roles are the kustomize roles: one source (config/rbac), so
// the two install paths grant the same.
func TestChartRBACMatchesKustomize(t *testing.T) {
	kust := byKind(decodeManifests(t, kustomize(t, repoPath("config", "default"))))
	chart := byKind(decodeManifests(t, renderCI(t, "defaults")))
	for kName, cName := range map[string]string{
		"kommo-unisender-manager-role":       "defaults-kommo-unisender-manager",
		"kommo-unisender-webhookserver-role": "defaults-kommo-unisender-webhookserver",
		"kommo-unisender-worker-role":        "defaults-kommo-unisender-worker",
	} {
		k, c := kust["ClusterRole"][kName], chart["ClusterRole"][cName]
		if k == nil || c == nil {
			t.Fatalf("ClusterRole missing: kustomize %s=%v, chart %s=%v", kName, k != nil, cName, c != nil)
		}
		if kr, cr := normalizedRules(k), normalizedRules(c); !reflect.DeepEqual(kr, cr) {
			t.Errorf("%s and %s grant different rules:\nkustomize %v\nchart     %v", kName, cName, kr, cr)
		}
	}
}

func normalizedRules(role *unstructured.Unstructured) []string {
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	var out []string
	for _, r := range rules {
		m := r.(map[string]any)
		for _, g := range stringSlice(m["apiGroups"]) {
			for _, res := range stringSlice(m["resources"]) {
				for _, v := range stringSlice(m["verbs"]) {
					out = append(out, fmt.Sprintf("%s/%s:%s", g, res, v))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func podSpec(t *testing.T, workload *unstructured.Unstructured) map[string]any {
	t.Helper()
	if workload == nil {
		t.Fatal("workload not rendered")
	}
	spec, found, err := unstructured.NestedMap(workload.Object, "spec", "template", "spec")
	if !found || err != nil {
		t.Fatalf("%s %s has no pod template: %v", workload.GetKind(), workload.GetName(), err)
	}
	return spec
}

func containerByName(t *testing.T, spec map[string]any, name string) map[string]any {
	t.Helper()
	for _, field := range []string{"containers", "initContainers"} {
		list, _, _ := unstructured.NestedSlice(spec, field)
		for _, c := range list {
			if m := c.(map[string]any); m["name"] == name {
				return m
			}
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func envVar(t *testing.T, spec map[string]any, container, name string) map[string]any {
	t.Helper()
	env, _, _ := unstructured.NestedSlice(containerByName(t, spec, container), "env")
	for _, e := range env {
		if m := e.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("container %s has no env %s", container, name)
	return nil
}

// containerEnv maps the literal env values of a container.
func containerEnv(t *testing.T, spec map[string]any, container string) map[string]string {
	t.Helper()
	env, _, _ := unstructured.NestedSlice(containerByName(t, spec, container), "env")
	out := map[string]string{}
	for _, e := range env {
		m := e.(map[string]any)
		if v, ok := m["value"].(string); ok {
			out[m["name"].(string)] = v
		}
	}
	return out
}

func ingressPaths(t *testing.T, ing *unstructured.Unstructured) []string {
	t.Helper()
	if ing == nil {
		t.Fatal("no Ingress rendered")
	}
	rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
	var paths []string
	for _, r := range rules {
		ps, _, _ := unstructured.NestedSlice(r.(map[string]any), "http", "paths")
		for _, p := range ps {
			paths = append(paths, p.(map[string]any)["path"].(string))
		}
	}
	return paths
}

func stringSlice(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
