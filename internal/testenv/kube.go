package testenv

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Kube is a private control plane: a real kube-apiserver and etcd.
type Kube struct {
	Env    *envtest.Environment
	Config *rest.Config
	once   sync.Once
}

// StartKube starts kube-apiserver and etcd from KUBEBUILDER_ASSETS and
// installs the CRDs found in crdDirs.
func StartKube(crdDirs ...string) (*Kube, error) {
	if os.Getenv(EnvKubeAssets) == "" {
		return nil, fmt.Errorf("%s is not set: run hack/envtest-assets.sh (make test does)", EnvKubeAssets)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: len(crdDirs) > 0,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	return &Kube{Env: env, Config: cfg}, nil
}

// Stop ends the control plane; safe to call more than once.
func (k *Kube) Stop() {
	k.once.Do(func() { _ = k.Env.Stop() })
}

// RunWithKube is a TestMain body: it starts the control plane, runs the
// tests, and stops it — also when the run is interrupted, so no apiserver or
// etcd outlives the test binary. Without assets it fails, or skips the
// package under -short.
func RunWithKube(m *testing.M, crdDirs []string, kube **Kube) int {
	flag.Parse()
	k, err := StartKube(crdDirs...)
	if err != nil {
		if testing.Short() {
			fmt.Fprintf(os.Stderr, "skipping (-short): %v\n", err)
			return 0
		}
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	*kube = k
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		k.Stop()
		os.Exit(130)
	}()
	defer k.Stop()
	return m.Run()
}
