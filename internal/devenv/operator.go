package devenv

import (
	"context"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// startOperator runs the three processes of the operator: the manager (with
// migrations at start-up), its webhook-server sidecar, and one worker.
func (e *Env) startOperator(ctx context.Context) error {
	common := []string{
		"KUBECONFIG=" + e.Kubeconfig,
		"MYSQL_DSN=" + e.MySQLDSN(),
		"BEANSTALKD_ADDR=" + e.Beanstalkd.Addr(),
	}
	ports := make([]int, 4)
	for i := range ports {
		p, err := testenv.FreePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	unisender := []string{}
	if e.opts.UnisenderBaseURL != "" {
		unisender = []string{"--unisender-base-url", e.opts.UnisenderBaseURL}
	}
	e.process("manager", common, append([]string{"manager",
		"--kubeconfig", e.Kubeconfig, "--public-base-url", e.publicBaseURL(),
		"--metrics-bind-address", hostPort(ports[0]), "--health-probe-bind-address", hostPort(ports[1]),
		"--leader-election-namespace", "default"}, unisender...)...)
	e.process("webhookserver", common, "webhookserver", "--listen", e.WebhookURL[len("http://"):])
	e.process("worker", common, append([]string{"worker",
		"--metrics-bind-address", hostPort(ports[2]), "--health-probe-bind-address", hostPort(ports[3])}, unisender...)...)
	for _, name := range []string{"manager", "webhookserver", "worker"} {
		if err := e.Processes[name].Start(); err != nil {
			return err
		}
	}
	if err := waitHTTP(ctx, "http://"+hostPort(ports[1])+"/readyz"); err != nil {
		return err
	}
	return waitHTTP(ctx, e.WebhookURL+"/healthz")
}
