// Package packaging tests what users install: the kustomize configuration,
// the Helm chart, the Argo CD health checks and the container build context.
// Manifests are applied to real kube-apiservers (envtest), not only linted.
//
// Two control planes start on first use, side by side:
//   - "apply": the CRDs pre-installed from config/crd/bases; the kustomize
//     output, every `helm template` rendering, the samples and the Argo CD
//     ConfigMap are server-side applied here, and the workloads' pod
//     templates are admitted (or not) by Pod Security;
//   - "helm": empty, so `helm install` owns the CRDs it creates, as on a
//     fresh cluster.
//
// Without KUBEBUILDER_ASSETS the tests needing them fail, or skip under -short.
package packaging

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// repoRoot is the module root, found from this file.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot}, parts...)...)
}

// chartDir is the chart under test.
var chartDir = repoPath("charts", "kommo-unisender")

// ciValues are the chart's CI values files, by short name.
var ciValues = []string{"defaults", "external", "full"}

func ciValuesFile(name string) string {
	return filepath.Join(chartDir, "ci", name+"-values.yaml")
}

// cluster is a lazily started control plane shared by the tests of the run.
type cluster struct {
	name    string
	crdDirs []string
	once    sync.Once
	kube    *testenv.Kube
	env     *kubeEnv
	err     error
}

var (
	applyCluster = &cluster{name: "apply", crdDirs: []string{repoPath("config", "crd", "bases")}}
	helmCluster  = &cluster{name: "helm"}
	clustersMu   sync.Mutex
	started      []*cluster
)

// get starts the control plane on first use. Without envtest assets the
// test fails, or skips under -short.
func (c *cluster) get(t *testing.T) *kubeEnv {
	t.Helper()
	testenv.KubeAssets(t)
	c.once.Do(func() {
		c.kube, c.err = testenv.StartKube(c.crdDirs...)
		if c.err != nil {
			return
		}
		clustersMu.Lock()
		started = append(started, c)
		clustersMu.Unlock()
		c.env, c.err = newKubeEnv(c.name, c.kube)
	})
	if c.err != nil {
		t.Fatalf("%s control plane: %v", c.name, c.err)
	}
	return c.env
}

func stopClusters() {
	clustersMu.Lock()
	defer clustersMu.Unlock()
	for _, c := range started {
		c.kube.Stop()
		if c.env != nil {
			_ = os.RemoveAll(c.env.dir)
		}
	}
	started = nil
}

func TestMain(m *testing.M) {
	flag.Parse()
	// No apiserver or etcd may outlive an interrupted run.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		stopClusters()
		fmt.Fprintln(os.Stderr, "packaging: interrupted")
		os.Exit(130)
	}()
	code := m.Run()
	stopClusters()
	os.Exit(code)
}
