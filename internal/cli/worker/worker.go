// Package worker is the `worker` subcommand: a Deployment that scales out,
// draining Kommo events from beanstalkd into Unisender with sync state in
// MySQL. Tenants come from a cache of UnisenderBindings and
// KommoIntegrations; the Secrets a worker needs (tokens, API keys) are read
// by name, the only way its RBAC allows.
package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/budget"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/kubeconfig"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
	"github.com/kommo-unisender/kommo-unisender/internal/worker/kuberesolver"
)

// Options are the subcommand's flags.
type Options struct {
	BeanstalkdAddr   string
	MySQLDSN         string
	UnisenderBaseURL string
	UnisenderRate    int
	// KommoHosts are the integrations' base URLs the worker may read
	// contacts from (--allowed-kommo-hosts).
	KommoHosts  kommo.HostPolicy
	MetricsAddr string
	ProbeAddr   string
	Namespaces  []string
	Kubeconfig  string
	Worker      worker.Config
	Zap         zap.Options
}

// ParseFlags reads the flags; secrets-bearing settings default to the
// environment so they stay out of the process list.
func ParseFlags(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&o.BeanstalkdAddr, "beanstalkd-addr", os.Getenv("BEANSTALKD_ADDR"), "beanstalkd host:port (default: $BEANSTALKD_ADDR)")
	fs.StringVar(&o.MySQLDSN, "mysql-dsn", os.Getenv("MYSQL_DSN"), "MySQL DSN of the store (default: $MYSQL_DSN)")
	fs.StringVar(&o.UnisenderBaseURL, "unisender-base-url", unisender.DefaultBaseURL, "Unisender API base URL (the sandbox in dev)")
	fs.Var(&o.KommoHosts, kommo.HostsFlagName, kommo.HostsFlagUsage)
	fs.IntVar(&o.UnisenderRate, "unisender-calls-per-minute", 1200, "Unisender calls per minute per API key")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "address of /metrics")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.Var((*namespaces.List)(&o.Namespaces), "namespaces", namespaces.FlagUsage)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, or $KUBECONFIG)")
	fs.StringVar(&o.Worker.Tube, "tube", worker.DefaultTube, "beanstalkd tube of webhook jobs")
	fs.IntVar(&o.Worker.Concurrency, "concurrency", 4, "reserving goroutines, each with its own beanstalkd connection")
	fs.IntVar(&o.Worker.MaxEvents, "max-events", 1000, "contacts named by one batch's jobs (read from Kommo 250 per request)")
	fs.DurationVar(&o.Worker.BatchWindow, "batch-window", 50*time.Millisecond, "how long a batch waits for more jobs")
	fs.DurationVar(&o.Worker.MaxJobAge, "max-job-age", 24*time.Hour,
		"a job not applied this long after it was received is dropped and its tenant resynced instead")
	fs.IntVar(&o.Worker.SubscribePerMinute, "invitations-per-minute", 300,
		"double opt-in invitations (Unisender subscribe calls) per minute per API key, shared by all worker processes (kept in MySQL)")
	o.Zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.BeanstalkdAddr == "":
		return o, errors.New("--beanstalkd-addr (or $BEANSTALKD_ADDR) is required")
	case o.MySQLDSN == "":
		return o, errors.New("--mysql-dsn (or $MYSQL_DSN) is required")
	}
	return o, nil
}

// Run is the `worker` subcommand.
func Run(ctx context.Context, args []string) error {
	o, err := ParseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := zap.New(zap.UseFlagOptions(&o.Zap)).WithName("worker")
	ctrl.SetLogger(log)
	st, err := store.Open(ctx, o.MySQLDSN)
	if err != nil {
		return err
	}
	defer st.Close()
	resolver, err := startResolver(ctx, o, st)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o.Worker.BeanstalkdAddr, o.Worker.Store, o.Worker.Resolver = o.BeanstalkdAddr, st, resolver
	o.Worker.Metrics, o.Worker.Log = worker.NewMetrics(reg), log
	queueStats, err := worker.NewQueueCollector(o.BeanstalkdAddr, o.Worker.Tube)
	if err != nil {
		return err
	}
	defer queueStats.Close()
	reg.MustRegister(queueStats)
	w, err := worker.New(o.Worker)
	if err != nil {
		return err
	}
	go serve(ctx, o.MetricsAddr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go serve(ctx, o.ProbeAddr, probes(st))
	log.Info("starting", "tube", o.Worker.Tube, "concurrency", o.Worker.Concurrency)
	return w.Run(ctx)
}

// startResolver starts a cache of bindings and integrations and returns the
// resolver reading it; Secrets are read by name (the manager grants the
// workers get on those names only: controllers.WorkerSecretsReconciler).
func startResolver(ctx context.Context, o Options, st *store.Store) (*kuberesolver.Resolver, error) {
	cfg, err := kubeconfig.Load(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme, err := contract.Scheme()
	if err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, kuberesolver.CacheOptions(scheme, o.Namespaces))
	if err != nil {
		return nil, err
	}
	// Informers for what Resolve reads, so the first batch does not wait.
	for _, obj := range []client.Object{&v1alpha1.UnisenderBinding{}, &v1alpha1.KommoIntegration{}} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("the cache did not sync")
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	// One client per API key, so every tenant and goroutine using a key
	// shares its rate limiter.
	return kuberesolver.New(kuberesolver.Options{
		Bindings: c, ManagedSecrets: kuberesolver.NewManagedSecretReader(direct), Secrets: direct, Live: direct,
		KommoHosts: o.KommoHosts, UnisenderBaseURL: o.UnisenderBaseURL,
		ClientOptions:  []unisender.Option{unisender.WithRateLimit(o.UnisenderRate, 1)},
		NewKommoClient: kommoClients(st),
	}), nil
}

// kommoClients makes the worker's client of an integration's account: it
// reads the token the manager keeps fresh (never refreshing it), and its
// requests take from the integration's foreground budget in MySQL, which
// the manager and every worker replica share, so the account never sees
// more than spec.rateLimit.requestsPerSecond in any second.
func kommoClients(st *store.Store) func(tenant.Key, string, int, kommo.TokenSource) *kommo.Client {
	return func(integration tenant.Key, baseURL string, rps int, ts kommo.TokenSource) *kommo.Client {
		return kommo.NewClient(baseURL,
			kommo.WithRateLimit(float64(rps), 1),
			kommo.WithBudget(budget.KommoForeground(st, integration.Namespace, integration.Name, rps)),
			kommo.WithTokenSource(ts),
			kommo.WithUserAgent("kommo-unisender-worker"))
	}
}

func probes(st *store.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := st.Ping(r.Context()); err != nil {
			http.Error(w, "MySQL unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func serve(ctx context.Context, addr string, h http.Handler) {
	if addr == "" || addr == "0" {
		return
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	_ = srv.ListenAndServe()
}
