package packaging

import (
	"regexp"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kommo-unisender/kommo-unisender/internal/cli/manager"
	webhookservercli "github.com/kommo-unisender/kommo-unisender/internal/cli/webhookserver"
)

// commandLines maps each container name to the flag parsing of the
// subcommand it runs. The worker joins when its subcommand exists.
var commandLines = map[string]struct {
	subcommand string
	parse      func(t *testing.T, args []string, env map[string]string) error
}{
	"manager": {"manager", func(t *testing.T, args []string, _ map[string]string) error {
		_, err := manager.ParseFlags(args)
		return err
	}},
	"webhookserver": {"webhookserver", func(t *testing.T, args []string, env map[string]string) error {
		// $BEANSTALKD_ADDR is a flag default, read when parsing.
		t.Setenv("BEANSTALKD_ADDR", env["BEANSTALKD_ADDR"])
		_, err := webhookservercli.ParseFlags(args)
		return err
	}},
}

// Each container's command line, as every install path renders it, is
// accepted by its subcommand's own flag parsing: an unknown or malformed
// flag would crash-loop the pod, which no API server can tell.
func TestCommandLinesParse(t *testing.T) {
	type source struct {
		manifests  []byte
		deployment string
	}
	sources := map[string]source{
		"kustomize": {kustomize(t, repoPath("config", "default")), "kommo-unisender-controller-manager"},
	}
	for _, values := range ciValues {
		sources["helm-"+values] = source{renderCI(t, values), values + "-kommo-unisender-manager"}
	}
	for name, src := range sources {
		idx := byKind(decodeManifests(t, src.manifests))
		spec := podSpec(t, idx["Deployment"][src.deployment])
		for container, cl := range commandLines {
			t.Run(name+"/"+container, func(t *testing.T) {
				c := containerByName(t, spec, container)
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
// literal values and ConfigMap keys (Secrets stay unresolved).
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
