package packaging

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/cli/kubeconfig"
	webhookservercli "github.com/kommo-unisender/kommo-unisender/internal/cli/webhookserver"
	workercli "github.com/kommo-unisender/kommo-unisender/internal/cli/worker"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// The hand-written roles are enough for the real programs: the webhook
// server and a worker run in-process as the ServiceAccounts config/default
// creates (impersonated), and each serves its health endpoint only after its
// caches synced, which a missing list or watch permission prevents.
func TestRolesSufficeForTheirPrograms(t *testing.T) {
	t.Parallel()
	env := applyKustomize(t)
	beanstalkd := testenv.BeanstalkdAddr(t)
	const ns = "kommo-unisender-system"

	t.Run("webhookserver as the manager's ServiceAccount", func(t *testing.T) {
		port := freePort(t)
		err := runUntilHealthy(t, webhookservercli.Run, []string{
			"--kubeconfig=" + env.impersonating(t, ns, "kommo-unisender-controller-manager"),
			"--listen=127.0.0.1:" + port, "--beanstalkd-addr=" + beanstalkd,
			"--tube=" + testenv.Tube("packaging"), "--zap-log-level=error",
		}, "http://127.0.0.1:"+port+"/healthz", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("worker as the worker's ServiceAccount", func(t *testing.T) {
		probes := freePort(t)
		err := runUntilHealthy(t, workercli.Run, []string{
			"--kubeconfig=" + env.impersonating(t, ns, "kommo-unisender-worker"),
			"--beanstalkd-addr=" + beanstalkd, "--mysql-dsn=" + testenv.MySQLDSN(t),
			"--tube=" + testenv.Tube("packaging"), "--zap-log-level=error",
			"--metrics-bind-address=127.0.0.1:" + freePort(t), "--health-probe-bind-address=127.0.0.1:" + probes,
		}, "http://127.0.0.1:"+probes+"/healthz", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
	})
	// Control: a ServiceAccount without these roles never gets there, so
	// the successes above are the roles' doing.
	t.Run("control: webhookserver without a role", func(t *testing.T) {
		port := freePort(t)
		err := runUntilHealthy(t, webhookservercli.Run, []string{
			"--kubeconfig=" + env.impersonating(t, ns, "nobody"),
			"--listen=127.0.0.1:" + port, "--beanstalkd-addr=" + beanstalkd, "--zap-log-level=error",
		}, "http://127.0.0.1:"+port+"/healthz", 5*time.Second)
		if err == nil {
			t.Fatal("the webhook server became healthy without any permission")
		}
	})
}

// With the chart's watchNamespaces, the webhook server and a worker started
// with --namespaces=<that list> as the chart's ServiceAccounts sync their
// caches from the Roles in each namespace; asked to watch a namespace
// outside the list, they never become healthy (the Roles are the only
// grants, so the list in the flags and in RBAC must agree).
func TestChartRolesSufficeForWatchNamespaces(t *testing.T) {
	t.Parallel()
	env := applyCI(t, "full")
	beanstalkd := testenv.BeanstalkdAddr(t)
	const ns = "kommo-unisender-full"
	webhookserver := func(namespaces string, wait time.Duration) error {
		port := freePort(t)
		return runUntilHealthy(t, webhookservercli.Run, []string{
			"--kubeconfig=" + env.impersonating(t, ns, "full-kommo-unisender-manager"),
			"--listen=127.0.0.1:" + port, "--beanstalkd-addr=" + beanstalkd, "--namespaces=" + namespaces,
			"--tube=" + testenv.Tube("packaging"), "--zap-log-level=error",
		}, "http://127.0.0.1:"+port+"/healthz", wait)
	}
	worker := func(namespaces string, wait time.Duration) error {
		probes := freePort(t)
		return runUntilHealthy(t, workercli.Run, []string{
			"--kubeconfig=" + env.impersonating(t, ns, "full-kommo-unisender-worker"),
			"--beanstalkd-addr=" + beanstalkd, "--mysql-dsn=" + testenv.MySQLDSN(t), "--namespaces=" + namespaces,
			"--tube=" + testenv.Tube("packaging"), "--zap-log-level=error",
			"--metrics-bind-address=127.0.0.1:" + freePort(t), "--health-probe-bind-address=127.0.0.1:" + probes,
		}, "http://127.0.0.1:"+probes+"/healthz", wait)
	}
	for name, run := range map[string]func(string, time.Duration) error{"webhookserver": webhookserver, "worker": worker} {
		t.Run(name, func(t *testing.T) {
			if err := run("tenants,tenants-b", 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if err := run("tenants,default", 5*time.Second); err == nil {
				t.Fatal("became healthy watching default, where the chart grants nothing")
			}
		})
	}
}

// runUntilHealthy runs a subcommand until url answers 200 (nil) or the
// subcommand returns or wait passes (an error), then stops it.
func runUntilHealthy(t *testing.T, run func(context.Context, []string) error, args []string, url string, wait time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("the subcommand stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the subcommand did not stop within 30s of its context ending")
		}
	}()
	return waitHealthy(url, done, wait)
}

// waitHealthy polls url until it answers 200 (nil), the subcommand ends (its
// result is put back on done), or wait passes.
func waitHealthy(url string, done chan error, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("the subcommand returned before it was healthy: %v", err)
		default:
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, wait)
}

// impersonating writes a kubeconfig acting as ServiceAccount ns/name, with
// the groups the API server gives ServiceAccounts.
func (e *kubeEnv) impersonating(t *testing.T, ns, name string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(e.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + ns + ":" + name
		auth.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// impersonatedClient is a client acting as ServiceAccount ns/name.
func (e *kubeEnv) impersonatedClient(t *testing.T, ns, name string) client.Client {
	t.Helper()
	cfg, err := kubeconfig.Load(e.impersonating(t, ns, name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func freePort(t *testing.T) string {
	t.Helper()
	p, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}
