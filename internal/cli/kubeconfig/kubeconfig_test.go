package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"
)

// A kubeconfig file gives the same unthrottled client as the usual search
// (controller-runtime sets QPS -1), not client-go's 5 requests/s.
func TestLoadFileHasNoClientSideRateLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	const file = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QPS >= 0 {
		t.Fatalf("QPS = %v, want negative (no client-side rate limit)", cfg.QPS)
	}
}
