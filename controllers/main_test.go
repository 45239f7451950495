package controllers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// kube is the package's private control plane (envtest: a real
// kube-apiserver and etcd with the CRDs of config/crd/bases installed),
// shared by every test of the package. Tests start their own managers
// against kube.Config and keep to their own namespaces.
var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{filepath.Join("..", "config", "crd", "bases")}, &kube))
}
