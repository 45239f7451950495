package packaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// kubeEnv is what tests need to reach one control plane: a kubeconfig file
// for helm and kubectl, and a client.
type kubeEnv struct {
	name       string
	dir        string
	kubeconfig string
	client     client.Client
}

func newKubeEnv(name string, kube *testenv.Kube) (*kubeEnv, error) {
	// A cluster-admin user with its own client certificate; its kubeconfig
	// serves helm and kubectl.
	user, err := kube.Env.AddUser(envtest.User{Name: "packaging-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "packaging-"+name+"-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(user.Config(), client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &kubeEnv{name: name, dir: dir, kubeconfig: path, client: c}, nil
}

// kubectl runs the envtest kubectl against this control plane.
func (e *kubeEnv) kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := e.kubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (e *kubeEnv) kubectlErr(stdin []byte, args ...string) (string, error) {
	return run(stdin, kubectlPath(), append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
}

// apply server-side applies manifests as fieldManager.
func (e *kubeEnv) apply(t *testing.T, manifests []byte, fieldManager string, extra ...string) string {
	t.Helper()
	args := append([]string{"apply", "--server-side", "--field-manager=" + fieldManager, "-f", "-"}, extra...)
	return e.kubectl(t, manifests, args...)
}

// createNamespaces creates the namespaces (with labels) unless they exist.
func (e *kubeEnv) createNamespaces(t *testing.T, labels map[string]string, names ...string) {
	t.Helper()
	var buf bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&buf, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", n)
		if len(labels) > 0 {
			buf.WriteString("  labels:\n")
			for k, v := range labels {
				fmt.Fprintf(&buf, "    %s: %q\n", k, v)
			}
		}
	}
	e.apply(t, buf.Bytes(), "packaging-test")
}

// helm runs the pinned helm against this control plane.
func (e *kubeEnv) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.helmErr(args...)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (e *kubeEnv) helmErr(args ...string) (string, error) {
	return runHelm(append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
}

func kubectlPath() string {
	return filepath.Join(os.Getenv(testenv.EnvKubeAssets), "kubectl")
}

// kustomize builds a kustomization with the envtest kubectl (no server).
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	testenv.KubeAssets(t)
	out, err := run(nil, kubectlPath(), "kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return []byte(out)
}

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
	helmHome string
)

// runHelm runs the helm pinned in hack/tools/go.mod, built by `make
// test-tools` and named by $HELM, with its config and cache dirs kept out of
// the user's home.
func runHelm(args ...string) (string, error) {
	helmOnce.Do(func() {
		if helmBin, helmErr = testenv.ToolPath(testenv.EnvHelm); helmErr != nil {
			return
		}
		helmHome, helmErr = os.MkdirTemp("", "packaging-helm-home-")
	})
	if helmErr != nil {
		return "", helmErr
	}
	return runEnv([]string{
		"HELM_CONFIG_HOME=" + filepath.Join(helmHome, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(helmHome, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(helmHome, "data"),
	}, nil, helmBin, args...)
}

// helmTemplate renders the chart with a CI values file into namespace ns.
// The pinned helm is built without version stamps and would assume
// Kubernetes 1.20, below the chart's kubeVersion: say which version to
// render for, as Argo CD does.
func helmTemplate(t *testing.T, release, ns string, args ...string) []byte {
	t.Helper()
	out, err := helmTemplateErr(release, ns, args...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return []byte(out)
}

func helmTemplateErr(release, ns string, args ...string) (string, error) {
	return runHelm(append([]string{"template", release, chartDir, "--namespace", ns, "--kube-version", "1.37.0"}, args...)...)
}

// cmdTimeout bounds one tool run, so a hung command fails its test.
const cmdTimeout = 2 * time.Minute

func run(stdin []byte, name string, args ...string) (string, error) {
	return runEnv(nil, stdin, name, args...)
}

// runEnv runs a command in the repository root with extra environment
// variables, returning stdout; an error carries stdout and stderr.
// runEnvDir does the same in dir.
func runEnv(env []string, stdin []byte, name string, args ...string) (string, error) {
	return runEnvDir(repoRoot, env, stdin, name, args...)
}

func runEnvDir(dir string, env []string, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// decodeManifests splits a multi-document YAML stream into objects,
// skipping empty documents.
func decodeManifests(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// byKind indexes objects by kind, then name.
func byKind(objs []*unstructured.Unstructured) map[string]map[string]*unstructured.Unstructured {
	idx := map[string]map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if idx[o.GetKind()] == nil {
			idx[o.GetKind()] = map[string]*unstructured.Unstructured{}
		}
		idx[o.GetKind()][o.GetName()] = o
	}
	return idx
}

// rendered caches `helm template` of each CI values file: several tests use
// the same renderings.
var rendered sync.Map // values name -> *renderResult

type renderResult struct {
	once      sync.Once
	manifests []byte
	err       error
}

// releaseNamespace is where each CI rendering is installed; full-values.yaml
// lists it in watchNamespaces.
func releaseNamespace(values string) string {
	if values == "full" {
		return "kommo-unisender-full"
	}
	return "kus-" + values
}

func renderCI(t *testing.T, values string) []byte {
	t.Helper()
	r, _ := rendered.LoadOrStore(values, &renderResult{})
	res := r.(*renderResult)
	res.once.Do(func() {
		var out string
		out, res.err = helmTemplateErr(values, releaseNamespace(values), "-f", ciValuesFile(values))
		res.manifests = []byte(out)
	})
	if res.err != nil {
		t.Fatalf("helm template with %s values: %v", values, res.err)
	}
	return res.manifests
}
