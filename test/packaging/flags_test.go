package packaging

import (
	"regexp"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kommo-unisender/kommo-unisender/internal/cli/manager"
	webhookservercli "github.com/kommo-unisender/kommo-unisender/internal/cli/webhookserver"
	workercli "github.com/kommo-unisender/kommo-unisender/internal/cli/worker"
)

// commandLines maps each container name to the flag parsing of the
// subcommand it runs.
var commandLines = map[string]struct {
	deployment string // suffix of the Deployment holding the container
	subcommand string
	parse      func(t *testing.T, args []string, env map[string]string) error
}{
	"manager": {"manager", "manager", func(t *testing.T, args []string, _ map[string]string) error {
		_, err := manager.ParseFlags(args)
		return err
	}},
	"webhookserver": {"manager", "webhookserver", func(t *testing.T, args []string, env map[string]string) error {
		// $BEANSTALKD_ADDR is a flag default, read when parsing.
		t.Setenv("BEANSTALKD_ADDR", env["BEANSTALKD_ADDR"])
		_, err := webhookservercli.ParseFlags(args)
		return err
	}},
	"worker": {"worker", "worker", func(t *testing.T, args []string, env map[string]string) error {
		t.Setenv("BEANSTALKD_ADDR", env["BEANSTALKD_ADDR"])
		t.Setenv("MYSQL_DSN", env["MYSQL_DSN"])
		_, err := workercli.ParseFlags(args)
		return err
	}},
}

// Each container's command line, as every install path renders it, is
// accepted by its subcommand's own flag parsing: an unknown or malformed
// flag would crash-loop the pod, which no API server can tell.
func TestCommandLinesParse(t *testing.T) {
	type source struct {
		manifests []byte
		prefix    string // of the Deployments' names
	}
	sources := map[string]source{
		"kustomize": {kustomize(t, repoPath("config", "default")), "kommo-unisender-"},
	}
	for _, values := range ciValues {
		sources["helm-"+values] = source{renderCI(t, values), values + "-kommo-unisender-"}
	}
	for name, src := range sources {
		idx := byKind(decodeManifests(t, src.manifests))
		for container, cl := range commandLines {
			t.Run(name+"/"+container, func(t *testing.T) {
				deployment := src.prefix + cl.deployment
				if name == "kustomize" && cl.deployment == "manager" {
					deployment = "kommo-unisender-controller-manager"
				}
				c := containerByName(t, podSpec(t, idx["Deployment"][deployment]), container)
				args := stringSlice(c["args"])
				if len(args) == 0 || args[0] != cl.subcommand {
					t.Fatalf("%s container args %v do not start with the subcommand %s", container, args, cl.subcommand)
				}
				env := resolvedEnv(t, c, idx["ConfigMap"])
				expanded := make([]string, 0, len(args)-1)
				for _, a := range args[1:] {
					expanded = append(expanded, expandEnv(a, env))
				}
				if err := cl.parse(t, expanded, env); err != nil {
					t.Fatalf("%s %v: %v", cl.subcommand, expanded, err)
				}
			})
		}
	}
}

// resolvedEnv gives the values the kubelet would set for a container's env:
// literal values and ConfigMap keys; values from Secrets and from the pod's
// fields become placeholders.
func resolvedEnv(t *testing.T, container map[string]any, configMaps map[string]*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	list, _, _ := unstructured.NestedSlice(container, "env")
	for _, e := range list {
		m := e.(map[string]any)
		name := m["name"].(string)
		if v, ok := m["value"].(string); ok {
			out[name] = expandEnv(v, out)
			continue
		}
		if _, fromSecret, _ := unstructured.NestedMap(m, "valueFrom", "secretKeyRef"); fromSecret {
			out[name] = "from-a-secret"
			continue
		}
		if _, fromPod, _ := unstructured.NestedMap(m, "valueFrom", "fieldRef"); fromPod {
			out[name] = "from-the-pod"
			continue
		}
		cmName, found, _ := unstructured.NestedString(m, "valueFrom", "configMapKeyRef", "name")
		if !found {
			continue
		}
		key, _, _ := unstructured.NestedString(m, "valueFrom", "configMapKeyRef", "key")
		cm := configMaps[cmName]
		if cm == nil {
			t.Fatalf("env %s refers to ConfigMap %s, which is not in the manifests", name, cmName)
		}
		v, found, _ := unstructured.NestedString(cm.Object, "data", key)
		if !found {
			t.Fatalf("ConfigMap %s has no key %s", cmName, key)
		}
		out[name] = v
	}
	return out
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv does the kubelet's $(VAR) expansion; unknown references stay.
func expandEnv(s string, env map[string]string) string {
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		if v, ok := env[ref[2:len(ref)-1]]; ok {
			return v
		}
		return ref
	})
}
