// Package devenv starts the whole system on one machine — a control plane
// from the envtest binaries, MariaDB, beanstalkd, the sandbox, the manager
// with its webhook server, and one or more workers, each a process of the
// operator's binary — for `make dev` and the end-to-end tests.
package devenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// Options choose what to start.
type Options struct {
	// Binary is the kommo-unisender executable whose subcommands run.
	Binary string
	// Dir holds data, logs and the kubeconfig; it must exist.
	Dir string
	// CRDDir is config/crd/bases.
	CRDDir string
	// Output receives every process's log lines, prefixed by its name.
	Output io.Writer
	// Sandbox starts the Kommo and Unisender emulators; without it the
	// real services are used (PublicBaseURL is then required).
	Sandbox bool
	// SandboxAccessTokenTTL is the emulated Kommo token lifetime.
	SandboxAccessTokenTTL time.Duration
	// SeedContacts is the number of contacts of the sandbox account.
	SeedContacts int
	// SandboxHookRetry and SandboxHookMaxAttempts shape the sandbox
	// Unisender's event hook retries (zero: Unisender's 10 minutes, for
	// 24 hours).
	SandboxHookRetry       time.Duration
	SandboxHookMaxAttempts int
	// SandboxKommoRate is the emulated Kommo's requests per second per
	// account (0: Kommo's 7). A benchmark raises it, together with its
	// integrations' spec.rateLimit, to import a million contacts in minutes.
	SandboxKommoRate float64
	// PublicBaseURL is where Kommo reaches the webhook server; with the
	// sandbox it is the local listener.
	PublicBaseURL string
	// UnisenderBaseURL overrides the Unisender API (the sandbox sets it).
	UnisenderBaseURL string
	// Workers is the number of worker processes (default 1). One worker is
	// the process "worker"; several are "worker-1" … "worker-N", each its
	// own process with its own metrics and probe ports, sharing the queue,
	// the database and the integrations' Kommo budgets as replicas do.
	Workers int
	// WebhookServerArgs are extra flags of the webhook server (a test's
	// admission bounds, say).
	WebhookServerArgs []string
}

// Sandbox identities used by the sample tenant.
const (
	SandboxSubdomain    = "acme"
	SandboxClientID     = "dev-client"
	SandboxClientSecret = "dev-client-secret-not-for-production" //nolint:gosec // the sandbox's own, public by design
	SandboxUnisenderKey = "dev-unisender-key"
)

// Env is a running system.
type Env struct {
	opts       Options
	kube       *envtest.Environment
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string
	MariaDB    *testenv.MariaDB
	Beanstalkd *testenv.Beanstalkd
	// KommoURL and UnisenderURL are the sandbox emulators (empty in real mode).
	KommoURL, UnisenderURL string
	// WebhookURL is the local address of the webhook server.
	WebhookURL string
	Processes  map[string]*Process
	// WorkerNames are the names of the worker processes in Processes.
	WorkerNames []string
	// MetricsURLs are the /metrics URLs of the manager and the workers, by
	// process name.
	MetricsURLs map[string]string
}

// Start brings everything up, stopping what it started if a step fails or
// ctx ends first.
func Start(ctx context.Context, o Options) (env *Env, err error) {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	e := &Env{opts: o, Processes: map[string]*Process{}, MetricsURLs: map[string]string{}}
	webhookPort, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	e.WebhookURL = "http://" + hostPort(webhookPort)
	defer func() {
		if err != nil {
			e.Stop()
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"control plane", e.startControlPlane},
		{"MariaDB", e.startMariaDB},
		{"beanstalkd", e.startBeanstalkd},
		{"sandbox", e.startSandbox},
		{"operator", e.startOperator},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.say("starting %s", s.name)
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return e, nil
}

func (e *Env) say(format string, args ...any) {
	fmt.Fprintf(e.opts.Output, "%-13s| %s\n", "dev", fmt.Sprintf(format, args...))
}

func (e *Env) startControlPlane(context.Context) error {
	e.kube = &envtest.Environment{CRDDirectoryPaths: []string{e.opts.CRDDir}, ErrorIfCRDPathMissing: true}
	cfg, err := e.kube.Start()
	if err != nil {
		return err
	}
	e.Config = cfg
	scheme, err := contract.Scheme()
	if err != nil {
		return err
	}
	if e.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	user, err := e.kube.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(e.opts.Dir, "kubeconfig")
	return os.WriteFile(e.Kubeconfig, kubeconfig, 0o600)
}

func (e *Env) startMariaDB(ctx context.Context) (err error) {
	if e.MariaDB, err = testenv.StartMariaDB(ctx, mkdir(e.opts.Dir, "mariadb")); err != nil {
		return err
	}
	db, err := sql.Open("mysql", e.MariaDB.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+databaseName+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	return err
}

// databaseName is the operator's database on the private MariaDB.
const databaseName = "kommo_unisender"

func (e *Env) startBeanstalkd(ctx context.Context) (err error) {
	e.Beanstalkd, err = testenv.StartBeanstalkd(ctx, mkdir(e.opts.Dir, "beanstalkd"))
	return err
}

// MySQLDSN is the DSN of the operator's database.
func (e *Env) MySQLDSN() string {
	cfg, _ := mysql.ParseDSN(e.MariaDB.DSN())
	cfg.DBName = databaseName
	return cfg.FormatDSN()
}

func (e *Env) startSandbox(ctx context.Context) error {
	if !e.opts.Sandbox {
		return nil
	}
	kp, up, err := freePorts2()
	if err != nil {
		return err
	}
	e.KommoURL = "http://127.0.0.1:" + strconv.Itoa(kp)
	e.UnisenderURL = "http://127.0.0.1:" + strconv.Itoa(up)
	e.opts.UnisenderBaseURL = e.UnisenderURL
	args := []string{"sandbox", "--kommo-listen", hostPort(kp), "--unisender-listen", hostPort(up),
		"--access-token-ttl", e.opts.SandboxAccessTokenTTL.String(), "--kommo-rate-limit", e.sandboxKommoRate(),
		"--seed-subdomain", SandboxSubdomain, "--seed-contacts", strconv.Itoa(e.opts.SeedContacts),
		"--seed-client-id", SandboxClientID, "--seed-redirect-uri", e.redirectURI(),
		"--seed-unisender-key", SandboxUnisenderKey}
	if e.opts.SandboxHookRetry > 0 {
		args = append(args, "--unisender-hook-retry-interval", e.opts.SandboxHookRetry.String())
	}
	if e.opts.SandboxHookMaxAttempts > 0 {
		args = append(args, "--unisender-hook-max-attempts", strconv.Itoa(e.opts.SandboxHookMaxAttempts))
	}
	p := e.process("sandbox", []string{"SANDBOX_CLIENT_SECRET=" + SandboxClientSecret}, args...)
	if err := p.Start(); err != nil {
		return err
	}
	return waitHTTP(ctx, e.KommoURL+"/_admin/accounts")
}

// sandboxKommoRate is Options.SandboxKommoRate as the sandbox's flag value.
func (e *Env) sandboxKommoRate() string {
	if e.opts.SandboxKommoRate == 0 {
		return "7"
	}
	return strconv.FormatFloat(e.opts.SandboxKommoRate, 'f', -1, 64)
}

// redirectURI is the OAuth callback route of the webhook server.
func (e *Env) redirectURI() string { return e.publicBaseURL() + "/oauth/callback" }

func (e *Env) publicBaseURL() string {
	if e.opts.PublicBaseURL != "" {
		return e.opts.PublicBaseURL
	}
	return e.WebhookURL
}

func (e *Env) process(name string, env []string, args ...string) *Process {
	p := &Process{Name: name, bin: e.opts.Binary, args: args, env: env, out: e.opts.Output}
	e.Processes[name] = p
	return p
}

// Stop ends every process, the services and the control plane.
func (e *Env) Stop() {
	for _, name := range append(slices.Clone(e.WorkerNames), "webhookserver", "manager", "sandbox") {
		if p := e.Processes[name]; p != nil {
			p.Stop()
		}
	}
	if e.Beanstalkd != nil {
		e.Beanstalkd.Stop()
	}
	if e.MariaDB != nil {
		e.MariaDB.Stop()
	}
	if e.kube != nil {
		_ = e.kube.Stop()
	}
}

func mkdir(parent, name string) string {
	dir := filepath.Join(parent, name)
	_ = os.MkdirAll(dir, 0o700)
	return dir
}

func hostPort(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func freePorts2() (int, int, error) {
	a, err := testenv.FreePort()
	if err != nil {
		return 0, 0, err
	}
	b, err := testenv.FreePort()
	return a, b, err
}

// waitHTTP polls url until it answers with any status.
func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s never answered", url), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
