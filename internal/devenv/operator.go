package devenv

import (
	"context"
	"strconv"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// startOperator runs the processes of the operator: the manager (with
// migrations at start-up), its webhook-server sidecar, and Options.Workers
// workers. It returns once the manager is ready, the webhook server answers
// and every worker is ready (its cache synced, MySQL reachable).
func (e *Env) startOperator(ctx context.Context) error {
	common := []string{
		"KUBECONFIG=" + e.Kubeconfig,
		"MYSQL_DSN=" + e.MySQLDSN(),
		"BEANSTALKD_ADDR=" + e.Beanstalkd.Addr(),
	}
	ports := make([]int, 2+2*e.opts.Workers)
	for i := range ports {
		p, err := testenv.FreePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	apis := []string{}
	if e.opts.UnisenderBaseURL != "" {
		apis = []string{"--unisender-base-url", e.opts.UnisenderBaseURL}
	}
	if e.KommoURL != "" {
		// The sandbox's Kommo is plain http on loopback, not Kommo's domains.
		apis = append(apis, "--"+kommo.HostsFlagName, kommoemu.HostsFlagValue)
	}
	e.process("manager", common, append([]string{"manager",
		"--kubeconfig", e.Kubeconfig, "--public-base-url", e.publicBaseURL(),
		"--metrics-bind-address", hostPort(ports[0]), "--health-probe-bind-address", hostPort(ports[1]),
		"--leader-election-namespace", "default", "--operator-namespace", "default"}, apis...)...)
	e.MetricsURLs["manager"] = "http://" + hostPort(ports[0]) + "/metrics"
	e.process("webhookserver", common, append([]string{"webhookserver", "--listen", e.WebhookURL[len("http://"):],
		"--operator-namespace", "default"}, e.opts.WebhookServerArgs...)...)
	ready := []string{"http://" + hostPort(ports[1]) + "/readyz", e.WebhookURL + "/healthz"}
	e.WorkerNames = workerNames(e.opts.Workers)
	for i, name := range e.WorkerNames {
		metrics, probe := ports[2+2*i], ports[3+2*i]
		e.process(name, common, append([]string{"worker",
			"--metrics-bind-address", hostPort(metrics), "--health-probe-bind-address", hostPort(probe)}, apis...)...)
		e.MetricsURLs[name] = "http://" + hostPort(metrics) + "/metrics"
		ready = append(ready, "http://"+hostPort(probe)+"/readyz")
	}
	for _, name := range append([]string{"manager", "webhookserver"}, e.WorkerNames...) {
		if err := e.Processes[name].Start(); err != nil {
			return err
		}
	}
	for _, url := range ready {
		if err := waitHTTP(ctx, url); err != nil {
			return err
		}
	}
	return nil
}

// workerNames names n worker processes: "worker" alone, or "worker-1" …
// "worker-n".
func workerNames(n int) []string {
	if n == 1 {
		return []string{"worker"}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = "worker-" + strconv.Itoa(i+1)
	}
	return names
}
