// Package kubeconfig finds the Kubernetes API for the subcommands: an
// explicit kubeconfig file, else controller-runtime's usual search
// (--kubeconfig flag, $KUBECONFIG, in-cluster, ~/.kube/config).
package kubeconfig

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Load returns the REST config of the file at path, or the usual one when
// path is empty. Either way without client-go's client-side rate limit
// (5 requests/s), as controller-runtime's usual config is: the API
// server's priority and fairness paces us. With the limit, a manager given
// a kubeconfig file took over two minutes to make 100 tenants Ready.
func Load(path string) (*rest.Config, error) {
	if path == "" {
		return ctrl.GetConfig()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	if cfg.QPS == 0 {
		cfg.QPS = -1
	}
	return cfg, nil
}

// serviceAccountNamespace is where Kubernetes tells a pod its namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// PodNamespace is the default of --operator-namespace: $POD_NAMESPACE,
// else the namespace of the pod's service account, else "" (outside a
// cluster).
func PodNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
